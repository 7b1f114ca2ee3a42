//! What every entity kind (button, camera, brigade) is, once: the [`Entity`] trait, and the one
//! ractor actor that runs any of them ([`EntityActor`]).
//!
//! An entity kind says what identifies it, which record it is built from, the requests it
//! answers ([`Request`]: serializable, so they reach the owner on any node) and the messages it
//! sends itself (timers, device channel notices). Everything else is written once, here and in
//! the router: loading the record when the actor starts (and restarts), boxing the handler's
//! future, routing a request to the owning node, encoding it for the wire, registering the
//! running actor.
//!
//! Adding a request to an entity touches its own module only: a variant of its request enum,
//! how it is delivered ([`Request::delivery`]), and its arm in [`Entity::request`].
//!
//! # Passivation
//! An actor with nothing to do ([`Entity::idle`]: no queued press, no device channel, no
//! incident held...) for [`limits::IDLE_AFTER`] stops, and the entity stays owned by this node
//! as a registry slot with no actor; its next message starts it again from its record. One
//! started by its supervisor (the node starting, or taking entities over) that is idle at
//! once stops at once, so a node's memory holds its active entities, not all it owns. The
//! handover between a stopping actor and its successor is the registry's
//! ([`crate::registry`]): no message is lost or reordered, and callers do not see it.
//!
//! A woken actor starts without reading the store when it can ([`EntityArgs::record`]): from
//! the record the message that woke it carries ([`Entity::carried`]: a camera's aim and
//! release, a brigade's assignment and cancellation), or from the copy its predecessor left
//! in the registry ([`Entity::kept`]: a button). Why either copy is current is said at
//! [`Registry::take_start`](crate::registry::Registry::take_start). An actor started by its
//! supervisor (the node starting, a takeover) or restarted after a failure reads the store.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use serde::de::DeserializeOwned;

use centinela_records::Record;

use crate::Context;
use crate::error::Error;
use crate::limits;
use crate::registry::Registry;
pub use crate::registry::Source;
use crate::router::Router;
use crate::wire::Response;

/// One kind of entity: its identity, its stored record, and its behaviour. The implementor is
/// the actor's state.
pub trait Entity: Sized + Send + 'static {
    /// The kind's name: in placement keys (`button/B01`), logs and errors.
    const KIND: &'static str;
    /// One of the core id newtypes.
    type Id: Clone
        + Eq
        + Hash
        + Ord
        + Display
        + Debug
        + AsRef<str>
        + TryFrom<String, Error = centinela_core::ids::Error>
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// What the actor is built from when it starts, and restarted from after a panic.
    type Record: Record;
    /// What the router delivers to it, from this node or another.
    type Request: Request<Entity = Self>;
    /// What the actor tells itself (timers, device channel notices, answers from helpers).
    type Internal: Send + 'static;

    /// This kind's running actors on this node.
    fn registry(router: &Router) -> &Registry<Self::Id, EntityMsg<Self>>;

    /// Answers `request` without the actor, when the node can (a heartbeat of a button known
    /// online): `None` sends it to the actor.
    fn absorb(_router: &Router, _id: &Self::Id, _request: &Self::Request) -> Option<Response> {
        None
    }

    /// The actor's state, from its record (on every start and restart).
    fn start(
        ctx: Arc<Context>,
        record: Self::Record,
        myself: &ActorRef<EntityMsg<Self>>,
    ) -> impl Future<Output = Result<Self, ActorProcessingErr>> + Send;

    /// Runs once the actor is registered and takes messages; `source`: where its record came
    /// from.
    fn started(
        &mut self,
        _myself: &ActorRef<EntityMsg<Self>>,
        _source: Source,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The record `request` carries, as the transaction that just wrote it recorded it: a
    /// passivated actor woken by `request` starts from it instead of reading the store. Only
    /// for a copy written by a compare-and-swap on the stored record (see
    /// [`Registry::take_start`](crate::registry::Registry::take_start)).
    fn carried(_request: &Self::Request) -> Option<Self::Record> {
        None
    }

    /// The copy of its record a passivating actor leaves in its registry slot for its next
    /// actor, which then starts without reading the store. Only for a kind whose record no
    /// one writes behind its actor's back but writers that tell the registry
    /// ([`Registry::write_ended`](crate::registry::Registry::write_ended)); `None` (the
    /// default) keeps nothing.
    fn kept(&self) -> Option<Self::Record> {
        None
    }

    /// The actor is stopping (passivated, moved to another node, restarting, or the node
    /// stops).
    fn stopped(&mut self) {}

    /// The entity's id.
    fn id(&self) -> &Self::Id;

    /// Whether the actor may stop now and be started again on its next message with nothing
    /// lost: nothing in progress, nothing attached, no timer whose work matters. The default
    /// keeps the actor resident.
    fn idle(&self) -> bool {
        false
    }

    /// This node took `id` over (before any actor of it runs here).
    fn owned(_router: &Router, _id: &Self::Id) {}

    /// This node gave `id` up.
    fn disowned(_router: &Router, _id: &Self::Id) {}

    /// Handles a request, answering on `reply` now or later (a press waits for its batch).
    fn request(
        &mut self,
        myself: &ActorRef<EntityMsg<Self>>,
        request: Self::Request,
        reply: Reply,
    ) -> impl Future<Output = ()> + Send;

    /// Handles a message the actor sent itself.
    fn internal(
        &mut self,
        myself: &ActorRef<EntityMsg<Self>>,
        message: Self::Internal,
    ) -> impl Future<Output = ()> + Send;
}

