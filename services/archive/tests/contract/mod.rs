//! The archive's contract: every case runs against the embedded SQLite
//! (`contract_sqlite.rs`) and a real PostgreSQL started by the test (`contract_postgres.rs`).
//! Incidents are made the way a node makes them: pressed and closed through
//! `centinela-records` on an embedded store seeded with Lima's central district.

#![allow(dead_code)]

use std::time::Duration;

use centinela_archive::report::{
    Grouping, Latency, Query as ReportQuery, RepeatPranks, Report, Row as ReportRow, bucket_floor_s,
};
use centinela_archive::retention::Archiver;
use centinela_archive::{Archive, ArchivedIncident, Error, History, Page, Stored, limits};
use centinela_core::ids::{IncidentId, OperatorId, PressId};
use centinela_core::incident::{Actor, Incident, IncidentKind, Resolution};
use centinela_core::scenario::Scenario;
use centinela_core::seal::AuditKey;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_store::{EmbeddedStore, Store};

/// Lists the cases for a runner macro.
macro_rules! for_each_case {
    ($runner:ident) => {
        $runner! {
            archives_and_reads_back,
            archiving_again_is_a_no_op_and_a_different_body_is_tampering,
            pages_closed_incidents_by_closing_time,
            the_ledger_catches_a_deleted_an_edited_and_a_rehashed_incident,
            the_leader_archives_then_removes_past_retention,
            a_crash_between_copy_and_delete_rearchives_idempotently,
            a_closed_incident_with_a_call_up_waits_for_the_calls_end,
            reports_a_known_history_by_button_hour_weekday_and_unit,
            reports_by_district_with_the_unknown_group,
            reports_fill_in_incidents_archived_before_the_report_tables,
            reports_bucket_response_times_to_two_significant_digits,
            the_bucket_backfill_applies_the_same_rule,
            hours_and_weekdays_are_local_at_any_offset_and_after_the_backfill,
        }
    };
}

/// 2026-11-27T22:05:12.345Z
pub const T0: Timestamp = Timestamp::from_millis(1_795_817_112_345);
const DEBOUNCE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

pub fn key() -> AuditKey {
    AuditKey::from_secret(b"archive contract")
}

/// Records on a fresh embedded store, seeded, sealing with [`key`].
pub async fn records() -> (EmbeddedStore, Records) {
    let embedded = EmbeddedStore::new();
    let records = Records::new(Store::embedded(&embedded)).with_audit_key(key());
    records.seed(&Scenario::lima_centro(), T0).await.unwrap();
    (embedded, records)
}

