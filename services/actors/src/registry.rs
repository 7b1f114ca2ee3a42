//! The node-local map from entity id to the entity's slot on this node: the running actor, or
//! none (passivated, `crate::entity`), or messages waiting for the actor being started.
//!
//! Every message to a local entity goes through [`Registry::send`], under the registry's lock;
//! that lock is what makes a passivation transparent to callers. The handover, step by step:
//!
//! 1. An idle actor asks to stop ([`Registry::passivate`]): its slot becomes `Stopping`.
//!    Messages already in its mailbox stay there and are handled by it; every message from
//!    then on is queued in the slot, in arrival order.
//! 2. The actor sends itself a last message. When it gets there (after everything that was
//!    in its mailbox), it stops if it is still idle, or takes the slot back
//!    ([`Registry::resume`]: the queued messages go to its mailbox in order).
//! 3. Its supervisor hears it stopped ([`Registry::ended`]): an empty queue leaves the slot
//!    `Passive`; a non-empty one makes it `Waking` and a successor is started.
//! 4. A message for a `Passive` entity makes the slot `Waking` (holding the message) and asks
//!    the supervisor to start the actor (the waker). Once it runs, [`Registry::activate`]
//!    hands it the queued messages in order, then makes it the slot's actor.
//!
//! So at most one actor of an entity runs at a time (a successor starts only after its
//! predecessor stopped), no message is lost by the handover (each is in a mailbox or a slot's
//! queue), and messages reach the entity in the order they were sent. A slot's queue is
//! bounded ([`limits::WAKE_QUEUE_MAX`]); past it a message is refused (`UNAVAILABLE`, the
//! caller retries).
//!
//! Removal on a stop names the actor that stopped, so a late "stopped" from an old incarnation
//! cannot unregister the new one.
//!
//! # Starting without a read
//! A slot can hold the record its next actor starts from, so that waking a passive entity
//! costs no store read ([`Registry::take_start`]):
//! - a message that carries its entity's record as the transaction that just wrote it
//!   recorded it ([`Carrier::carried`]: a camera's aim, a brigade's assignment) and wakes a
//!   passive slot leaves that copy for the actor it wakes;
//! - a passivating actor may leave its own copy in the slot ([`Registry::keep`]: a button,
//!   which no one but its actor and this node's liveness marker writes), kept while the slot
//!   is passive and handed to its next actor.
//!
//! A writer of the record other than the entity's actor tells the registry before and after
//! it writes ([`Registry::write_begins`], [`Registry::write_ended`]): the kept copy is replaced
//! by the one it stored when no actor ran meanwhile, and dropped otherwise, so a kept copy is
//! never older than the store's. A restart after a failure always reads the store.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use ractor::{ActorId, ActorRef, Message};

use crate::limits;

/// A registry's message: it may carry the record of its entity, as written.
pub trait Carrier: Message {
    /// The record an entity's actor starts from.
    type Record: Send + 'static;

    /// The record this message carries, as the transaction that just wrote it recorded it;
    /// `None` for a message that carries none. The actor it wakes starts from it instead of
    /// reading the store (see [`Registry::take_start`] for why that copy is current).
    fn carried(&self) -> Option<Self::Record> {
        None
    }
}

/// Where a starting actor's record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from the store (a start by its supervisor, a restart, a wake with no copy).
    Store,
    /// Carried by the message that woke it ([`Carrier::carried`]), which it handles first.
    Carried,
    /// Left in its registry slot by its predecessor ([`Registry::keep`]).
    Kept,
}

