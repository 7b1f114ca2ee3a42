//! Passivation (`centinela_actors::entity`): idle entity actors stop, the entities stay owned,
//! and their next message starts them again, transparently to callers.
//!
//! On paused tokio time: the idle period passes without real waiting, and the moment an actor
//! passivates is known (its idle checks run on the simulated clock), so presses can be aimed
//! at the handover itself.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell};

use centinela_actors::brigade::BrigadeRequest;
use centinela_actors::camera::{CameraActor, CameraCommand, CameraRequest};
use centinela_actors::dispatcher::Assignment;
use centinela_actors::supervisor::{Brigades, Buttons, Cameras, Supervisor, SupervisorMsg};
use centinela_actors::{Clock, Context, Router, limits};
use centinela_core::camera::CameraState;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, PressId};
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_store::{EmbeddedStore, Store};
use centinela_testkit::wait::Wait;

/// Polls every 100 ms of (paused) time, for up to 10 simulated minutes.
const PATIENCE: Wait = Wait::up_to(Duration::from_secs(600)).every(Duration::from_millis(100));

struct Fixture {
    ctx: Arc<Context>,
    store: EmbeddedStore,
    supervisors: Vec<ActorCell>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for s in &self.supervisors {
            s.stop(None);
        }
    }
}

async fn fixture() -> Fixture {
    let embedded = EmbeddedStore::new();
    let records = Records::new(Store::embedded(&embedded));
    let clock = Clock::starting_at(Timestamp::from_millis(1_795_817_112_345));
    let scenario = Scenario::lima_centro();
    records.seed(&scenario, clock.now()).await.expect("seed");
    let ctx = common::single_node_context(records, clock);
    let now = clock.now();
    let buttons = Actor::spawn(None, Supervisor::<Buttons>::default(), ctx.clone())
        .await
        .unwrap()
        .0;
    let cameras = Actor::spawn(None, Supervisor::<Cameras>::default(), ctx.clone())
        .await
        .unwrap()
        .0;
    let brigades = Actor::spawn(None, Supervisor::<Brigades>::default(), ctx.clone())
        .await
        .unwrap()
        .0;
    buttons
        .cast(SupervisorMsg::Start(
            scenario
                .buttons(now)
                .unwrap()
                .into_iter()
                .map(|b| b.id)
                .collect(),
        ))
        .unwrap();
    cameras
        .cast(SupervisorMsg::Start(
            scenario
                .cameras(now)
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect(),
        ))
        .unwrap();
    brigades
        .cast(SupervisorMsg::Start(
            scenario
                .brigades(now)
                .unwrap()
                .into_iter()
                .map(|b| b.id)
                .collect(),
        ))
        .unwrap();
    let f = Fixture {
        ctx,
        store: embedded,
        supervisors: vec![buttons.get_cell(), cameras.get_cell(), brigades.get_cell()],
    };
    PATIENCE
        .until("every entity to be owned", || {
            let ctx = f.ctx.clone();
            async move { ctx.router.local_counts() == (15, 15, 12) }
        })
        .await;
    f
}