/// Presses button `Bnn` (cycling over the scenario's buttons) at `at` and closes the incident
/// `close_after` later; returns the closed incident.
pub async fn press_and_close(records: &Records, n: usize, at: Timestamp) -> Incident {
    let (buttons, _) = records
        .snapshot::<centinela_core::button::Button>()
        .await
        .unwrap();
    let button = &buttons[n % buttons.len()];
    let press = PressId::new(format!("p-{n}")).unwrap();
    let opened = records
        .press(button, &press, at, DEBOUNCE, None)
        .await
        .unwrap();
    let id = opened.incident.id.clone();
    records
        .update_incident(&id, |incident| {
            incident.kind = IncidentKind::Robbery;
            Ok(())
        })
        .await
        .unwrap();
    let closed = records
        .close_incident(
            &id,
            Resolution::Handled,
            Actor::Operator(OperatorId::new("op-1").unwrap()),
            at.saturating_add(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    closed.incident
}

fn entry(incident: &Incident) -> ArchivedIncident {
    ArchivedIncident {
        incident: incident.clone(),
        presses: vec!["p-x".into()],
        stills: Vec::new(),
        bookmarks: Vec::new(),
        district: None,
    }
}

fn archiver(
    records: &Records,
    archive: &Archive,
    now: Timestamp,
) -> Archiver<impl Fn() -> Timestamp + Send + 'static> {
    let history = History {
        archive: archive.clone(),
        retention: HOUR,
        remove: true,
    };
    Archiver::new(records.clone(), history, None, move || now)
}

pub async fn archives_and_reads_back(archive: Archive) {
    let (_embedded, records) = records().await;
    let incident = press_and_close(&records, 0, T0).await;
    let stored = archive
        .archive(
            &entry(&incident),
            &[("ab".repeat(32), vec![0xff, 0xd8, 1, 2])],
            &key(),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(stored, Stored::Archived { seq: 1 });
    let read = archive.get(incident.id.as_str()).await.unwrap().unwrap();
    assert_eq!(
        read,
        entry(&incident),
        "the whole record, audit trail included"
    );
    assert_eq!(read.incident.audit.len(), incident.audit.len());
    assert_eq!(
        archive
            .still(incident.id.as_str(), &"ab".repeat(32))
            .await
            .unwrap(),
        Some(vec![0xff, 0xd8, 1, 2])
    );
    assert_eq!(archive.count().await.unwrap(), 1);
    assert!(archive.get("B99-nothing").await.unwrap().is_none());

    // An open incident is refused.
    let (buttons, _) = records
        .snapshot::<centinela_core::button::Button>()
        .await
        .unwrap();
    let open = records
        .press(
            &buttons[1],
            &PressId::new("open").unwrap(),
            T0,
            DEBOUNCE,
            None,
        )
        .await
        .unwrap()
        .incident;
    let refused = archive.archive(&entry(&open), &[], &key(), T0).await;
    assert!(matches!(refused, Err(Error::Refused { .. })), "{refused:?}");
    assert!(archive.verify(&key()).await.unwrap().is_intact());
}

pub async fn archiving_again_is_a_no_op_and_a_different_body_is_tampering(archive: Archive) {
    let (_embedded, records) = records().await;
    let incident = press_and_close(&records, 0, T0).await;
    let first = archive
        .archive(&entry(&incident), &[], &key(), T0)
        .await
        .unwrap();
    assert_eq!(first, Stored::Archived { seq: 1 });
    // Again, even with other extras (press ids expire, bookmarks roll over): nothing changes.
    let mut later = entry(&incident);
    later.presses.clear();
    let again = archive
        .archive(&later, &[], &key(), T0.saturating_add(HOUR))
        .await
        .unwrap();
    assert_eq!(again, Stored::AlreadyArchived);
    assert_eq!(
        archive.get(incident.id.as_str()).await.unwrap().unwrap(),
        entry(&incident)
    );

    // Another record under the same id (re-sealed with the key, so it is a valid incident).
    let mut other = incident.clone();
    other.resolution = Some(Resolution::Prank);
    other.seal(Some(&incident), &key());
    let tampered = archive.archive(&entry(&other), &[], &key(), T0).await;
    match tampered {
        Err(Error::Tampered { id, .. }) => assert_eq!(id, incident.id.to_string()),
        other => panic!("expected tampering, got {other:?}"),
    }
    assert_eq!(archive.count().await.unwrap(), 1);
    let verification = archive.verify(&key()).await.unwrap();
    assert!(verification.is_intact(), "{:?}", verification.breaks);
    assert_eq!(verification.checked, 1, "one ledger entry");
}

pub async fn pages_closed_incidents_by_closing_time(archive: Archive) {
    let (_embedded, records) = records().await;
    let mut ids = Vec::new();
    for n in 0..25 {
        let at = T0.saturating_add(Duration::from_secs(120 * n as u64));
        let incident = press_and_close(&records, n, at).await;
        archive
            .archive(&entry(&incident), &[], &key(), at)
            .await
            .unwrap();
        ids.push(incident.id.clone());
    }
    let mut seen: Vec<IncidentId> = Vec::new();
    let mut page = Page {
        limit: 10,
        ..Page::default()
    };
    loop {
        let incidents = archive.closed(&page).await.unwrap();
        assert!(incidents.len() <= 10);
        let Some(last) = incidents.last() else { break };
        page.after = Some((last.closed_at.unwrap(), last.id.to_string()));
        seen.extend(incidents.iter().map(|i| i.id.clone()));
    }
    assert_eq!(seen, ids, "every incident once, in closing order");

    // Since the 20th's closing time: the last 5.
    let since = T0.saturating_add(Duration::from_secs(120 * 20 + 30));
    let recent = archive
        .closed(&Page {
            since: Some(since),
            limit: 100,
            ..Page::default()
        })
        .await
        .unwrap();
    let recent: Vec<IncidentId> = recent.into_iter().map(|i| i.id).collect();
    assert_eq!(recent, ids[20..].to_vec());
}

pub async fn the_ledger_catches_a_deleted_an_edited_and_a_rehashed_incident(archive: Archive) {
    let (_embedded, records) = records().await;
    let mut incidents = Vec::new();
    for n in 0..5 {
        let at = T0.saturating_add(Duration::from_secs(120 * n as u64));
        let incident = press_and_close(&records, n, at).await;
        archive
            .archive(&entry(&incident), &[], &key(), at)
            .await
            .unwrap();
        incidents.push(incident);
    }
    let verification = archive.verify(&key()).await.unwrap();
    assert!(verification.is_intact(), "{:?}", verification.breaks);
    assert_eq!(verification.checked, 5);
    // Another key does not verify the ledger.
    assert!(
        !archive
            .verify(&AuditKey::from_secret(b"other"))
            .await
            .unwrap()
            .is_intact()
    );

    // Deleted: incident 1's row.
    let deleted = incidents[1].id.to_string();
    assert_eq!(
        archive
            .execute_raw(&format!("DELETE FROM incidents WHERE id = '{deleted}'"))
            .await
            .unwrap(),
        1
    );
    // Edited: incident 2 turned into a prank in its body.
    let edited = incidents[2].id.to_string();
    archive
        .execute_raw(&format!(
            "UPDATE incidents SET body = REPLACE(body, '\"handled\"', '\"prank\"') WHERE id = '{edited}'"
        ))
        .await
        .unwrap();
    // Re-hashed: incident 3's body edited, and its body hash, link and every later link
    // recomputed, as anyone can (the links are plain hashes); only the MAC cannot be.
    let rehashed = incidents[3].id.to_string();
    let mut forged = archive.get(&rehashed).await.unwrap().unwrap();
    forged.presses.push("p-forged".into());
    let body = serde_json::to_string(&forged).unwrap();
    let body_hash = centinela_archive::ledger::hash_hex(body.as_bytes());
    archive
        .execute_raw(&format!(
            "UPDATE incidents SET body = '{}', body_hash = '{body_hash}' WHERE id = '{rehashed}'",
            body.replace('\'', "''")
        ))
        .await
        .unwrap();
    let mut prev = centinela_archive::ledger::genesis();
    for (seq, incident) in incidents.iter().enumerate() {
        let seq = seq as i64 + 1;
        let id = incident.id.to_string();
        let head = incident.verify_audit(Some(&key())).head;
        let hash = if id == rehashed {
            body_hash.clone()
        } else {
            centinela_archive::ledger::hash_hex(
                serde_json::to_string(&entry(incident)).unwrap().as_bytes(),
            )
        };
        let link = centinela_archive::ledger::link(&prev, &id, &head, &hash);
        archive
            .execute_raw(&format!(
                "UPDATE ledger SET body_hash = '{hash}', prev = '{prev}', link = '{link}' WHERE seq = {seq}"
            ))
            .await
            .unwrap();
        prev = link;
    }

    let verification = archive.verify(&key()).await.unwrap();
    assert!(!verification.is_intact());
    let mut broken: Vec<&str> = verification
        .breaks
        .iter()
        .map(|b| b.incident_id.as_str())
        .collect();
    broken.sort();
    broken.dedup();
    let mut expected = vec![deleted.as_str(), edited.as_str(), rehashed.as_str()];
    expected.sort();
    assert_eq!(broken, expected, "{:#?}", verification.breaks);
    let reason = |id: &str| {
        verification
            .breaks
            .iter()
            .filter(|b| b.incident_id == id)
            .map(|b| b.reason.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(reason(&deleted).contains("deleted"), "{}", reason(&deleted));
    assert!(reason(&edited).contains("edited"), "{}", reason(&edited));
    assert!(
        reason(&rehashed).contains("re-hashed"),
        "{}",
        reason(&rehashed)
    );
}

pub async fn the_leader_archives_then_removes_past_retention(archive: Archive) {
    let (_embedded, records) = records().await;
    let mut closed = Vec::new();
    for n in 0..3 {
        closed.push(press_and_close(&records, n, T0).await);
    }
    // One still open: never archived, never removed.
    let (buttons, _) = records
        .snapshot::<centinela_core::button::Button>()
        .await
        .unwrap();
    records
        .press(
            &buttons[5],
            &PressId::new("open").unwrap(),
            T0,
            DEBOUNCE,
            None,
        )
        .await
        .unwrap();

    // Within retention: archived, kept in the store.
    let pass = archiver(
        &records,
        &archive,
        T0.saturating_add(Duration::from_secs(60)),
    )
    .pass()
    .await
    .unwrap();
    assert_eq!((pass.archived, pass.removed, pass.backlog), (3, 0, 0));
    assert_eq!(records.closed_incidents().await.unwrap().len(), 3);

    // Past retention: removed from the store, all in the archive, the open one untouched.
    let later = T0.saturating_add(HOUR + Duration::from_secs(60));
    let mut archiver = archiver(&records, &archive, later);
    let pass = archiver.pass().await.unwrap();
    assert_eq!((pass.already, pass.removed, pass.backlog), (3, 3, 0));
    assert!(records.closed_incidents().await.unwrap().is_empty());
    for incident in &closed {
        assert!(records.incident(&incident.id).await.unwrap().is_none());
        let archived = archive.get(incident.id.as_str()).await.unwrap().unwrap();
        assert_eq!(archived.incident, *incident);
        assert_eq!(archived.presses.len(), 1, "its press id went along");
        // The leader copied its button's district (every demo button has one).
        let button = records.button(&incident.button).await.unwrap().unwrap();
        assert!(button.district.is_some(), "{button:?}");
        assert_eq!(archived.district, button.district);
    }
    assert_eq!(
        records.incidents(false).await.unwrap().len(),
        1,
        "the open one stays"
    );
    assert!(archive.verify(&key()).await.unwrap().is_intact());
    let pass = archiver.pass().await.unwrap();
    assert_eq!(pass, Default::default(), "nothing left to do");
}

pub async fn a_crash_between_copy_and_delete_rearchives_idempotently(archive: Archive) {
    let (_embedded, records) = records().await;
    let incident = press_and_close(&records, 0, T0).await;
    // A leader copied it, then crashed before removing it.
    let later = T0.saturating_add(HOUR + Duration::from_secs(60));
    let mut first = archiver(&records, &archive, T0);
    assert_eq!(first.pass().await.unwrap().archived, 1);
    drop(first);
    assert!(records.incident(&incident.id).await.unwrap().is_some());

    // The next leader archives it again (a no-op) and removes it.
    let pass = archiver(&records, &archive, later).pass().await.unwrap();
    assert_eq!((pass.archived, pass.already, pass.removed), (0, 1, 1));
    assert!(records.incident(&incident.id).await.unwrap().is_none());
    assert_eq!(archive.count().await.unwrap(), 1);
    let verification = archive.verify(&key()).await.unwrap();
    assert!(verification.is_intact(), "{:?}", verification.breaks);
    assert_eq!(verification.checked, 1, "one ledger entry, not two");
}

/// A call outlives its incident by the moment its hang-up takes, and its end is appended to
/// the closed incident's trail: the archiver waits for it, so the archived copy is the
/// whole trail (archived earlier, the live record would differ from it and never leave the
/// store). A call whose end never comes holds the incident back for
/// [`limits::OPEN_CALL_WAIT_MAX`] only.
pub async fn a_closed_incident_with_a_call_up_waits_for_the_calls_end(archive: Archive) {
    let (_embedded, records) = records().await;
    let (buttons, _) = records
        .snapshot::<centinela_core::button::Button>()
        .await
        .unwrap();
    let mut with_calls = Vec::new();
    for (n, button) in buttons.iter().take(2).enumerate() {
        let press = PressId::new(format!("call-{n}")).unwrap();
        let opened = records
            .press(button, &press, T0, DEBOUNCE, None)
            .await
            .unwrap();
        let id = opened.incident.id.clone();
        let detail = format!("call c{n}@x PCMU from 127.0.0.1:5060 over UDP on node n1");
        records
            .update_incident(&id, |i| {
                Ok(i.call_started(button.id.clone(), &detail, T0)?)
            })
            .await
            .unwrap();
        let operator = Actor::Operator(OperatorId::new("op-1").unwrap());
        let closed_at = T0.saturating_add(Duration::from_secs(30));
        records
            .close_incident(&id, Resolution::Prank, operator, closed_at)
            .await
            .unwrap();
        with_calls.push(id);
    }
    let soon = T0.saturating_add(Duration::from_secs(60));
    let pass = archiver(&records, &archive, soon).pass().await.unwrap();
    assert_eq!(
        (pass.archived, pass.backlog),
        (0, 0),
        "both wait, for the calls"
    );
    assert_eq!(archive.count().await.unwrap(), 0);

    // The first call ends (the button hung up on hearing of the closing): archived whole.
    let ended = T0.saturating_add(Duration::from_secs(31));
    let first = records
        .update_incident(&with_calls[0], |i| {
            i.call_ended(Actor::System, "call c0@x: the caller hung up", ended);
            Ok(())
        })
        .await
        .unwrap();
    let pass = archiver(&records, &archive, soon).pass().await.unwrap();
    assert_eq!(
        (pass.archived, pass.backlog),
        (1, 0),
        "the other still waits"
    );
    assert_eq!(archive.count().await.unwrap(), 1);
    let archived = archive.get(with_calls[0].as_str()).await.unwrap().unwrap();
    assert_eq!(
        archived.incident, first,
        "the call's end is in the archived trail"
    );

    // The second call's end never comes: archived as it stands once the wait is over, and
    // removed past retention like any other.
    let waited = T0.saturating_add(limits::OPEN_CALL_WAIT_MAX + Duration::from_secs(31));
    let pass = archiver(&records, &archive, waited).pass().await.unwrap();
    assert_eq!((pass.archived, pass.already, pass.removed), (1, 1, 2));
    assert!(records.closed_incidents().await.unwrap().is_empty());
    assert!(archive.verify(&key()).await.unwrap().is_intact());
}

// ---------------------------------------------------------------------------------------------
// Reports on a known history.

/// Monday 2026-11-02, 00:00 in Lima (UTC-5): the synthetic history's day 0.
const MONDAY_LIMA: Timestamp = Timestamp::from_millis(1_793_595_600_000);
const LIMA_OFFSET_MINUTES: i32 = -300;

/// `day` days and `minutes` minutes (local) after [`MONDAY_LIMA`], plus `ms`.
fn local(day: u64, minutes: u64) -> Timestamp {
    MONDAY_LIMA.saturating_add(Duration::from_secs(day * 86_400 + minutes * 60))
}

fn after(at: Timestamp, ms: u64) -> Timestamp {
    at.saturating_add(Duration::from_millis(ms))
}

/// One synthetic incident: pressed `presses` times at `at` on `button`, acknowledged after
/// `ack_ms`, units `(id, assigned after ms, on scene after ms)`, closed as `resolution`.
struct Story {
    id: &'static str,
    button: &'static str,
    at: Timestamp,
    presses: u32,
    ack_ms: Option<u64>,
    units: &'static [(&'static str, u64, Option<u64>)],
    resolution: Resolution,
}

fn told(story: &Story) -> Incident {
    use centinela_core::geo::Position;
    use centinela_core::ids::{BrigadeId, ButtonId, CameraId};
    let op = OperatorId::new("op-1").unwrap();
    let mut incident = Incident::open(
        IncidentId::new(story.id).unwrap(),
        ButtonId::new(story.button).unwrap(),
        CameraId::new("C01").unwrap(),
        Position::new(-12.0464, -77.03).unwrap(),
        story.at,
    );
    for n in 1..story.presses {
        incident.merge_press(after(story.at, u64::from(n))).unwrap();
    }
    if let Some(ack) = story.ack_ms {
        incident
            .acknowledge(op.clone(), after(story.at, ack))
            .unwrap();
    }
    // Steps in time order, as they happen.
    let mut steps: Vec<(u64, &str, bool)> = Vec::new();
    for (unit, assigned, on_scene) in story.units {
        steps.push((*assigned, unit, false));
        if let Some(on_scene) = on_scene {
            steps.push((*on_scene, unit, true));
        }
    }
    steps.sort();
    for (ms, unit, arrived) in steps {
        let unit = BrigadeId::new(unit).unwrap();
        if arrived {
            incident.unit_on_scene(&unit, after(story.at, ms)).unwrap();
        } else {
            incident
                .assign(unit, Actor::Operator(op.clone()), after(story.at, ms))
                .unwrap();
        }
    }
    incident
        .close(
            story.resolution,
            Actor::Operator(op),
            after(story.at, 3_600_000),
        )
        .unwrap();
    incident.seal(None, &key());
    incident
}

/// The history the report cases know the answers for (see each figure's comment).
fn known_history() -> Vec<Incident> {
    use Resolution::*;
    [
        // Before the period: counted nowhere (B01 would show 3 pranks).
        Story {
            id: "i0",
            button: "B01",
            at: Timestamp::from_millis(MONDAY_LIMA.as_millis() - 60_000),
            presses: 1,
            ack_ms: Some(1_000),
            units: &[],
            resolution: Prank,
        },
        // Monday 09:00, three presses; ack 10.7 s (10 s rounded down), U01 at 20 s, on scene 300 s.
        Story {
            id: "i1",
            button: "B01",
            at: local(0, 9 * 60),
            presses: 3,
            ack_ms: Some(10_700),
            units: &[("U01", 20_000, Some(300_000))],
            resolution: Handled,
        },
        // Monday 09:30: ack 20 s, U02 at 40 s, on scene 600 s.
        Story {
            id: "i2",
            button: "B01",
            at: local(0, 9 * 60 + 30),
            presses: 1,
            ack_ms: Some(20_000),
            units: &[("U02", 40_000, Some(600_000))],
            resolution: Handled,
        },
        // Tuesday 22:00 (Wednesday 03:00 UTC): a prank, ack 30 s.
        Story {
            id: "i3",
            button: "B01",
            at: local(1, 22 * 60),
            presses: 1,
            ack_ms: Some(30_000),
            units: &[],
            resolution: Prank,
        },
        // Wednesday 22:15: another prank, two presses, ack 5 s.
        Story {
            id: "i4",
            button: "B01",
            at: local(2, 22 * 60 + 15),
            presses: 2,
            ack_ms: Some(5_000),
            units: &[],
            resolution: Prank,
        },
        // Monday 09:10: ack 60 s; U01 at 90 s, U02 at 100 s; U02 on scene 200 s, U01 400 s.
        Story {
            id: "i5",
            button: "B02",
            at: local(0, 9 * 60 + 10),
            presses: 1,
            ack_ms: Some(60_000),
            units: &[
                ("U01", 90_000, Some(400_000)),
                ("U02", 100_000, Some(200_000)),
            ],
            resolution: FalseAlarm,
        },
        // Tuesday 14:00: never acknowledged, cancelled.
        Story {
            id: "i6",
            button: "B02",
            at: local(1, 14 * 60),
            presses: 1,
            ack_ms: None,
            units: &[],
            resolution: Cancelled,
        },
        // After the period.
        Story {
            id: "i7",
            button: "B02",
            at: local(7, 0),
            presses: 1,
            ack_ms: None,
            units: &[],
            resolution: Prank,
        },
    ]
    .iter()
    .map(told)
    .collect()
}

fn week() -> (Timestamp, Timestamp) {
    (local(0, 0), local(7, 0))
}

async fn report(archive: &Archive, by: Grouping) -> Report {
    let (since, until) = week();
    archive
        .report(&ReportQuery {
            since,
            until,
            by,
            utc_offset_minutes: LIMA_OFFSET_MINUTES,
        })
        .await
        .unwrap()
}

fn latency(count: u64, p50: u64, p90: u64) -> Latency {
    Latency {
        count,
        p50_s: Some(p50),
        p90_s: Some(p90),
    }
}

fn row<'a>(report: &'a Report, key: &str) -> &'a ReportRow {
    report
        .rows
        .iter()
        .find(|row| row.key == key)
        .unwrap_or_else(|| panic!("no row {key} in {:?}", report.rows))
}

