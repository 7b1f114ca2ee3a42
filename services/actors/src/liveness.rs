//! Button liveness, node-wide: one in-memory table of when each of this node's buttons was
//! last heard from, one sweep over it, and silent buttons marked offline in paced batches.
//!
//! A heartbeat only touches the table ([`Liveness::heard`]): no store write and no actor,
//! so the heartbeats of 100k buttons cost a lookup each and a passivated button stays
//! passivated (`crate::entity`, "Passivation"). The store hears of a button's liveness only
//! when its health changes: offline when the sweep finds it silent for
//! [`limits::HEARTBEAT_TIMEOUT`], online again on its next heartbeat ([`Liveness::heard_again`]).
//!
//! A silent button is recorded by this node-wide marker rather than one write each: when a
//! district loses power, or a node takes over thousands of buttons whose devices never
//! reconnect, they all fall silent within the same few seconds. One write per button then
//! arrives as a wave that queues ahead of presses and of the node's own lease keep-alive
//! (docs/benchmarks.md, "The offline wave": 1000 silent buttons stalled presses on three
//! nodes for about a second; 100k cost a node its lease). The marker turns the wave into a
//! trickle of batched transactions: buttons found silent within
//! [`limits::OFFLINE_BATCH_WINDOW`] of each other share one read and one compare-and-swap
//! commit (up to [`centinela_records::limits::UPDATE_BATCH_MAX`] buttons), and batches start
//! at most once per [`limits::OFFLINE_BATCH_INTERVAL`].
//!
//! A button heard from again goes the other way the same way: its heartbeat is answered from
//! the table at once, and the button is queued for a batched online write, one batch in
//! flight at a time, without waking its actor. Before, such a heartbeat woke the actor and
//! waited for the write, and the actor stayed awake for its idle period: when most of a
//! node's buttons were offline at once (a round of the simulator's 100,000 heartbeats taking
//! longer than the timeout while the cameras attached), every heartbeat cost an actor start
//! and a write, the rounds grew longer still, and the node never came out of it
//! (docs/benchmarks.md, "Memory per attached device": 12,267 of 100,000 buttons online ten
//! minutes into the attach).
//!
//! # What a restart loses
//! The last-heard times live in memory only (the store's `last_heartbeat` is the time of the
//! last health change). A node that starts, or takes a button over, starts its clock afresh:
//! the button gets a full timeout from then. So a button that fell silent shortly before its
//! owner died is marked offline up to one timeout later than it would have been, and never
//! earlier than its device's silence warrants; a live device heartbeats well within the
//! timeout and is never marked offline by the move.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use centinela_core::button::{Button, ButtonHealth};
use centinela_core::ids::ButtonId;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_telemetry::metrics::GAUGES;

use crate::button::ButtonActor;
use crate::entity::EntityMsg;
use crate::registry::Registry;
use crate::{Clock, limits};

type ButtonRegistry = Registry<ButtonId, EntityMsg<ButtonActor>>;

/// What the node knows of one of its buttons.
struct Entry {
    /// The latest heartbeat heard by this node (or when the node started tracking it).
    last_heard: Timestamp,
    /// The health as last stored.
    health: ButtonHealth,
    /// The marker has the button queued; the sweep does not queue it again.
    pending: bool,
    /// Heard from while recorded offline, and queued to be recorded online.
    reviving: bool,
}

/// A silent button queued for the marker.
struct Silent {
    button: ButtonId,
    last_heard: Timestamp,
}

struct Shared {
    table: Mutex<HashMap<ButtonId, Entry>>,
    clock: Clock,
    /// The marker's queue: at most one request per button of the table (`pending`).
    silent: mpsc::UnboundedSender<Silent>,
    /// The online marker's queue: at most one request per button of the table (`reviving`).
    heard_again: mpsc::UnboundedSender<ButtonId>,
    /// Told before and after each write of a button: a passivated button's slot keeps its
    /// record (`crate::registry`, "Starting without a read"), which the write replaces or
    /// drops. The markers are the writers of a button record besides its actor.
    buttons: Weak<ButtonRegistry>,
}

