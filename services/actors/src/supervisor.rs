//! Supervisors: one per entity kind (buttons, cameras, brigades) and one for the dispatcher.
//!
//! A supervisor starts the entities this node owns, registers each with the [`Router`], and
//! when one panics, starts it again: the new incarnation loads its state from the store, so
//! nothing the store holds is lost. Each entity has a restart budget
//! ([`limits::RESTARTS_MAX`] within [`limits::RESTART_WINDOW`]); past it the fault is not
//! transient, the entity stays down (its calls get `UNAVAILABLE`) and an error is logged.
//!
//! A child that stops normally (the dispatcher after losing its fence, an entity this node no
//! longer owns) is not restarted.
//!
//! An entity's actor may also stop because it is idle (passivation, `crate::entity`): the
//! entity stays owned (a registry slot with no actor), and its supervisor starts it again when
//! a message comes for it ([`SupervisorMsg::Wake`]), only after the previous actor stopped.
//!
//! [`Router`]: crate::router::Router

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, Message, RpcReplyPort,
    SupervisionEvent,
};
use tokio::time::Instant;

use centinela_store::election::Fence;

use crate::Context;
use crate::brigade::BrigadeActor;
use crate::button::ButtonActor;
use crate::camera::CameraActor;
use crate::dispatcher::{DispatcherActor, DispatcherArgs, DispatcherMsg};
use crate::entity::{Entity, EntityActor, EntityArgs, EntityMsg, Source};
use crate::limits;
use crate::registry::Ended;

/// How a supervisor starts and registers one kind of child.
pub trait ChildKind: Send + Sync + 'static {
    /// What identifies a child of this kind.
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;
    type Msg: Message;
    type Actor: Actor<Msg = Self::Msg>;

    const KIND: &'static str;

    fn arguments(key: &Self::Key, ctx: &Arc<Context>) -> <Self::Actor as Actor>::Arguments;
    /// The arguments of `keys`' actors, in order, gathered in as few store requests as the
    /// kind can ([`limits::START_BATCH`] at most).
    fn arguments_many(
        keys: &[Self::Key],
        ctx: &Arc<Context>,
    ) -> impl Future<Output = Vec<<Self::Actor as Actor>::Arguments>> + Send {
        let arguments = keys.iter().map(|key| Self::arguments(key, ctx)).collect();
        std::future::ready(arguments)
    }
    fn actor() -> Self::Actor;
    /// Makes `actor` the one the router reaches for `key`; false when the node no longer
    /// owns `key` (the actor is stopped).
    fn register(ctx: &Context, key: &Self::Key, actor: ActorRef<Self::Msg>) -> bool;
    /// `actor` ended; `restart`: it is about to be restarted.
    fn ended(ctx: &Context, key: &Self::Key, actor: ActorId, restart: bool) -> Ended;
    /// The node owns `key` from now on (before its actor starts).
    fn own(_ctx: &Context, _key: &Self::Key) {}
    /// The node no longer owns `key`.
    fn disown(_ctx: &Context, _key: &Self::Key) {}
    /// Whether the node owns `key`.
    fn owns(_ctx: &Context, _key: &Self::Key) -> bool {
        false
    }
    /// An actor its supervisor just started (not a message) may stop at once if idle.
    fn fresh(_actor: &ActorRef<Self::Msg>) {}
    /// Lets the router have the supervisor start a passive entity's actor.
    fn set_waker(_ctx: &Context, _supervisor: ActorRef<SupervisorMsg<Self::Key>>) {}
}

/// The supervised actors of entity kind `E` (buttons, cameras, brigades).
pub struct Entities<E>(PhantomData<fn() -> E>);

pub type Buttons = Entities<ButtonActor>;
pub type Cameras = Entities<CameraActor>;
pub type Brigades = Entities<BrigadeActor>;
/// The dispatcher: at most one, on the leader.
pub struct Dispatchers;

impl<E: Entity> ChildKind for Entities<E> {
    type Key = E::Id;
    type Msg = EntityMsg<E>;
    type Actor = EntityActor<E>;
    const KIND: &'static str = E::KIND;