/// In every slot with an actor (or one being started), `written`: a writer other than the
/// actor changed the entity's record during this actor's life ([`Registry::write_ended`]), so
/// the actor's copy may be older than the store's and is not kept when it stops.
enum Slot<M: Carrier> {
    Running(ActorRef<M>, bool),
    /// No actor; `kept`: the record the last actor left ([`Registry::keep`]), for the next.
    /// Records are boxed here: a slot that holds none (most, and every camera's and
    /// brigade's) costs a pointer, not a record's size. `refresh`: another writer's write
    /// began while the slot was passive, and it has been passive since
    /// ([`Registry::write_begins`]).
    Passive {
        kept: Option<Box<M::Record>>,
        refresh: bool,
    },
    /// Messages waiting for an actor to start; `dead`: the actor that died with the slot
    /// still naming it (its supervisor has not heard yet); `start`: the record the actor
    /// being started starts from, if the slot has one ([`Registry::take_start`]).
    Waking {
        dead: Option<ActorId>,
        queued: Vec<M>,
        start: Option<(Box<M::Record>, Source)>,
        written: bool,
    },
    /// `kept`: the record the stopping actor left ([`Registry::keep`]).
    Stopping {
        actor: ActorId,
        queued: Vec<M>,
        kept: Option<Box<M::Record>>,
        written: bool,
    },
}

fn waking<M: Carrier>(queued: Vec<M>, start: Option<(Box<M::Record>, Source)>) -> Slot<M> {
    Slot::Waking {
        dead: None,
        queued,
        start,
        written: false,
    }
}

fn passive<M: Carrier>() -> Slot<M> {
    Slot::Passive {
        kept: None,
        refresh: false,
    }
}

/// Why a message was not delivered.
pub enum Refused<M> {
    /// This node has no slot for the entity (not owned here, or left stopped).
    NotHere(M),
    /// The entity's queue is full while its actor starts or stops.
    Full,
}

/// What became of a slot whose actor ended ([`Registry::ended`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Passivated with nothing waiting: the entity is passive.
    Passivated,
    /// Passivated, but messages came meanwhile: start a successor.
    Wake,
    /// The slot waits for a restarted actor.
    Restart,
    /// The slot is gone (the actor is not restarted).
    Gone,
    /// Not this slot's actor (an older incarnation): nothing changed.
    Stale,
}

type Waker<K> = Box<dyn Fn(K) + Send + Sync>;

/// Whether a slot has an actor (running or stopping): `None` for no slot.
fn resident<M: Carrier>(slot: Option<&Slot<M>>) -> Option<bool> {
    slot.map(|s| matches!(s, Slot::Running(..) | Slot::Stopping { .. }))
}

/// The gauges a registry keeps: its entities with an actor, and without.
pub struct Gauges {
    pub resident: &'static AtomicI64,
    pub passivated: &'static AtomicI64,
}

pub struct Registry<K, M: Carrier> {
    slots: Mutex<HashMap<K, Slot<M>>>,
    /// Asks the supervisor to start the actor of a passive entity that got a message.
    waker: RwLock<Option<Waker<K>>>,
    gauges: Option<Gauges>,
}

impl<K: Eq + Hash + Clone, M: Carrier> Default for Registry<K, M> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            waker: RwLock::new(None),
            gauges: None,
        }
    }
}

/// Delivers `queued` to `actor` in order; what cannot be delivered (the actor died meanwhile)
/// is dropped, and its callers hear the actor stopped (they retry).
fn flush<M: Message>(actor: &ActorRef<M>, queued: Vec<M>) {
    for message in queued {
        let _ = actor.cast(message);
    }
}

impl<K: Eq + Hash + Clone, M: Carrier> Registry<K, M> {
    /// A registry that keeps `gauges` in step with its slots.
    pub fn with_gauges(gauges: Gauges) -> Self {
        Self {
            gauges: Some(gauges),
            ..Self::default()
        }
    }

