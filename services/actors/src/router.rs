//! The one way to reach an entity: every message to a button, camera, brigade or the
//! dispatcher goes through [`Router`].
//!
//! Today every entity is local: the router looks the actor up in this node's registry and
//! sends. The cluster adds placement here (rendezvous hashing over live members) and
//! node-to-node delivery over gRPC for entities another node owns; callers do not change.
//!
//! Calls carry explicit timeouts. An entity that exists in the store but has no running actor
//! (it is being restarted) is waited for briefly, then reported `Unavailable` so the client can
//! retry; an entity that does not exist is `NotFound` at once and nothing is created.

use std::future::Future;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};
use tokio::sync::mpsc;

use centinela_core::brigade::{Brigade, BrigadeStatus};
use centinela_core::button::Button;
use centinela_core::camera::{Camera, CameraState};
use centinela_core::dispatch::Candidate;
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, NodeId, OperatorId, PressId};
use centinela_core::incident::Incident;
use centinela_store::records::{PressOutcome, Records};

use crate::brigade::{BrigadeMsg, TerminalEvent};
use crate::button::ButtonMsg;
use crate::camera::{CameraCommand, CameraMsg};
use crate::dispatcher::{Assignment, DispatchRequest, DispatcherMsg};
use crate::error::Error;
use crate::limits;
use crate::registry::Registry;

pub struct Router {
    node_id: NodeId,
    records: Records,
    pub(crate) buttons: Registry<ButtonId, ButtonMsg>,
    pub(crate) cameras: Registry<CameraId, CameraMsg>,
    pub(crate) brigades: Registry<BrigadeId, BrigadeMsg>,
    dispatcher: RwLock<Option<ActorRef<DispatcherMsg>>>,
}

