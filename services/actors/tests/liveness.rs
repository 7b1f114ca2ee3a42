//! Silent buttons go offline in paced batches (`centinela_actors::liveness`), not one store
//! write each; heard again, they come back online in batches too, answered at once and
//! without their actors; and a button heard from while its offline mark waited is back
//! online.
//!
//! On paused tokio time: the 30 s heartbeat timeout passes without real waiting, and every
//! actor starts at the same simulated instant, so the whole fleet falls silent at once (the
//! wave the marker exists for).

mod common;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};

use centinela_actors::button::ButtonRequest;
use centinela_actors::supervisor::{Buttons, Supervisor, SupervisorMsg};
use centinela_actors::{Clock, Context, limits};
use centinela_core::button::{Button, ButtonHealth};
use centinela_core::ids::{ButtonId, CameraId};
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_store::{EmbeddedStore, Store};
use centinela_testkit::wait::Wait;

const BUTTONS: usize = 300;

/// Lima's scenario with its first button copied `BUTTONS` times (ids `W0001..`).
fn city() -> Scenario {
    let mut scenario = Scenario::lima_centro();
    let template = scenario.buttons[0].clone();
    scenario.buttons = (1..=BUTTONS)
        .map(|i| {
            let mut b = template.clone();
            b.id = ButtonId::new(format!("W{i:04}")).unwrap();
            b.camera.id = CameraId::new(format!("V{i:04}")).unwrap();
            b
        })
        .collect();
    scenario
}

struct Fixture {
    ctx: Arc<Context>,
    _store: EmbeddedStore,
    buttons: ActorRef<SupervisorMsg<ButtonId>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.buttons.stop(None);
    }
}

async fn fixture() -> Fixture {
    let embedded = EmbeddedStore::new();
    let records = Records::new(Store::embedded(&embedded));
    let clock = Clock::starting_at(Timestamp::from_millis(1_795_817_112_345));
    let scenario = city();
    records.seed(&scenario, clock.now()).await.expect("seed");
    let ctx = common::single_node_context(records, clock);
    let (buttons, _) = Actor::spawn(None, Supervisor::<Buttons>::default(), ctx.clone())
        .await
        .expect("supervisor starts");
    let ids = scenario.buttons.iter().map(|b| b.id.clone()).collect();
    buttons.cast(SupervisorMsg::Start(ids)).unwrap();
    let f = Fixture {
        ctx,
        _store: embedded,
        buttons,
    };
    PATIENCE
        .until("every button actor to run", || {
            let ctx = f.ctx.clone();
            async move { ctx.router.local_counts().0 == BUTTONS }
        })
        .await;
    f
}

/// Polls every 100 ms of (paused) time, for up to 10 simulated minutes.
const PATIENCE: Wait = Wait::up_to(Duration::from_secs(600)).every(Duration::from_millis(100));

