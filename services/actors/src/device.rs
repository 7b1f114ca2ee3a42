//! The sending side of a device's channel (a camera's commands, a terminal's assignments): a
//! gRPC server stream fed through an mpsc channel.
//!
//! A brigade's terminal channel is held by the brigade's actor ([`DeviceChannel`]): a brigade
//! with a terminal is never idle. A native camera's is held by the node ([`DeviceLinks`]),
//! so the camera's actor passivates while its device stays attached: a camera holds its
//! stream for days and has something to do only around an incident.
//!
//! Each attach gets a generation number, so the "device went away" notice of an old channel
//! cannot detach a newer one. Sends never wait: a device that falls
//! [`DEVICE_CHANNEL_CAPACITY`](crate::limits::DEVICE_CHANNEL_CAPACITY) messages behind, or
//! hung up, is cut off; it reconnects and the actor re-sends what is current.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ractor::{ActorRef, Message, RpcReplyPort};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use centinela_core::brigade::Brigade;
use centinela_core::camera::Camera;

use crate::brigade::{BrigadeActor, BrigadeMsg, TerminalEvent};
use crate::camera::{CameraActor, CameraCommand, CameraMsg};
use crate::entity::Entity;
use crate::error::Error;
use crate::transport::ChannelKind;

/// A device channel an entity keeps: what it carries, and how it is attached.
pub trait DeviceEntity: Entity {
    /// What the channel carries to the device.
    type Item: Serialize + DeserializeOwned + Send + 'static;
    /// Which of the `Peer` service's channels proxies it.
    const CHANNEL: ChannelKind;

    /// The message that attaches `sender` to the actor.
    fn attach(
        sender: mpsc::Sender<Self::Item>,
        reply: RpcReplyPort<Result<Self::Record, Error>>,
    ) -> Self::Internal;
}

/// A camera's commands go boxed: tokio allocates a channel's first block of 32 slots up front,
/// and an attached camera's channel is open for days; 32 boxes are 256 bytes, 32 commands 2.5 KB.
impl DeviceEntity for CameraActor {
    type Item = Box<CameraCommand>;
    const CHANNEL: ChannelKind = ChannelKind::Camera;

    fn attach(
        commands: mpsc::Sender<Box<CameraCommand>>,
        reply: RpcReplyPort<Result<Camera, Error>>,
    ) -> CameraMsg {
        CameraMsg::Attach { commands, reply }
    }
}

/// A terminal's events go boxed too: an assignment is ~100 bytes, so 32 of them are 3.2 KB a
/// unit for as long as its terminal is attached.
impl DeviceEntity for BrigadeActor {
    type Item = Box<TerminalEvent>;
    const CHANNEL: ChannelKind = ChannelKind::Unit;

    fn attach(
        events: mpsc::Sender<Box<TerminalEvent>>,
        reply: RpcReplyPort<Result<Brigade, Error>>,
    ) -> BrigadeMsg {
        BrigadeMsg::Attach { events, reply }
    }
}

/// The current channel: its generation, its sender, and the task that notices the device
/// leaving. That task holds a clone of the sender (to await `closed`), so it must be aborted
/// whenever the channel is dropped or replaced: otherwise the device's stream would stay open
/// forever after the actor stopped (ownership moved, node shutting down), the device would
/// never reconnect, and a graceful shutdown would wait on it.
struct Current<T> {
    generation: u64,
    sender: mpsc::Sender<T>,
    watcher: JoinHandle<()>,
}

impl<T> Drop for Current<T> {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

pub struct DeviceChannel<T> {
    current: Option<Current<T>>,
    generation: u64,
}

impl<T> Default for DeviceChannel<T> {
    fn default() -> Self {
        Self {
            current: None,
            generation: 0,
        }
    }
}

/// Starts the task that notices the device leaving: `closed` resolves when the stream (the
/// receiving side) is dropped.
fn watch_closed<T: Send + 'static>(
    sender: &mpsc::Sender<T>,
    generation: u64,
    closed: impl FnOnce(u64) + Send + 'static,
) -> JoinHandle<()> {
    let watch = sender.clone();
    tokio::spawn(async move {
        watch.closed().await;
        closed(generation);
    })
}

/// Sends `item` on `current` without waiting; `Err` says why not (full or closed: the caller
/// cuts the channel off).
fn try_send<T>(current: &Current<T>, item: T) -> Result<(), &'static str> {
    match current.sender.try_send(item) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => Err("device channel full; cut off"),
        Err(mpsc::error::TrySendError::Closed(_)) => Err("device channel closed"),
    }
}