fn keys(report: &Report) -> Vec<(&str, u64)> {
    report
        .rows
        .iter()
        .map(|row| (row.key.as_str(), row.incidents))
        .collect()
}

/// Every figure of the known history's reports.
async fn assert_known_answers(archive: &Archive) {
    let by_button = report(archive, Grouping::Button).await;
    assert_eq!(keys(&by_button), [("B01", 4), ("B02", 2)]);
    let b01 = row(&by_button, "B01");
    assert_eq!(
        (b01.presses, b01.handled, b01.pranks, b01.false_alarms),
        (7, 2, 2, 0)
    );
    assert_eq!(b01.prank_share, 0.5);
    // Acks 5, 10, 20, 30 s; assigned 20, 40; on scene 300, 600.
    assert_eq!(b01.acknowledged, latency(4, 10, 30));
    assert_eq!(b01.assigned, latency(2, 20, 40));
    assert_eq!(b01.on_scene, latency(2, 300, 600));
    let b02 = row(&by_button, "B02");
    assert_eq!((b02.presses, b02.false_alarms, b02.cancelled), (2, 1, 1));
    assert_eq!(b02.false_alarm_share, 0.5);
    assert_eq!(b02.acknowledged, latency(1, 60, 60));
    // The incident's first unit (U01 at 90 s) and first arrival (U02 at 200 s).
    assert_eq!(b02.assigned, latency(1, 90, 90));
    assert_eq!(b02.on_scene, latency(1, 200, 200));
    let total = &by_button.total;
    assert_eq!(
        (
            total.key.as_str(),
            total.incidents,
            total.presses,
            total.handled,
            total.pranks
        ),
        ("all", 6, 9, 2, 2)
    );
    assert_eq!((total.false_alarms, total.cancelled), (1, 1));
    assert_eq!(total.acknowledged, latency(5, 20, 60));
    assert_eq!(total.assigned, latency(3, 40, 90));
    assert_eq!(total.on_scene, latency(3, 300, 600));
    assert_eq!(
        by_button.repeat_pranks,
        [RepeatPranks {
            button: "B01".into(),
            pranks: 2
        }]
    );

    // Local hours: 09:00, 09:10, 09:30; 14:00; 22:00, 22:15 (in UTC they would be 14, 19, 3).
    let by_hour = report(archive, Grouping::Hour).await;
    assert_eq!(keys(&by_hour), [("9", 3), ("14", 1), ("22", 2)]);
    assert_eq!(row(&by_hour, "22").pranks, 2);
    assert_eq!(by_hour.total, by_button.total);

    // Local weekdays: Monday 3, Tuesday 2 (22:00 is Wednesday in UTC), Wednesday 1.
    let by_weekday = report(archive, Grouping::Weekday).await;
    assert_eq!(keys(&by_weekday), [("0", 3), ("1", 2), ("2", 1)]);

    // Per unit, each unit's own times: U01 assigned 20, 90 and on scene 300, 400; U02
    // assigned 40, 100 and on scene 600, 200.
    let by_unit = report(archive, Grouping::Unit).await;
    assert_eq!(keys(&by_unit), [("U01", 2), ("U02", 2)]);
    assert_eq!(row(&by_unit, "U01").assigned, latency(2, 20, 90));
    assert_eq!(row(&by_unit, "U01").on_scene, latency(2, 300, 400));
    assert_eq!(row(&by_unit, "U02").assigned, latency(2, 40, 100));
    assert_eq!(row(&by_unit, "U02").on_scene, latency(2, 200, 600));
    // The total counts incidents, not assignments.
    assert_eq!(by_unit.total, by_button.total);
}

