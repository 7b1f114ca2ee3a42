//! Group commit of presses (`Records::press_groups`): presses of several buttons read and
//! written in one transaction, where a conflict on one button's records fails no other; and
//! of closes from held copies (`Records::close_incidents_known`), the same way. Each case
//! runs on the embedded store and on a real etcd (Debian's etcd, `centinela_testkit::etcd`;
//! it fails, never skips, without it): etcd is the reference for the all-or-nothing
//! transaction the batch relies on, and for the compare on the open pointer's value.

use std::time::Duration;

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::ids::BrigadeId;
use centinela_core::ids::{ButtonId, OperatorId, PressId};
use centinela_core::incident::{Actor, Resolution};
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_records::{Close, HeldClose, Known, PressGroup, Records};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_in_a_close_batch_fails_no_other_close_on_etcd() {
    // Declared first, dropped last: etcd outlives the case and is killed even on a panic.
    let cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let store = etcd::connect(&cluster.endpoints()).await;
    a_conflict_in_a_close_batch_fails_no_other_close(store).await;
}

#[tokio::test]
async fn a_conflict_in_a_close_batch_fails_no_other_close_on_the_embedded_store() {
    let embedded = EmbeddedStore::new();
    a_conflict_in_a_close_batch_fails_no_other_close(Store::embedded(&embedded)).await;
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

fn known<T>((value, revision): (T, i64)) -> Known<T> {
    Known { value, revision }
}

/// A press at `button` opening an incident with `unit` assigned to it: the incident, the
/// brigade and the camera as the operators' feed holds them.
async fn open_assigned(records: &Records, button: &Button, unit: &BrigadeId) -> HeldClose {
    let press = PressId::new(format!("{}-close", button.id)).unwrap();
    let opened = records.press(button, &press, NOW, DEBOUNCE, None).await;
    let id = opened.unwrap().incident.id;
    records
        .update_incident_with(&id, std::slice::from_ref(unit), None, |i, b| {
            if !b[0].is_available() {
                b[0].come_online(NOW)?;
            }
            b[0].dispatch(i.id.clone(), NOW)?;
            i.assign(b[0].id.clone(), Actor::Dispatcher { term: 1 }, NOW)?;
            Ok(())
        })
        .await
        .unwrap();
    HeldClose {
        incident: known(records.incident_at(&id).await.unwrap().unwrap()),
        brigades: vec![known(records.brigade_at(unit).await.unwrap().unwrap())],
        camera: held_camera(records, button).await,
    }
}

async fn held_camera(records: &Records, button: &Button) -> Known<Camera> {
    let camera = records.get_at::<Camera>(button.camera.as_str());
    known(camera.await.unwrap().unwrap())
}

/// The value of the button's open pointer (the incident it names).
async fn open_pointer(records: &Records, button: &Button) -> Option<String> {
    let key = format!("{}open/{}", centinela_records::ROOT, button.id);
    let kv = records.store().get(&key).await.unwrap();
    kv.map(|kv| String::from_utf8(kv.value).unwrap())
}

async fn a_conflict_in_a_close_batch_fails_no_other_close(store: Store) {
    let records = Records::new(store);
    records.seed(&Scenario::lima_centro(), NOW).await.unwrap();
    let (brigades, _) = records.snapshot::<Brigade>().await.unwrap();
    let mut batch = Vec::new();
    let mut buttons = Vec::new();
    for (index, id) in ["B01", "B02", "B03", "B04"].into_iter().enumerate() {
        let b = button(&records, id).await;
        let held = open_assigned(&records, &b, &brigades[index].id).await;
        batch.push(Close {
            held,
            resolution: Resolution::Handled,
            actor: Actor::System,
            now: NOW,
        });
        buttons.push(b);
    }

    // Before the batch is written: B02's unit moves (a position report), and B03 is pressed
    // again after its debounce window, so a new incident takes its open pointer. The copy of
    // B03's camera is taken after that press: only the pointer's guard stands between the
    // close of the earlier incident and a wrong delete.
    let unit = batch[1].held.brigades[0].value.id.clone();
    let p = batch[1].held.brigades[0].value.position;
    let moved = centinela_core::geo::Position::new(p.lat(), p.lon() + 0.001).unwrap();
    records
        .update_brigade(&unit, |b| {
            b.move_to(moved);
            Ok(())
        })
        .await
        .unwrap();
    let later = Timestamp::from_millis(NOW.as_millis() + 2 * DEBOUNCE.as_millis() as u64);
    let press = PressId::new("B03-later").unwrap();
    let b3_later = records
        .press(&buttons[2], &press, later, DEBOUNCE, None)
        .await;
    let b3_later = b3_later.unwrap().incident.id;
    batch[2].held.camera = held_camera(&records, &buttons[2]).await;

    let before = records.revision().await.unwrap();
    let results = records.close_incidents_known(batch.clone()).await;
    let after = records.revision().await.unwrap();
    let updates: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every close is made"))
        .collect();
    // B01 and B04 in one transaction; B02 and B03 each alone, from a read.
    assert_eq!(updates[0].revision, updates[3].revision, "one transaction");
    assert_ne!(updates[1].revision, updates[0].revision);
    assert_ne!(updates[2].revision, updates[0].revision);
    assert_eq!(
        after,
        before + 3,
        "the batch's write and the two made alone"
    );
    for (close, update) in batch.iter().zip(&updates) {
        let id = &close.held.incident.value.id;
        let stored = records.incident(id).await.unwrap().unwrap();
        assert!(!stored.is_open(), "{id} closed");
        assert_eq!(stored, update.incident);
        let unit = &close.held.brigades[0].value.id;
        let unit = records.brigade(unit).await.unwrap().unwrap();
        assert_eq!(unit.incident, None, "{} released", unit.id);
    }
    let unit = records.brigade(&unit).await.unwrap().unwrap();
    assert_eq!(unit.position, moved, "B02's unit keeps its move");
    assert_eq!(
        open_pointer(&records, &buttons[2]).await.as_deref(),
        Some(b3_later.as_str()),
        "B03's later incident stays its open one"
    );
    let camera = records.camera(&buttons[2].camera).await.unwrap().unwrap();
    assert_eq!(camera.target.as_ref(), Some(&b3_later), "still aimed at it");
    for b in [&buttons[0], &buttons[1], &buttons[3]] {
        assert_eq!(
            open_pointer(&records, b).await,
            None,
            "{}: pointer removed",
            b.id
        );
    }
}
