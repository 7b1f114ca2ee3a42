//! The archive's contract: every case runs against the embedded SQLite
//! (`contract_sqlite.rs`) and a real PostgreSQL started by the test (`contract_postgres.rs`).
//! Incidents are made the way a node makes them: pressed and closed through
//! `centinela-records` on an embedded store seeded with Lima's central district.

#![allow(dead_code)]

use std::time::Duration;

use centinela_archive::retention::Archiver;
use centinela_archive::{Archive, ArchivedIncident, Error, History, Page, Stored};
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