async fn archive_all(archive: &Archive, incidents: &[Incident]) {
    for incident in incidents {
        archive
            .archive(&entry(incident), &[], &key(), T0)
            .await
            .unwrap();
    }
}

pub async fn reports_a_known_history_by_button_hour_weekday_and_unit(archive: Archive) {
    archive_all(&archive, &known_history()).await;
    assert_known_answers(&archive).await;

    // An empty period is refused, not answered with zeros.
    let (since, _) = week();
    let empty = archive
        .report(&ReportQuery {
            since,
            until: since,
            by: Grouping::Button,
            utc_offset_minutes: 0,
        })
        .await;
    assert!(matches!(empty, Err(Error::Query(_))), "{empty:?}");
    // A period with nothing in it is empty.
    let quiet = archive
        .report(&ReportQuery {
            since: local(30, 0),
            until: local(31, 0),
            by: Grouping::Hour,
            utc_offset_minutes: LIMA_OFFSET_MINUTES,
        })
        .await
        .unwrap();
    assert!(
        quiet.rows.is_empty() && quiet.total.incidents == 0,
        "{quiet:?}"
    );
}

/// Per district: B01's incidents archived in the Centro Histórico except i3, archived before
/// districts existed (no district, like i6 at B02), and B02's i5 in Barrios Altos. Incidents
/// without a district are one group, `unknown`, with every figure of its own. The first half
/// of the history gets its facts filled in from the archived bodies (as if archived before
/// the report tables), the second half when archived.
pub async fn reports_by_district_with_the_unknown_group(archive: Archive) {
    let district = |incident: &Incident| match incident.id.as_str() {
        "i3" | "i6" => None,
        _ if incident.button.as_str() == "B01" => Some("Centro Histórico".to_string()),
        _ => Some("Barrios Altos".to_string()),
    };
    let history = known_history();
    let (before, after) = history.split_at(4);
    for incident in before {
        let entry = ArchivedIncident {
            district: district(incident),
            ..entry(incident)
        };
        archive.archive(&entry, &[], &key(), T0).await.unwrap();
    }
    archive
        .execute_raw("DELETE FROM report_units")
        .await
        .unwrap();
    archive
        .execute_raw("DELETE FROM report_incidents")
        .await
        .unwrap();
    // The first report fills in their facts.
    let filled = report(&archive, Grouping::District).await;
    assert_eq!(keys(&filled), [("Centro Histórico", 2), ("unknown", 1)]);
    for incident in after {
        let entry = ArchivedIncident {
            district: district(incident),
            ..entry(incident)
        };
        archive.archive(&entry, &[], &key(), T0).await.unwrap();
    }
    let by_district = report(&archive, Grouping::District).await;
    assert_eq!(
        keys(&by_district),
        [
            ("Barrios Altos", 1),
            ("Centro Histórico", 3),
            ("unknown", 2)
        ]
    );
    // i1, i2, i4: presses 3 + 1 + 2, acks 10, 20, 5 s; assigned 20, 40; on scene 300, 600.
    let centro = row(&by_district, "Centro Histórico");
    assert_eq!(
        (
            centro.presses,
            centro.handled,
            centro.pranks,
            centro.cancelled
        ),
        (6, 2, 1, 0)
    );
    assert_eq!(centro.acknowledged, latency(3, 10, 20));
    assert_eq!(centro.assigned, latency(2, 20, 40));
    assert_eq!(centro.on_scene, latency(2, 300, 600));
    // i5: its first unit and first arrival.
    let altos = row(&by_district, "Barrios Altos");
    assert_eq!((altos.incidents, altos.false_alarms), (1, 1));
    assert_eq!(altos.false_alarm_share, 1.0);
    assert_eq!(altos.assigned, latency(1, 90, 90));
    assert_eq!(altos.on_scene, latency(1, 200, 200));
    // i3 (a prank acknowledged in 30 s) and i6 (cancelled, never acknowledged).
    let unknown = row(&by_district, "unknown");
    assert_eq!(
        (unknown.presses, unknown.pranks, unknown.cancelled),
        (2, 1, 1)
    );
    assert_eq!(unknown.prank_share, 0.5);
    assert_eq!(unknown.acknowledged, latency(1, 30, 30));
    assert_eq!(unknown.assigned, Latency::default());
    // Districts partition the incidents: the same total and repeat pranks as per button.
    let by_button = report(&archive, Grouping::Button).await;
    assert_eq!(by_district.total, by_button.total);
    assert_eq!(by_district.repeat_pranks, by_button.repeat_pranks);
}

