//! Group commit of presses (`Records::press_groups`): presses of several buttons read and
//! written in one transaction, where a conflict on one button's records fails no other. The
//! same case runs on the embedded store and on a real etcd (Debian's etcd,
//! `centinela_testkit::etcd`; it fails, never skips, without it): etcd is the reference for
//! the all-or-nothing transaction the batch relies on.

use std::time::Duration;

use centinela_core::button::Button;
use centinela_core::ids::{ButtonId, OperatorId, PressId};
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_records::{PressGroup, Records};
use centinela_store::{EmbeddedStore, Store};
use centinela_testkit::etcd::{self, EtcdCluster};

/// 2026-11-27T22:05:12.345Z
const NOW: Timestamp = Timestamp::from_millis(1_795_817_112_345);
const DEBOUNCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_in_a_group_commit_fails_no_other_press_on_etcd() {
    // Declared first, dropped last: etcd outlives the case and is killed even on a panic.
    let cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let store = etcd::connect(&cluster.endpoints()).await;
    a_conflict_in_a_group_commit_fails_no_other_press(store).await;
}

#[tokio::test]
async fn a_conflict_in_a_group_commit_fails_no_other_press_on_the_embedded_store() {
    let embedded = EmbeddedStore::new();
    a_conflict_in_a_group_commit_fails_no_other_press(Store::embedded(&embedded)).await;
}

async fn button(records: &Records, id: &str) -> Button {
    records
        .button(&ButtonId::new(id).unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn group(button: &Button, presses: &[&str], now: Timestamp) -> PressGroup {
    PressGroup {
        button: button.clone(),
        press_ids: presses.iter().map(|p| PressId::new(*p).unwrap()).collect(),
        now,
        debounce: DEBOUNCE,
        trace: None,
    }
}

async fn open_incidents_of(
    records: &Records,
    button: &Button,
) -> Vec<centinela_core::incident::Incident> {
    records
        .incidents(false)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.button == button.id)
        .collect()
}

async fn a_conflict_in_a_group_commit_fails_no_other_press(store: Store) {
    let records = Records::new(store);
    records.seed(&Scenario::lima_centro(), NOW).await.unwrap();
    let [b1, b2, b3, b4] = [
        button(&records, "B01").await,
        button(&records, "B02").await,
        button(&records, "B03").await,
        button(&records, "B04").await,
    ];
    // B02 has an open incident: its next press joins it, guarded on the incident's revision.
    let first = records
        .press(&b2, &PressId::new("b2-first").unwrap(), NOW, DEBOUNCE, None)
        .await
        .unwrap();
    let later = Timestamp::from_millis(NOW.as_millis() + 1_000);

    // A batch of four buttons, read and decided...
    let plan = records
        .plan_presses(vec![
            group(&b1, &["b1-a", "b1-b"], later),
            group(&b2, &["b2-second"], later),
            group(&b3, &["b3-a"], later),
            group(&b4, &["b4-a"], later),
        ])
        .await
        .unwrap();
    // ...then, before it is written, someone else changes B02's incident (an operator's
    // acknowledgement), and another node records B03's press itself (its owner was silent).
    records
        .update_incident(&first.incident.id, |i| {
            i.acknowledge(OperatorId::new("ana").unwrap(), later)
                .map_err(|e| centinela_records::Error::Refused(e.to_string()))
        })
        .await
        .unwrap();
    let b3_elsewhere = records
        .press(&b3, &PressId::new("b3-a").unwrap(), later, DEBOUNCE, None)
        .await
        .unwrap();
    let before = records.revision().await.unwrap();
    let results = records.commit_presses(plan).await;
    let after = records.revision().await.unwrap();
    let [r1, r2, r3, r4]: [_; 4] = results.try_into().unwrap();

    // Every press is acknowledged.
    let r1 = r1.expect("B01's presses commit");
    let r2 = r2.expect("B02's press, which conflicted, retries and commits");
    let r3 = r3.expect("B03's press, recorded elsewhere meanwhile, resolves");
    let r4 = r4.expect("B04's press commits");
    // B01 and B04 opened incidents, in one transaction; B02's press retried alone and joined
    // its (acknowledged) incident; B03's resolved to the incident the other node opened.
    assert!(!r1[0].duplicate && r1[1].duplicate, "{r1:?}");
    assert_eq!(r1[0].incident.id, r1[1].incident.id);
    assert_eq!(r1[0].incident.press_count, 2);
    assert!(!r4[0].duplicate);
    assert!(r2[0].duplicate, "joined the open incident");
    assert_eq!(r2[0].incident.id, first.incident.id);
    assert_eq!(r2[0].incident.press_count, 2);
    assert!(
        r2[0].incident.state > centinela_core::incident::IncidentState::New,
        "acknowledged: {:?}",
        r2[0].incident.state
    );
    assert_eq!(r3[0].incident.id, b3_elsewhere.incident.id);
    assert!(r3[0].duplicate, "recorded once, by the other node");
    // The shared transaction (B01 + B04) and B02's own: two writes, no more.
    assert_eq!(after, before + 2, "one batch write and B02's retry");

    // One open incident per button, with every press counted once.
    for (b, presses) in [(&b1, 2), (&b2, 2), (&b3, 1), (&b4, 1)] {
        let open = open_incidents_of(&records, b).await;
        assert_eq!(open.len(), 1, "{}: {open:?}", b.id);
        assert_eq!(open[0].press_count, presses, "{}", b.id);
    }

    // The same presses again (devices retrying): idempotent, nothing written.
    let before = records.revision().await.unwrap();
    let again = records
        .press_groups(vec![
            group(&b1, &["b1-a", "b1-b"], later),
            group(&b2, &["b2-second"], later),
            group(&b3, &["b3-a"], later),
            group(&b4, &["b4-a"], later),
        ])
        .await;
    assert_eq!(
        records.revision().await.unwrap(),
        before,
        "no write for retries"
    );
    for (result, expected) in again.into_iter().zip([&r1, &r2, &r3, &r4]) {
        let result = result.unwrap();
        assert!(result.iter().all(|o| o.duplicate), "{result:?}");
        assert_eq!(result[0].incident.id, expected[0].incident.id);
    }
}
