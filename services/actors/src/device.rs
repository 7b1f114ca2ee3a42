//! The sending side of a device's channel (a camera's commands, a terminal's assignments): a
//! gRPC server stream fed through an mpsc channel the entity's actor holds.
//!
//! Each attach gets a generation number, so the "device went away" notice of an old channel
//! cannot detach a newer one. Sends never wait: a device that falls
//! [`DEVICE_CHANNEL_CAPACITY`](crate::limits::DEVICE_CHANNEL_CAPACITY) messages behind, or
//! hung up, is cut off; it reconnects and the actor re-sends what is current.

use ractor::{ActorRef, Message};
use tokio::sync::mpsc;

pub struct DeviceChannel<T> {
    current: Option<(u64, mpsc::Sender<T>)>,
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
        // Learn when the device goes away without polling: `closed` resolves when the stream
        // (the receiving side) is dropped.
        let watcher = sender.clone();
        let actor = actor.clone();
        tokio::spawn(async move {
            watcher.closed().await;
            let _ = actor.cast(detached(generation));
        });
        self.current = Some((generation, sender));
        generation
    }

    /// Forgets the channel of `generation`; false when a newer one is attached (or none).
    pub fn detach(&mut self, generation: u64) -> bool {
        if self.current.as_ref().map(|(g, _)| *g) != Some(generation) {
            return false;
        }
        self.current = None;
        true
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
        let Some((_, sender)) = &self.current else {
            return Err("no device channel");
        };
        match sender.try_send(item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.current = None;
                Err("device channel full; cut off")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.current = None;
                Err("device channel closed")
            }
        }
    }
}