/// A request to an entity: a serde enum whose variants are the requests. Its JSON is what
/// travels between nodes (`crate::wire`), so variant and field names are part of the `Peer`
/// API: add, never rename.
pub trait Request: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    type Entity: Entity<Request = Self>;

    /// How this request is delivered, and its name for logs and errors.
    fn delivery(&self) -> Delivery;
}

/// How a request is delivered: waited for (a call) or not (a tell), and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// A short name for logs, spans and errors ("press", "camera aim").
    pub name: &'static str,
    /// Whether the sender waits for the entity's answer.
    pub waits: bool,
    /// A call's deadline; how long a tell keeps being retried while its entity moves.
    pub deadline: Duration,
}

impl Delivery {
    /// Answered by the entity within [`limits::ENTITY_CALL_TIMEOUT`].
    pub const fn call(name: &'static str) -> Self {
        Self {
            name,
            waits: true,
            deadline: limits::ENTITY_CALL_TIMEOUT,
        }
    }

    /// Fire and forget, retried for [`limits::TELL_DEADLINE`] while its entity moves.
    pub const fn tell(name: &'static str) -> Self {
        Self {
            name,
            waits: false,
            deadline: limits::TELL_DEADLINE,
        }
    }

    pub const fn within(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

/// Where an entity's answer goes: the caller waiting on it, or nowhere (a tell).
pub struct Reply(Option<RpcReplyPort<Result<Response, Error>>>);

impl Reply {
    pub(crate) fn to(port: RpcReplyPort<Result<Response, Error>>) -> Self {
        Self(Some(port))
    }

    pub(crate) fn nobody() -> Self {
        Self(None)
    }

    /// Answers the request (a tell's answer goes nowhere). A caller that gave up is no error.
    pub fn send<T: Into<Response>>(self, result: Result<T, Error>) {
        if let Some(port) = self.0 {
            let _ = port.send(result.map(Into::into));
        }
    }
}

/// What an entity actor's mailbox holds.
pub enum EntityMsg<E: Entity> {
    Request {
        request: E::Request,
        reply: Reply,
    },
    Internal(E::Internal),
    /// Time to see whether the actor is idle (`fresh`: it was just started by its supervisor,
    /// not by a message, and may stop at once).
    IdleCheck {
        fresh: bool,
    },
    /// No work: starts a passivated actor, which then stays for the idle period (tests use
    /// it to have an actor to crash or watch).
    Wake,
    /// The last message a passivating actor gets ([`crate::registry`], step 2).
    Passivate,
    /// Fault injection for the supervision tests: the actor panics.
    #[cfg(feature = "fault-injection")]
    Crash,
}

impl<E: Entity> crate::registry::Carrier for EntityMsg<E> {
    type Record = E::Record;

    fn carried(&self) -> Option<E::Record> {
        match self {
            EntityMsg::Request { request, .. } => E::carried(request),
            _ => None,
        }
    }
}

/// The ractor actor that runs an entity of kind `E`.
pub struct EntityActor<E>(PhantomData<fn() -> E>);

impl<E> Default for EntityActor<E> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// What an entity actor starts with.
pub struct EntityArgs<E: Entity> {
    pub id: E::Id,
    pub ctx: Arc<Context>,
    /// The record to start from, with where it came from ([`Source::Carried`] or
    /// [`Source::Kept`], from [`Registry::take_start`](crate::registry::Registry::take_start));
    /// `None`: the actor reads it from the store.
    pub record: Option<(E::Record, Source)>,
}

/// A running entity: its own state, and when it last had something to do.
pub struct Running<E: Entity> {
    entity: E,
    ctx: Arc<Context>,
    source: Source,
    /// When the actor last handled a request or its own message.
    last_active: tokio::time::Instant,
    /// It handled nothing since it started.
    untouched: bool,
}

impl<E: Entity> ractor::Actor for EntityActor<E> {
    type Msg = EntityMsg<E>;
    type State = Running<E>;
    type Arguments = EntityArgs<E>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: EntityArgs<E>,
    ) -> Result<Running<E>, ActorProcessingErr> {
        let (record, source) = match args.record {
            Some(given) => given,
            None => {
                let stored = args
                    .ctx
                    .records
                    .get::<E::Record>(args.id.as_ref())
                    .await?
                    .ok_or_else(|| format!("{} {} is not in the store", E::KIND, args.id))?;
                (stored, Source::Store)
            }
        };
        let entity = E::start(args.ctx.clone(), record, &myself).await?;
        Ok(Running {
            entity,
            ctx: args.ctx,
            source,
            last_active: tokio::time::Instant::now(),
            untouched: true,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Running<E>,
    ) -> Result<(), ActorProcessingErr> {
        state.entity.started(&myself, state.source).await;
        myself.send_interval(limits::IDLE_CHECK_INTERVAL, || EntityMsg::IdleCheck {
            fresh: false,
        });
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Running<E>,
    ) -> Result<(), ActorProcessingErr> {
        state.entity.stopped();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Running<E>,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed, so the handler's future (as large as its largest store transaction) is
        // allocated per message instead of being reserved in every idle actor for its life
        // (docs/benchmarks.md, "Scale").
        match message {
            EntityMsg::Request { request, reply } => {
                state.touch();
                Box::pin(state.entity.request(&myself, request, reply)).await;
            }
            EntityMsg::Internal(message) => {
                state.touch();
                Box::pin(state.entity.internal(&myself, message)).await
            }
            EntityMsg::IdleCheck { fresh } => state.idle_check(&myself, fresh),
            EntityMsg::Wake => state.touch(),
            EntityMsg::Passivate => {
                let registry = E::registry(&state.ctx.router);
                if state.entity.idle() {
                    tracing::debug!(kind = E::KIND, id = %state.entity.id(), "passivated");
                    if let Some(record) = state.entity.kept() {
                        registry.keep(state.entity.id(), myself.get_id(), record);
                    }
                    myself.stop(Some(PASSIVATED.into()));
                } else {
                    registry.resume(state.entity.id(), &myself);
                }
            }
            #[cfg(feature = "fault-injection")]
            EntityMsg::Crash => panic!("fault injection: a {} crashed", E::KIND),
        }
        Ok(())
    }
}

/// The stop reason of a passivated actor.
pub const PASSIVATED: &str = "passivated";

impl<E: Entity> Running<E> {
    fn touch(&mut self) {
        self.last_active = tokio::time::Instant::now();
        self.untouched = false;
    }

    /// Starts the handover when the actor has been idle long enough ([`crate::registry`],
    /// step 1): from here on its messages wait in its slot, and the `Passivate` it sends
    /// itself comes after everything already in its mailbox.
    fn idle_check(&mut self, myself: &ActorRef<EntityMsg<E>>, fresh: bool) {
        let quiet = (fresh && self.untouched) || self.last_active.elapsed() >= limits::IDLE_AFTER;
        if !quiet || !self.entity.idle() {
            return;
        }
        let registry = E::registry(&self.ctx.router);
        if registry.passivate(self.entity.id(), myself.get_id())
            && myself.cast(EntityMsg::Passivate).is_err()
        {
            // Stopping anyway (the node is shutting down): its supervisor settles the slot.
        }
    }
}