/// The node's liveness table (in the router); cheap to clone.
#[derive(Clone)]
pub struct Liveness {
    shared: Arc<Shared>,
}

impl Liveness {
    /// Starts the sweep and the marker on the current tokio runtime; both end once every
    /// handle is dropped. `buttons` (the node's button registry) is told of every button the
    /// marker writes, before and after the write.
    pub fn start(records: Records, clock: Clock, buttons: Weak<ButtonRegistry>) -> Self {
        let (silent, queue) = mpsc::unbounded_channel();
        let (heard_again, heard_queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            table: Mutex::new(HashMap::new()),
            clock,
            silent,
            heard_again,
            buttons,
        });
        tokio::spawn(sweep(Arc::downgrade(&shared)));
        tokio::spawn(mark(records.clone(), Arc::downgrade(&shared), queue));
        tokio::spawn(revive(records, Arc::downgrade(&shared), heard_queue));
        Self { shared }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<ButtonId, Entry>> {
        self.shared.table.lock().expect("liveness table poisoned")
    }

    /// Tracks `button` as stored (its actor started, or wrote it). A button tracked for the
    /// first time gets a full timeout from now before it can be judged silent.
    pub fn track(&self, button: &Button) {
        let now = self.shared.clock.now();
        let mut table = self.table();
        let entry = table.entry(button.id.clone()).or_insert_with(|| {
            if button.health == ButtonHealth::Offline {
                GAUGES.buttons_offline.fetch_add(1, Ordering::Relaxed);
            }
            Entry {
                last_heard: now,
                health: button.health,
                pending: false,
                reviving: false,
            }
        });
        set_health(entry, button.health);
    }

    /// A heartbeat from `button`: its health as stored, or `None` when this node does not
    /// track it (its actor has not started here yet).
    pub fn heard(&self, button: &ButtonId) -> Option<ButtonHealth> {
        let now = self.shared.clock.now();
        let mut table = self.table();
        let entry = table.get_mut(button)?;
        entry.last_heard = entry.last_heard.max(now);
        Some(entry.health)
    }

    /// A heartbeat from `button` while it is recorded offline (after [`Liveness::heard`]
    /// said so): queues it to be recorded online, unless it is queued already. False when
    /// this node does not track it.
    pub fn heard_again(&self, button: &ButtonId) -> bool {
        let mut table = self.table();
        let Some(entry) = table.get_mut(button) else {
            return false;
        };
        if entry.health == ButtonHealth::Offline && !entry.reviving {
            entry.reviving = true;
            let _ = self.shared.heard_again.send(button.clone());
        }
        true
    }

    /// This node no longer owns `button`.
    pub fn forget(&self, button: &ButtonId) {
        if let Some(entry) = self.table().remove(button)
            && entry.health == ButtonHealth::Offline
        {
            GAUGES.buttons_offline.fetch_add(-1, Ordering::Relaxed);
        }
    }

    /// The health of `button` as this node last stored it.
    pub fn health(&self, button: &ButtonId) -> Option<ButtonHealth> {
        self.table().get(button).map(|e| e.health)
    }

    /// Buttons tracked.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn set_health(entry: &mut Entry, health: ButtonHealth) {
    let was = entry.health == ButtonHealth::Offline;
    let is = health == ButtonHealth::Offline;
    if was != is {
        GAUGES
            .buttons_offline
            .fetch_add(if is { 1 } else { -1 }, Ordering::Relaxed);
    }
    entry.health = health;
}

