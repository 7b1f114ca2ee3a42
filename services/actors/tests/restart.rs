//! Supervision: a panicking entity actor is restarted from the store with its state intact,
//! and an actor that keeps failing is left down once its restart budget is spent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorRef};

use centinela_actors::camera::CameraRequest;
use centinela_actors::supervisor::{Brigades, Buttons, Cameras, Supervisor, SupervisorMsg};
use centinela_actors::{Clock, Context, Error, limits};
use centinela_core::button::Button;
use centinela_core::camera::{Camera, CameraState};
use centinela_core::ids::{ButtonId, CameraId, PressId};
use centinela_core::scenario::Scenario;
use centinela_records::Records;
use centinela_store::{EmbeddedStore, Store};
use centinela_testkit::wait::Wait;

struct Fixture {
    ctx: Arc<Context>,
    _store: EmbeddedStore,
    supervisors: Vec<ractor::ActorCell>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for supervisor in &self.supervisors {
            supervisor.stop(None);
        }
    }
}

async fn start_supervisor<C>(ctx: &Arc<Context>) -> ActorRef<SupervisorMsg<C::Key>>
where
    C: centinela_actors::supervisor::ChildKind,
    <C::Actor as Actor>::Arguments: Send,
{
    Actor::spawn(None, Supervisor::<C>::default(), ctx.clone())
        .await
        .expect("supervisor starts")
        .0
}

async fn fixture() -> Fixture {
    let embedded = EmbeddedStore::new();
    let records = Records::new(Store::embedded(&embedded));
    let clock = Clock::system();
    let scenario = Scenario::lima_centro();
    records.seed(&scenario, clock.now()).await.expect("seed");
    let ctx = common::single_node_context(records, clock);
    let buttons = start_supervisor::<Buttons>(&ctx).await;
    let cameras = start_supervisor::<Cameras>(&ctx).await;
    let brigades = start_supervisor::<Brigades>(&ctx).await;
    let now = ctx.clock.now();
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
    let fixture = Fixture {
        supervisors: vec![buttons.get_cell(), cameras.get_cell(), brigades.get_cell()],
        ctx,
        _store: embedded,
    };
    PATIENCE
        .until("every entity actor to run", || async {
            fixture.ctx.router.local_counts() == (15, 15, 12)
        })
        .await;
    fixture
}

/// Polls every 10 ms for up to 20 s (generous: a busy 2-core CI machine).
const PATIENCE: Wait = Wait::up_to(Duration::from_secs(20)).every(Duration::from_millis(10));

/// An idle entity's actor is passivated: starts it.
async fn wake(ctx: &Context, kind: &str, id: &str) {
    assert!(ctx.router.wake(kind, id), "{kind} {id} is owned here");
    PATIENCE
        .until("the actor to start", || async {
            ctx.router.actor_of(kind, id).is_some()
        })
        .await;
}

async fn crash_and_wait_restart(ctx: &Context, kind: &str, id: &str) -> ActorId {
    wake(ctx, kind, id).await;
    let before = ctx
        .router
        .inject_crash(kind, id)
        .expect("the actor runs and takes the crash message");
    PATIENCE
        .until("the actor to be restarted", || async {
            ctx.router
                .actor_of(kind, id)
                .is_some_and(|now| now != before)
        })
        .await;
    ctx.router.actor_of(kind, id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_button_restarts_from_the_store_with_its_open_incident() {
    let f = fixture().await;
    let button = ButtonId::new("B01").unwrap();
    let first = f
        .ctx
        .router
        .press(&button, PressId::new("p-1").unwrap())
        .await
        .expect("press");
    assert!(!first.duplicate);

    crash_and_wait_restart(&f.ctx, "button", "B01").await;

    // The restarted actor knows nothing in memory; the store still holds the open incident,
    // so a second press merges into it, and the first press id is still recognised.
    let second = f
        .ctx
        .router
        .press(&button, PressId::new("p-2").unwrap())
        .await
        .expect("press after restart");
    assert!(second.duplicate);
    assert_eq!(second.incident.id, first.incident.id);
    assert_eq!(second.incident.press_count, 2);
    let retry = f
        .ctx
        .router
        .press(&button, PressId::new("p-1").unwrap())
        .await
        .expect("retried press");
    assert!(retry.duplicate);
    assert_eq!(retry.incident.id, first.incident.id);
    assert_eq!(retry.incident.press_count, 2, "a retry is not a new press");

    let stored: Button = f.ctx.records.get("B01").await.unwrap().unwrap();
    assert_eq!(stored.camera.as_str(), "C01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_camera_restarts_still_aimed_at_its_incident() {
    let f = fixture().await;
    let outcome = f
        .ctx
        .router
        .press(&ButtonId::new("B02").unwrap(), PressId::new("p-1").unwrap())
        .await
        .unwrap();
    let camera_id = CameraId::new("C02").unwrap();
    // No device is attached: the camera stays aiming, waiting for its device.
    let records = f.ctx.records.clone();
    PATIENCE
        .until("the camera to aim", || async {
            let camera: Camera = records.get("C02").await.unwrap().unwrap();
            camera.state == CameraState::Aiming
        })
        .await;

    crash_and_wait_restart(&f.ctx, "camera", "C02").await;

    let report = CameraRequest::Report {
        state: CameraState::OnTarget,
        incident: Some(outcome.incident.id.clone()),
    };
    let camera: Camera = f
        .ctx
        .router
        .call(&camera_id, report)
        .await
        .expect("the restarted camera accepts its device's report");
    assert_eq!(camera.state, CameraState::OnTarget);
    assert_eq!(camera.target.as_ref(), Some(&outcome.incident.id));
    assert_eq!(
        camera.bookmarks.len(),
        1,
        "one bookmark for the incident, kept across the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_failing_past_its_budget_stays_down_and_callers_hear_unavailable() {
    let f = fixture().await;
    for _ in 0..limits::RESTARTS_MAX {
        crash_and_wait_restart(&f.ctx, "button", "B03").await;
    }
    wake(&f.ctx, "button", "B03").await;
    f.ctx
        .router
        .inject_crash("button", "B03")
        .expect("still running before the last crash");
    PATIENCE
        .until("the actor to stay down", || async {
            f.ctx.router.actor_of("button", "B03").is_none()
        })
        .await;
    let result = f
        .ctx
        .router
        .press(&ButtonId::new("B03").unwrap(), PressId::new("p").unwrap())
        .await;
    assert!(
        matches!(result, Err(Error::Unavailable(_))),
        "got {result:?}"
    );
    // Other buttons are unaffected.
    f.ctx
        .router
        .press(&ButtonId::new("B04").unwrap(), PressId::new("p").unwrap())
        .await
        .expect("another button still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_button_is_not_found_and_creates_nothing() {
    let f = fixture().await;
    let result = f
        .ctx
        .router
        .press(&ButtonId::new("B99").unwrap(), PressId::new("p").unwrap())
        .await;
    assert!(
        matches!(result, Err(Error::NotFound { .. })),
        "got {result:?}"
    );
    assert!(f.ctx.records.incidents(true).await.unwrap().is_empty());
}