pub async fn reports_fill_in_incidents_archived_before_the_report_tables(archive: Archive) {
    archive_all(&archive, &known_history()).await;
    // As if archived before the report tables existed: no facts at all.
    archive
        .execute_raw("DELETE FROM report_units")
        .await
        .unwrap();
    archive
        .execute_raw("DELETE FROM report_incidents")
        .await
        .unwrap();
    assert_known_answers(&archive).await;
}

/// Response times past 100 s come out at their bucket's lower edge (two significant digits,
/// `report::bucket_floor_s`), the database bucketing exactly as the documented rule does.
pub async fn reports_bucket_response_times_to_two_significant_digits(archive: Archive) {
    use Resolution::*;
    let stories = [
        Story {
            id: "b1",
            button: "B09",
            at: local(2, 10 * 60),
            presses: 1,
            ack_ms: Some(99_999),
            units: &[("U09", 123_456, Some(987_654))],
            resolution: Handled,
        },
        Story {
            id: "b2",
            button: "B09",
            at: local(2, 11 * 60),
            presses: 1,
            ack_ms: Some(150_500),
            units: &[("U09", 1_234_000, Some(2_987_000))],
            resolution: Handled,
        },
        Story {
            id: "b3",
            button: "B09",
            at: local(2, 12 * 60),
            presses: 1,
            ack_ms: Some(1_234_000),
            units: &[("U09", 45_000, Some(3_500_999))],
            resolution: Handled,
        },
    ];
    let incidents: Vec<Incident> = stories.iter().map(told).collect();
    archive_all(&archive, &incidents).await;
    let by_button = report(&archive, Grouping::Button).await;
    let b09 = row(&by_button, "B09");
    // Nearest rank of three: p50 is the second, p90 the third.
    assert_eq!(b09.acknowledged, latency(3, 150, 1200));
    assert_eq!(b09.assigned, latency(3, 120, 1200));
    assert_eq!(b09.on_scene, latency(3, 2900, 3500));
    // The same as the rule applied to the exact seconds.
    assert_eq!(
        [
            bucket_floor_s(150),
            bucket_floor_s(1_234),
            bucket_floor_s(2_987)
        ],
        [150, 1200, 2900]
    );
    let by_unit = report(&archive, Grouping::Unit).await;
    assert_eq!(row(&by_unit, "U09").on_scene, latency(3, 2900, 3500));
}

