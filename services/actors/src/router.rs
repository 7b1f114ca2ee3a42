//! The one way to reach an entity: every message to a button, camera, brigade or the
//! dispatcher goes through [`Router`].
//!
//! The router asks the [`Topology`] who owns the entity (rendezvous hashing over the live
//! members) or who leads (for the dispatcher). Local entities get the message from this node's
//! registry; remote ones through the node's [`Transport`] (gRPC's `Peer` service), as a
//! [`wire`] body. A remote call that fails because the owner is gone is retried, re-reading
//! the member set each time, until the call's deadline: within one lease TTL the dead node
//! leaves the member set and another node owns the entity. Every message is safe to deliver
//! twice (a press carries its press id; transitions are idempotent or refused), so retries
//! cannot double anything.
//!
//! A press never waits for an unreachable owner: if the owner does not answer its first
//! attempt, this node records the press itself (the same store transaction the button's actor
//! makes, `button::record_presses`, safe from any node) and acknowledges it. Intake depends
//! on the store only.
//!
//! Device channels (a camera's commands, a terminal's assignments) connected to a node that
//! does not own the entity are proxied: this node opens the owner's channel and relays. When
//! either end goes away the other is closed too, and the device reconnects. A device that
//! follows owner redirects (`centinela_proto::redirect`) is sent to the owner instead
//! ([`Router::remote_owner`]), so it costs the cluster one stream, not two.

use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use centinela_cluster::{Member, Owner, Topology};
use centinela_core::brigade::Brigade;
use centinela_core::dispatch::Candidate;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, NodeId, OperatorId, PressId};
use centinela_core::incident::Incident;
use centinela_records::{PressOutcome, Records};
use centinela_telemetry::metrics;
use opentelemetry::KeyValue;

use crate::brigade::BrigadeActor;
use crate::button::{self, ButtonActor, ButtonRequest};
use crate::camera::CameraActor;
use crate::device::DeviceEntity;
use crate::dispatcher::{DispatchRequest, DispatcherMsg};
use crate::entity::{Entity, EntityMsg, Reply, Request};
use crate::error::Error;
use crate::limits;
use crate::registry::{Refused, Registry};
use crate::transport::Transport;
use crate::wire::{self, DispatcherRequest, Envelope, FromResponse, Response};

/// Cheap to clone: every clone is the same router.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

pub struct Inner {
    node_id: NodeId,
    pub(crate) records: Records,
    pub(crate) clock: crate::Clock,
    topology: Topology,
    transport: Arc<dyn Transport>,
    /// Shared with the liveness marker, which tells it when it writes a button (a passivated
    /// button's slot keeps its record).
    pub(crate) buttons: Arc<Registry<ButtonId, EntityMsg<ButtonActor>>>,
    pub(crate) cameras: Registry<CameraId, EntityMsg<CameraActor>>,
    pub(crate) brigades: Registry<BrigadeId, EntityMsg<BrigadeActor>>,
    /// When this node's buttons were last heard from; marks silent ones offline.
    pub liveness: crate::liveness::Liveness,
    /// Where this node's presses are written, in group commits with other buttons' presses.
    pub(crate) presses: crate::group_commit::PressCommitter,
    /// Where the closes made through this node from held copies are written, together.
    closes: crate::group_commit::CloseCommitter,
    /// Where this node's cameras record their devices attaching and going away, together.
    pub(crate) presence: crate::group_commit::PresenceCommitter,
    /// Where this node's buttons recorded offline and heard again are recorded online, together.
    pub(crate) heard: crate::group_commit::HeardCommitter,
    /// Where this node's units' positions are stored, together.
    pub(crate) positions: crate::group_commit::PositionCommitter,
    dispatcher: RwLock<Option<ActorRef<DispatcherMsg>>>,
    /// Device streams open on this node, served here or relayed to their owner.
    pub streams: DeviceStreams,
    /// The command channels of the native cameras this node owns whose devices are attached:
    /// kept here, not in the camera's actor, so an idle camera passivates with its device
    /// attached (`device::DeviceLinks`).
    pub camera_links: Arc<crate::camera::driver::CameraLinks>,
    /// The owned cameras offline, as the `centinela_cameras_offline` gauge says.
    pub(crate) cameras_offline: crate::camera::OfflineCount,
}

