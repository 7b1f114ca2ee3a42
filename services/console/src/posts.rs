//! Where to post the brigades, on the console's map: `GET /api/plan-posts` answers with the
//! posts `Operator.PlanPosts` computes (the same call `centinela plan-posts` makes over gRPC,
//! made in-process; no second planner), as the JSON `centinela plan-posts --json` prints:
//! [`reply_json`] is the one formatting of both. The page's layer is `assets/posts.js`
//! (docs/plan-posts.md, "On the console's map").
//!
//! Bad input is refused by the service with the accepted range (400); a node without an
//! archive answers 503 and a period without archived incidents 409, each with a message the
//! page shows as it is.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tonic::Request;

use centinela_proto::v1;
use centinela_proto::v1::operator_server::Operator as _;

use crate::ConsoleState;
use crate::api::{ApiError, ApiResult, Signed, json_ok};
use crate::limits::PLAN_POSTS_AT_ONCE_MAX;

/// Plans being computed for the console at once, on this node ([`PLAN_POSTS_AT_ONCE_MAX`]).
static PLANNING: Semaphore = Semaphore::const_new(PLAN_POSTS_AT_ONCE_MAX);

/// The query of `/api/plan-posts` (the fields of `PlanPostsRequest`; the ranges are the
/// service's, `centinela_core::limits::POSTS_*`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// Brigades to place.
    brigades: u32,
    /// The target: a post covers a button its unit reaches within this many minutes.
    minutes: f64,
    /// Count incidents opened at or after this instant (ms since the epoch); the service's
    /// default period when absent.
    since_ms: Option<u64>,
    /// `foot`, `motorcycle` or `car` (the default).
    mode: Option<String>,
}

/// `GET /api/plan-posts?brigades=N&minutes=M[&since_ms=][&mode=]`: [`reply_json`].
pub async fn plan(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    query: Result<Query<PlanQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let _permit = PLANNING.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "resource_exhausted",
            format!(
                "{PLAN_POSTS_AT_ONCE_MAX} plans are being computed on this node; try again \
                 in a moment"
            ),
        )
    })?;
    let reply = state
        .operator
        .plan_posts(Request::new(v1::PlanPostsRequest {
            brigades: query.brigades,
            target_minutes: query.minutes,
            since_ms: query.since_ms.unwrap_or(0),
            mode: query.mode.unwrap_or_default(),
        }))
        .await
        .map_err(ApiError::from_status)?;
    Ok(json_ok(reply_json(reply.get_ref())))
}

/// The reply as JSON: the contract's fields first (`posts` with `lat`, `lon`,
/// `coverage_before`, `coverage_after`; design §6.4), then the details. `centinela plan-posts
/// --json` prints exactly this.
pub fn reply_json(reply: &v1::PlanPostsReply) -> Value {
    json!({
        "posts": reply.posts.iter().map(|p| json!({
            "lat": p.lat,
            "lon": p.lon,
            "button": p.button,
        })).collect::<Vec<_>>(),
        "coverage_before": reply.coverage_before,
        "coverage_after": reply.coverage_after,
        "solver": reply.solver,
        "optimal": reply.optimal,
        "upper_bound": reply.upper_bound,
        "brigades": reply.brigades,
        "brigades_now": reply.brigades_now,
        "target_minutes": reply.target_minutes,
        "mode": reply.mode,
        "since_ms": reply.since_ms,
        "buttons": reply.buttons,
        "incidents": reply.incidents,
        "incidents_unplaced": reply.incidents_unplaced,
    })
}
