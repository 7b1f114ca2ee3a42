//! `centinela report` end to end on a real `centinela demo` process with its archive in an
//! SQLite file: incidents pressed and closed through the CLI are archived by the leader and
//! summed by Operator.Report, as JSON, CSV and a table; bad arguments are refused.

mod common;

use common::Demo;
use serde_json::Value;

/// Presses `button` and closes the incident as a prank; returns its id.
fn prank(demo: &Demo, button: &str) -> String {
    let pressed = demo.json(&["press", button]);
    let id = pressed["incident"].as_str().unwrap().to_string();
    let closed = demo.json(&["prank", &id]);
    assert_eq!(closed["state"], "closed");
    id
}

#[test]
fn report_sums_the_archived_incidents_as_json_csv_and_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("archive.db").display());
    let demo = Demo::start(&["--archive", &url]);
    prank(&demo, "B01");
    prank(&demo, "B02");
    prank(&demo, "B01");

    // The leader archives closed incidents every few seconds: wait for all three.
    let report = demo.wait_json(
        &["report", "--by", "button"],
        "the three closed incidents in the report",
        |report: &Value| (report["total"]["incidents"] == 3).then(|| report.clone()),
    );
    assert_eq!(report["by"], "button");
    let rows = report["rows"].as_array().unwrap();
    let keys: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["key"].as_str().unwrap(), r["incidents"].as_u64().unwrap()))
        .collect();
    assert_eq!(keys, [("B01", 2), ("B02", 1)], "{report}");
    assert_eq!(rows[0]["pranks"], 2);
    assert_eq!(rows[0]["prank_share"], 1.0);
    assert_eq!(rows[0]["presses"], 2);
    assert_eq!(report["total"]["pranks"], 3);
    assert_eq!(
        report["repeat_pranks"],
        serde_json::json!([{"button": "B01", "pranks": 2}])
    );
    for stage in ["acknowledged", "assigned", "on_scene"] {
        assert!(
            report["total"][stage]["count"].is_u64(),
            "{stage}: {report}"
        );
    }

    // By hour of the day: every incident in one hour or two (the test may cross one).
    let by_hour = demo.json(&["report", "--by", "hour"]);
    let hours: u64 = by_hour["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["incidents"].as_u64().unwrap())
        .sum();
    assert_eq!(hours, 3, "{by_hour}");

    // CSV: the header, a line per button, the total.
    let out = demo.cli(&["report", "--csv"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("key,presses,incidents,handled,pranks,false_alarms"));
    assert!(lines[1].starts_with("B01,2,2,0,2,0,0,1.0000,"), "{text}");
    assert!(lines[2].starts_with("B02,1,1,0,1,0,0,1.0000,"), "{text}");
    assert!(lines[3].starts_with("all,3,3,0,3,0,0,1.0000,"), "{text}");

    // The human table names the same groups.
    let out = demo.cli(&["report"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("B01") && table.contains("all"), "{table}");

    // A period that ends before it starts: refused by the node, exit 1, with the reason.
    let out = demo.cli(&[
        "report",
        "--since",
        "2026-12-02T00:00:00Z",
        "--until",
        "2026-12-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("before it starts"),
        "{out:?}"
    );
    // An unknown grouping and both formats at once: refused before any call.
    assert_eq!(
        demo.cli(&["report", "--by", "street"]).status.code(),
        Some(2)
    );
    assert_eq!(
        demo.cli(&["report", "--csv", "--json"]).status.code(),
        Some(2)
    );
}
