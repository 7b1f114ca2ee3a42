//! `centinela plan-posts`: where N brigades should wait so that the most recent presses are
//! reachable within M minutes (Operator.PlanPosts; docs/plan-posts.md). Prints the posts and
//! the coverage before (the units where they are now) and after, as a table or as JSON
//! (`--json`: `{"posts": [{"lat", "lon", "button"}...], "coverage_before", "coverage_after",
//! ...}`, formatted by the console's [`reply_json`], so the console's map layer reads the same).

use clap::{Args, ValueEnum};
use tonic::Code;

use centinela_console::posts::reply_json;
use centinela_proto::v1;

use crate::client::{self, Client, Failure, Result};
use crate::output::{print_json, print_table, write_stdout};

#[derive(Args)]
pub struct PlanPostsArgs {
    /// Brigades to place (1 to 1000).
    #[arg(long)]
    brigades: u32,
    /// A post covers a button when a unit waiting there reaches it within this many minutes
    /// (over 0, at most 60; fractions allowed).
    #[arg(long, allow_negative_numbers = true)]
    target_minutes: f64,
    /// Count incidents opened at or after this RFC 3339 instant (default: the last 180 days).
    #[arg(long, value_parser = client::parse_rfc3339_ms)]
    since: Option<u64>,
    /// The units' mode for travel times.
    #[arg(long, value_enum, default_value = "car")]
    mode: ModeArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Foot,
    Motorcycle,
    Car,
}

impl ModeArg {
    fn name(self) -> &'static str {
        match self {
            ModeArg::Foot => "foot",
            ModeArg::Motorcycle => "motorcycle",
            ModeArg::Car => "car",
        }
    }
}

fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

pub async fn run(client: &Client, args: &PlanPostsArgs) -> Result<()> {
    let request = v1::PlanPostsRequest {
        brigades: args.brigades,
        target_minutes: args.target_minutes,
        since_ms: args.since.unwrap_or(0),
        mode: args.mode.name().to_string(),
    };
    let reply = client
        .operator(|mut c| {
            let request = request.clone();
            async move { c.plan_posts(request).await }
        })
        .await
        .map_err(|status| {
            let hint = match status.code() {
                Code::InvalidArgument => Some(
                    "--brigades takes 1 to 1000, --target-minutes over 0 and at most 60".into(),
                ),
                Code::FailedPrecondition => Some(
                    "no archived incidents in the period: widen --since, or try \
                     `centinela demo --history 90`"
                        .into(),
                ),
                _ => None,
            };
            let failure = Failure::from(status);
            Failure {
                hint: failure.hint.or(hint),
                ..failure
            }
        })?;
    if client.json {
        print_json(&reply_json(&reply))?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply
        .posts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            vec![
                (i + 1).to_string(),
                p.button.clone(),
                format!("{:.6}", p.lat),
                format!("{:.6}", p.lon),
            ]
        })
        .collect();
    print_table(&["POST", "BUTTON", "LAT", "LON"], &rows)?;
    let proof = if reply.optimal {
        "optimal".to_string()
    } else {
        format!("best possible at most {}", percent(reply.upper_bound))
    };
    write_stdout(&format!(
        "\nwithin {} min by {}, {} incidents at {} buttons:\n  \
         now ({} units where they are): {}\n  \
         with these {} posts: {} ({}, {})\n",
        reply.target_minutes,
        reply.mode,
        reply.incidents,
        reply.buttons,
        reply.brigades_now,
        percent(reply.coverage_before),
        reply.posts.len(),
        percent(reply.coverage_after),
        reply.solver,
        proof,
    ))?;
    Ok(())
}
