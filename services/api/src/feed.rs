//! The live feed behind `Operator.Watch`: one follower of the node's store watch, open only
//! while someone is subscribed, fanned out to every subscriber through a broadcast channel.
//! The store watch itself is the node's one watch of the records it shows, shared with the
//! leader's dispatcher (`centinela_store::SharedWatch`, held by the node's `Records`): on the
//! leader's node the store sends each change once, not once to each.
//!
//! The store is the source of truth, so the feed shows changes made by any node. Each event
//! carries the store revision of the change; a subscriber drops events older than its
//! snapshot. A subscriber that falls too far behind is told so ([`FeedEvent::Resync`]) and
//! takes a fresh snapshot rather than silently missing changes.
//!
//! **Watching on demand.** A node nobody watches through (no console, no `watch` client, no
//! recent public-map request) holds no feed watch, so the store sends it no event: on a
//! cluster, every node's always-on feed was most of the watch events a press cost
//! (docs/benchmarks.md). The first [`Feed::subscribe`] reads the store's revision and opens
//! the watch from just after it, *before* it returns; the subscriber then reads its snapshot,
//! which is at least that revision, so no change falls between snapshot and live events.
//! When the last [`Subscription`] is dropped the watch is closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use centinela_core::brigade::Brigade;
use centinela_core::camera::Camera;
use centinela_core::ids::{BrigadeId, CameraId, IncidentId};
use centinela_core::incident::Incident;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::limits;
use centinela_records::watch::FeedChange;
use centinela_records::{Change, HeldClose, Known, Records};

#[derive(Clone, Debug)]
pub enum FeedEvent {
    Incident(Arc<centinela_core::incident::Incident>, i64),
    Brigade(Arc<centinela_core::brigade::Brigade>, i64),
    Button(Arc<centinela_core::button::Button>, i64),
    Camera(Arc<centinela_core::camera::Camera>, i64),
    /// The feed itself lost events (its store watch was compacted away): re-snapshot.
    Resync,
}

/// The node's feed; see the module docs.
pub struct Feed {
    shared: Arc<Shared>,
}

struct Shared {
    records: Records,
    /// What the running watch has brought of the records a close writes: what a close
    /// through this node commits from ([`Feed::held_close`]) or reads first
    /// ([`Feed::held_incident`]). Emptied when the watch closes.
    held: Arc<Mutex<Held>>,
    state: Mutex<State>,
    /// Serializes starting the watch, so two first subscribers open one watch, not two.
    starting: tokio::sync::Mutex<()>,
}

struct State {
    /// `None` once closed: subscribers see the end of the feed.
    sender: Option<broadcast::Sender<FeedEvent>>,
    /// The task following the store watch; `None` while nobody is subscribed.
    watch: Option<JoinHandle<()>>,
    /// Live [`Subscription`]s.
    subscribers: usize,
}

/// The records a close writes, as the running watch last brought them, each with the
/// revision of the change that brought it: open incidents, brigades on a job, cameras aimed at
/// an incident (released ones are no part of a close). At most
/// [`limits::FEED_HELD_INCIDENTS_MAX`] of each.
#[derive(Default)]
struct Held {
    incidents: HashMap<IncidentId, Known<Arc<Incident>>>,
    brigades: HashMap<BrigadeId, Known<Arc<Brigade>>>,
    cameras: HashMap<CameraId, Known<Arc<Camera>>>,
}

/// One subscriber's view of the feed. While any is alive the node watches the store; dropping
/// the last one closes the watch.
pub struct Subscription {
    receiver: broadcast::Receiver<FeedEvent>,
    /// `None` for a subscription to a closed feed (it counts for nothing).
    shared: Option<Arc<Shared>>,
}

impl Subscription {
    /// The next event, as [`broadcast::Receiver::recv`].
    pub async fn recv(&mut self) -> Result<FeedEvent, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut state = shared.lock();
        state.subscribers -= 1;
        if state.subscribers == 0
            && let Some(watch) = state.watch.take()
        {
            watch.abort();
            shared.forget_held();
            tracing::debug!("feed: last subscriber gone, store watch closed");
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("feed lock poisoned")
    }

