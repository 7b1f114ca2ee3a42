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
//! [`Router`]: crate::router::Router

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Display;
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
use crate::entity::{Entity, EntityActor, EntityArgs, EntityMsg};
use crate::limits;

/// How a supervisor starts and registers one kind of child.
pub trait ChildKind: Send + Sync + 'static {
    /// What identifies a child of this kind.
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;
    type Msg: Message;
    type Actor: Actor<Msg = Self::Msg>;

    const KIND: &'static str;

    fn arguments(key: &Self::Key, ctx: &Arc<Context>) -> <Self::Actor as Actor>::Arguments;
    fn actor() -> Self::Actor;
    fn register(ctx: &Context, key: &Self::Key, actor: ActorRef<Self::Msg>);
    fn unregister(ctx: &Context, key: &Self::Key, actor: ActorId);
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
        }
    }
    fn actor() -> EntityActor<E> {
        EntityActor::default()
    }
    fn register(ctx: &Context, key: &E::Id, actor: ActorRef<EntityMsg<E>>) {
        E::registry(&ctx.router).insert(key.clone(), actor);
    }
    fn unregister(ctx: &Context, key: &E::Id, actor: ActorId) {
        E::registry(&ctx.router).remove_if(key, actor);
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
    fn register(ctx: &Context, _key: &Fence, actor: ActorRef<DispatcherMsg>) {
        ctx.router.set_dispatcher(actor);
    }
    fn unregister(ctx: &Context, _key: &Fence, actor: ActorId) {
        ctx.router.clear_dispatcher(actor);
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
    /// Children whose start failed, to retry.
    /// In the order they failed (a `Vec`, not a hash set: a simulation seed must replay the
    /// same order of restarts).
    pending: Vec<C::Key>,
    retry_scheduled: bool,
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
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Context>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            ctx,
            by_actor: HashMap::new(),
            running: HashMap::new(),
            restarts: HashMap::new(),
            stopping: HashSet::new(),
            pending: Vec::new(),
            retry_scheduled: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Start(keys) => {
                let keys = keys
                    .into_iter()
                    .filter(|key| !state.running.contains_key(key))
                    .collect();
                state.spawn_all(&myself, keys).await;
            }
            SupervisorMsg::Stop(keys) => {
                for key in keys {
                    state.pending.retain(|k| *k != key);
                    if let Some(actor) = state.running.remove(&key) {
                        state.stopping.insert(actor.get_id());
                        C::unregister(&state.ctx, &key, actor.get_id());
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
                if state.within_budget(&key) {
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
                state.stopping.remove(&cell.get_id());
                if let Some(key) = state.forget(&cell) {
                    tracing::info!(kind = C::KIND, id = %key, reason = ?reason, "actor stopped");
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
    async fn spawn(&mut self, myself: &ActorRef<SupervisorMsg<C::Key>>, key: C::Key) {
        self.spawn_all(myself, vec![key]).await;
    }

    /// Starts `keys`, up to [`limits::START_CONCURRENCY`] at a time: each start waits for a
    /// store read, and one after another 210k of them took most of a node's start-up
    /// (docs/benchmarks.md, "Scale"). Results are taken in the order of `keys`.
    async fn spawn_all(&mut self, myself: &ActorRef<SupervisorMsg<C::Key>>, keys: Vec<C::Key>) {
        for chunk in keys.chunks(limits::START_CONCURRENCY) {
            // No actor names: ractor's name registry is process-wide, and simulations run
            // many nodes in one process. The router is the registry that matters.
            let spawns = chunk.iter().map(|key| {
                Actor::spawn_linked(
                    None,
                    C::actor(),
                    C::arguments(key, &self.ctx),
                    myself.get_cell(),
                )
            });
            let results = futures::future::join_all(spawns).await;
            for (key, spawned) in chunk.iter().zip(results) {
                self.started(myself, key.clone(), spawned);
            }
        }
    }

    fn started(
        &mut self,
        myself: &ActorRef<SupervisorMsg<C::Key>>,
        key: C::Key,
        spawned: Result<(ActorRef<C::Msg>, ractor::concurrency::JoinHandle<()>), ractor::SpawnErr>,
    ) {
        match spawned {
            Ok((actor, _handle)) => {
                self.by_actor.insert(actor.get_id(), key.clone());
                C::register(&self.ctx, &key, actor.clone());
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

    /// Drops a stopped child from the maps and the router; returns its key.
    fn forget(&mut self, cell: &ActorCell) -> Option<C::Key> {
        let key = self.by_actor.remove(&cell.get_id())?;
        if self
            .running
            .get(&key)
            .is_some_and(|a| a.get_id() == cell.get_id())
        {
            self.running.remove(&key);
        }
        C::unregister(&self.ctx, &key, cell.get_id());
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
