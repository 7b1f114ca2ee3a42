//! `Operator.PlanPosts`: where N brigades should wait (docs/plan-posts.md).
//!
//! Demand comes from the archive ([`centinela_archive::Archive::demand`]: incidents per
//! button, weighted by recency), placed at the buttons' positions in the inventory; candidate
//! posts are those positions; coverage uses the dispatcher's travel-time model
//! ([`StraightLine`]). `coverage_before` is the same measure over every unit's current
//! position in the store. The solver ([`centinela_core::posts`]) runs on a blocking thread: a
//! large city takes up to a second of CPU, which must not stall the node's async workers.

use std::collections::HashMap;
use std::time::Duration;

use tonic::Status;

use centinela_actors::Context;
use centinela_core::brigade::{Brigade, Mode};
use centinela_core::button::Button;
use centinela_core::dispatch::StraightLine;
use centinela_core::geo::Position;
use centinela_core::limits::{
    POSTS_BRIGADES_MAX, POSTS_DEMAND_HALF_LIFE, POSTS_PERIOD_MAX, POSTS_TARGET_MINUTES_MAX,
};
use centinela_core::posts::{self, Demand, Method, Problem};
use centinela_core::time::Timestamp;
use centinela_proto::v1;

use crate::status::{from_archive, from_posts, from_records};

/// The period read when the request does not say: 180 days, past which an incident weighs
/// under 2 % of today's at the 30-day half-life.
pub const PERIOD_DEFAULT: Duration = Duration::from_secs(180 * 86_400);

/// The request's arguments, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Args {
    brigades: u32,
    target: Duration,
    target_minutes: f64,
    since: Timestamp,
    mode: Mode,
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Foot => "foot",
        Mode::Motorcycle => "motorcycle",
        Mode::Car => "car",
    }
}

/// Checks a request against the limits, resolving defaults; `INVALID_ARGUMENT` with the
/// reason and the accepted range otherwise.
fn check(request: &v1::PlanPostsRequest, now: Timestamp) -> Result<Args, Status> {
    let brigades = request.brigades;
    if brigades == 0 || brigades > POSTS_BRIGADES_MAX {
        return Err(Status::invalid_argument(format!(
            "brigades {brigades} is out of range: 1 to {POSTS_BRIGADES_MAX}"
        )));
    }
    let minutes = request.target_minutes;
    if !minutes.is_finite() || minutes <= 0.0 || minutes > f64::from(POSTS_TARGET_MINUTES_MAX) {
        return Err(Status::invalid_argument(format!(
            "target_minutes {minutes} is out of range: over 0, at most {POSTS_TARGET_MINUTES_MAX}"
        )));
    }
    let mode = match request.mode.as_str() {
        "" | "car" => Mode::Car,
        "motorcycle" => Mode::Motorcycle,
        "foot" => Mode::Foot,
        other => {
            return Err(Status::invalid_argument(format!(
                "mode {other:?} is not one of foot, motorcycle, car"
            )));
        }
    };
    let earliest = Timestamp::from_millis(
        now.as_millis()
            .saturating_sub(POSTS_PERIOD_MAX.as_millis() as u64),
    );
    let since = match request.since_ms {
        0 => Timestamp::from_millis(
            now.as_millis()
                .saturating_sub(PERIOD_DEFAULT.as_millis() as u64),
        ),
        ms => Timestamp::from_millis(ms),
    };
    if since >= now {
        return Err(Status::invalid_argument(format!(
            "since {} is not before now",
            since.as_millis()
        )));
    }
    if since < earliest {
        return Err(Status::invalid_argument(format!(
            "since reaches back more than {} days",
            POSTS_PERIOD_MAX.as_secs() / 86_400
        )));
    }
    Ok(Args {
        brigades,
        target: Duration::from_secs_f64(minutes * 60.0),
        target_minutes: minutes,
        since,
        mode,
    })
}