/// Waits until no owned entity has a running actor.
async fn all_passivated(router: &Router) {
    PATIENCE
        .until("every idle actor to be passivated", || {
            let router = router.clone();
            async move { router.resident_counts() == (0, 0, 0) }
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn idle_entities_passivate_and_their_next_message_starts_them_again() {
    let f = fixture().await;
    let router = f.ctx.router.clone();
    // Buttons and native cameras with nothing to do stop at once; available brigades with no
    // terminal are marked offline after the grace period, then stop once idle long enough.
    all_passivated(&router).await;
    assert_eq!(router.local_counts(), (15, 15, 12), "still owned");

    let outcome = router
        .press(&ButtonId::new("B01").unwrap(), PressId::new("p-1").unwrap())
        .await
        .expect("a press to a passivated button is answered");
    assert!(!outcome.duplicate);
    assert!(
        router.actor_of("button", "B01").is_some(),
        "the press started it"
    );
    // The camera is told to aim: it starts, and stays while it holds the incident.
    PATIENCE
        .until("the camera to run, aiming", || {
            let router = router.clone();
            async move { router.actor_of("camera", "C01").is_some() }
        })
        .await;

    tokio::time::sleep(limits::IDLE_AFTER + 2 * limits::IDLE_CHECK_INTERVAL).await;
    assert!(
        router.actor_of("button", "B01").is_none(),
        "idle again: passivated"
    );
    assert!(
        router.actor_of("camera", "C01").is_some(),
        "a camera holding an incident stays"
    );
    let camera = f
        .ctx
        .records
        .camera(&CameraId::new("C01").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(camera.state, CameraState::Aiming);

    // Its next press starts it again; a retry of the first press is still known (from the
    // store: the actor that took it is gone).
    let retry = router
        .press(&ButtonId::new("B01").unwrap(), PressId::new("p-1").unwrap())
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.incident.id, outcome.incident.id);
    assert_eq!(retry.incident.press_count, 1, "a retry is not a new press");
    assert!(router.actor_of("button", "B01").is_some());
}

/// Presses sent while a button's actor passivates (before it asks to stop, while it stops,
/// while its successor starts): every one is answered, durable, and counted once.
#[tokio::test(start_paused = true)]
async fn presses_racing_a_passivation_are_all_recorded() {
    let f = fixture().await;
    let router = f.ctx.router.clone();
    let mut handovers = 0;
    for (n, button) in (2..=15).enumerate() {
        let button = ButtonId::new(format!("B{button:02}")).unwrap();
        let first = router
            .press(&button, PressId::new("first").unwrap())
            .await
            .unwrap();
        let actor = router.actor_of("button", button.as_str()).expect("woken");
        // Its idle checks run every IDLE_CHECK_INTERVAL from its start: it asks to stop at
        // the first one IDLE_AFTER after the press. Aim a burst at that instant, each press
        // a few scheduler turns later than the previous (a different one each button).
        tokio::time::sleep(limits::IDLE_AFTER).await;
        let presses = 12;
        let tasks: Vec<_> = (0..presses)
            .map(|i| {
                let router = router.clone();
                let button = button.clone();
                tokio::spawn(async move {
                    for _ in 0..(i * (n + 1)) {
                        tokio::task::yield_now().await;
                    }
                    router
                        .press(&button, PressId::new(format!("race-{i}")).unwrap())
                        .await
                })
            })
            .collect();
        // Past the debounce window since the first press: the burst opens one new incident
        // and the rest join it.
        let mut incidents = Vec::new();
        for task in tasks {
            let outcome = task.await.unwrap().expect("a racing press is answered");
            assert_ne!(outcome.incident.id, first.incident.id);
            if !incidents.contains(&outcome.incident.id) {
                incidents.push(outcome.incident.id);
            }
        }
        assert_eq!(incidents.len(), 1, "{button}: one incident for the burst");
        let stored = f
            .ctx
            .records
            .incident(&incidents[0])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.press_count as usize, presses,
            "{button}: every press counted once"
        );
        if router.actor_of("button", button.as_str()) != Some(actor) {
            handovers += 1;
        }
    }
    assert!(
        handovers > 0,
        "no press met a passivation: the test aims wrong"
    );
}

/// A flood at a passivated button (300 presses, arriving while its actor starts: they wait in
/// its registry slot): every one is acknowledged, none refused, and coalesced into one
/// incident counting each once, as a running actor absorbs a flood.
#[tokio::test(start_paused = true)]
async fn a_press_flood_at_a_passivated_button_is_absorbed_whole() {
    let f = fixture().await;
    let router = f.ctx.router.clone();
    all_passivated(&router).await;
    let button = ButtonId::new("B07").unwrap();
    assert!(router.actor_of("button", button.as_str()).is_none());
    let presses = 300;
    let tasks: Vec<_> = (0..presses)
        .map(|i| {
            let router = router.clone();
            let button = button.clone();
            tokio::spawn(async move {
                router
                    .press(&button, PressId::new(format!("flood-{i}")).unwrap())
                    .await
            })
        })
        .collect();
    let mut incidents = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("press flood-{i} refused: {e}"));
        if !incidents.contains(&outcome.incident.id) {
            incidents.push(outcome.incident.id);
        }
    }
    assert_eq!(incidents.len(), 1, "one incident for the flood");
    let stored = f
        .ctx
        .records
        .incident(&incidents[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.press_count as usize, presses,
        "every press counted once"
    );
}

/// A woken actor starts from the record it is handed, not from a store read: a button from
/// the copy its last actor kept in its registry slot, a camera from the camera its aim
/// carries (as the press's transaction wrote it), a brigade from the brigade its assignment
/// carries. Counted on the store itself: not one `Range` request for the press, the aim and
/// the assignment (a passivation used to cost one read per wake, and a camera's two).
#[tokio::test(start_paused = true)]
async fn a_woken_actor_starts_from_the_record_it_is_handed_without_a_store_read() {
    let f = fixture().await;
    let router = f.ctx.router.clone();
    all_passivated(&router).await;
    // The buttons have been silent all along: the liveness marker writes them offline, which
    // drops the copies their first actors kept. Then a wake (no press: the camera stays idle)
    // and a passivation leave B01's copy, as stored, in its slot.
    let button = ButtonId::new("B01").unwrap();
    PATIENCE
        .until("B01 to be marked offline", || {
            let records = f.ctx.records.clone();
            let button = button.clone();
            async move {
                let stored = records.button(&button).await.unwrap().unwrap();
                stored.health == centinela_core::button::ButtonHealth::Offline
            }
        })
        .await;
    assert!(router.wake("button", button.as_str()));
    PATIENCE
        .until("B01 to run", || {
            let router = router.clone();
            async move { router.actor_of("button", "B01").is_some() }
        })
        .await;
    PATIENCE
        .until("B01 to passivate again", || {
            let router = router.clone();
            async move { router.actor_of("button", "B01").is_none() }
        })
        .await;
    let camera = f.ctx.records.button(&button).await.unwrap().unwrap().camera;
    let brigade_id = BrigadeId::new("U01").unwrap();
    assert!(router.actor_of("camera", camera.as_str()).is_none());
    assert!(router.actor_of("brigade", brigade_id.as_str()).is_none());

    let before = f.store.requests();
    let outcome = router
        .press(&button, PressId::new("cold").unwrap())
        .await
        .expect("the press is answered");
    assert!(router.actor_of("button", button.as_str()).is_some());
    PATIENCE
        .until("the camera to run, aiming", || {
            let router = router.clone();
            let camera = camera.clone();
            async move { router.actor_of("camera", camera.as_str()).is_some() }
        })
        .await;
    // Answered after the aim (one mailbox): the aim has been handled.
    let _ = router
        .call::<_, centinela_core::camera::Camera>(&camera, CameraRequest::Steer { to: None })
        .await;
    let ranges_press = f.store.requests().ranges - before.ranges;

    // The dispatcher's round would write the assignment and tell the brigade what it wrote.
    let incident = outcome.incident.clone();
    let now = f.ctx.clock.now();
    let assigned = f
        .ctx
        .records
        .update_brigade(&brigade_id, |b| {
            b.come_online(now)?;
            b.dispatch(incident.id.clone(), now)?;
            Ok(())
        })
        .await
        .unwrap();
    let before = f.store.requests();
    router.tell(
        &brigade_id,
        BrigadeRequest::Assign {
            assignment: Assignment::new(&incident, Duration::from_secs(60)),
            recorded: Some(Box::new(assigned)),
        },
    );
    PATIENCE
        .until("the brigade to run", || {
            let router = router.clone();
            async move { router.actor_of("brigade", "U01").is_some() }
        })
        .await;
    // Answered after the assignment (one mailbox): the assignment has been handled.
    let _ = router
        .call::<_, ()>(&brigade_id, BrigadeRequest::Heartbeat)
        .await;
    let ranges_assign = f.store.requests().ranges - before.ranges;

    assert_eq!(
        (ranges_press, ranges_assign),
        (0, 0),
        "range reads by the press and aim, and by the assignment"
    );
}

/// A native camera's device stays attached while the camera's actor passivates: the node, not
/// the actor, keeps the command channel. An aim wakes the actor and reaches the device; a
/// device hanging up wakes its passivated camera, which records it offline.
#[tokio::test(start_paused = true)]
async fn an_attached_camera_passivates_and_its_device_still_gets_the_aim() {
    let f = fixture().await;
    let router = f.ctx.router.clone();
    all_passivated(&router).await;
    // What the node's `centinela_cameras_offline` gauge moves by (the gauge itself is
    // process-wide, shared with the other tests here under `cargo test`).
    let online = || router.cameras_counted_online();
    let online_before = online();
    let camera_of = |button: &str| {
        let records = f.ctx.records.clone();
        let button = ButtonId::new(button).unwrap();
        async move { records.button(&button).await.unwrap().unwrap().camera }
    };
    let pressed = camera_of("B02").await;
    let hung_up = camera_of("B03").await;
    let (tx, mut device) = tokio::sync::mpsc::channel(limits::DEVICE_CHANNEL_CAPACITY);
    router.attach::<CameraActor>(&pressed, tx).await.unwrap();
    let (tx, device_gone) = tokio::sync::mpsc::channel(limits::DEVICE_CHANNEL_CAPACITY);
    router.attach::<CameraActor>(&hung_up, tx).await.unwrap();
    for camera in [&pressed, &hung_up] {
        let stored = f.ctx.records.camera(camera).await.unwrap().unwrap();
        assert!(stored.online, "{camera} online once attached");
    }

    // Idle, the woken cameras passivate again; their devices stay attached, and they stay
    // counted online.
    all_passivated(&router).await;
    assert_eq!(router.camera_links.len(), 2);
    assert_eq!(
        online(),
        online_before + 2,
        "the attached cameras count online while their actors are passivated"
    );
    assert!(
        matches!(
            device.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty)
        ),
        "the stream is open, and nothing was sent"
    );

    let outcome = router
        .press(
            &ButtonId::new("B02").unwrap(),
            PressId::new("attached").unwrap(),
        )
        .await
        .unwrap();
    let command = tokio::time::timeout(Duration::from_secs(60), device.recv())
        .await
        .expect("the aim reaches the device")
        .expect("the stream is open");
    assert!(
        matches!(&*command, CameraCommand::Aim { incident, .. } if *incident == outcome.incident.id),
        "{command:?}"
    );
    assert!(router.actor_of("camera", pressed.as_str()).is_some());

    drop(device_gone);
    PATIENCE
        .until("the hung-up camera to be recorded offline", || {
            let records = f.ctx.records.clone();
            let camera = hung_up.clone();
            async move { !records.camera(&camera).await.unwrap().unwrap().online }
        })
        .await;
    assert!(!router.camera_links.is_attached(&hung_up));
    assert!(router.camera_links.is_attached(&pressed));
    PATIENCE
        .until("the hung-up camera counted offline again", || async {
            online() == online_before + 1
        })
        .await;
}