/// Every [`limits::LIVENESS_CHECK_INTERVAL`], queues the online buttons silent for the
/// timeout. One pass over the table: about a millisecond at 100k buttons.
async fn sweep(shared: Weak<Shared>) {
    let mut ticks = tokio::time::interval(limits::LIVENESS_CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = shared.clock.now();
        let mut silent = Vec::new();
        {
            let mut table = shared.table.lock().expect("liveness table poisoned");
            for (id, entry) in table.iter_mut() {
                if !entry.pending
                    && entry.health == ButtonHealth::Online
                    && now.saturating_duration_since(entry.last_heard) >= limits::HEARTBEAT_TIMEOUT
                {
                    entry.pending = true;
                    silent.push(Silent {
                        button: id.clone(),
                        last_heard: entry.last_heard,
                    });
                }
            }
        }
        // In id order: a simulation seed replays the same batches.
        silent.sort_by(|a, b| a.button.cmp(&b.button));
        for s in silent {
            let _ = shared.silent.send(s);
        }
    }
}

async fn mark(records: Records, shared: Weak<Shared>, mut queue: mpsc::UnboundedReceiver<Silent>) {
    let mut next_batch = Instant::now();
    while let Some(first) = queue.recv().await {
        // Let the rest of a wave arrive, and keep to the pace.
        tokio::time::sleep_until(next_batch.max(Instant::now() + limits::OFFLINE_BATCH_WINDOW))
            .await;
        let batch = gather(first, &mut queue);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        record(&records, &shared, batch).await;
        next_batch = Instant::now() + limits::OFFLINE_BATCH_INTERVAL;
    }
}

/// One batch: one read, one commit; then the buttons heard from while they waited are
/// written online again.
async fn record(records: &Records, shared: &Shared, mut batch: Vec<Silent>) {
    // A button this node stopped owning meanwhile is its new owner's to judge.
    {
        let table = shared.table.lock().expect("liveness table poisoned");
        batch.retain(|s| table.get(&s.button).is_some_and(|e| e.pending));
    }
    if batch.is_empty() {
        return;
    }
    let ids: Vec<String> = batch.iter().map(|s| s.button.to_string()).collect();
    let seen: HashMap<ButtonId, Timestamp> = batch
        .iter()
        .map(|s| (s.button.clone(), s.last_heard))
        .collect();
    let now = shared.clock.now();
    let span = tracing::info_span!("store.offline", buttons = ids.len());
    let result = write_marks(
        records,
        shared,
        batch.iter().map(|s| &s.button),
        &ids,
        span,
        |b| {
            if let Some(&seen) = seen.get(&b.id) {
                b.last_heartbeat = Some(b.last_heartbeat.map_or(seen, |t| t.max(seen)));
                b.check_liveness(now, limits::HEARTBEAT_TIMEOUT);
            }
        },
    )
    .await;
    let buttons = shared.buttons.upgrade();
    let stored = match result {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(buttons = ids.len(), error = %e, "offline marks not recorded; the next sweep asks again");
            let mut table = shared.table.lock().expect("liveness table poisoned");
            for s in &batch {
                if let Some(entry) = table.get_mut(&s.button) {
                    entry.pending = false;
                }
            }
            return;
        }
    };
    // Settle each entry; those heard from since they were queued are back.
    let mut back = Vec::new();
    {
        let mut table = shared.table.lock().expect("liveness table poisoned");
        for s in &batch {
            if let Some(entry) = table.get_mut(&s.button) {
                entry.pending = false;
            }
        }
        for button in &stored {
            let Some(entry) = table.get_mut(&button.id) else {
                continue;
            };
            set_health(entry, button.health);
            let silent = now.saturating_duration_since(entry.last_heard);
            if button.health == ButtonHealth::Offline {
                if silent < limits::HEARTBEAT_TIMEOUT {
                    back.push((button.id.clone(), entry.last_heard));
                } else {
                    tracing::warn!(button = %button.id, silent_s = silent.as_secs(), "button offline");
                }
            }
        }
    }
    for (id, last_heard) in back {
        if let Some(buttons) = &buttons {
            buttons.write_begins(&id);
        }
        let result = records
            .update_button(&id, |b| {
                b.heartbeat(last_heard);
                Ok(())
            })
            .await;
        if let Some(buttons) = &buttons {
            buttons.write_ended(&id, result.as_ref().ok().cloned());
        }
        match result {
            Ok(button) => {
                let mut table = shared.table.lock().expect("liveness table poisoned");
                if let Some(entry) = table.get_mut(&id) {
                    set_health(entry, button.health);
                }
            }
            Err(e) => tracing::warn!(button = %id, error = %e, "heartbeat not recorded"),
        }
    }
}