/// Answers `PlanPosts`.
pub async fn plan(
    ctx: &Context,
    request: v1::PlanPostsRequest,
) -> Result<v1::PlanPostsReply, Status> {
    let history = crate::status::history(ctx)?;
    let now = ctx.clock.now();
    let args = check(&request, now)?;
    let demand = history
        .archive
        .demand(args.since, now, POSTS_DEMAND_HALF_LIFE)
        .await
        .map_err(from_archive)?;
    let (buttons, _) = ctx
        .records
        .snapshot::<Button>()
        .await
        .map_err(from_records)?;
    let (brigades, _) = ctx
        .records
        .snapshot::<Brigade>()
        .await
        .map_err(from_records)?;

    let positions: HashMap<&str, (Position, &str)> = buttons
        .iter()
        .map(|b| (b.id.as_str(), (b.position, b.id.as_str())))
        .collect();
    let mut demands = Vec::new();
    let mut demand_buttons = 0u32;
    let mut incidents = 0u64;
    let mut unplaced = 0u64;
    for entry in &demand {
        match positions.get(entry.button.as_str()) {
            Some((position, _)) => {
                demands.push(Demand {
                    position: *position,
                    weight: entry.weight,
                });
                demand_buttons += 1;
                incidents += entry.incidents;
            }
            None => unplaced += entry.incidents,
        }
    }
    let candidates: Vec<(Position, String)> = buttons
        .iter()
        .map(|b| (b.position, b.id.to_string()))
        .collect();
    let now_positions: Vec<Position> = brigades.iter().map(|b| b.position).collect();
    let brigades_now = u32::try_from(now_positions.len()).unwrap_or(u32::MAX);

    let solved = tokio::task::spawn_blocking(move || {
        let travel = StraightLine::default();
        let points: Vec<Position> = candidates.iter().map(|(p, _)| *p).collect();
        let problem = Problem::new(&demands, &points, &travel, args.mode, args.target)?;
        let plan = posts::solve(&problem, args.brigades, Method::Auto)?;
        let before = posts::coverage(&demands, &now_positions, &travel, args.mode, args.target);
        let posts: Vec<v1::PlanPost> = plan
            .posts
            .iter()
            .map(|&c| v1::PlanPost {
                lat: candidates[c].0.lat(),
                lon: candidates[c].0.lon(),
                button: candidates[c].1.clone(),
            })
            .collect();
        Ok::<_, posts::Error>((plan, before, posts))
    })
    .await
    .map_err(|e| Status::internal(format!("the post planner failed: {e}")))?;
    let (plan, before, posts) = solved.map_err(from_posts)?;
    tracing::info!(
        brigades = args.brigades,
        target_minutes = args.target_minutes,
        solver = plan.solver.as_str(),
        optimal = plan.optimal,
        nodes = plan.nodes,
        coverage_before = before,
        coverage_after = plan.coverage(),
        "brigade posts planned"
    );
    Ok(v1::PlanPostsReply {
        posts,
        coverage_before: before,
        coverage_after: plan.coverage(),
        solver: plan.solver.as_str().to_string(),
        optimal: plan.optimal,
        upper_bound: plan.upper_bound(),
        brigades_now,
        buttons: demand_buttons,
        incidents,
        incidents_unplaced: unplaced,
        since_ms: args.since.as_millis(),
        mode: mode_name(args.mode).to_string(),
        target_minutes: args.target_minutes,
        brigades: args.brigades,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_795_817_112_345);

    fn request(brigades: u32, target_minutes: f64) -> v1::PlanPostsRequest {
        v1::PlanPostsRequest {
            brigades,
            target_minutes,
            ..Default::default()
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_the_accepted_range() {
        for (req, needle) in [
            (request(0, 8.0), "brigades 0 is out of range: 1 to 1000"),
            (request(1_001, 8.0), "brigades 1001"),
            (request(3, 0.0), "target_minutes 0 is out of range"),
            (request(3, -1.0), "target_minutes -1"),
            (request(3, f64::NAN), "target_minutes NaN"),
            (request(3, 61.0), "at most 60"),
            (
                v1::PlanPostsRequest {
                    mode: "bicycle".into(),
                    ..request(3, 8.0)
                },
                "not one of foot, motorcycle, car",
            ),
            (
                v1::PlanPostsRequest {
                    since_ms: NOW.as_millis() + 1,
                    ..request(3, 8.0)
                },
                "not before now",
            ),
            (
                v1::PlanPostsRequest {
                    since_ms: 1,
                    ..request(3, 8.0)
                },
                "more than 1098 days",
            ),
        ] {
            let status = check(&req, NOW).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{req:?}");
            assert!(status.message().contains(needle), "{}", status.message());
        }
    }

    #[test]
    fn defaults_are_car_and_the_last_180_days() {
        let args = check(&request(4, 7.5), NOW).unwrap();
        assert_eq!(args.mode, Mode::Car);
        assert_eq!(args.target, Duration::from_secs(450));
        assert_eq!(
            NOW.as_millis() - args.since.as_millis(),
            PERIOD_DEFAULT.as_millis() as u64
        );
    }
}
