//! The one way to reach an entity: every message to a button, camera, brigade or the
//! dispatcher goes through [`Router`].
//!
//! The router asks the [`Topology`] who owns the entity (rendezvous hashing over the live
//! members) or who leads (for the dispatcher). Local entities get the message from this node's
//! registry; remote ones over the `Peer` gRPC service ([`peer`](crate::peer)). A remote call
//! that fails because the owner is gone is retried, re-reading the member set each time, until
//! the call's deadline: within one lease TTL the dead node leaves the member set and another
//! node owns the entity. Every message is safe to deliver twice (a press carries its press id;
//! transitions are idempotent or refused), so retries cannot double anything.
//!
//! A press never waits for an unreachable owner: if the owner does not answer its first
//! attempt, this node records the press itself ([`Records::press`] is a compare-and-swap
//! transaction, safe from any node) and acknowledges it. Intake depends on the store only.
//!
//! Device channels (a camera's commands, a terminal's assignments) connected to a node that
//! does not own the entity are proxied: this node opens the owner's peer stream and relays.
//! When either end goes away the other is closed too, and the device reconnects.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::Channel;

use centinela_cluster::{Member, Owner, Topology};
use centinela_core::brigade::{Brigade, BrigadeStatus};
use centinela_core::button::Button;
use centinela_core::camera::{Camera, CameraState};
use centinela_core::dispatch::Candidate;
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, NodeId, OperatorId, PressId};
use centinela_core::incident::Incident;
use centinela_proto::client::Credentials;
use centinela_proto::v1::peer_client::PeerClient;
use centinela_proto::v1::{PeerMessage, PeerSubscribe};
use centinela_records::{PressOutcome, Records};
use centinela_telemetry::metrics;
use centinela_telemetry::propagation::{self, Propagate};
use opentelemetry::KeyValue;
use tonic::service::interceptor::InterceptedService;
use tracing::Instrument;

use crate::brigade::{BrigadeMsg, TerminalEvent};
use crate::button::ButtonMsg;
use crate::camera::{CameraCommand, CameraMsg};
use crate::dispatcher::{Assignment, DispatchRequest, DispatcherMsg};
use crate::error::Error;
use crate::limits;
use crate::peer::{self, Request, Response, Target};
use crate::registry::Registry;

/// A peer channel that sends the current trace context (and the cluster credential) with
/// every call.
type TracedChannel = InterceptedService<Channel, PeerCalls>;

/// What every call to another node carries: the trace context and this node's cluster
/// credential.
#[derive(Clone)]
struct PeerCalls {
    credentials: Credentials,
}

impl tonic::service::Interceptor for PeerCalls {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let request = Propagate.call(request)?;
        self.credentials.call(request)
    }
}

/// Cheap to clone: every clone is the same router.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

pub struct Inner {
    node_id: NodeId,
    records: Records,
    clock: crate::Clock,
    topology: Topology,
    pub(crate) buttons: Registry<ButtonId, ButtonMsg>,
    pub(crate) cameras: Registry<CameraId, CameraMsg>,
    pub(crate) brigades: Registry<BrigadeId, BrigadeMsg>,
    dispatcher: RwLock<Option<ActorRef<DispatcherMsg>>>,
    /// One lazily connected channel per peer node, replaced if its address changes.
    peers: Mutex<HashMap<String, (String, Channel)>>,
    /// What this node presents to other nodes (its cluster credential; none when open).
    peer_credentials: RwLock<Credentials>,
    /// How channels to peers are opened: TCP unless a simulation replaced it.
    peer_dialer: RwLock<Option<PeerDialer>>,
}

/// Opens a (lazily connecting) channel to a peer's `http://host:port` URL. Production dials
/// TCP; a simulation dials its simulated network ([`Router::set_peer_dialer`]).
pub type PeerDialer = Arc<dyn Fn(&str) -> Result<Channel, String> + Send + Sync>;