/// The migration that added the buckets fills them in for facts already archived, with the
/// rule written in SQL: its statements, run again on facts without buckets, give what
/// `bucket_floor_s` gives, on this backend.
pub async fn the_bucket_backfill_applies_the_same_rule(archive: Archive) {
    const MIGRATION: &str = include_str!("../../migrations/20261204210000_report_buckets.sql");
    let seconds: [i64; 14] = [
        -5, 0, 7, 99, 100, 109, 999, 1_000, 1_099, 9_999, 12_345, 86_399, 3_000_000, 98_765_432,
    ];
    let at = local(3, 0).as_millis() as i64;
    for (n, s) in seconds.iter().enumerate() {
        // Half a second past the whole seconds: truncated like the archiver truncates.
        let ack = at + s * 1000 + if *s < 0 { -500 } else { 500 };
        archive
            .execute_raw(&format!(
                "INSERT INTO report_incidents (incident_id, unit, button, resolution, \
                 press_count, first_press_at_ms, acknowledged_at_ms) VALUES \
                 ('x{n}', '', 'X{n:02}', 'handled', 1, {at}, {ack})"
            ))
            .await
            .unwrap();
    }
    let backfill: Vec<&str> = MIGRATION
        .split(';')
        .map(str::trim)
        .filter(|statement| statement.starts_with("UPDATE report_incidents"))
        .collect();
    assert_eq!(backfill.len(), 3, "one UPDATE per stage");
    for statement in backfill {
        archive.execute_raw(statement).await.unwrap();
    }
    let by_button = report(&archive, Grouping::Button).await;
    for (n, s) in seconds.iter().enumerate() {
        let row = row(&by_button, &format!("X{n:02}"));
        let floor = bucket_floor_s((s * 1000 + if *s < 0 { -500 } else { 500 }) / 1000);
        assert_eq!(
            row.acknowledged,
            latency(1, floor as u64, floor as u64),
            "{s} s"
        );
        assert_eq!(row.assigned, Latency::default(), "never assigned");
    }
}