/// How many device streams a node holds open, by how they are served: what
/// `Operator.ClusterStatus` reports, so an operator (and a test) sees devices that are not
/// reaching their owner directly.
#[derive(Default)]
pub struct DeviceStreams {
    served: Arc<AtomicU64>,
    proxied: Arc<AtomicU64>,
}

impl DeviceStreams {
    /// Streams of devices this node serves itself (it owned them when they attached).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Streams this node relays to the device's owner on another node.
    pub fn proxied(&self) -> u64 {
        self.proxied.load(Ordering::Relaxed)
    }

    /// Counts a served stream until the returned guard drops (with the stream).
    pub fn count_served(&self) -> StreamCount {
        StreamCount::new(&self.served)
    }

    fn count_proxied(&self) -> StreamCount {
        StreamCount::new(&self.proxied)
    }
}

/// One open stream in a [`DeviceStreams`] count; uncounted on drop.
pub struct StreamCount(Arc<AtomicU64>);

impl StreamCount {
    fn new(counter: &Arc<AtomicU64>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for StreamCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A [`Router`] that may have gone (the node stopped).
#[derive(Clone)]
pub struct WeakRouter(std::sync::Weak<Inner>);

impl WeakRouter {
    pub fn upgrade(&self) -> Option<Router> {
        self.0.upgrade().map(|inner| Router { inner })
    }
}

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

/// Who a message is for.
enum Target<'a> {
    /// An entity: its kind and id.
    Entity(&'static str, &'a str),
    /// The dispatcher, on the leader.
    Dispatcher,
}

impl Router {
    pub fn new(
        node_id: NodeId,
        records: Records,
        clock: crate::Clock,
        topology: Topology,
        transport: Arc<dyn Transport>,
    ) -> Self {
        let buttons = Arc::new(Registry::with_gauges(gauges(0)));
        let liveness =
            crate::liveness::Liveness::start(records.clone(), clock, Arc::downgrade(&buttons));
        Self {
            inner: Arc::new(Inner {
                node_id,
                presses: crate::group_commit::PressCommitter::start(records.clone()),
                closes: crate::group_commit::CloseCommitter::start(records.clone()),
                presence: crate::group_commit::PresenceCommitter::start(records.clone()),
                heard: crate::group_commit::HeardCommitter::start(records.clone()),
                positions: crate::group_commit::PositionCommitter::start(records.clone()),
                liveness,
                records,
                clock,
                topology,
                transport,
                buttons,
                cameras: Registry::with_gauges(gauges(1)),
                brigades: Registry::with_gauges(gauges(2)),
                dispatcher: RwLock::new(None),
                streams: DeviceStreams::default(),
                camera_links: Default::default(),
                cameras_offline: Default::default(),
            }),
        }
    }

    /// Closes an incident from the copies this node holds
    /// ([`centinela_records::Records::close_incident_known`]), in a group commit with the other
    /// closes made through this node at the same moment.
    pub async fn close_from_held(
        &self,
        close: centinela_records::Close,
    ) -> centinela_records::Result<centinela_records::IncidentUpdate> {
        self.inner.closes.close(close).await
    }