impl Deref for Router {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// Where a message goes now.
enum Destination {
    Local,
    Remote(Member),
    Nowhere(String),
}

impl Router {
    pub fn new(node_id: NodeId, records: Records, clock: crate::Clock, topology: Topology) -> Self {
        Self {
            inner: Arc::new(Inner {
                node_id,
                records,
                clock,
                topology,
                buttons: Registry::default(),
                cameras: Registry::default(),
                brigades: Registry::default(),
                dispatcher: RwLock::new(None),
                peers: Mutex::new(HashMap::new()),
                peer_credentials: RwLock::new(Credentials::default()),
                peer_dialer: RwLock::new(None),
            }),
        }
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Sets the `authorization` value presented on calls to other nodes (`Node ID SECRET`,
    /// see `centinela_api::auth`); `None` presents nothing.
    pub fn set_peer_authorization(&self, authorization: Option<String>) {
        let credentials = authorization
            .and_then(|value| match Credentials::node(&value) {
                Ok(credentials) => Some(credentials),
                Err(e) => {
                    tracing::error!(error = %e, "cluster credential unusable; peers will refuse this node");
                    None
                }
            })
            .unwrap_or_default();
        *self.peer_credentials.write().expect("router lock poisoned") = credentials;
    }

    /// Replaces how channels to peers are opened (simulations: over their simulated network).
    /// Channels opened before keep being used.
    pub fn set_peer_dialer(&self, dialer: PeerDialer) {
        *self.peer_dialer.write().expect("router lock poisoned") = Some(dialer);
    }

    fn peer_calls(&self) -> PeerCalls {
        PeerCalls {
            credentials: self
                .peer_credentials
                .read()
                .expect("router lock poisoned")
                .clone(),
        }
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

    fn local_dispatcher(&self) -> Option<ActorRef<DispatcherMsg>> {
        self.dispatcher
            .read()
            .expect("router lock poisoned")
            .clone()
    }

    /// Whether this node runs the dispatcher (it is the leader).
    pub fn has_dispatcher(&self) -> bool {
        self.local_dispatcher().is_some()
    }

    // ---- the public operations ---------------------------------------------------------

    /// A press: answered once the incident is durable in the store. See the module docs for
    /// what happens when the button's owner is unreachable.
    pub async fn press(&self, button: &ButtonId, press_id: PressId) -> Result<PressOutcome, Error> {
        let span = tracing::info_span!("press", button = %button, press = %press_id);
        let started = std::time::Instant::now();
        let result = self.press_routed(button, press_id).instrument(span).await;
        if let Ok(outcome) = &result {
            let m = metrics::instruments();
            m.press_to_durable
                .record(started.elapsed().as_secs_f64() * 1000.0, &[]);
            m.presses
                .add(1, &[KeyValue::new("duplicate", outcome.duplicate)]);
            if !outcome.duplicate {
                m.incidents_opened.add(1, &[]);
            }
        }
        result
    }

    async fn press_routed(
        &self,
        button: &ButtonId,
        press_id: PressId,
    ) -> Result<PressOutcome, Error> {
        let request = Request::Press {
            button: button.clone(),
            press_id: press_id.clone(),
        };
        if let Destination::Remote(owner) = self.destination(&request.target()) {
            let deadline = Instant::now() + limits::PEER_PRESS_ATTEMPT;
            match self.forward(&owner, &request, deadline).await {
                Ok(Response::Press(outcome)) => return Ok(*outcome),
                Ok(other) => return Err(unexpected(&request, &other)),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(%button, owner = %owner.id, error = %e, "button owner unreachable; recording the press here");
                    return self.press_standin(button, &press_id).await;
                }
                Err(e) => return Err(e),
            }
        }
        match self.route(request, limits::PRESS_CALL_TIMEOUT).await? {
            Response::Press(outcome) => Ok(*outcome),
            other => Err(unexpected_name("press", &other)),
        }
    }

    /// Records a press without the button's actor (its owner is unreachable): the same store
    /// transaction, so idempotent and safe alongside the owner.
    async fn press_standin(
        &self,
        button: &ButtonId,
        press_id: &PressId,
    ) -> Result<PressOutcome, Error> {
        let record = self
            .records
            .button(button)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "button",
                id: button.to_string(),
            })?;
        let now = self.clock.now();
        let outcome = self
            .records
            .press(
                &record,
                press_id,
                now,
                limits::DEBOUNCE_WINDOW,
                propagation::traceparent(),
            )
            .await?;
        self.camera_aim(&record.camera, outcome.incident.id.clone());
        Ok(outcome)
    }

    pub async fn button_heartbeat(&self, button: &ButtonId) -> Result<Button, Error> {
        let request = Request::ButtonHeartbeat {
            button: button.clone(),
        };
        match self.route(request, limits::ENTITY_CALL_TIMEOUT).await? {
            Response::Button(button) => Ok(button),
            other => Err(unexpected_name("heartbeat", &other)),
        }
    }