    /// Moves the gauges for a slot that went from `before` to `after` ([`resident`]).
    fn count(&self, before: Option<bool>, after: Option<bool>) {
        let Some(gauges) = &self.gauges else {
            return;
        };
        if before == after {
            return;
        }
        let gauge = |resident: bool| {
            if resident {
                gauges.resident
            } else {
                gauges.passivated
            }
        };
        if let Some(was) = before {
            gauge(was).fetch_add(-1, Ordering::Relaxed);
        }
        if let Some(is) = after {
            gauge(is).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Applies `change` to the slot of `key` under the lock, keeping the gauges in step.
    fn change<T>(&self, key: &K, change: impl FnOnce(&mut HashMap<K, Slot<M>>) -> T) -> T {
        let mut slots = self.slots();
        let before = resident(slots.get(key));
        let result = change(&mut slots);
        let after = resident(slots.get(key));
        drop(slots);
        self.count(before, after);
        result
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<K, Slot<M>>> {
        self.slots.lock().expect("registry lock poisoned")
    }

    /// Sets what starts a passive entity's actor (its supervisor).
    pub fn set_waker(&self, waker: impl Fn(K) + Send + Sync + 'static) {
        *self.waker.write().expect("registry lock poisoned") = Some(Box::new(waker));
    }

    /// This node owns `key` now: a passive slot, unless it has one.
    pub fn own(&self, key: K) {
        self.change(&key.clone(), |slots| {
            slots.entry(key).or_insert_with(passive);
        });
    }

    /// This node no longer owns `key`: its slot goes, and with it any queued messages (their
    /// callers hear the entity stopped, and retry at its new owner).
    pub fn disown(&self, key: &K) {
        self.change(key, |slots| {
            slots.remove(key);
        });
    }

    /// Whether this node owns `key`.
    pub fn owns(&self, key: &K) -> bool {
        self.slots().contains_key(key)
    }

    /// Delivers `message` to the entity's actor, or queues it for the actor being started or
    /// stopped (starting a passive one).
    pub fn send(&self, key: &K, message: M) -> Result<(), Refused<M>> {
        let wake = self.change(key, |slots| {
            let Some(slot) = slots.get_mut(key) else {
                return Err(Refused::NotHere(message));
            };
            match slot {
                Slot::Running(actor, written) => {
                    if let Err(e) = actor.cast(message) {
                        // The actor died and its supervisor has not heard yet: the message
                        // waits for the restarted one (or goes with the slot if it is not
                        // restarted).
                        let ractor::MessagingErr::SendErr(message) = e else {
                            return Err(Refused::Full);
                        };
                        *slot = Slot::Waking {
                            dead: Some(actor.get_id()),
                            queued: vec![message],
                            start: None,
                            written: *written,
                        };
                    }
                    Ok(false)
                }
                Slot::Passive { kept, .. } => {
                    // Only buttons keep a copy and no button message carries one, so the
                    // two never compete; a carried copy, just written, would be the newer.
                    let start = match message.carried() {
                        Some(carried) => Some((Box::new(carried), Source::Carried)),
                        None => kept.take().map(|kept| (kept, Source::Kept)),
                    };
                    *slot = waking(vec![message], start);
                    Ok(true)
                }
                Slot::Waking { queued, .. } | Slot::Stopping { queued, .. } => {
                    if queued.len() >= limits::WAKE_QUEUE_MAX {
                        return Err(Refused::Full);
                    }
                    queued.push(message);
                    Ok(false)
                }
            }
        })?;
        if wake && let Some(wake) = self.waker.read().expect("registry lock poisoned").as_ref() {
            wake(key.clone());
        }
        Ok(())
    }

    /// `actor` runs the entity from now on: it gets the queued messages first. False when the
    /// node no longer owns `key` (the caller stops the actor).
    pub fn activate(&self, key: &K, actor: ActorRef<M>) -> bool {
        self.change(key, |slots| {
            let Some(slot) = slots.get_mut(key) else {
                return false;
            };
            let written = match slot {
                Slot::Waking {
                    queued, written, ..
                }
                | Slot::Stopping {
                    queued, written, ..
                } => {
                    flush(&actor, std::mem::take(queued));
                    *written
                }
                Slot::Running(_, written) => *written,
                Slot::Passive { .. } => false,
            };
            *slot = Slot::Running(actor, written);
            true
        })
    }

    /// The idle `actor` asks to stop: from now on messages wait in the slot. False when it is
    /// not the slot's actor.
    pub fn passivate(&self, key: &K, actor: ActorId) -> bool {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(key) else {
            return false;
        };
        let Slot::Running(running, written) = &*slot else {
            return false;
        };
        if running.get_id() != actor {
            return false;
        }
        *slot = Slot::Stopping {
            actor,
            queued: Vec::new(),
            kept: None,
            written: *written,
        };
        true
    }

    /// The stopping `actor` leaves `record`, its copy of the entity's record, for its
    /// successor: kept while the slot is passive, the next actor starts from it. Ignored when
    /// `actor` is not the slot's stopping actor, or another writer changed the record during
    /// its life ([`Registry::write_ended`]).
    pub fn keep(&self, key: &K, actor: ActorId, record: M::Record) {
        let mut slots = self.slots();
        if let Some(Slot::Stopping {
            actor: id,
            kept,
            written: false,
            ..
        }) = slots.get_mut(key)
            && *id == actor
        {
            *kept = Some(Box::new(record));
        }
    }

    /// A writer other than the entity's actor is about to write its record: a copy the slot
    /// keeps goes now (the write may fail, or hide its outcome in a timeout), and a slot
    /// passive from now until [`Registry::write_ended`] takes the copy that write stored.
    pub fn write_begins(&self, key: &K) {
        if let Some(Slot::Passive { kept, refresh }) = self.slots().get_mut(key) {
            *kept = None;
            *refresh = true;
        }
    }

    /// A writer other than the entity's actor wrote its record (or tried to): `stored` is the
    /// record as that write stored it, if it did. A slot passive since
    /// [`Registry::write_begins`] keeps `stored`: no actor could write the record meanwhile,
    /// so it is the latest. Any other slot drops its copy, and the copy of the actor running,
    /// starting or stopping now (which may have read the record before the write) is not kept
    /// when it stops.
    pub fn write_ended(&self, key: &K, stored: Option<M::Record>) {
        let mut slots = self.slots();
        match slots.get_mut(key) {
            Some(Slot::Passive { kept, refresh }) => {
                *kept = if *refresh { stored.map(Box::new) } else { None };
                *refresh = false;
            }
            Some(Slot::Waking { start, written, .. }) => {
                *start = None;
                *written = true;
            }
            Some(Slot::Stopping { kept, written, .. }) => {
                *kept = None;
                *written = true;
            }
            Some(Slot::Running(_, written)) => *written = true,
            None => {}
        }
    }

    /// The record the actor being started for `key` starts from, if its slot holds one: a
    /// copy carried by the message that woke it ([`Carrier::carried`]), or kept by its
    /// predecessor ([`Registry::keep`]). Taken once; `None`: the actor reads the store.
    ///
    /// Why such a copy is current: a carried copy is what a compare-and-swap transaction
    /// wrote a moment ago, on the record as stored then, so it holds every earlier write; a
    /// later write by a writer that tells the entity (the next aim, assignment or release)
    /// reaches the actor after the message that woke it, as it would a running actor; and a
    /// kept copy is replaced or dropped when anyone but the actor writes the record
    /// ([`Registry::write_ended`]). So the woken actor holds what a running actor would hold
    /// after the same message.
    pub fn take_start(&self, key: &K) -> Option<(M::Record, Source)> {
        match self.slots().get_mut(key) {
            Some(Slot::Waking { start, .. }) => {
                start.take().map(|(record, source)| (*record, source))
            }
            _ => None,
        }
    }

    /// Whether the slot of `key` holds a record for the actor being started
    /// ([`Registry::take_start`]), so its supervisor need not read one.
    pub fn holds_start(&self, key: &K) -> bool {
        matches!(
            self.slots().get(key),
            Some(Slot::Waking { start: Some(_), .. })
        )
    }

    /// The actor that asked to stop found work and stays: it takes the slot back, and the
    /// messages that waited in it.
    pub fn resume(&self, key: &K, actor: &ActorRef<M>) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(key)
            && let Slot::Stopping {
                actor: id,
                queued,
                written,
                ..
            } = slot
            && *id == actor.get_id()
        {
            flush(actor, std::mem::take(queued));
            *slot = Slot::Running(actor.clone(), *written);
        }
    }

    /// `actor` ended; `restart`: its supervisor restarts it (a failure within budget).
    pub fn ended(&self, key: &K, actor: ActorId, restart: bool) -> Ended {
        self.change(key, |slots| {
            let Some(slot) = slots.get_mut(key) else {
                return Ended::Stale;
            };
            match slot {
                Slot::Stopping {
                    actor: id,
                    queued,
                    kept,
                    ..
                } if *id == actor => {
                    // A failed actor's successor reads the store.
                    let kept = if restart { None } else { kept.take() };
                    if queued.is_empty() && !restart {
                        *slot = Slot::Passive {
                            kept,
                            refresh: false,
                        };
                        Ended::Passivated
                    } else {
                        let start = kept.map(|kept| (kept, Source::Kept));
                        *slot = waking(std::mem::take(queued), start);
                        Ended::Wake
                    }
                }
                Slot::Running(running, _) if running.get_id() == actor => {
                    if restart {
                        *slot = waking(Vec::new(), None);
                        Ended::Restart
                    } else {
                        slots.remove(key);
                        Ended::Gone
                    }
                }
                Slot::Waking { dead, queued, .. } if *dead == Some(actor) => {
                    if restart {
                        *slot = waking(std::mem::take(queued), None);
                        Ended::Restart
                    } else {
                        slots.remove(key);
                        Ended::Gone
                    }
                }
                _ => Ended::Stale,
            }
        })
    }

    /// The running actor of `key`, if any.
    pub fn get(&self, key: &K) -> Option<ActorRef<M>> {
        match self.slots().get(key) {
            Some(Slot::Running(actor, _)) => Some(actor.clone()),
            _ => None,
        }
    }

    /// Entities this node owns (running or passive).
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entities whose actor runs (or is stopping) now; the rest of [`Registry::len`] is
    /// passive (or starting).
    pub fn resident(&self) -> usize {
        self.slots()
            .values()
            .filter(|s| matches!(s, Slot::Running(..) | Slot::Stopping { .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use tokio::sync::mpsc;

    use super::*;

    /// A test message of 1000 or more carries itself as its record.
    impl Carrier for u32 {
        type Record = u32;

        fn carried(&self) -> Option<u32> {
            (*self >= 1000).then_some(*self)
        }
    }

    /// An actor that reports every message it gets, with its own name.
    struct Echo;

    impl Actor for Echo {
        type Msg = u32;
        type State = (&'static str, mpsc::UnboundedSender<(&'static str, u32)>);
        type Arguments = Self::State;

        async fn pre_start(
            &self,
            _myself: ActorRef<u32>,
            args: Self::State,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(args)
        }

        async fn handle(
            &self,
            _myself: ActorRef<u32>,
            message: u32,
            (name, seen): &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            let _ = seen.send((name, message));
            Ok(())
        }
    }

    /// Every step of the handover, with messages sent at each: the ones sent before the
    /// passivation reach the old actor, all later ones its successor, in order, none twice,
    /// none lost; and the successor is asked for only once the predecessor ended.
    #[tokio::test]
    async fn a_passivation_hands_every_later_message_to_the_successor_in_order() {
        let registry: Arc<Registry<&'static str, u32>> = Arc::new(Registry::default());
        let (wakes, mut woken) = mpsc::unbounded_channel();
        registry.set_waker(move |key| {
            let _ = wakes.send(key);
        });
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let (old, old_handle) = Actor::spawn(None, Echo, ("old", seen_tx.clone()))
            .await
            .unwrap();
        registry.own("B01");
        assert!(registry.activate(&"B01", old.clone()));
        assert_eq!(registry.resident(), 1);

        for n in 0..3 {
            assert!(registry.send(&"B01", n).is_ok());
        }
        // Step 1: from here on, messages wait in the slot.
        assert!(registry.passivate(&"B01", old.get_id()));
        assert!(!registry.passivate(&"B01", old.get_id()), "only once");
        for n in 3..6 {
            assert!(registry.send(&"B01", n).is_ok());
        }
        // Step 2: the old actor handles its mailbox, then stops.
        old.drain().unwrap();
        old_handle.await.unwrap();
        for n in 6..9 {
            assert!(registry.send(&"B01", n).is_ok());
        }
        assert!(woken.try_recv().is_err(), "no successor while one stops");
        // Step 3: the messages that came meanwhile ask for a successor.
        assert_eq!(registry.ended(&"B01", old.get_id(), false), Ended::Wake);
        // A late "ended" of the same actor changes nothing.
        assert_eq!(registry.ended(&"B01", old.get_id(), false), Ended::Stale);
        for n in 9..12 {
            assert!(registry.send(&"B01", n).is_ok());
        }
        let (new, _) = Actor::spawn(None, Echo, ("new", seen_tx)).await.unwrap();
        assert!(registry.activate(&"B01", new.clone()));
        for n in 12..15 {
            assert!(registry.send(&"B01", n).is_ok());
        }

        let mut got = Vec::new();
        while got.len() < 15 {
            got.push(seen.recv().await.unwrap());
        }
        let expected: Vec<_> = (0..15)
            .map(|n| (if n < 3 { "old" } else { "new" }, n))
            .collect();
        assert_eq!(got, expected);

        // An idle stop with nothing waiting leaves the entity passive; its next message
        // wakes it, and waits for the new actor.
        assert!(registry.passivate(&"B01", new.get_id()));
        new.stop(None);
        assert_eq!(
            registry.ended(&"B01", new.get_id(), false),
            Ended::Passivated
        );
        assert_eq!((registry.len(), registry.resident()), (1, 0));
        assert!(woken.try_recv().is_err());
        assert!(registry.send(&"B01", 15).is_ok());
        assert_eq!(woken.try_recv().ok(), Some("B01"));
        assert!(registry.get(&"B01").is_none());

        // Given up: the slot goes, and messages are refused (the caller retries elsewhere).
        registry.disown(&"B01");
        assert!(matches!(
            registry.send(&"B01", 16),
            Err(Refused::NotHere(16))
        ));
    }

    #[tokio::test]
    async fn the_gauges_count_resident_and_passivated_entities() {
        static RESIDENT: AtomicI64 = AtomicI64::new(0);
        static PASSIVATED: AtomicI64 = AtomicI64::new(0);
        let counts = || {
            (
                RESIDENT.load(Ordering::Relaxed),
                PASSIVATED.load(Ordering::Relaxed),
            )
        };
        let registry: Registry<&'static str, u32> = Registry::with_gauges(Gauges {
            resident: &RESIDENT,
            passivated: &PASSIVATED,
        });
        registry.own("B01");
        registry.own("B02");
        registry.own("B02");
        assert_eq!(counts(), (0, 2));
        let (seen_tx, _seen) = mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(None, Echo, ("a", seen_tx)).await.unwrap();
        registry.activate(&"B01", actor.clone());
        assert_eq!(counts(), (1, 1));
        assert!(registry.passivate(&"B01", actor.get_id()));
        assert_eq!(counts(), (1, 1), "stopping still has its actor");
        assert_eq!(
            registry.ended(&"B01", actor.get_id(), false),
            Ended::Passivated
        );
        assert_eq!(counts(), (0, 2));
        registry.disown(&"B01");
        registry.disown(&"B02");
        assert_eq!(counts(), (0, 0));
    }

    /// Runs a new Echo actor as `key`'s, then has it stop idle leaving `kept` (if any).
    async fn incarnation(
        registry: &Registry<&'static str, u32>,
        key: &'static str,
        kept: Option<u32>,
        meanwhile: impl FnOnce(),
    ) {
        let (seen_tx, _seen) = mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(None, Echo, ("a", seen_tx)).await.unwrap();
        assert!(registry.activate(&key, actor.clone()));
        meanwhile();
        assert!(registry.passivate(&key, actor.get_id()));
        if let Some(record) = kept {
            registry.keep(&key, actor.get_id(), record);
        }
        actor.stop(None);
        assert_eq!(
            registry.ended(&key, actor.get_id(), false),
            Ended::Passivated
        );
    }

    /// The record a woken actor starts from: the one its waking message carries, or the one
    /// its predecessor kept; none once another writer wrote the record (before, during or
    /// after the predecessor's life), nor for a restart after a failure.
    #[tokio::test]
    async fn a_woken_actor_starts_from_a_carried_or_kept_record_unless_someone_else_wrote() {
        let registry: Registry<&'static str, u32> = Registry::default();
        registry.own("B01");
        assert_eq!(
            registry.take_start(&"B01"),
            None,
            "a passive slot starts nothing"
        );
        assert!(registry.send(&"B01", 1000).is_ok());
        assert_eq!(registry.take_start(&"B01"), Some((1000, Source::Carried)));
        assert_eq!(registry.take_start(&"B01"), None, "taken once");

        incarnation(&registry, "B01", Some(7), || {}).await;
        assert!(registry.send(&"B01", 1).is_ok());
        assert_eq!(registry.take_start(&"B01"), Some((7, Source::Kept)));

        // Written while passive: the copy that write stored is kept instead...
        incarnation(&registry, "B01", Some(8), || {}).await;
        registry.write_begins(&"B01");
        registry.write_ended(&"B01", Some(80));
        assert!(registry.send(&"B01", 2).is_ok());
        assert_eq!(registry.take_start(&"B01"), Some((80, Source::Kept)));
        // ... or none, when the write did not say what it stored.
        incarnation(&registry, "B01", Some(8), || {}).await;
        registry.write_begins(&"B01");
        registry.write_ended(&"B01", None);
        assert!(registry.send(&"B01", 2).is_ok());
        assert_eq!(registry.take_start(&"B01"), None);

        // An actor ran during the write (it may have read the record before it): nothing kept.
        incarnation(&registry, "B01", Some(81), || {}).await;
        registry.write_begins(&"B01");
        assert!(registry.send(&"B01", 2).is_ok());
        assert_eq!(
            registry.take_start(&"B01"),
            None,
            "dropped when the write began"
        );
        incarnation(&registry, "B01", Some(82), || {}).await;
        registry.write_ended(&"B01", Some(83));
        assert!(registry.send(&"B01", 2).is_ok());
        assert_eq!(registry.take_start(&"B01"), None);

        // Written while the actor ran: its copy is not kept.
        incarnation(&registry, "B01", Some(9), || {
            registry.write_begins(&"B01");
            registry.write_ended(&"B01", Some(90));
        })
        .await;
        assert!(registry.send(&"B01", 3).is_ok());
        assert_eq!(registry.take_start(&"B01"), None);

        // Written while it was being started: the same.
        registry.write_begins(&"B01");
        registry.write_ended(&"B01", Some(100));
        incarnation(&registry, "B01", Some(10), || {}).await;
        assert!(registry.send(&"B01", 4).is_ok());
        assert_eq!(registry.take_start(&"B01"), None);

        // The next incarnation, started after the write, keeps its copy again.
        incarnation(&registry, "B01", Some(11), || {}).await;
        assert!(registry.send(&"B01", 5).is_ok());
        assert_eq!(registry.take_start(&"B01"), Some((11, Source::Kept)));

        // A failed actor's successor reads the store.
        let (seen_tx, _seen) = mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(None, Echo, ("a", seen_tx)).await.unwrap();
        assert!(registry.activate(&"B01", actor.clone()));
        assert!(registry.passivate(&"B01", actor.get_id()));
        registry.keep(&"B01", actor.get_id(), 12);
        assert_eq!(
            registry.ended(&"B01", actor.get_id(), true),
            Ended::Wake,
            "restarted"
        );
        assert_eq!(registry.take_start(&"B01"), None);
    }

    #[tokio::test]
    async fn a_slot_queue_is_bounded() {
        let registry: Registry<&'static str, u32> = Registry::default();
        registry.own("B01");
        for n in 0..limits::WAKE_QUEUE_MAX as u32 {
            assert!(registry.send(&"B01", n).is_ok());
        }
        assert!(matches!(registry.send(&"B01", 0), Err(Refused::Full)));
    }

    #[tokio::test]
    async fn an_actor_that_found_work_takes_its_slot_back_with_what_waited() {
        let registry: Registry<&'static str, u32> = Registry::default();
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(None, Echo, ("a", seen_tx)).await.unwrap();
        registry.own("B01");
        registry.activate(&"B01", actor.clone());
        assert!(registry.passivate(&"B01", actor.get_id()));
        assert!(registry.send(&"B01", 1).is_ok());
        registry.resume(&"B01", &actor);
        assert!(registry.send(&"B01", 2).is_ok());
        assert_eq!(seen.recv().await, Some(("a", 1)));
        assert_eq!(seen.recv().await, Some(("a", 2)));
        assert_eq!(registry.resident(), 1);
    }
}
