//! The Reportes page (`/reportes`) and its data: the municipality's report from the archive
//! (`Operator.Report`) as JSON for the page's charts (`GET /api/report`) and as CSV to download
//! (`GET /api/report.csv`). The JSON and the CSV are the ones `centinela report --json|--csv`
//! prints: the CLI formats with the functions here.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use tonic::Request;

use centinela_proto::v1;
use centinela_proto::v1::operator_server::Operator as _;

use crate::api::{ApiError, ApiResult, Signed, json_ok, session_of};
use crate::{ConsoleState, assets, i18n};

/// `GET /reportes`: the page, for a signed-in operator (the demo's session in the demo);
/// anyone else goes to the login page.
pub(crate) async fn page(
    State(state): State<ConsoleState>,
    Query(query): Query<crate::LangQuery>,
    headers: HeaderMap,
) -> Response {
    let display = &state.auth.config().display;
    let session = session_of(&headers, &state.auth);
    let demo = state.auth.demo_session();
    let Some(operator_session) = session.as_ref().or(demo.as_ref()) else {
        return Redirect::to("/login").into_response();
    };
    let page = i18n::Page::Console {
        operator: operator_session.operator(),
    };
    let (lang, mut cookies) = i18n::negotiate(&headers, query.lang.as_deref(), page);
    if session.is_none()
        && let Some(demo) = &demo
    {
        cookies.push(state.auth.set_cookie(demo));
    }
    i18n::page(assets::REPORTS_HTML, lang, display, cookies)
}

/// The query of `/api/report` and `/api/report.csv` (the fields of `ReportRequest`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    by: Option<String>,
    utc_offset_minutes: Option<i32>,
}

async fn report(
    state: &ConsoleState,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<v1::ReportReply, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let reply = state
        .operator
        .report(Request::new(v1::ReportRequest {
            since_ms: query.since_ms.unwrap_or(0),
            until_ms: query.until_ms.unwrap_or(0),
            by: query.by.unwrap_or_default(),
            utc_offset_minutes: query.utc_offset_minutes.unwrap_or(0),
        }))
        .await
        .map_err(ApiError::from_status)?;
    Ok(reply.into_inner())
}

/// `GET /api/report?since_ms=&until_ms=&by=&utc_offset_minutes=`: [`report_json`].
pub async fn json_report(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult {
    let reply = report(&state, query).await?;
    Ok(json_ok(report_json(&reply)))
}

/// `GET /api/report.csv?...`: [`report_csv`], as a download.
pub async fn csv_report(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult {
    let reply = report(&state, query).await?;
    let disposition = format!("attachment; filename=\"centinela-report-{}.csv\"", reply.by);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        report_csv(&reply),
    )
        .into_response())
}

/// Chart.js (assets/vendor/chartjs, from npm, MIT): name, content type, bytes.
const CHARTJS: &[(&str, &str, &[u8])] = &[
    (
        "chart.umd.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/chartjs/chart.umd.js"),
    ),
    (
        "LICENSE.md",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/chartjs/LICENSE.md"),
    ),
];

