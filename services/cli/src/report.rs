//! `centinela report`: the municipality's report from the archive (Operator.Report), as a
//! table, JSON (`--json`) or CSV (`--csv`).

use clap::{Args, ValueEnum};

use centinela_console::reports::{COLUMNS, cells, report_csv, report_json};
use centinela_proto::v1;

use crate::client::{self, Client, Result};
use crate::output::{print_json, print_table, write_stdout};

/// The period a report covers when `--since` is not given: the last 30 days.
pub const PERIOD_DEFAULT_MS: u64 = 30 * 86_400_000;

#[derive(Args)]
pub struct ReportArgs {
    /// Incidents first pressed at or after this RFC 3339 instant (default: 30 days before
    /// --until).
    #[arg(long, value_parser = client::parse_rfc3339_ms)]
    since: Option<u64>,
    /// ... and before this one (default: now).
    #[arg(long, value_parser = client::parse_rfc3339_ms)]
    until: Option<u64>,
    /// One row per button, district (the button's; `unknown` when it has none), hour of the
    /// day, day of the week (0 Monday) or unit; hours and weekdays in CENTINELA_TIMEZONE.
    #[arg(long, value_enum, default_value = "button")]
    by: ByArg,
    /// Comma-separated values on stdout (one row per group, then the total as `all`).
    #[arg(long)]
    csv: bool,
}

impl ReportArgs {
    pub fn csv(&self) -> bool {
        self.csv
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ByArg {
    Button,
    District,
    Hour,
    Weekday,
    Unit,
}

impl ByArg {
    fn name(self) -> &'static str {
        match self {
            ByArg::Button => "button",
            ByArg::District => "district",
            ByArg::Hour => "hour",
            ByArg::Weekday => "weekday",
            ByArg::Unit => "unit",
        }
    }
}

/// Runs the report. `now_ms` is the default end; `offset_minutes` the zone's offset at the
/// start of the period (computed by the caller from CENTINELA_TIMEZONE).
pub async fn run(
    client: &Client,
    args: &ReportArgs,
    now_ms: u64,
    offset_minutes: impl Fn(u64) -> i32,
) -> Result<()> {
    let until = args.until.unwrap_or(now_ms);
    let since = args
        .since
        .unwrap_or_else(|| until.saturating_sub(PERIOD_DEFAULT_MS));
    let request = v1::ReportRequest {
        since_ms: since,
        until_ms: until,
        by: args.by.name().to_string(),
        utc_offset_minutes: offset_minutes(since),
    };
    let reply = client
        .operator(|mut c| {
            let request = request.clone();
            async move { c.report(request).await }
        })
        .await?;
    if args.csv {
        write_stdout(&report_csv(&reply))?;
    } else if client.json {
        print_json(&report_json(&reply))?;
    } else {
        let rows: Vec<Vec<String>> = reply
            .rows
            .iter()
            .chain(reply.total.as_ref())
            .map(cells)
            .collect();
        print_table(COLUMNS, &rows)?;
    }
    Ok(())
}