impl<T: Send + 'static> DeviceChannel<T> {
    /// Attaches `sender`, replacing any previous channel, and has `detached(generation)` cast to
    /// `actor` when the device hangs up. Returns the new generation.
    pub fn attach<M: Message>(
        &mut self,
        sender: mpsc::Sender<T>,
        actor: &ActorRef<M>,
        detached: impl FnOnce(u64) -> M + Send + 'static,
    ) -> u64 {
        self.generation += 1;
        let generation = self.generation;
        let actor = actor.clone();
        let watcher = watch_closed(&sender, generation, move |generation| {
            let _ = actor.cast(detached(generation));
        });
        // Replacing the previous channel drops it (and its watcher): its stream ends.
        self.current = Some(Current {
            generation,
            sender,
            watcher,
        });
        generation
    }

    /// Forgets the channel of `generation`; false when a newer one is attached (or none).
    pub fn detach(&mut self, generation: u64) -> bool {
        if self.current.as_ref().map(|c| c.generation) != Some(generation) {
            return false;
        }
        self.current = None;
        true
    }

    /// Whether a channel is attached and its device's stream still open. A stream whose
    /// receiving side was dropped (the device hung up, its connection died and keep-alive
    /// noticed) is not live, even before its detach notice reached the actor.
    pub fn is_live(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|current| !current.sender.is_closed())
    }

    pub fn is_attached(&self) -> bool {
        self.current.is_some()
    }

    /// The generation of the latest attach (current or not).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Sends `item` without waiting. `Err` says why it was not delivered: no channel, or the
    /// channel was full or closed (and is now cut off).
    pub fn send(&mut self, item: T) -> Result<(), &'static str> {
        let Some(current) = &self.current else {
            return Err("no device channel");
        };
        try_send(current, item).inspect_err(|_| self.current = None)
    }
}

/// The device channels of one kind of entity on this node, by entity: held here rather than
/// in the entity's actor, so the actor can passivate while its device stays attached.
///
/// An entry lives from its device's attach until the device hangs up (the channel's watcher
/// tells the entity, whose actor [`detach`](Self::detach)es it), a newer attach replaces it,
/// the node stops owning the entity ([`remove`](Self::remove)) or the node shuts down
/// ([`clear`](Self::clear)). Dropping an entry ends the device's stream, so the device
/// reconnects, to whichever node owns it then.
pub struct DeviceLinks<K, T> {
    links: Mutex<HashMap<K, Current<T>>>,
    generations: AtomicU64,
}

impl<K, T> Default for DeviceLinks<K, T> {
    fn default() -> Self {
        Self {
            links: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
        }
    }
}

impl<K: Eq + Hash + Clone, T: Send + 'static> DeviceLinks<K, T> {
    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<K, Current<T>>> {
        self.links.lock().expect("device links lock poisoned")
    }

    /// Attaches `sender` as `key`'s channel, replacing (and so ending) any previous one, and
    /// calls `closed(generation)` when the device hangs up. Returns the new generation.
    pub fn attach(
        &self,
        key: K,
        sender: mpsc::Sender<T>,
        closed: impl FnOnce(u64) + Send + 'static,
    ) -> u64 {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let watcher = watch_closed(&sender, generation, closed);
        let current = Current {
            generation,
            sender,
            watcher,
        };
        // The replaced entry is dropped outside the lock (its drop aborts a task).
        let replaced = self.links().insert(key, current);
        drop(replaced);
        generation
    }

    /// Forgets `key`'s channel of `generation`; false when a newer one is attached (or none).
    pub fn detach(&self, key: &K, generation: u64) -> bool {
        let mut links = self.links();
        if links.get(key).map(|c| c.generation) != Some(generation) {
            return false;
        }
        let removed = links.remove(key);
        drop(links);
        drop(removed);
        true
    }

    /// Ends `key`'s channel, if any: the node no longer owns the entity.
    pub fn remove(&self, key: &K) {
        let removed = self.links().remove(key);
        drop(removed);
    }

    /// Ends every channel: the node is shutting down.
    pub fn clear(&self) {
        let all = std::mem::take(&mut *self.links());
        drop(all);
    }

    /// Whether `key` has a channel attached (its stream may have just closed: the detach
    /// notice is on its way).
    pub fn is_attached(&self, key: &K) -> bool {
        self.links().contains_key(key)
    }

    /// How many channels are attached.
    pub fn len(&self) -> usize {
        self.links().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `item` to `key`'s device without waiting. `Err` says why it was not delivered:
    /// no channel, or the channel was full or closed (and is now cut off).
    pub fn send(&self, key: &K, item: T) -> Result<(), &'static str> {
        let mut links = self.links();
        let Some(current) = links.get(key) else {
            return Err("no device channel");
        };
        try_send(current, item).inspect_err(|_| {
            let removed = links.remove(key);
            drop(links);
            drop(removed);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};
    use std::time::Duration;

    struct Sink;

    impl Actor for Sink {
        type Msg = u64;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<u64>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// The regression behind a cluster bug: an actor stopped when its entity moved to another
    /// node kept the device's stream open (the detach watcher held a sender), so the device
    /// never reconnected to the new owner.
    #[tokio::test]
    async fn dropping_or_replacing_the_channel_ends_the_device_stream() {
        let (actor, _) = Actor::spawn(None, Sink, ()).await.unwrap();
        let mut channel = DeviceChannel::default();
        let (tx, mut first) = mpsc::channel::<u32>(4);
        channel.attach(tx, &actor, |g| g);
        channel.send(7).unwrap();
        assert_eq!(first.recv().await, Some(7));

        let (tx, mut second) = mpsc::channel::<u32>(4);
        channel.attach(tx, &actor, |g| g);
        let ended = tokio::time::timeout(Duration::from_secs(10), first.recv()).await;
        assert_eq!(ended, Ok(None), "the replaced channel's stream ends");

        drop(channel);
        let ended = tokio::time::timeout(Duration::from_secs(10), second.recv()).await;
        assert_eq!(ended, Ok(None), "a dropped channel's stream ends");
        actor.stop(None);
    }
}