/// Hours and weekdays at offsets of whole quarter hours (read from the stored quarter hour
/// of the week) and at an odd one (computed from the first press), against the same rule in
/// Rust; then again after the week-quarter backfill of migration
/// `20261205000000_report_week_quarter.sql` rewrote every row's quarter.
pub async fn hours_and_weekdays_are_local_at_any_offset_and_after_the_backfill(archive: Archive) {
    const MIGRATION: &str = include_str!("../../migrations/20261205000000_report_week_quarter.sql");
    let history = known_history();
    archive_all(&archive, &history).await;
    let (since, until) = week();
    let in_period: Vec<i64> = history
        .iter()
        .map(|incident| incident.first_press_at)
        .filter(|at| *at >= since && *at < until)
        .map(|at| at.as_millis() as i64)
        .collect();
    check_local_keys(&archive, &in_period, "as archived").await;
    archive
        .execute_raw("UPDATE report_incidents SET week_quarter = 999")
        .await
        .unwrap();
    let backfill: Vec<&str> = MIGRATION
        .split(';')
        .map(str::trim)
        .filter(|statement| statement.starts_with("UPDATE report_incidents"))
        .collect();
    assert_eq!(backfill.len(), 1, "one UPDATE of report_incidents");
    for statement in backfill {
        archive.execute_raw(statement).await.unwrap();
    }
    check_local_keys(&archive, &in_period, "backfilled").await;
}