    fn arguments(key: &E::Id, ctx: &Arc<Context>) -> EntityArgs<E> {
        EntityArgs {
            id: key.clone(),
            ctx: ctx.clone(),
            record: E::registry(&ctx.router).take_start(key),
        }
    }
    /// What the registry holds for them (a carried or kept copy), and the rest read from the
    /// store in one transaction. A record that could not be read is left to its actor, which
    /// reads it itself (and fails to start, to be retried, if it is not there). The copies
    /// are taken after the read, as close to the actors' start as before: a write by another
    /// writer meanwhile drops a kept copy ([`Registry::write_ended`]), and that actor then
    /// reads its own.
    ///
    /// [`Registry::write_ended`]: crate::registry::Registry::write_ended
    async fn arguments_many(keys: &[E::Id], ctx: &Arc<Context>) -> Vec<EntityArgs<E>> {
        let registry = E::registry(&ctx.router);
        let unread: Vec<&str> = keys
            .iter()
            .filter(|key| !registry.holds_start(key))
            .map(|key| key.as_ref())
            .collect();
        let mut stored: HashMap<&str, E::Record> = HashMap::new();
        if !unread.is_empty() {
            match ctx.records.get_many::<E::Record>(&unread).await {
                Ok(records) => stored.extend(
                    unread
                        .iter()
                        .zip(records)
                        .filter_map(|(id, record)| Some((*id, record?))),
                ),
                Err(e) => {
                    tracing::warn!(kind = E::KIND, entities = unread.len(), error = %e, "records not read in a batch; each actor reads its own");
                }
            }
        }
        keys.iter()
            .map(|key| EntityArgs {
                id: key.clone(),
                ctx: ctx.clone(),
                record: registry.take_start(key).or_else(|| {
                    stored
                        .remove(key.as_ref())
                        .map(|record| (record, Source::Store))
                }),
            })
            .collect()
    }
    fn actor() -> EntityActor<E> {
        EntityActor::default()
    }
    fn register(ctx: &Context, key: &E::Id, actor: ActorRef<EntityMsg<E>>) -> bool {
        E::registry(&ctx.router).activate(key, actor)
    }
    fn ended(ctx: &Context, key: &E::Id, actor: ActorId, restart: bool) -> Ended {
        E::registry(&ctx.router).ended(key, actor, restart)
    }
    fn own(ctx: &Context, key: &E::Id) {
        if !E::registry(&ctx.router).owns(key) {
            E::owned(&ctx.router, key);
            E::registry(&ctx.router).own(key.clone());
        }
    }
    fn disown(ctx: &Context, key: &E::Id) {
        if E::registry(&ctx.router).owns(key) {
            E::registry(&ctx.router).disown(key);
            E::disowned(&ctx.router, key);
        }
    }
    fn owns(ctx: &Context, key: &E::Id) -> bool {
        E::registry(&ctx.router).owns(key)
    }
    fn fresh(actor: &ActorRef<EntityMsg<E>>) {
        let _ = actor.cast(EntityMsg::IdleCheck { fresh: true });
    }
    fn set_waker(ctx: &Context, supervisor: ActorRef<SupervisorMsg<E::Id>>) {
        E::registry(&ctx.router).set_waker(move |key| {
            let _ = supervisor.cast(SupervisorMsg::Wake(key));
        });
    }
}

/// The dispatcher's key is its fence: "the dispatcher of term N".
impl ChildKind for Dispatchers {
    type Key = Fence;
    type Msg = DispatcherMsg;
    type Actor = DispatcherActor;
    const KIND: &'static str = "dispatcher";

    fn arguments(key: &Fence, ctx: &Arc<Context>) -> DispatcherArgs {
        DispatcherArgs {
            ctx: ctx.clone(),
            fence: key.clone(),
        }
    }
    fn actor() -> DispatcherActor {
        DispatcherActor
    }
    fn register(ctx: &Context, _key: &Fence, actor: ActorRef<DispatcherMsg>) -> bool {
        ctx.router.set_dispatcher(actor);
        true
    }
    fn ended(ctx: &Context, _key: &Fence, actor: ActorId, restart: bool) -> Ended {
        ctx.router.clear_dispatcher(actor);
        if restart { Ended::Restart } else { Ended::Gone }
    }
}

pub enum SupervisorMsg<K> {
    /// Start these children (those already running are left alone).
    Start(Vec<K>),
    /// Stop these children, without restarting them.
    Stop(Vec<K>),
    /// Children running now.
    Running(RpcReplyPort<Vec<K>>),
    /// Retry children whose start failed (the store was unreachable, say).
    RetryPending,
    /// A message came for this passive entity: start its actor (the registry holds the
    /// message meanwhile).
    Wake(K),
    /// The supervisor's own, cast behind the first of a run of [`SupervisorMsg::Wake`]s:
    /// start the entities woken so far, together ([`limits::START_BATCH`] per store read).
    WakeQueued,
    /// The supervisor's own: the rest of a [`SupervisorMsg::Start`] past its first
    /// [`limits::START_CHUNK`], already owned; those stopped meanwhile are skipped.
    StartRest(Vec<K>),
}

pub struct Supervisor<C: ChildKind>(PhantomData<C>);