    pub async fn button_tamper(&self, button: &ButtonId, detail: String) -> Result<Button, Error> {
        let request = Request::ButtonTamper {
            button: button.clone(),
            detail,
        };
        match self.route(request, limits::ENTITY_CALL_TIMEOUT).await? {
            Response::Button(button) => Ok(button),
            other => Err(unexpected_name("tamper report", &other)),
        }
    }

    /// Asks the camera to frame its button for `incident`. Fire and forget: the press does not
    /// wait for the camera (its actor re-sends the aim when its device reconnects).
    pub fn camera_aim(&self, camera: &CameraId, incident: IncidentId) {
        self.tell(Request::CameraAim {
            camera: camera.clone(),
            incident,
        });
    }

    pub fn camera_release(&self, camera: &CameraId, incident: IncidentId) {
        self.tell(Request::CameraRelease {
            camera: camera.clone(),
            incident,
        });
    }

    /// Attaches a camera's command channel (proxied when another node owns the camera).
    pub async fn camera_attach(
        &self,
        camera: &CameraId,
        commands: mpsc::Sender<CameraCommand>,
    ) -> Result<(), Error> {
        match self.destination(&Target::Entity("camera", camera.to_string())) {
            Destination::Remote(owner) => {
                self.proxy::<CameraCommand>(&owner, PeerStream::Camera, camera.as_str(), commands)
                    .await
            }
            _ => self.attach_local_camera(camera, commands).await,
        }
    }

    pub async fn camera_report(
        &self,
        camera: &CameraId,
        state: CameraState,
        incident: Option<IncidentId>,
    ) -> Result<Camera, Error> {
        let request = Request::CameraReport {
            camera: camera.clone(),
            state,
            incident,
        };
        match self.route(request, limits::ENTITY_CALL_TIMEOUT).await? {
            Response::Camera(camera) => Ok(camera),
            other => Err(unexpected_name("camera report", &other)),
        }
    }

    /// Hands an assignment to the brigade's actor, which pushes it to the terminal. Fire and
    /// forget: the ack timeout replaces a brigade that never hears of it.
    pub fn brigade_assign(&self, brigade: &BrigadeId, assignment: Assignment) {
        self.tell(Request::BrigadeAssign {
            brigade: brigade.clone(),
            assignment,
        });
    }

    pub fn brigade_cancel(&self, brigade: &BrigadeId, incident: IncidentId, reason: String) {
        self.tell(Request::BrigadeCancel {
            brigade: brigade.clone(),
            incident,
            reason,
        });
    }

    /// Attaches a brigade terminal's assignment channel (proxied when another node owns it).
    pub async fn brigade_attach(
        &self,
        brigade: &BrigadeId,
        events: mpsc::Sender<TerminalEvent>,
    ) -> Result<(), Error> {
        match self.destination(&Target::Entity("brigade", brigade.to_string())) {
            Destination::Remote(owner) => {
                self.proxy::<TerminalEvent>(&owner, PeerStream::Unit, brigade.as_str(), events)
                    .await
            }
            _ => self.attach_local_brigade(brigade, events).await,
        }
    }

    pub async fn brigade_position(
        &self,
        brigade: &BrigadeId,
        position: Position,
    ) -> Result<(), Error> {
        let request = Request::BrigadePosition {
            brigade: brigade.clone(),
            position,
        };
        self.route(request, limits::ENTITY_CALL_TIMEOUT)
            .await
            .map(|_| ())
    }

    pub async fn brigade_ack(
        &self,
        brigade: &BrigadeId,
        incident: IncidentId,
    ) -> Result<Brigade, Error> {
        let request = Request::BrigadeAck {
            brigade: brigade.clone(),
            incident,
        };
        match self.route(request, limits::ENTITY_CALL_TIMEOUT).await? {
            Response::Brigade(brigade) => Ok(brigade),
            other => Err(unexpected_name("assignment ack", &other)),
        }
    }

    pub async fn brigade_status(
        &self,
        brigade: &BrigadeId,
        status: BrigadeStatus,
        incident: Option<IncidentId>,
    ) -> Result<Brigade, Error> {
        let request = Request::BrigadeStatus {
            brigade: brigade.clone(),
            status,
            incident,
        };
        match self.route(request, limits::ENTITY_CALL_TIMEOUT).await? {
            Response::Brigade(brigade) => Ok(brigade),
            other => Err(unexpected_name("status update", &other)),
        }
    }

