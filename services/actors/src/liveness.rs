//! Marks silent buttons offline in batches, at a paced rate.
//!
//! Every button actor checks its own heartbeats, but a button that falls silent is recorded by
//! this node-wide marker rather than by its actor: when a district loses power, or a node takes
//! over thousands of buttons whose devices never reconnect, they all fall silent within the
//! same few seconds. One write per button then arrives as a wave that queues ahead of presses
//! and of the node's own lease keep-alive (docs/benchmarks.md, "The offline wave": 1000 silent
//! buttons stalled presses on three nodes for about a second; 100k cost a node its lease).
//!
//! The marker turns the wave into a trickle of batched transactions: requests that arrive
//! within [`limits::OFFLINE_BATCH_WINDOW`] share one read and one compare-and-swap commit
//! (up to [`centinela_records::limits::UPDATE_BATCH_MAX`] buttons), and batches start at most
//! once per [`limits::OFFLINE_BATCH_INTERVAL`]. The button actor does not wait for it: its
//! presses go on while its offline mark is queued, and the result comes back as a message.

use std::collections::HashMap;

use ractor::{ActorRef, ActorStatus};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use centinela_core::button::Button;
use centinela_core::ids::ButtonId;
use centinela_core::time::Timestamp;
use centinela_records::Records;

use crate::button::{ButtonActor, ButtonMsg};
use crate::entity::EntityMsg;
use crate::error::Error;
use crate::{Clock, limits};

/// A button's actor asking for its button to be judged, and recorded, offline.
struct Request {
    button: ButtonId,
    /// The last heartbeat the actor saw: the store's copy may be older (heartbeats are written
    /// only every [`limits::HEARTBEAT_PERSIST_INTERVAL`]).
    last_heartbeat: Timestamp,
    actor: ActorRef<EntityMsg<ButtonActor>>,
}

/// The handle every actor of a node shares (in [`crate::Context`]).
#[derive(Clone)]
pub struct OfflineMarker {
    requests: mpsc::UnboundedSender<Request>,
}

impl OfflineMarker {
    /// Starts the marker's task on the current tokio runtime; it ends when every handle is
    /// dropped. The queue is unbounded but holds at most one request per button actor of
    /// this node (an actor asks again only after its answer).
    pub fn start(records: Records, clock: Clock) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(records, clock, queue));
        Self { requests }
    }

    /// Queues `button` to be judged offline; the answer comes to `actor` as
    /// [`ButtonMsg::OfflineRecorded`]. False when the marker has stopped (the node is
    /// shutting down).
    pub fn mark(
        &self,
        button: ButtonId,
        last_heartbeat: Timestamp,
        actor: ActorRef<EntityMsg<ButtonActor>>,
    ) -> bool {
        self.requests
            .send(Request {
                button,
                last_heartbeat,
                actor,
            })
            .is_ok()
    }
}

async fn run(records: Records, clock: Clock, mut queue: mpsc::UnboundedReceiver<Request>) {
    let mut next_batch = Instant::now();
    while let Some(first) = queue.recv().await {
        // Let the rest of a wave arrive (its actors tick within milliseconds of each other),
        // and keep to the pace.
        tokio::time::sleep_until(next_batch.max(Instant::now() + limits::OFFLINE_BATCH_WINDOW))
            .await;
        let mut batch = vec![first];
        while batch.len() < centinela_records::limits::UPDATE_BATCH_MAX {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        // An actor that stopped meanwhile (its button moved to another node, or it is being
        // restarted) is not asked about: its successor judges the button afresh.
        batch.retain(|r| r.actor.get_status() == ActorStatus::Running);
        if !batch.is_empty() {
            record(&records, &clock, batch).await;
        }
        next_batch = Instant::now() + limits::OFFLINE_BATCH_INTERVAL;
    }
}

/// One batch: one read, one commit, and an answer to every actor.
async fn record(records: &Records, clock: &Clock, batch: Vec<Request>) {
    let ids: Vec<String> = batch.iter().map(|r| r.button.to_string()).collect();
    let seen: HashMap<ButtonId, Timestamp> = batch
        .iter()
        .map(|r| (r.button.clone(), r.last_heartbeat))
        .collect();
    let mut actors: HashMap<ButtonId, ActorRef<EntityMsg<ButtonActor>>> =
        batch.into_iter().map(|r| (r.button, r.actor)).collect();
    let now = clock.now();
    let span = tracing::info_span!("store.offline", buttons = ids.len());
    let result = records
        .update_many(&ids, |b: &mut Button| {
            if let Some(&seen) = seen.get(&b.id) {
                b.last_heartbeat = Some(b.last_heartbeat.map_or(seen, |t| t.max(seen)));
                b.check_liveness(now, limits::HEARTBEAT_TIMEOUT);
            }
            Ok(())
        })
        .instrument(span)
        .await;
    match result {
        Ok(buttons) => {
            for button in buttons {
                if let Some(actor) = actors.remove(&button.id) {
                    let _ = actor.cast(EntityMsg::Internal(ButtonMsg::OfflineRecorded(Ok(button))));
                }
            }
            // What is left has no record (removed from the scenario meanwhile).
            for (id, actor) in actors {
                let missing = Error::NotFound {
                    kind: "button",
                    id: id.to_string(),
                };
                let _ = actor.cast(EntityMsg::Internal(ButtonMsg::OfflineRecorded(Err(
                    missing,
                ))));
            }
        }
        Err(e) => {
            tracing::warn!(buttons = ids.len(), error = %e, "offline marks not recorded; the buttons will ask again");
            let e = Error::from(e);
            for actor in actors.into_values() {
                let _ = actor.cast(EntityMsg::Internal(ButtonMsg::OfflineRecorded(Err(
                    e.clone()
                ))));
            }
        }
    }
}