/// `GET /assets/vendor/chartjs/{file}`: the Reportes page's chart library.
pub async fn chartjs(Path(file): Path<String>) -> Response {
    match CHARTJS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// The CSV's columns, in order (a human table shows the same).
pub const COLUMNS: &[&str] = &[
    "key",
    "presses",
    "incidents",
    "handled",
    "pranks",
    "false_alarms",
    "cancelled",
    "prank_share",
    "false_alarm_share",
    "ack_p50_s",
    "ack_p90_s",
    "assigned_p50_s",
    "assigned_p90_s",
    "on_scene_p50_s",
    "on_scene_p90_s",
];

fn latency_json(latency: Option<&v1::ReportLatency>) -> Value {
    let latency = latency.cloned().unwrap_or_default();
    json!({"count": latency.count, "p50_s": latency.p50_s, "p90_s": latency.p90_s})
}

fn row_json(row: &v1::ReportRow) -> Value {
    json!({
        "key": row.key,
        "presses": row.presses,
        "incidents": row.incidents,
        "handled": row.handled,
        "pranks": row.pranks,
        "false_alarms": row.false_alarms,
        "cancelled": row.cancelled,
        "prank_share": row.prank_share,
        "false_alarm_share": row.false_alarm_share,
        "acknowledged": latency_json(row.acknowledged.as_ref()),
        "assigned": latency_json(row.assigned.as_ref()),
        "on_scene": latency_json(row.on_scene.as_ref()),
    })
}

/// `{"by", "since_ms", "until_ms", "rows": [...], "total": {...}, "repeat_pranks": [...]}`
/// (docs/reports.md).
pub fn report_json(reply: &v1::ReportReply) -> Value {
    json!({
        "by": reply.by,
        "since_ms": reply.since_ms,
        "until_ms": reply.until_ms,
        "rows": reply.rows.iter().map(row_json).collect::<Vec<_>>(),
        "total": reply.total.as_ref().map(row_json),
        "repeat_pranks": reply.repeat_pranks.iter()
            .map(|r| json!({"button": r.button, "pranks": r.pranks}))
            .collect::<Vec<_>>(),
    })
}

/// One row's cells, in [`COLUMNS`]' order; a stage nobody reached is empty.
pub fn cells(row: &v1::ReportRow) -> Vec<String> {
    let seconds = |value: Option<u64>| value.map(|s| s.to_string()).unwrap_or_default();
    let latency = |l: Option<v1::ReportLatency>| {
        let l = l.unwrap_or_default();
        [seconds(l.p50_s), seconds(l.p90_s)]
    };
    let mut cells = vec![
        row.key.clone(),
        row.presses.to_string(),
        row.incidents.to_string(),
        row.handled.to_string(),
        row.pranks.to_string(),
        row.false_alarms.to_string(),
        row.cancelled.to_string(),
        format!("{:.4}", row.prank_share),
        format!("{:.4}", row.false_alarm_share),
    ];
    cells.extend(latency(row.acknowledged));
    cells.extend(latency(row.assigned));
    cells.extend(latency(row.on_scene));
    cells
}

/// RFC 4180: a header, a line per group, the total last (`all`); fields quoted when needed.
pub fn report_csv(reply: &v1::ReportReply) -> String {
    let mut text = COLUMNS.join(",");
    text.push_str("\r\n");
    for row in reply.rows.iter().chain(reply.total.as_ref()) {
        let line: Vec<String> = cells(row).iter().map(|c| csv_field(c)).collect();
        text.push_str(&line.join(","));
        text.push_str("\r\n");
    }
    text
}

fn csv_field(cell: &str) -> String {
    if cell.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_a_line_per_row_and_the_total_last() {
        let row = |key: &str, incidents| v1::ReportRow {
            key: key.into(),
            incidents,
            pranks: 1,
            prank_share: 1.0 / incidents as f64,
            acknowledged: Some(v1::ReportLatency {
                count: 1,
                p50_s: Some(12),
                p90_s: Some(30),
            }),
            ..Default::default()
        };
        let reply = v1::ReportReply {
            rows: vec![row("B01", 2), row("a,\"b\"", 1)],
            total: Some(row("all", 3)),
            ..Default::default()
        };
        let text = report_csv(&reply);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 5, "{text:?}");
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(lines[1], "B01,0,2,0,1,0,0,0.5000,0.0000,12,30,,,,");
        assert!(lines[2].starts_with("\"a,\"\"b\"\"\",0,1,"), "{}", lines[2]);
        assert!(lines[3].starts_with("all,0,3,"));
        assert_eq!(lines[4], "");
        let json = report_json(&reply);
        assert_eq!(json["rows"][0]["acknowledged"]["p90_s"], 30);
        assert_eq!(json["total"]["key"], "all");
    }
}