    /// An operator's dispatch: the best brigade, a chosen one, or a replacement. Goes to the
    /// leader's dispatcher, wherever it runs.
    pub async fn dispatch(
        &self,
        incident: IncidentId,
        operator: OperatorId,
        unit: Option<BrigadeId>,
        replace: bool,
    ) -> Result<Incident, Error> {
        let request = Request::Dispatch(DispatchRequest {
            incident,
            operator,
            unit,
            replace,
        });
        match self.route(request, limits::DISPATCH_CALL_TIMEOUT).await? {
            Response::Incident(incident) => Ok(*incident),
            other => Err(unexpected_name("dispatch", &other)),
        }
    }

    /// The ranked candidates for an incident, best first.
    pub async fn recommend(
        &self,
        incident: IncidentId,
        limit: usize,
    ) -> Result<Vec<(Candidate, Brigade)>, Error> {
        let request = Request::Recommend { incident, limit };
        match self.route(request, limits::DISPATCH_CALL_TIMEOUT).await? {
            Response::Candidates(candidates) => Ok(candidates),
            other => Err(unexpected_name("recommend", &other)),
        }
    }

    /// Tells a local dispatcher to look at its queue now (an incident changed outside it);
    /// a remote one learns from the store's watch anyway. Best effort.
    pub fn nudge_dispatcher(&self) {
        if let Some(dispatcher) = self.local_dispatcher() {
            let _ = dispatcher.cast(DispatcherMsg::Tick);
        }
    }

    // ---- what the Peer service calls -----------------------------------------------------

    /// Executes a request another node forwarded, if this node is the right place for it.
    pub async fn deliver_local(&self, request: Request) -> Result<Response, Error> {
        match self.destination(&request.target()) {
            Destination::Local => self.local(request).await,
            Destination::Remote(owner) => Err(Error::unavailable(format!(
                "node {} does not own this {} (node {} does, as it sees the member set); retry",
                self.node_id,
                request.name(),
                owner.id
            ))),
            Destination::Nowhere(why) => Err(Error::unavailable(why)),
        }
    }

    /// Attaches a camera channel for a device connected to another node.
    pub async fn attach_local_camera(
        &self,
        camera: &CameraId,
        commands: mpsc::Sender<CameraCommand>,
    ) -> Result<(), Error> {
        let actor = self.camera_actor(camera).await?;
        call(
            &actor,
            "camera attach",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| CameraMsg::Attach { commands, reply },
        )
        .await
        .map(|_| ())
    }

    /// Attaches a terminal channel for a terminal connected to another node.
    pub async fn attach_local_brigade(
        &self,
        brigade: &BrigadeId,
        events: mpsc::Sender<TerminalEvent>,
    ) -> Result<(), Error> {
        let actor = self.brigade_actor(brigade).await?;
        call(
            &actor,
            "terminal attach",
            limits::ENTITY_CALL_TIMEOUT,
            |reply| BrigadeMsg::Attach { events, reply },
        )
        .await
        .map(|_| ())
    }

    // ---- routing ---------------------------------------------------------------------------

    fn destination(&self, target: &Target) -> Destination {
        match target {
            Target::Entity(kind, id) => match self.topology.owner(kind, id) {
                Owner::Local => Destination::Local,
                Owner::Remote(member) => Destination::Remote(member),
                // Not even this node is a member (its lease lapsed): serve what still runs
                // here; the store keeps it safe, and the node rejoins in a moment.
                Owner::Nobody => Destination::Local,
            },
            Target::Dispatcher => {
                if self.has_dispatcher() {
                    return Destination::Local;
                }
                match self.topology.leader_member() {
                    Some(leader) if leader.id == self.node_id.as_str() => Destination::Local,
                    Some(leader) => Destination::Remote(leader),
                    None => Destination::Nowhere(
                        "no dispatcher leader is elected right now; retry".into(),
                    ),
                }
            }
        }
    }