    /// A reference that does not keep the router alive (for what outlives a call: a device
    /// channel's watcher).
    pub fn downgrade(&self) -> WeakRouter {
        WeakRouter(Arc::downgrade(&self.inner))
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// How many entities this node owns, their actors running or passivated: (buttons,
    /// cameras, brigades).
    pub fn local_counts(&self) -> (usize, usize, usize) {
        (self.buttons.len(), self.cameras.len(), self.brigades.len())
    }

    /// How many of them have a running actor now (the rest are passivated): (buttons,
    /// cameras, brigades).
    pub fn resident_counts(&self) -> (usize, usize, usize) {
        (
            self.buttons.resident(),
            self.cameras.resident(),
            self.brigades.resident(),
        )
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

    /// Asks entity `id` and waits for its answer (within the request's deadline, retrying
    /// while its owner is unreachable or moving).
    pub async fn call<R, T>(&self, id: &<R::Entity as Entity>::Id, request: R) -> Result<T, Error>
    where
        R: Request,
        T: FromResponse,
    {
        let delivery = request.delivery();
        let body = || wire::entity_request(id, &request);
        let target = Target::Entity(R::Entity::KIND, id.as_ref());
        let response = self
            .route(target, delivery.name, delivery.deadline, body, || {
                self.local::<R::Entity>(id, request.clone())
            })
            .await?;
        reply_as(delivery.name, response)
    }

    /// Tells entity `id` without waiting: a local actor gets the message at once (keeping the
    /// order of messages to it); a remote one from a task that retries until the request's
    /// deadline.
    pub fn tell<R: Request>(&self, id: &<R::Entity as Entity>::Id, request: R) {
        let target = Target::Entity(R::Entity::KIND, id.as_ref());
        if let Destination::Local = self.destination(&target)
            && R::Entity::registry(self)
                .send(
                    id,
                    EntityMsg::Request {
                        request: request.clone(),
                        reply: Reply::nobody(),
                    },
                )
                .is_ok()
        {
            return;
        }
        let router = self.clone();
        let id = id.clone();
        tokio::spawn(
            async move {
                let name = request.delivery().name;
                if let Err(e) = router.call::<R, ()>(&id, request).await {
                    tracing::warn!(message = name, error = %e, "message not delivered");
                }
            }
            // The message keeps its trace on the way to the other node.
            .instrument(tracing::Span::current()),
        );
    }

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
        let request = ButtonRequest::Press {
            press_id: press_id.clone(),
        };
        let target = Target::Entity(ButtonActor::KIND, button.as_str());
        if let Destination::Remote(owner) = self.destination(&target) {
            let deadline = Instant::now() + limits::PEER_PRESS_ATTEMPT;
            let body = wire::entity_request(button, &request);
            match self.forward(&owner, "press", body, deadline).await {
                Ok(response) => return reply_as("press", response),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(%button, owner = %owner.id, error = %e, "button owner unreachable; recording the press here");
                    return self.press_standin(button, press_id).await;
                }
                Err(e) => return Err(e),
            }
        }
        self.call(button, request).await
    }

