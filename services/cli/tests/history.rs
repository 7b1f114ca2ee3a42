//! History out of etcd, end to end on a real `centinela demo` process: a closed incident is
//! archived by the leader and, past the retention window (`--retention 0s` here), leaves the
//! live store; `incidents --closed` pages it from the archive with the live listing's fields;
//! `incident ID` still finds it; `audit verify` checks the archive and its ledger, and exits 5
//! naming an incident deleted from the archive behind the node's back. Once with the archive
//! in an SQLite file, once in a real PostgreSQL started by the test.

mod common;

use centinela_archive::Archive;
use common::Demo;
use serde_json::Value;

fn find<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|v| v["id"] == id)
}

/// Presses, closes as a prank, and waits until the incident has left the live store.
fn close_and_wait_archived(demo: &Demo, button: &str) -> Value {
    let pressed = demo.json(&["press", button]);
    let id = pressed["incident"].as_str().unwrap().to_string();
    let closed = demo.json(&["prank", &id]);
    assert_eq!(closed["state"], "closed");
    demo.wait_json(
        &["incidents"],
        "the closed incident to leave the live store",
        |list| find(list, &id).is_none().then_some(()),
    );
    closed
}

fn round_trip(archive_url: &str) {
    let demo = Demo::start(&["--archive", archive_url, "--retention", "0s"]);
    let first = close_and_wait_archived(&demo, "B01");
    let second = close_and_wait_archived(&demo, "B02");
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();

    // From the archive, oldest closing first, the live listing's fields.
    let closed = demo.json(&["incidents", "--closed"]);
    let listed: Vec<&str> = closed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [first_id, second_id]);
    let archived = find(&closed, first_id).unwrap();
    for field in [
        "state",
        "resolution",
        "button",
        "press_count",
        "closed_at_ms",
    ] {
        assert_eq!(archived[field], first[field], "{field}");
    }
    // The trail as it was at closing, then what a call appended after it: the demo's
    // simulated button hangs up on hearing of the closing, and the archiver waited for that.
    let at_closing = first["audit"].as_array().unwrap();
    let trail = archived["audit"].as_array().unwrap();
    assert_eq!(trail[..at_closing.len()], at_closing[..], "{archived}");
    for after in &trail[at_closing.len()..] {
        let action = after["action"].as_str().unwrap();
        assert!(action.starts_with("call_"), "after closing: {after}");
    }
    let started = trail
        .iter()
        .filter(|e| e["action"] == "call_started")
        .count();
    let ended = trail.iter().filter(|e| e["action"] == "call_ended").count();
    assert_eq!(
        started, ended,
        "every call ended before archiving: {archived}"
    );
    // Paging: one at a time still reaches both; --since after the first leaves the second.
    let one = demo.json(&["incidents", "--closed", "--limit", "1"]);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["id"], first_id);
    let closed_ms = archived["closed_at_ms"].as_u64().unwrap_or_else(|| {
        panic!("closed_at_ms in {archived}");
    });
    let since = millis_to_rfc3339(closed_ms + 1);
    let later = demo.json(&["incidents", "--closed", "--since", &since]);
    let later: Vec<&str> = later
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(!later.contains(&first_id), "{later:?}");
    // A bad --since is refused before any call.
    let bad = demo.cli(&["incidents", "--closed", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));

    // One incident, past retention: from the archive.
    let shown = demo.json(&["incident", first_id]);
    assert_eq!(shown["resolution"], "prank");

    // Audit: intact, the archive included.
    let verdict = demo.json(&["audit", "verify"]);
    assert_eq!(verdict["broken"], 0, "{verdict}");
    assert_eq!(verdict["archived"], 2, "{verdict}");

    // Someone with write access to the database deletes the first incident.
    common::runtime().block_on(async {
        let archive = Archive::open(archive_url).unwrap();
        let deleted = archive
            .execute_raw(&format!("DELETE FROM incidents WHERE id = '{first_id}'"))
            .await
            .unwrap();
        assert_eq!(deleted, 1);
        archive.close().await;
    });
    let out = demo.cli(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(5), "exit 5 on a break");
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    let broken: Vec<&Value> = verdict["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["intact"] == false)
        .collect();
    assert_eq!(broken.len(), 1, "{verdict}");
    assert_eq!(broken[0]["id"], first_id);
    assert!(
        broken[0]["reason"].as_str().unwrap().contains("deleted"),
        "{verdict}"
    );
}

/// `ms` (milliseconds since the epoch) as an RFC 3339 instant in UTC.
fn millis_to_rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .unwrap()
        .to_string()
}

#[test]
fn closed_incidents_leave_the_store_for_an_sqlite_archive_and_verify_catches_a_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("archive.db").display());
    round_trip(&url);
}

#[test]
fn closed_incidents_leave_the_store_for_postgres_and_verify_catches_a_deletion() {
    let server = centinela_testkit::postgres::Postgres::start();
    round_trip(&server.url());
}