async fn offline_count(records: &Records) -> usize {
    let (buttons, _) = records.snapshot::<Button>().await.unwrap();
    buttons
        .iter()
        .filter(|b| b.health == ButtonHealth::Offline)
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_fleet_falling_silent_is_marked_offline_in_a_few_batched_writes() {
    let f = fixture().await;
    let records = f.ctx.records.clone();
    let before = records.revision().await.unwrap();
    assert_eq!(offline_count(&records).await, 0);

    PATIENCE
        .until("every silent button to be offline in the store", || {
            let records = records.clone();
            async move { offline_count(&records).await == BUTTONS }
        })
        .await;

    // Each write transaction is one store revision. One write per button would be 300;
    // batches of 64 make 5, and a wave split by the liveness ticks a few more at most.
    let writes = records.revision().await.unwrap() - before;
    let floor = BUTTONS.div_ceil(centinela_records::limits::UPDATE_BATCH_MAX) as i64;
    assert!(
        (floor..=2 * floor).contains(&writes),
        "{BUTTONS} buttons went offline in {writes} store writes (expected {floor}..={})",
        2 * floor
    );
}

#[tokio::test(start_paused = true)]
async fn a_fleet_heard_again_is_marked_online_in_a_few_batched_writes() {
    let f = fixture().await;
    let records = f.ctx.records.clone();
    PATIENCE
        .until("every silent button to be offline in the store", || {
            let records = records.clone();
            async move { offline_count(&records).await == BUTTONS }
        })
        .await;
    // The district's power is back: every button heartbeats within the same moment.
    let before = records.revision().await.unwrap();
    let heartbeats = (1..=BUTTONS).map(|i| {
        let ctx = f.ctx.clone();
        async move {
            let id = ButtonId::new(format!("W{i:04}")).unwrap();
            let health: ButtonHealth = ctx
                .router
                .call(&id, ButtonRequest::Heartbeat {})
                .await
                .expect("heartbeat");
            health
        }
    });
    for health in futures::future::join_all(heartbeats).await {
        assert_eq!(health, ButtonHealth::Online);
    }
    PATIENCE
        .until("every button heard again to be online in the store", || {
            let records = records.clone();
            async move { offline_count(&records).await == 0 }
        })
        .await;
    // One write per button would be 300; batches of 64 make 5, and the heartbeats arriving
    // across a batch's window a few more at most.
    let writes = records.revision().await.unwrap() - before;
    let floor = BUTTONS.div_ceil(centinela_records::limits::UPDATE_BATCH_MAX) as i64;
    assert!(
        (floor..=2 * floor).contains(&writes),
        "{BUTTONS} buttons came back online in {writes} store writes (expected {floor}..={})",
        2 * floor
    );
}

#[tokio::test(start_paused = true)]
async fn a_button_heard_from_while_its_offline_mark_waited_is_online() {
    let f = fixture().await;
    let records = f.ctx.records.clone();
    // The whole fleet asks to be marked at the timeout; heartbeat the last buttons just
    // after, while their marks wait behind the first paced batches.
    tokio::time::sleep(limits::HEARTBEAT_TIMEOUT + limits::OFFLINE_BATCH_INTERVAL).await;
    let late: Vec<ButtonId> = (BUTTONS - 2..=BUTTONS)
        .map(|i| ButtonId::new(format!("W{i:04}")).unwrap())
        .collect();
    for id in &late {
        let _: ButtonHealth = f
            .ctx
            .router
            .call(id, ButtonRequest::Heartbeat {})
            .await
            .expect("heartbeat");
    }
    let others = BUTTONS - late.len();
    PATIENCE
        .until("the others to be offline", || {
            let records = records.clone();
            async move { offline_count(&records).await == others }
        })
        .await;
    // Whatever order the marker and the heartbeats met in, the buttons heard from end online.
    tokio::time::sleep(limits::LIVENESS_CHECK_INTERVAL).await;
    for id in &late {
        let b = records.button(id).await.unwrap().unwrap();
        assert_eq!(b.health, ButtonHealth::Online, "{id} was heard from");
    }
    assert_eq!(offline_count(&records).await, others);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_of_passivated_buttons_write_nothing_and_silence_is_marked_once() {
    let f = fixture().await;
    let records = f.ctx.records.clone();
    let id = ButtonId::new("W0001").unwrap();
    let heartbeat = || async {
        let health: ButtonHealth = f
            .ctx
            .router
            .call(&id, ButtonRequest::Heartbeat {})
            .await
            .expect("heartbeat");
        health
    };
    // Ten minutes of heartbeats every 10 s from an online button: not one store write for it
    // (the others' offline marks are written meanwhile, so count only this button's changes).
    // Idle button actors stop at once (passivation): the table judges them without one.
    PATIENCE
        .until("every button actor to be passivated", || {
            let ctx = f.ctx.clone();
            async move { ctx.router.resident_counts().0 == 0 }
        })
        .await;
    let before = records.button(&id).await.unwrap().unwrap();
    for _ in 0..60 {
        assert_eq!(heartbeat().await, ButtonHealth::Online);
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    assert_eq!(
        f.ctx.router.resident_counts().0,
        0,
        "a heartbeat started an actor"
    );
    let after = records.button(&id).await.unwrap().unwrap();
    assert_eq!(
        after, before,
        "an online button's heartbeats changed its record"
    );
    // Silent: marked offline once, and the next heartbeat writes it online once.
    PATIENCE
        .until("the silent button to be offline", || {
            let records = records.clone();
            let id = id.clone();
            async move { records.button(&id).await.unwrap().unwrap().health == ButtonHealth::Offline }
        })
        .await;
    assert_eq!(
        f.ctx.router.liveness.health(&id),
        Some(ButtonHealth::Offline)
    );
    let marked = records.button(&id).await.unwrap().unwrap();
    tokio::time::sleep(limits::HEARTBEAT_TIMEOUT * 4).await;
    assert_eq!(
        records.button(&id).await.unwrap().unwrap(),
        marked,
        "an offline button was written again while it stayed silent"
    );
    assert_eq!(
        f.ctx.router.resident_counts().0,
        0,
        "marking a passivated button offline started its actor"
    );
    // Back online is a health change, written in a batch by the node's marker: the heartbeat
    // is answered at once, and the actor does not start (a node whose buttons are mostly
    // offline would otherwise start an actor and wait on a write for every heartbeat).
    assert_eq!(heartbeat().await, ButtonHealth::Online);
    assert_eq!(
        f.ctx.router.resident_counts().0,
        0,
        "a heartbeat of an offline button started its actor"
    );
    PATIENCE
        .until("the button heard again to be online in the store", || {
            let records = records.clone();
            let id = id.clone();
            async move { records.button(&id).await.unwrap().unwrap().health == ButtonHealth::Online }
        })
        .await;
    assert_eq!(
        f.ctx.router.liveness.health(&id),
        Some(ButtonHealth::Online)
    );
}