impl Router {
    pub fn new(node_id: NodeId, records: Records) -> Self {
        Self {
            node_id,
            records,
            buttons: Registry::default(),
            cameras: Registry::default(),
            brigades: Registry::default(),
            dispatcher: RwLock::new(None),
        }
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// How many entity actors run on this node: (buttons, cameras, brigades).
    pub fn local_counts(&self) -> (usize, usize, usize) {
        (self.buttons.len(), self.cameras.len(), self.brigades.len())
    }

    pub(crate) fn set_dispatcher(&self, dispatcher: ActorRef<DispatcherMsg>) {
        *self.dispatcher.write().expect("router lock poisoned") = Some(dispatcher);
    }

    /// Forgets the dispatcher, unless a newer one replaced it already.
    pub(crate) fn clear_dispatcher(&self, actor: ractor::ActorId) {
        let mut dispatcher = self.dispatcher.write().expect("router lock poisoned");
        if dispatcher.as_ref().is_some_and(|d| d.get_id() == actor) {
            *dispatcher = None;
        }
    }

    /// Whether this node runs the dispatcher (it is the leader).
    pub fn has_dispatcher(&self) -> bool {
        self.dispatcher
            .read()
            .expect("router lock poisoned")
            .is_some()
    }

    // ---- buttons -------------------------------------------------------------------------

    /// A press: answered once the incident is durable in the store.
    pub async fn press(&self, button: &ButtonId, press_id: PressId) -> Result<PressOutcome, Error> {
        let actor = self.button(button).await?;
        call(&actor, "press", limits::PRESS_CALL_TIMEOUT, |reply| {
            ButtonMsg::Press { press_id, reply }
        })
        .await
    }

    pub async fn button_heartbeat(&self, button: &ButtonId) -> Result<Button, Error> {
        let actor = self.button(button).await?;
        call(&actor, "heartbeat", limits::ENTITY_CALL_TIMEOUT, |reply| {
            ButtonMsg::Heartbeat { reply }
        })
        .await
    }

    pub async fn button_tamper(&self, button: &ButtonId, detail: String) -> Result<Button, Error> {
        let actor = self.button(button).await?;
        call(
            &actor,
            "tamper report",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| ButtonMsg::Tamper { detail, reply },
        )
        .await
    }

    async fn button(&self, id: &ButtonId) -> Result<ActorRef<ButtonMsg>, Error> {
        resolve(&self.buttons, id, "button", async {
            Ok(self.records.button(id).await?.is_some())
        })
        .await
    }

    // ---- cameras -------------------------------------------------------------------------

    /// Asks the camera to frame its button for `incident`. Fire and forget: the press does not
    /// wait for the camera, and a camera that cannot be reached is logged, not retried here
    /// (its actor re-sends the aim when its device reconnects).
    pub async fn camera_aim(&self, camera: &CameraId, incident: IncidentId) {
        match self.camera(camera).await {
            Ok(actor) => {
                if let Err(e) = actor.cast(CameraMsg::Aim { incident }) {
                    tracing::warn!(%camera, error = %e, "camera aim not delivered");
                }
            }
            Err(e) => tracing::warn!(%camera, error = %e, "camera aim not delivered"),
        }
    }

    pub async fn camera_release(&self, camera: &CameraId, incident: IncidentId) {
        match self.camera(camera).await {
            Ok(actor) => {
                let _ = actor.cast(CameraMsg::Release { incident });
            }
            Err(e) => tracing::warn!(%camera, error = %e, "camera release not delivered"),
        }
    }

    /// Attaches a camera's command channel; returns the camera as the node sees it.
    pub async fn camera_attach(
        &self,
        camera: &CameraId,
        commands: mpsc::Sender<CameraCommand>,
    ) -> Result<Camera, Error> {
        let actor = self.camera(camera).await?;
        call(
            &actor,
            "camera attach",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| CameraMsg::Attach { commands, reply },
        )
        .await
    }

    pub async fn camera_report(
        &self,
        camera: &CameraId,
        state: CameraState,
        incident: Option<IncidentId>,
    ) -> Result<Camera, Error> {
        let actor = self.camera(camera).await?;
        call(
            &actor,
            "camera report",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| CameraMsg::Report {
                state,
                incident,
                reply,
            },
        )
        .await
    }

    async fn camera(&self, id: &CameraId) -> Result<ActorRef<CameraMsg>, Error> {
        resolve(&self.cameras, id, "camera", async {
            Ok(self.records.camera(id).await?.is_some())
        })
        .await
    }

    // ---- brigades ------------------------------------------------------------------------

    /// Hands an assignment to the brigade's actor, which pushes it to the terminal.
    pub async fn brigade_assign(&self, brigade: &BrigadeId, assignment: Assignment) {
        match self.brigade(brigade).await {
            Ok(actor) => {
                if let Err(e) = actor.cast(BrigadeMsg::Assign { assignment }) {
                    tracing::warn!(%brigade, error = %e, "assignment not delivered");
                }
            }
            // The ack timeout replaces a brigade that never heard of its assignment.
            Err(e) => tracing::warn!(%brigade, error = %e, "assignment not delivered"),
        }
    }

    pub async fn brigade_cancel(&self, brigade: &BrigadeId, incident: IncidentId, reason: String) {
        match self.brigade(brigade).await {
            Ok(actor) => {
                let _ = actor.cast(BrigadeMsg::Cancel { incident, reason });
            }
            Err(e) => tracing::warn!(%brigade, error = %e, "cancellation not delivered"),
        }
    }

    /// Attaches a brigade terminal's assignment channel.
    pub async fn brigade_attach(
        &self,
        brigade: &BrigadeId,
        events: mpsc::Sender<TerminalEvent>,
    ) -> Result<Brigade, Error> {
        let actor = self.brigade(brigade).await?;
        call(
            &actor,
            "terminal attach",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| BrigadeMsg::Attach { events, reply },
        )
        .await
    }

    pub async fn brigade_position(
        &self,
        brigade: &BrigadeId,
        position: Position,
    ) -> Result<(), Error> {
        let actor = self.brigade(brigade).await?;
        call(
            &actor,
            "position report",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| BrigadeMsg::Position { position, reply },
        )
        .await
    }

    pub async fn brigade_ack(
        &self,
        brigade: &BrigadeId,
        incident: IncidentId,
    ) -> Result<Brigade, Error> {
        let actor = self.brigade(brigade).await?;
        call(
            &actor,
            "assignment ack",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| BrigadeMsg::Ack { incident, reply },
        )
        .await
    }

    pub async fn brigade_status(
        &self,
        brigade: &BrigadeId,
        status: BrigadeStatus,
        incident: Option<IncidentId>,
    ) -> Result<Brigade, Error> {
        let actor = self.brigade(brigade).await?;
        call(
            &actor,
            "status update",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| BrigadeMsg::Status {
                status,
                incident,
                reply,
            },
        )
        .await
    }

    async fn brigade(&self, id: &BrigadeId) -> Result<ActorRef<BrigadeMsg>, Error> {
        resolve(&self.brigades, id, "brigade", async {
            Ok(self.records.brigade(id).await?.is_some())
        })
        .await
    }

    // ---- dispatcher ----------------------------------------------------------------------

    fn dispatcher(&self) -> Result<ActorRef<DispatcherMsg>, Error> {
        self.dispatcher
            .read()
            .expect("router lock poisoned")
            .clone()
            .ok_or_else(|| {
                Error::unavailable("no dispatcher is running (no leader elected yet); retry")
            })
    }

    /// An operator's dispatch: the best brigade, a chosen one, or a replacement.
    pub async fn dispatch(
        &self,
        incident: IncidentId,
        operator: OperatorId,
        unit: Option<BrigadeId>,
        replace: bool,
    ) -> Result<Incident, Error> {
        let dispatcher = self.dispatcher()?;
        let request = DispatchRequest {
            incident,
            operator,
            unit,
            replace,
        };
        call(
            &dispatcher,
            "dispatch",
            limits::DISPATCH_CALL_TIMEOUT,
            |reply| DispatcherMsg::Dispatch { request, reply },
        )
        .await
    }

    /// The ranked candidates for an incident, best first.
    pub async fn recommend(
        &self,
        incident: IncidentId,
        limit: usize,
    ) -> Result<Vec<(Candidate, Brigade)>, Error> {
        let dispatcher = self.dispatcher()?;
        call(
            &dispatcher,
            "recommend",
            limits::DISPATCH_CALL_TIMEOUT,
            |reply| DispatcherMsg::Recommend {
                incident,
                limit,
                reply,
            },
        )
        .await
    }

    /// Fault injection for supervision tests: makes the named entity's actor panic. Returns
    /// the id of the actor that was told to crash.
    #[doc(hidden)]
    pub fn inject_crash(&self, kind: &str, id: &str) -> Option<ractor::ActorId> {
        match kind {
            "button" => {
                let actor = self.buttons.get(&ButtonId::new(id).ok()?)?;
                actor.cast(ButtonMsg::Crash).ok()?;
                Some(actor.get_id())
            }
            "camera" => {
                let actor = self.cameras.get(&CameraId::new(id).ok()?)?;
                actor.cast(CameraMsg::Crash).ok()?;
                Some(actor.get_id())
            }
            "brigade" => {
                let actor = self.brigades.get(&BrigadeId::new(id).ok()?)?;
                actor.cast(BrigadeMsg::Crash).ok()?;
                Some(actor.get_id())
            }
            "dispatcher" => {
                let actor = self.dispatcher().ok()?;
                actor.cast(DispatcherMsg::Crash).ok()?;
                Some(actor.get_id())
            }
            _ => None,
        }
    }

    /// The id of the actor running an entity now, if any (tests watch restarts with it).
    #[doc(hidden)]
    pub fn actor_of(&self, kind: &str, id: &str) -> Option<ractor::ActorId> {
        match kind {
            "button" => Some(self.buttons.get(&ButtonId::new(id).ok()?)?.get_id()),
            "camera" => Some(self.cameras.get(&CameraId::new(id).ok()?)?.get_id()),
            "brigade" => Some(self.brigades.get(&BrigadeId::new(id).ok()?)?.get_id()),
            "dispatcher" => Some(self.dispatcher().ok()?.get_id()),
            _ => None,
        }
    }

    /// Tells the dispatcher an incident changed outside it (closed by an operator, say), so
    /// it does not wait for the store's watch to notice. Best effort.
    pub fn nudge_dispatcher(&self) {
        if let Ok(dispatcher) = self.dispatcher() {
            let _ = dispatcher.cast(DispatcherMsg::Tick);
        }
    }
}

/// Finds the running actor for `id`; see the module docs for the waiting rule.
async fn resolve<K, M>(
    registry: &Registry<K, M>,
    id: &K,
    kind: &'static str,
    exists: impl Future<Output = Result<bool, Error>>,
) -> Result<ActorRef<M>, Error>
where
    K: Eq + Hash + Clone + std::fmt::Display,
    M: Message,
{
    if let Some(actor) = registry.get(id) {
        return Ok(actor);
    }
    if !exists.await? {
        return Err(Error::NotFound {
            kind,
            id: id.to_string(),
        });
    }
    let deadline = tokio::time::Instant::now() + limits::ROUTE_WAIT;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(actor) = registry.get(id) {
            return Ok(actor);
        }
    }
    Err(Error::unavailable(format!(
        "{kind} '{id}' has no running actor on this node right now; retry"
    )))
}

/// A request/reply to an actor with a deadline, flattening delivery failures into [`Error`].
async fn call<M, T>(
    actor: &ActorRef<M>,
    what: &'static str,
    timeout: Duration,
    message: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> M,
) -> Result<T, Error>
where
    M: Message,
    T: Send + 'static,
{
    match actor.call(message, Some(timeout)).await {
        Ok(CallResult::Success(result)) => result,
        Ok(CallResult::Timeout) => Err(Error::Timeout { what }),
        Ok(CallResult::SenderError) => Err(Error::unavailable(format!(
            "{what}: the actor stopped before answering; retry"
        ))),
        Err(e) => Err(Error::unavailable(format!(
            "{what}: not delivered ({e}); retry"
        ))),
    }
}