/// Records the buttons heard from again online: those queued within
/// [`limits::OFFLINE_BATCH_WINDOW`] of the first share one read and one commit (up to
/// [`centinela_records::limits::UPDATE_BATCH_MAX`]), one batch at a time.
async fn revive(
    records: Records,
    shared: Weak<Shared>,
    mut queue: mpsc::UnboundedReceiver<ButtonId>,
) {
    while let Some(first) = queue.recv().await {
        tokio::time::sleep(limits::OFFLINE_BATCH_WINDOW).await;
        let batch = gather(first, &mut queue);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        record_heard(&records, &shared, batch).await;
    }
}

/// One batch of buttons heard from again: each written with its latest heartbeat, which
/// makes it online.
async fn record_heard(records: &Records, shared: &Shared, mut batch: Vec<ButtonId>) {
    // A button this node stopped owning meanwhile is its new owner's to judge; in id order,
    // so a simulation seed replays the same batches.
    let heard: HashMap<ButtonId, Timestamp> = {
        let table = shared.table.lock().expect("liveness table poisoned");
        batch.retain(|id| table.get(id).is_some_and(|e| e.reviving));
        batch
            .iter()
            .filter_map(|id| table.get(id).map(|e| (id.clone(), e.last_heard)))
            .collect()
    };
    if batch.is_empty() {
        return;
    }
    batch.sort();
    let ids: Vec<String> = batch.iter().map(ToString::to_string).collect();
    let span = tracing::info_span!("store.online", buttons = ids.len());
    let result = write_marks(records, shared, batch.iter(), &ids, span, |b| {
        if let Some(&heard) = heard.get(&b.id) {
            b.heartbeat(heard);
        }
    })
    .await;
    let mut table = shared.table.lock().expect("liveness table poisoned");
    for id in &batch {
        if let Some(entry) = table.get_mut(id) {
            entry.reviving = false;
        }
    }
    match result {
        Ok(stored) => {
            for button in stored {
                if let Some(entry) = table.get_mut(&button.id) {
                    set_health(entry, button.health);
                }
            }
        }
        // Still offline in the table: the button's next heartbeat asks again.
        Err(e) => {
            tracing::warn!(buttons = ids.len(), error = %e, "online marks not recorded; the next heartbeat asks again")
        }
    }
}

/// The next batch from a marker's queue: `first`, and what else is queued already, up to
/// [`centinela_records::limits::UPDATE_BATCH_MAX`].
fn gather<T>(first: T, queue: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < centinela_records::limits::UPDATE_BATCH_MAX {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    batch
}

/// One marker write: `change` applied to the buttons `ids` (the same buttons as `buttons`) in
/// one read and one commit, the button registry told before and after, as the one writer
/// besides their actors (`crate::registry`, "Starting without a read").
async fn write_marks<'a>(
    records: &Records,
    shared: &Shared,
    buttons: impl Iterator<Item = &'a ButtonId> + Clone,
    ids: &[String],
    span: tracing::Span,
    mut change: impl FnMut(&mut Button),
) -> centinela_records::Result<Vec<Button>> {
    let registry = shared.buttons.upgrade();
    if let Some(registry) = &registry {
        for id in buttons.clone() {
            registry.write_begins(id);
        }
    }
    let result = records
        .update_many(ids, |b: &mut Button| {
            change(b);
            Ok(())
        })
        .instrument(span)
        .await;
    if let Some(registry) = &registry {
        let stored: HashMap<&ButtonId, &Button> = match &result {
            Ok(stored) => stored.iter().map(|b| (&b.id, b)).collect(),
            Err(_) => HashMap::new(),
        };
        for id in buttons {
            registry.write_ended(id, stored.get(id).map(|b| (*b).clone()));
        }
    }
    result
}