/// The hours and weekdays of first presses at `in_period` (ms), at `offset_minutes` from UTC,
/// with their counts: the rule of docs/reports.md, in Rust.
fn local_keys(in_period: &[i64], by: Grouping, offset_minutes: i32) -> Vec<(String, u64)> {
    let mut counts = std::collections::BTreeMap::<i64, u64>::new();
    for at in in_period {
        let local = at + i64::from(offset_minutes) * 60_000;
        let key = match by {
            Grouping::Hour => local.div_euclid(3_600_000).rem_euclid(24),
            _ => (local.div_euclid(86_400_000) + 3).rem_euclid(7),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(key, n)| (key.to_string(), n))
        .collect()
}

async fn check_local_keys(archive: &Archive, in_period: &[i64], stage: &str) {
    let (since, until) = week();
    // Lima, UTC, India, Nepal, the Chatham Islands, Kiribati, Baker Island, and an offset no
    // zone has.
    for offset_minutes in [-300, 0, 330, 345, 765, 840, -720, -7] {
        for by in [Grouping::Hour, Grouping::Weekday] {
            let report = archive
                .report(&ReportQuery {
                    since,
                    until,
                    by,
                    utc_offset_minutes: offset_minutes,
                })
                .await
                .unwrap();
            let got: Vec<(String, u64)> = report
                .rows
                .iter()
                .map(|row| (row.key.clone(), row.incidents))
                .collect();
            assert_eq!(
                got,
                local_keys(in_period, by, offset_minutes),
                "{stage}: by {by} at {offset_minutes} min"
            );
            assert_eq!(report.total.incidents, in_period.len() as u64);
        }
    }
}