    /// Records a press without the button's actor (its owner is unreachable): the same store
    /// transaction, so idempotent and safe alongside the owner.
    async fn press_standin(
        &self,
        button: &ButtonId,
        press_id: PressId,
    ) -> Result<PressOutcome, Error> {
        let record = self
            .records
            .button(button)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: ButtonActor::KIND,
                id: button.to_string(),
            })?;
        let mut outcomes = button::record_presses(self, &record, &[press_id]).await?;
        outcomes
            .pop()
            .ok_or_else(|| Error::unavailable("the press was not recorded; retry"))
    }

    /// The member that owns entity `id` when it is not this node: where a device that follows
    /// owner redirects is sent. `None` when this node owns it (or no member does: this node
    /// serves what it can until it rejoins).
    pub fn remote_owner<E: Entity>(&self, id: &E::Id) -> Option<Member> {
        match self.destination(&Target::Entity(E::KIND, id.as_ref())) {
            Destination::Remote(owner) => Some(owner),
            Destination::Local | Destination::Nowhere(_) => None,
        }
    }

    /// Attaches an entity's device channel (proxied when another node owns the entity).
    pub async fn attach<E: DeviceEntity>(
        &self,
        id: &E::Id,
        sender: mpsc::Sender<E::Item>,
    ) -> Result<(), Error> {
        match self.destination(&Target::Entity(E::KIND, id.as_ref())) {
            Destination::Remote(owner) => self.proxy::<E>(&owner, id, sender).await,
            _ => self.attach_local::<E>(id, sender).await,
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
        swap_out: Option<BrigadeId>,
    ) -> Result<Incident, Error> {
        let request = DispatcherRequest::Dispatch(DispatchRequest {
            incident,
            operator,
            unit,
            replace,
            swap_out,
        });
        self.ask_dispatcher(request).await
    }

    /// The ranked candidates for an incident, best first.
    pub async fn recommend(
        &self,
        incident: IncidentId,
        limit: usize,
    ) -> Result<Vec<(Candidate, Brigade)>, Error> {
        self.ask_dispatcher(DispatcherRequest::Recommend { incident, limit })
            .await
    }

    async fn ask_dispatcher<T: FromResponse>(
        &self,
        request: DispatcherRequest,
    ) -> Result<T, Error> {
        let name = request.name();
        let body = || wire::dispatcher_request(&request);
        let response = self
            .route(
                Target::Dispatcher,
                name,
                limits::DISPATCH_CALL_TIMEOUT,
                body,
                || self.local_dispatch(request.clone()),
            )
            .await?;
        reply_as(name, response)
    }

    /// Tells a local dispatcher to look at its queue now (an incident changed outside it);
    /// a remote one learns from the store's watch anyway. Best effort.
    pub fn nudge_dispatcher(&self) {
        if let Some(dispatcher) = self.local_dispatcher() {
            let _ = dispatcher.cast(DispatcherMsg::Tick);
        }
    }

    // ---- what the Peer service calls -----------------------------------------------------

    /// Executes a request body another node forwarded, if this node is the right place for
    /// it; returns the response body, in a form a sender reading `revision`
    /// ([`wire::REVISION`]) reads.
    pub async fn deliver(&self, body: &[u8], revision: u32) -> Result<Vec<u8>, Error> {
        let envelope = wire::decode_request(body).map_err(Error::Malformed)?;
        let target = match &envelope {
            Envelope::Button(id, _) => Target::Entity(ButtonActor::KIND, id.as_str()),
            Envelope::Camera(id, _) => Target::Entity(CameraActor::KIND, id.as_str()),
            Envelope::Brigade(id, _) => Target::Entity(BrigadeActor::KIND, id.as_str()),
            Envelope::Dispatcher(_) => Target::Dispatcher,
        };
        match self.destination(&target) {
            Destination::Local => {}
            Destination::Remote(owner) => {
                return Err(Error::unavailable(format!(
                    "node {} does not own this {} (node {} does, as it sees the member set); retry",
                    self.node_id,
                    envelope.name(),
                    owner.id
                )));
            }
            Destination::Nowhere(why) => return Err(Error::unavailable(why)),
        }
        let response = match envelope {
            // A sender from before `Response::Health` gets the button's record: its actor
            // answers, not the liveness table.
            Envelope::Button(id, request) => {
                let absorb = revision >= wire::HEALTH_REVISION;
                self.local_as::<ButtonActor>(&id, request, absorb).await
            }
            Envelope::Camera(id, request) => self.local::<CameraActor>(&id, request).await,
            Envelope::Brigade(id, request) => self.local::<BrigadeActor>(&id, request).await,
            Envelope::Dispatcher(request) => self.local_dispatch(request).await,
        }?;
        Ok(wire::encode(&response))
    }

    /// Attaches a device channel for a device connected to another node.
    pub async fn attach_local<E: DeviceEntity>(
        &self,
        id: &E::Id,
        sender: mpsc::Sender<E::Item>,
    ) -> Result<(), Error> {
        self.send_local::<E, _>(id, "device attach", limits::ENTITY_CALL_TIMEOUT, |reply| {
            EntityMsg::Internal(E::attach(sender, reply))
        })
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

    /// Delivers a request where it belongs: `local` here, or `body` to its owner, retrying
    /// while the owner is unreachable or moving, until `timeout`.
    async fn route<Fut>(
        &self,
        target: Target<'_>,
        name: &'static str,
        timeout: Duration,
        body: impl Fn() -> Vec<u8>,
        local: impl FnOnce() -> Fut,
    ) -> Result<Response, Error>
    where
        Fut: Future<Output = Result<Response, Error>>,
    {
        let deadline = Instant::now() + timeout;
        let mut attempt = 0u32;
        loop {
            let result = match self.destination(&target) {
                Destination::Local => return local().await,
                Destination::Remote(owner) => self.forward(&owner, name, body(), deadline).await,
                Destination::Nowhere(why) => Err(Error::unavailable(why)),
            };
            match result {
                Err(e) if e.is_retryable() => {
                    let pause = retry_pause(attempt);
                    if Instant::now() + pause >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(request = name, error = %e, "retrying delivery");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt to deliver `body` to `owner`, bounded by `deadline`; the call carries the
    /// current trace context.
    async fn forward(
        &self,
        owner: &Member,
        name: &'static str,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<Response, Error> {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(limits::PEER_CALL_TIMEOUT);
        let span = tracing::info_span!(
            "peer.forward",
            otel.kind = "client",
            to = %owner.id,
            request = name
        );
        let delivered = self.transport.deliver(owner, body).instrument(span);
        match tokio::time::timeout(budget, delivered).await {
            Err(_) => Err(Error::Timeout { what: name }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(reply)) => wire::decode(&reply).map_err(|e| Error::Peer {
                node: owner.id.clone(),
                code: tonic::Code::Internal,
                message: e,
            }),
        }
    }

    /// Relays an owner's device channel into `sink` until either side goes away.
    async fn proxy<E: DeviceEntity>(
        &self,
        owner: &Member,
        id: &E::Id,
        sink: mpsc::Sender<E::Item>,
    ) -> Result<(), Error> {
        let opened = tokio::time::timeout(
            limits::PEER_CALL_TIMEOUT,
            self.transport.subscribe(owner, E::CHANNEL, id.as_ref()),
        )
        .await;
        let mut stream = match opened {
            Err(_) => {
                return Err(Error::Timeout {
                    what: "device channel",
                });
            }
            Ok(result) => result?,
        };
        let owner_id = owner.id.clone();
        let count = self.streams.count_proxied();
        tokio::spawn(async move {
            let _count = count;
            loop {
                tokio::select! {
                    message = stream.next() => match message {
                        Some(body) => match wire::decode::<E::Item>(&body) {
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
                        None => return,
                    },
                    () = sink.closed() => return,
                }
            }
        });
        Ok(())
    }

    /// Executes a request on this node's actor of entity `id`.
    async fn local<E: Entity>(&self, id: &E::Id, request: E::Request) -> Result<Response, Error> {
        self.local_as::<E>(id, request, true).await
    }

    /// Executes a request on this node's actor of entity `id`; `absorb`: the node may answer
    /// without the actor ([`Entity::absorb`]) when it can.
    async fn local_as<E: Entity>(
        &self,
        id: &E::Id,
        request: E::Request,
        absorb: bool,
    ) -> Result<Response, Error> {
        if absorb && let Some(response) = E::absorb(self, id, &request) {
            return Ok(response);
        }
        let delivery = request.delivery();
        if !delivery.waits {
            let message = EntityMsg::Request {
                request,
                reply: Reply::nobody(),
            };
            return self
                .deliver_local::<E>(id, message)
                .await
                .map(|()| Response::Done);
        }
        self.send_local::<E, _>(id, delivery.name, delivery.deadline, |reply| {
            EntityMsg::Request {
                request,
                reply: Reply::to(reply),
            }
        })
        .await
    }

    /// Executes a request on this node's dispatcher.
    async fn local_dispatch(&self, request: DispatcherRequest) -> Result<Response, Error> {
        let dispatcher = self.local_dispatcher().ok_or_else(|| {
            Error::unavailable("no dispatcher runs on this node (it is not the leader now); retry")
        })?;
        let name = request.name();
        let timeout = limits::DISPATCH_CALL_TIMEOUT;
        match request {
            DispatcherRequest::Dispatch(request) => call(&dispatcher, name, timeout, |reply| {
                DispatcherMsg::Dispatch { request, reply }
            })
            .await
            .map(Response::from),
            DispatcherRequest::Recommend { incident, limit } => {
                call(&dispatcher, name, timeout, |reply| {
                    DispatcherMsg::Recommend {
                        incident,
                        limit,
                        reply,
                    }
                })
                .await
                .map(Response::from)
            }
        }
    }

    /// A request/reply to this node's entity `id` with a deadline (through its registry slot,
    /// so a passivated entity is started for it).
    async fn send_local<E: Entity, T: Send + 'static>(
        &self,
        id: &E::Id,
        what: &'static str,
        timeout: Duration,
        message: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> EntityMsg<E>,
    ) -> Result<T, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.deliver_local::<E>(id, message(RpcReplyPort::from(tx)))
            .await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::unavailable(format!(
                "{what}: the actor stopped before answering; retry"
            ))),
            Err(_) => Err(Error::Timeout { what }),
        }
    }

    /// Hands `message` to this node's entity `id`: its actor, or its slot's queue while the
    /// actor starts or stops. An entity that exists in the store but has no slot here yet
    /// (its ownership just moved here) is waited for briefly; one that does not exist is
    /// `NotFound` at once and nothing is created.
    async fn deliver_local<E: Entity>(
        &self,
        id: &E::Id,
        message: EntityMsg<E>,
    ) -> Result<(), Error> {
        let registry = E::registry(self);
        let mut message = match registry.send(id, message) {
            Ok(()) => return Ok(()),
            Err(Refused::Full) => return Err(full::<E>(id)),
            Err(Refused::NotHere(message)) => message,
        };
        if self.records.get::<E::Record>(id.as_ref()).await?.is_none() {
            return Err(Error::NotFound {
                kind: E::KIND,
                id: id.to_string(),
            });
        }
        let deadline = Instant::now() + limits::ROUTE_WAIT;
        while Instant::now() < deadline {
            tokio::time::sleep(limits::ROUTE_WAIT_POLL).await;
            message = match registry.send(id, message) {
                Ok(()) => return Ok(()),
                Err(Refused::Full) => return Err(full::<E>(id)),
                Err(Refused::NotHere(message)) => message,
            };
        }
        Err(Error::unavailable(format!(
            "{} '{id}' has no running actor on this node right now; retry",
            E::KIND
        )))
    }

    // ---- for tests ---------------------------------------------------------------------------

    /// How many of the cameras this node owns it counts online (the `centinela_cameras_offline`
    /// gauge is the owned ones less these, over every node of the process).
    #[doc(hidden)]
    pub fn cameras_counted_online(&self) -> usize {
        self.cameras_offline.online_count()
    }

    /// The id of the actor running an entity (`button`, `camera`, `brigade`, `dispatcher`)
    /// here now, if any (tests watch restarts and placement with it).
    #[doc(hidden)]
    pub fn actor_of(&self, kind: &str, id: &str) -> Option<ractor::ActorId> {
        fn running<E: Entity>(router: &Router, id: &str) -> Option<ractor::ActorId> {
            let id = E::Id::try_from(id.to_string()).ok()?;
            Some(E::registry(router).get(&id)?.get_id())
        }
        match kind {
            ButtonActor::KIND => running::<ButtonActor>(self, id),
            CameraActor::KIND => running::<CameraActor>(self, id),
            BrigadeActor::KIND => running::<BrigadeActor>(self, id),
            "dispatcher" => Some(self.local_dispatcher()?.get_id()),
            _ => None,
        }
    }

    /// Whether this node owns the named entity (`button`, `camera`, `brigade`): its actor
    /// runs here, or it is passivated here (tests check placement with it; an owned entity
    /// need not have a running actor).
    #[doc(hidden)]
    pub fn owns(&self, kind: &str, id: &str) -> bool {
        fn owned<E: Entity>(router: &Router, id: &str) -> bool {
            E::Id::try_from(id.to_string()).is_ok_and(|id| E::registry(router).owns(&id))
        }
        match kind {
            ButtonActor::KIND => owned::<ButtonActor>(self, id),
            CameraActor::KIND => owned::<CameraActor>(self, id),
            BrigadeActor::KIND => owned::<BrigadeActor>(self, id),
            _ => false,
        }
    }

    /// Starts the named entity's actor if it is passivated (false: no such entity here);
    /// tests crash and watch actors with it, waiting for [`Router::actor_of`].
    #[doc(hidden)]
    pub fn wake(&self, kind: &str, id: &str) -> bool {
        fn poke<E: Entity>(router: &Router, id: &str) -> bool {
            let Ok(id) = E::Id::try_from(id.to_string()) else {
                return false;
            };
            E::registry(router).send(&id, EntityMsg::Wake).is_ok()
        }
        match kind {
            ButtonActor::KIND => poke::<ButtonActor>(self, id),
            CameraActor::KIND => poke::<CameraActor>(self, id),
            BrigadeActor::KIND => poke::<BrigadeActor>(self, id),
            _ => false,
        }
    }

    /// Makes the named entity's actor (or the dispatcher) panic; returns the id of the actor
    /// told to crash.
    #[cfg(feature = "fault-injection")]
    pub fn inject_crash(&self, kind: &str, id: &str) -> Option<ractor::ActorId> {
        fn crash<E: Entity>(router: &Router, id: &str) -> Option<ractor::ActorId> {
            let id = E::Id::try_from(id.to_string()).ok()?;
            let actor = E::registry(router).get(&id)?;
            E::registry(router).send(&id, EntityMsg::Crash).ok()?;
            Some(actor.get_id())
        }
        match kind {
            ButtonActor::KIND => crash::<ButtonActor>(self, id),
            CameraActor::KIND => crash::<CameraActor>(self, id),
            BrigadeActor::KIND => crash::<BrigadeActor>(self, id),
            "dispatcher" => {
                let actor = self.local_dispatcher()?;
                actor.cast(DispatcherMsg::Crash).ok()?;
                Some(actor.get_id())
            }
            _ => None,
        }
    }
}

/// The resident and passivated gauges of entity kind `kind` (`metrics::ENTITY_KINDS`).
fn gauges(kind: usize) -> crate::registry::Gauges {
    crate::registry::Gauges {
        resident: &metrics::GAUGES.entities_resident[kind],
        passivated: &metrics::GAUGES.entities_passivated[kind],
    }
}

fn full<E: Entity>(id: &E::Id) -> Error {
    Error::unavailable(format!(
        "{} '{id}' has {} messages waiting for its actor to start; retry",
        E::KIND,
        limits::WAKE_QUEUE_MAX
    ))
}

/// Pause before retry `attempt` of a delivery: quick at first (a restarting actor), then about
/// a tenth of the lease TTL (a dead node leaving the member set).
fn retry_pause(attempt: u32) -> Duration {
    (limits::DELIVERY_RETRY_FIRST * 2u32.pow(attempt.min(3))).min(limits::DELIVERY_RETRY_MAX)
}

/// The value of `response`, when it is what `what` answers.
fn reply_as<T: FromResponse>(what: &str, response: Response) -> Result<T, Error> {
    let reply = response.name();
    T::from_response(response).ok_or_else(|| Error::Peer {
        node: String::new(),
        code: tonic::Code::Internal,
        message: format!("{what}: unexpected reply {reply}"),
    })
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