impl<C: ChildKind> Default for Supervisor<C> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct SupervisorState<C: ChildKind> {
    ctx: Arc<Context>,
    by_actor: HashMap<ActorId, C::Key>,
    running: HashMap<C::Key, ActorRef<C::Msg>>,
    restarts: HashMap<C::Key, VecDeque<Instant>>,
    /// Children being stopped on purpose: their termination is not a failure.
    stopping: HashSet<ActorId>,
    /// Keys of a [`SupervisorMsg::Start`] waiting in a [`SupervisorMsg::StartRest`]: a `Stop`
    /// before it comes takes them out, so it does not own them again (a rebalance during a
    /// large start left the node owning entities that had moved away, and never ready).
    queued: HashSet<C::Key>,
    /// Children whose start failed, to retry.
    /// In the order they failed (a `Vec`, not a hash set: a simulation seed must replay the
    /// same order of restarts).
    pending: Vec<C::Key>,
    retry_scheduled: bool,
    /// Entities woken since the last [`SupervisorMsg::WakeQueued`], in the order they were
    /// woken.
    woken: Vec<C::Key>,
}

impl<C: ChildKind> Actor for Supervisor<C>
where
    <C::Actor as Actor>::Arguments: Send,
{
    type Msg = SupervisorMsg<C::Key>;
    type State = SupervisorState<C>;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: Arc<Context>,
    ) -> Result<Self::State, ActorProcessingErr> {
        C::set_waker(&ctx, myself);
        Ok(SupervisorState {
            ctx,
            by_actor: HashMap::new(),
            running: HashMap::new(),
            restarts: HashMap::new(),
            stopping: HashSet::new(),
            queued: HashSet::new(),
            pending: Vec::new(),
            retry_scheduled: false,
            woken: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Start(mut keys) => {
                keys.retain(|key| !state.running.contains_key(key));
                for key in &keys {
                    C::own(&state.ctx, key);
                }
                // A chunk at a time, so the passivations of the actors just started (and
                // their supervision events) are handled between chunks rather than piling up.
                state.start_chunked(&myself, keys).await;
            }
            SupervisorMsg::StartRest(mut keys) => {
                keys.retain(|key| state.queued.remove(key) && !state.running.contains_key(key));
                state.start_chunked(&myself, keys).await;
            }
            SupervisorMsg::Wake(key) => {
                // Wakes come in waves (devices reconnecting): those already in the mailbox
                // are started together, behind it.
                if state.woken.is_empty() {
                    let _ = myself.cast(SupervisorMsg::WakeQueued);
                }
                state.woken.push(key);
            }
            SupervisorMsg::WakeQueued => {
                let mut woken = std::mem::take(&mut state.woken);
                let mut seen = HashSet::new();
                woken.retain(|key| {
                    !state.running.contains_key(key)
                        && C::owns(&state.ctx, key)
                        && seen.insert(key.clone())
                });
                state.spawn_keys(&myself, woken, false).await;
            }
            SupervisorMsg::Stop(keys) => {
                for key in keys {
                    state.pending.retain(|k| *k != key);
                    state.queued.remove(&key);
                    C::disown(&state.ctx, &key);
                    if let Some(actor) = state.running.remove(&key) {
                        state.stopping.insert(actor.get_id());
                        C::ended(&state.ctx, &key, actor.get_id(), false);
                        actor.stop(Some("no longer owned by this node".into()));
                    }
                }
            }
            SupervisorMsg::Running(reply) => {
                let _ = reply.send(state.running.keys().cloned().collect());
            }
            SupervisorMsg::RetryPending => {
                state.retry_scheduled = false;
                let pending: Vec<C::Key> = std::mem::take(&mut state.pending)
                    .into_iter()
                    .filter(|key| !state.running.contains_key(key))
                    .collect();
                state.spawn_all(&myself, pending).await;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(key) = state.forget(&cell) else {
                    return Ok(());
                };
                if state.stopping.remove(&cell.get_id()) {
                    return Ok(());
                }
                let restart = state.within_budget(&key);
                C::ended(&state.ctx, &key, cell.get_id(), restart);
                if restart {
                    tracing::warn!(kind = C::KIND, id = %key, %error, "actor failed; restarting from the store");
                    state.spawn(&myself, key).await;
                } else {
                    tracing::error!(
                        kind = C::KIND,
                        id = %key,
                        %error,
                        restarts = limits::RESTARTS_MAX,
                        window_s = limits::RESTART_WINDOW.as_secs(),
                        "actor failed past its restart budget; left stopped"
                    );
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let disowned = state.stopping.remove(&cell.get_id());
                let Some(key) = state.forget(&cell) else {
                    return Ok(());
                };
                if disowned {
                    // One per entity moved away: a rebalance stops thousands, and the node's
                    // reconciler logs one line for all of them ("owning my share").
                    tracing::debug!(kind = C::KIND, id = %key, reason = ?reason, "actor stopped");
                    return Ok(());
                }
                match C::ended(&state.ctx, &key, cell.get_id(), false) {
                    Ended::Passivated => {}
                    // Messages came while it stopped: its successor takes them.
                    Ended::Wake => state.spawn(&myself, key).await,
                    _ => {
                        tracing::info!(kind = C::KIND, id = %key, reason = ?reason, "actor stopped")
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl<C: ChildKind> SupervisorState<C>
where
    <C::Actor as Actor>::Arguments: Send,
{
    /// Starts the first [`limits::START_CHUNK`] of `keys` (already owned) and queues the rest
    /// behind what else came meanwhile (the supervision events of the fresh actors that
    /// passivated at once, a `Stop`).
    async fn start_chunked(
        &mut self,
        myself: &ActorRef<SupervisorMsg<C::Key>>,
        mut keys: Vec<C::Key>,
    ) {
        let rest = keys.split_off(keys.len().min(limits::START_CHUNK));
        for key in &keys {
            self.queued.remove(key);
        }
        self.spawn_all(myself, keys).await;
        if !rest.is_empty() {
            self.queued.extend(rest.iter().cloned());
            let _ = myself.cast(SupervisorMsg::StartRest(rest));
        }
    }

    /// Starts `key` for a message (a wake, a restart): it stays until idle for a while.
    async fn spawn(&mut self, myself: &ActorRef<SupervisorMsg<C::Key>>, key: C::Key) {
        self.spawn_keys(myself, vec![key], false).await;
    }

    /// Starts `keys` the node just took on: those with nothing to do stop again at once.
    async fn spawn_all(&mut self, myself: &ActorRef<SupervisorMsg<C::Key>>, keys: Vec<C::Key>) {
        self.spawn_keys(myself, keys, true).await;
    }

    /// Starts `keys`, [`limits::START_BATCH`] at a time: the records of a batch are read in
    /// one store request ([`ChildKind::arguments_many`]), then its actors are spawned together
    /// (one after another, 210k starts each waiting for its own read took most of a node's
    /// start-up: docs/benchmarks.md, "Scale"). Results are taken in the order of `keys`.
    async fn spawn_keys(
        &mut self,
        myself: &ActorRef<SupervisorMsg<C::Key>>,
        keys: Vec<C::Key>,
        fresh: bool,
    ) {
        for chunk in keys.chunks(limits::START_BATCH) {
            let arguments = C::arguments_many(chunk, &self.ctx).await;
            // No actor names: ractor's name registry is process-wide, and simulations run
            // many nodes in one process. The router is the registry that matters.
            let spawns = arguments.into_iter().map(|arguments| {
                Actor::spawn_linked(None, C::actor(), arguments, myself.get_cell())
            });
            let results = futures::future::join_all(spawns).await;
            for (key, spawned) in chunk.iter().zip(results) {
                self.started(myself, key.clone(), spawned, fresh);
            }
        }
    }

    fn started(
        &mut self,
        myself: &ActorRef<SupervisorMsg<C::Key>>,
        key: C::Key,
        spawned: Result<(ActorRef<C::Msg>, ractor::concurrency::JoinHandle<()>), ractor::SpawnErr>,
        fresh: bool,
    ) {
        match spawned {
            Ok((actor, _handle)) => {
                self.by_actor.insert(actor.get_id(), key.clone());
                if !C::register(&self.ctx, &key, actor.clone()) {
                    // Given up while it started.
                    self.stopping.insert(actor.get_id());
                    actor.stop(Some("no longer owned by this node".into()));
                    return;
                }
                if fresh {
                    C::fresh(&actor);
                }
                self.running.insert(key, actor);
            }
            Err(e) => {
                tracing::warn!(kind = C::KIND, id = %key, error = %e, "actor did not start; will retry");
                if !self.pending.contains(&key) {
                    self.pending.push(key);
                }
                if !self.retry_scheduled {
                    self.retry_scheduled = true;
                    myself.send_after(limits::START_RETRY, || SupervisorMsg::RetryPending);
                }
            }
        }
    }

    /// Drops a stopped child from the maps (the caller settles its registry slot); returns
    /// its key.
    fn forget(&mut self, cell: &ActorCell) -> Option<C::Key> {
        let key = self.by_actor.remove(&cell.get_id())?;
        if self
            .running
            .get(&key)
            .is_some_and(|a| a.get_id() == cell.get_id())
        {
            self.running.remove(&key);
        }
        Some(key)
    }

    /// Records a restart; false once the budget for this window is spent.
    fn within_budget(&mut self, key: &C::Key) -> bool {
        let now = Instant::now();
        let history = self.restarts.entry(key.clone()).or_default();
        while history
            .front()
            .is_some_and(|at| now.duration_since(*at) > limits::RESTART_WINDOW)
        {
            history.pop_front();
        }
        if history.len() >= limits::RESTARTS_MAX {
            return false;
        }
        history.push_back(now);
        true
    }
}