    fn forget_held(&self) {
        *self.held.lock().expect("feed lock poisoned") = Held::default();
    }
}

impl Feed {
    /// A feed over `records`; it watches nothing until someone subscribes.
    pub fn new(records: Records) -> Self {
        let (sender, _) = broadcast::channel(limits::FEED_CAPACITY);
        Self {
            shared: Arc::new(Shared {
                records,
                held: Arc::default(),
                state: Mutex::new(State {
                    sender: Some(sender),
                    watch: None,
                    subscribers: 0,
                }),
                starting: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Subscribes, opening the node's store watch if nobody else is subscribed. Once this
    /// returns, every change after the store revision current at the call reaches the
    /// subscription (a snapshot read after it misses nothing). Fails only if the store's
    /// revision cannot be read to start the watch.
    pub async fn subscribe(&self) -> Result<Subscription, centinela_records::Error> {
        let _starting = self.shared.starting.lock().await;
        if let Some(subscription) = self.join_running() {
            return Ok(subscription);
        }
        let revision = self.shared.records.revision().await?;
        let mut state = self.shared.lock();
        let Some(sender) = state.sender.clone() else {
            return Ok(closed());
        };
        // Subscribe before the task starts, so its first event is not sent to nobody.
        let receiver = sender.subscribe();
        state.watch = Some(spawn_watch(
            self.shared.records.clone(),
            revision + 1,
            sender,
            self.shared.held.clone(),
        ));
        state.subscribers += 1;
        tracing::debug!(revision, "feed: first subscriber, store watch opened");
        Ok(Subscription {
            receiver,
            shared: Some(self.shared.clone()),
        })
    }

    /// A subscription to the running watch, or to the closed feed; `None` if the watch must
    /// be started.
    fn join_running(&self) -> Option<Subscription> {
        let mut state = self.shared.lock();
        let sender = match &state.sender {
            None => return Some(closed()),
            Some(sender) if state.watch.is_some() => sender.subscribe(),
            Some(_) => return None,
        };
        state.subscribers += 1;
        Some(Subscription {
            receiver: sender,
            shared: Some(self.shared.clone()),
        })
    }

    /// The open incident `id` as this node's watch last brought it, while the watch is open
    /// and has seen it change. Only a hint of which records to read (which units, which
    /// camera): it may be behind the store.
    pub fn held_incident(&self, id: &IncidentId) -> Option<Arc<Incident>> {
        let held = self.shared.held.lock().expect("feed lock poisoned");
        held.incidents.get(id).map(|known| known.value.clone())
    }

    /// The open incident `id`, its units and its camera as this node's watch last brought
    /// them, when it has brought all of them: what a close through this node commits from
    /// without a read ([`Records::close_incident_known`], guarded on each copy). `None` when
    /// any is missing (the watch opened after it last changed).
    pub fn held_close(&self, id: &IncidentId) -> Option<HeldClose> {
        let held = self.shared.held.lock().expect("feed lock poisoned");
        let incident = held.incidents.get(id)?;
        let brigades = incident
            .value
            .units
            .iter()
            .map(|unit| held.brigades.get(unit).map(owned))
            .collect::<Option<Vec<_>>>()?;
        let camera = owned(held.cameras.get(&incident.value.camera)?);
        Some(HeldClose {
            incident: owned(incident),
            brigades,
            camera,
        })
    }

    /// Whether the store watch is open now (someone is subscribed).
    pub fn is_watching(&self) -> bool {
        self.shared.lock().watch.is_some()
    }

    /// Ends the feed: every operator stream finishes, so a graceful server shutdown does not
    /// wait on consoles that would stay connected forever.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        if let Some(watch) = state.watch.take() {
            watch.abort();
        }
        state.sender.take();
        self.shared.forget_held();
    }
}

/// A subscription that ends at once: its sender is already gone.
fn closed() -> Subscription {
    Subscription {
        receiver: broadcast::channel(1).1,
        shared: None,
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.close();
    }
}

/// The event a watched change makes; deletions (an archived incident leaving the store) make
/// none: the feed shows what exists.
fn event_of(change: FeedChange) -> Option<FeedEvent> {
    fn put<T>(change: Change<T>, wrap: impl FnOnce(Arc<T>, i64) -> FeedEvent) -> Option<FeedEvent> {
        match change {
            Change::Put { value, revision } => Some(wrap(Arc::new(value), revision)),
            Change::Deleted { .. } => None,
        }
    }
    match change {
        FeedChange::Incident(c) => put(*c, FeedEvent::Incident),
        FeedChange::Brigade(c) => put(c, FeedEvent::Brigade),
        FeedChange::Button(c) => put(c, FeedEvent::Button),
        FeedChange::Camera(c) => put(c, FeedEvent::Camera),
    }
}

/// Follows the feed's records until aborted, resuming after the last revision seen when the
/// watch breaks (store restart, leader change inside etcd).
fn spawn_watch(
    records: Records,
    mut from_revision: i64,
    sender: broadcast::Sender<FeedEvent>,
    held: Arc<Mutex<Held>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match records.watch_feed(from_revision).await {
                Ok(mut changes) => {
                    while let Some(change) = changes.next().await {
                        match change {
                            Ok(change) => {
                                let revision = change_revision(&change);
                                from_revision = revision + 1;
                                hold(&held, &change);
                                if let Some(event) = event_of(change) {
                                    let _ = sender.send(event);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "feed watch broke; resuming");
                                if e.is_compacted() {
                                    from_revision = records.revision().await.unwrap_or(0) + 1;
                                    let _ = sender.send(FeedEvent::Resync);
                                }
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "feed watch failed to open"),
            }
            tokio::time::sleep(limits::REWATCH_DELAY).await;
        }
    })
}

/// Keeps the feed's copies of what a close writes current (see [`Held`]): an open incident,
/// a brigade on a job, a camera aimed at an incident; one that no longer is (closed,
/// released, removed) is dropped.
fn hold(held: &Mutex<Held>, change: &FeedChange) {
    let mut held = held.lock().expect("feed lock poisoned");
    match change {
        FeedChange::Incident(change) => keep(
            &mut held.incidents,
            change,
            |i| i.id.clone(),
            Incident::is_open,
        ),
        FeedChange::Brigade(change) => keep(
            &mut held.brigades,
            change,
            |b| b.id.clone(),
            |b| b.incident.is_some(),
        ),
        FeedChange::Camera(change) => keep(
            &mut held.cameras,
            change,
            |c| c.id.clone(),
            |c| c.target.is_some(),
        ),
        FeedChange::Button(_) => {}
    }
}

/// One kind of [`hold`]: `change` kept while `wanted`, at most
/// [`limits::FEED_HELD_INCIDENTS_MAX`] records.
fn keep<K, T>(
    held: &mut HashMap<K, Known<Arc<T>>>,
    change: &Change<T>,
    id: impl Fn(&T) -> K,
    wanted: impl Fn(&T) -> bool,
) where
    K: std::hash::Hash + Eq + AsRef<str>,
    T: Clone,
{
    match change {
        Change::Put { value, revision } if wanted(value) => {
            let id = id(value);
            if held.len() < limits::FEED_HELD_INCIDENTS_MAX || held.contains_key(&id) {
                let value = Arc::new(value.clone());
                let revision = *revision;
                held.insert(id, Known { value, revision });
            }
        }
        Change::Put { value, .. } => {
            held.remove(&id(value));
        }
        Change::Deleted { id, .. } => held.retain(|held_id, _| held_id.as_ref() != id),
    }
}

/// A held copy as the records take it.
fn owned<T: Clone>(known: &Known<Arc<T>>) -> Known<T> {
    Known {
        value: T::clone(&known.value),
        revision: known.revision,
    }
}

fn change_revision(change: &FeedChange) -> i64 {
    match change {
        FeedChange::Incident(c) => c.revision(),
        FeedChange::Brigade(c) => c.revision(),
        FeedChange::Button(c) => c.revision(),
        FeedChange::Camera(c) => c.revision(),
    }
}