    /// Delivers `request` where it belongs, retrying while the owner is unreachable or moving,
    /// until `timeout`.
    async fn route(&self, request: Request, timeout: Duration) -> Result<Response, Error> {
        let deadline = Instant::now() + timeout;
        let mut attempt = 0u32;
        loop {
            let result = match self.destination(&request.target()) {
                Destination::Local => return self.local(request).await,
                Destination::Remote(owner) => self.forward(&owner, &request, deadline).await,
                Destination::Nowhere(why) => Err(Error::unavailable(why)),
            };
            match result {
                Err(e) if e.is_retryable() => {
                    let pause = retry_pause(attempt);
                    if Instant::now() + pause >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(request = request.name(), error = %e, "retrying delivery");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Fire and forget: a local actor gets the message at once (keeping the order of messages
    /// to it); a remote one from a task that retries until the message's deadline.
    fn tell(&self, request: Request) {
        if let Destination::Local = self.destination(&request.target())
            && self.cast_local(&request)
        {
            return;
        }
        let router = self.clone();
        tokio::spawn(
            async move {
                let name = request.name();
                // A camera aim outlives a cut between sites: framing the caller is worth a late
                // delivery (and aiming twice is harmless).
                let deadline = match request {
                    Request::CameraAim { .. } => limits::CAMERA_AIM_DEADLINE,
                    _ => limits::TELL_DEADLINE,
                };
                if let Err(e) = router.route(request, deadline).await {
                    tracing::warn!(message = name, error = %e, "message not delivered");
                }
            }
            // The message keeps its trace on the way to the other node.
            .instrument(tracing::Span::current()),
        );
    }

    /// Casts a fire-and-forget request to a running local actor; false if there is none now.
    fn cast_local(&self, request: &Request) -> bool {
        match request {
            Request::CameraAim { camera, incident } => self.cameras.get(camera).is_some_and(|a| {
                a.cast(CameraMsg::Aim {
                    incident: incident.clone(),
                })
                .is_ok()
            }),
            Request::CameraRelease { camera, incident } => {
                self.cameras.get(camera).is_some_and(|a| {
                    a.cast(CameraMsg::Release {
                        incident: incident.clone(),
                    })
                    .is_ok()
                })
            }
            Request::BrigadeAssign {
                brigade,
                assignment,
            } => self.brigades.get(brigade).is_some_and(|a| {
                a.cast(BrigadeMsg::Assign {
                    assignment: assignment.clone(),
                })
                .is_ok()
            }),
            Request::BrigadeCancel {
                brigade,
                incident,
                reason,
            } => self.brigades.get(brigade).is_some_and(|a| {
                a.cast(BrigadeMsg::Cancel {
                    incident: incident.clone(),
                    reason: reason.clone(),
                })
                .is_ok()
            }),
            _ => false,
        }
    }

    /// Executes `request` on this node's actors.
    async fn local(&self, request: Request) -> Result<Response, Error> {
        let entity = limits::ENTITY_CALL_TIMEOUT;
        match request {
            Request::Press { button, press_id } => {
                let actor = self.button_actor(&button).await?;
                call(&actor, "press", limits::PRESS_CALL_TIMEOUT, |reply| {
                    ButtonMsg::Press { press_id, reply }
                })
                .await
                .map(|outcome| Response::Press(Box::new(outcome)))
            }
            Request::ButtonHeartbeat { button } => {
                let actor = self.button_actor(&button).await?;
                call(&actor, "heartbeat", entity, |reply| ButtonMsg::Heartbeat {
                    reply,
                })
                .await
                .map(Response::Button)
            }
            Request::ButtonTamper { button, detail } => {
                let actor = self.button_actor(&button).await?;
                call(&actor, "tamper report", entity, |reply| ButtonMsg::Tamper {
                    detail,
                    reply,
                })
                .await
                .map(Response::Button)
            }
            Request::CameraAim { camera, incident } => {
                let actor = self.camera_actor(&camera).await?;
                cast(&actor, CameraMsg::Aim { incident })
            }
            Request::CameraRelease { camera, incident } => {
                let actor = self.camera_actor(&camera).await?;
                cast(&actor, CameraMsg::Release { incident })
            }
            Request::CameraReport {
                camera,
                state,
                incident,
            } => {
                let actor = self.camera_actor(&camera).await?;
                call(&actor, "camera report", entity, |reply| CameraMsg::Report {
                    state,
                    incident,
                    reply,
                })
                .await
                .map(Response::Camera)
            }
            Request::BrigadeAssign {
                brigade,
                assignment,
            } => {
                let actor = self.brigade_actor(&brigade).await?;
                cast(&actor, BrigadeMsg::Assign { assignment })
            }
            Request::BrigadeCancel {
                brigade,
                incident,
                reason,
            } => {
                let actor = self.brigade_actor(&brigade).await?;
                cast(&actor, BrigadeMsg::Cancel { incident, reason })
            }
            Request::BrigadePosition { brigade, position } => {
                let actor = self.brigade_actor(&brigade).await?;
                call(&actor, "position report", entity, |reply| {
                    BrigadeMsg::Position { position, reply }
                })
                .await
                .map(|()| Response::Done)
            }
            Request::BrigadeAck { brigade, incident } => {
                let actor = self.brigade_actor(&brigade).await?;
                call(&actor, "assignment ack", entity, |reply| BrigadeMsg::Ack {
                    incident,
                    reply,
                })
                .await
                .map(Response::Brigade)
            }
            Request::BrigadeStatus {
                brigade,
                status,
                incident,
            } => {
                let actor = self.brigade_actor(&brigade).await?;
                call(&actor, "status update", entity, |reply| {
                    BrigadeMsg::Status {
                        status,
                        incident,
                        reply,
                    }
                })
                .await
                .map(Response::Brigade)
            }
            Request::Dispatch(request) => {
                let dispatcher = self.dispatcher_actor()?;
                call(
                    &dispatcher,
                    "dispatch",
                    limits::DISPATCH_CALL_TIMEOUT,
                    |reply| DispatcherMsg::Dispatch { request, reply },
                )
                .await
                .map(|incident| Response::Incident(Box::new(incident)))
            }
            Request::Recommend { incident, limit } => {
                let dispatcher = self.dispatcher_actor()?;
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
                .map(Response::Candidates)
            }
        }
    }

    fn dispatcher_actor(&self) -> Result<ActorRef<DispatcherMsg>, Error> {
        self.local_dispatcher().ok_or_else(|| {
            Error::unavailable("no dispatcher runs on this node (it is not the leader now); retry")
        })
    }

    async fn button_actor(&self, id: &ButtonId) -> Result<ActorRef<ButtonMsg>, Error> {
        resolve(&self.buttons, id, "button", async {
            Ok(self.records.button(id).await?.is_some())
        })
        .await
    }

    async fn camera_actor(&self, id: &CameraId) -> Result<ActorRef<CameraMsg>, Error> {
        resolve(&self.cameras, id, "camera", async {
            Ok(self.records.camera(id).await?.is_some())
        })
        .await
    }

    async fn brigade_actor(&self, id: &BrigadeId) -> Result<ActorRef<BrigadeMsg>, Error> {
        resolve(&self.brigades, id, "brigade", async {
            Ok(self.records.brigade(id).await?.is_some())
        })
        .await
    }

    // ---- the wire to other nodes -------------------------------------------------------------

    fn peer(&self, member: &Member) -> Result<PeerClient<TracedChannel>, Error> {
        let mut peers = self.peers.lock().expect("peer table poisoned");
        if let Some((addr, channel)) = peers.get(&member.id)
            && *addr == member.grpc_addr
        {
            return Ok(PeerClient::with_interceptor(
                channel.clone(),
                self.peer_calls(),
            ));
        }
        let url = format!("http://{}", member.grpc_addr);
        let dialer = self
            .peer_dialer
            .read()
            .expect("router lock poisoned")
            .clone();
        let channel = match dialer {
            Some(dial) => dial(&url).map_err(Error::unavailable)?,
            None => centinela_proto::client::endpoint(&url)
                .map_err(|status| Error::unavailable(status.message().to_string()))?
                .connect_timeout(limits::PEER_CONNECT_TIMEOUT)
                .connect_lazy(),
        };
        peers.insert(
            member.id.clone(),
            (member.grpc_addr.clone(), channel.clone()),
        );
        Ok(PeerClient::with_interceptor(channel, self.peer_calls()))
    }

    /// One attempt to deliver `request` to `owner`, bounded by `deadline`; the call carries
    /// the current trace context.
    async fn forward(
        &self,
        owner: &Member,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, Error> {
        let mut client = self.peer(owner)?;
        let message = PeerMessage {
            from_node: self.node_id.to_string(),
            body: peer::encode(request),
        };
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(limits::PEER_CALL_TIMEOUT);
        let span = tracing::info_span!(
            "peer.forward",
            otel.kind = "client",
            to = %owner.id,
            request = request.name()
        );
        match tokio::time::timeout(budget, client.deliver(message).instrument(span)).await {
            Err(_) => Err(Error::Timeout {
                what: request.name(),
            }),
            Ok(Err(status)) => Err(Error::from_peer(owner, status)),
            Ok(Ok(reply)) => peer::decode(&reply.into_inner().body).map_err(|e| Error::Peer {
                node: owner.id.clone(),
                code: tonic::Code::Internal,
                message: e,
            }),
        }
    }

    /// Relays an owner's device channel into `sink` until either side goes away.
    async fn proxy<T>(
        &self,
        owner: &Member,
        kind: PeerStream,
        entity: &str,
        sink: mpsc::Sender<T>,
    ) -> Result<(), Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let mut client = self.peer(owner)?;
        let subscribe = PeerSubscribe {
            from_node: self.node_id.to_string(),
            entity_id: entity.to_string(),
        };
        let opened = tokio::time::timeout(limits::PEER_CALL_TIMEOUT, async {
            match kind {
                PeerStream::Camera => client.camera_commands(subscribe).await,
                PeerStream::Unit => client.unit_assignments(subscribe).await,
            }
        })
        .await;
        let mut stream = match opened {
            Err(_) => {
                return Err(Error::Timeout {
                    what: "device channel",
                });
            }
            Ok(Err(status)) => return Err(Error::from_peer(owner, status)),
            Ok(Ok(stream)) => stream.into_inner(),
        };
        let owner_id = owner.id.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = stream.message() => match message {
                        Ok(Some(message)) => match peer::decode::<T>(&message.body) {
                            Ok(item) => {
                                if sink.send(item).await.is_err() {
                                    return; // the device left: dropping the stream tells the owner
                                }
                            }
                            Err(e) => {
                                tracing::warn!(owner = %owner_id, error = %e, "dropping a device channel");
                                return;
                            }
                        },
                        // The owner ended it or went away: ending ours makes the device reconnect.
                        _ => return,
                    },
                    () = sink.closed() => return,
                }
            }
        });
        Ok(())
    }

    // ---- fault injection for tests --------------------------------------------------------

    /// Makes the named entity's actor panic; returns the id of the actor told to crash.
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
                let actor = self.local_dispatcher()?;
                actor.cast(DispatcherMsg::Crash).ok()?;
                Some(actor.get_id())
            }
            _ => None,
        }
    }

    /// The id of the actor running an entity here now, if any (tests watch restarts with it).
    #[doc(hidden)]
    pub fn actor_of(&self, kind: &str, id: &str) -> Option<ractor::ActorId> {
        match kind {
            "button" => Some(self.buttons.get(&ButtonId::new(id).ok()?)?.get_id()),
            "camera" => Some(self.cameras.get(&CameraId::new(id).ok()?)?.get_id()),
            "brigade" => Some(self.brigades.get(&BrigadeId::new(id).ok()?)?.get_id()),
            "dispatcher" => Some(self.local_dispatcher()?.get_id()),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
enum PeerStream {
    Camera,
    Unit,
}

/// Pause before retry `attempt` of a delivery: quick at first (a restarting actor), then about
/// a tenth of the lease TTL (a dead node leaving the member set).
fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis((25u64 << attempt.min(3)).min(200))
}

fn cast<M: Message>(actor: &ActorRef<M>, message: M) -> Result<Response, Error> {
    actor
        .cast(message)
        .map(|()| Response::Done)
        .map_err(|e| Error::unavailable(format!("not delivered ({e}); retry")))
}

fn unexpected(request: &Request, response: &Response) -> Error {
    unexpected_name(request.name(), response)
}

fn unexpected_name(what: &str, response: &Response) -> Error {
    Error::Peer {
        node: String::new(),
        code: tonic::Code::Internal,
        message: format!("{what}: unexpected reply {response:?}"),
    }
}

/// Finds the running actor for `id`. An entity that exists in the store but has no running
/// actor here (it is restarting, or its ownership just moved here) is waited for briefly; one
/// that does not exist is `NotFound` at once and nothing is created.
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
    let deadline = Instant::now() + limits::ROUTE_WAIT;
    while Instant::now() < deadline {
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