/// Devices reconnecting after an outage wake their passivated entities in a wave: the
/// supervisor starts the woken ones together, their records read in one store transaction,
/// and the cameras' actors start without another read (before: a range read per camera for its
/// record, and one for its button's open-incident pointer).
#[tokio::test(start_paused = true)]
async fn a_wave_of_wakes_reads_the_records_in_one_request() {
    let f = fixture().await;
    let router = f.ctx.router.clone();
    all_passivated(&router).await;
    let cameras: Vec<CameraId> = f
        .ctx
        .records
        .snapshot::<centinela_core::camera::Camera>()
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(cameras.len(), 15);

    let before = f.store.requests();
    for camera in &cameras {
        assert!(router.wake("camera", camera.as_str()));
    }
    PATIENCE
        .until("every woken camera to run", || {
            let router = router.clone();
            let cameras = cameras.clone();
            async move {
                cameras
                    .iter()
                    .all(|c| router.actor_of("camera", c.as_str()).is_some())
            }
        })
        .await;
    let after = f.store.requests();
    assert_eq!(
        (after.ranges - before.ranges, after.txns - before.txns),
        (0, 1),
        "range reads, and transactions, to start 15 woken cameras"
    );
}

/// A camera recorded aiming (the press's transaction wrote the aim) whose aim message never
/// reached it is turned when its actor next starts, from its own record: no store read.
#[tokio::test(start_paused = true)]
async fn a_camera_recorded_aiming_is_turned_when_its_actor_starts() {
    let f = fixture().await;
    let router = f.ctx.router.clone();
    all_passivated(&router).await;
    let camera = f
        .ctx
        .records
        .button(&ButtonId::new("B04").unwrap())
        .await
        .unwrap()
        .unwrap()
        .camera;
    let (tx, mut device) = tokio::sync::mpsc::channel(limits::DEVICE_CHANNEL_CAPACITY);
    router.attach::<CameraActor>(&camera, tx).await.unwrap();
    all_passivated(&router).await;

    // As a press on another node would record it, with the aim it sent lost on the way.
    let incident = centinela_core::ids::IncidentId::new("I-LOST-AIM").unwrap();
    let now = f.ctx.clock.now();
    f.ctx
        .records
        .update_camera(&camera, |c| {
            c.aim(incident.clone(), now);
            Ok(())
        })
        .await
        .unwrap();
    assert!(router.wake("camera", camera.as_str()));
    let command = tokio::time::timeout(Duration::from_secs(60), device.recv())
        .await
        .expect("the aim reaches the device")
        .expect("the stream is open");
    assert!(
        matches!(&*command, CameraCommand::Aim { incident: aimed, .. } if *aimed == incident),
        "{command:?}"
    );
}
