//! The live feed behind `Operator.Watch`: one set of store watches per node, fanned out to
//! every operator stream through a broadcast channel.
//!
//! The store is the source of truth, so the feed shows changes made by any node. Each event
//! carries the store revision of the change; a subscriber drops events older than its
//! snapshot. A subscriber that falls too far behind is told so ([`FeedEvent::Resync`]) and
//! takes a fresh snapshot rather than silently missing changes.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::limits;
use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::incident::Incident;
use centinela_records::{Change, Record, Records};

#[derive(Clone, Debug)]
pub enum FeedEvent {
    Incident(Arc<Incident>, i64),
    Brigade(Arc<Brigade>, i64),
    Button(Arc<Button>, i64),
    Camera(Arc<Camera>, i64),
    /// The feed itself lost events (its store watch was compacted away): re-snapshot.
    Resync,
}

pub struct Feed {
    /// `None` once closed: subscribers see the end of the feed.
    sender: std::sync::Mutex<Option<broadcast::Sender<FeedEvent>>>,
    tasks: Vec<JoinHandle<()>>,
}

trait FeedRecord: Record {
    fn event(value: Self, revision: i64) -> FeedEvent;
}

impl FeedRecord for Incident {
    fn event(value: Self, revision: i64) -> FeedEvent {
        FeedEvent::Incident(Arc::new(value), revision)
    }
}
impl FeedRecord for Brigade {
    fn event(value: Self, revision: i64) -> FeedEvent {
        FeedEvent::Brigade(Arc::new(value), revision)
    }
}
impl FeedRecord for Button {
    fn event(value: Self, revision: i64) -> FeedEvent {
        FeedEvent::Button(Arc::new(value), revision)
    }
}
impl FeedRecord for Camera {
    fn event(value: Self, revision: i64) -> FeedEvent {
        FeedEvent::Camera(Arc::new(value), revision)
    }
}

impl Feed {
    /// Starts watching from the store's current revision.
    pub async fn start(records: Records) -> Result<Self, centinela_records::Error> {
        let (sender, _) = broadcast::channel(limits::FEED_CAPACITY);
        let revision = records.revision().await?;
        let tasks = vec![
            spawn_watch::<Incident>(records.clone(), revision + 1, sender.clone()),
            spawn_watch::<Brigade>(records.clone(), revision + 1, sender.clone()),
            spawn_watch::<Button>(records.clone(), revision + 1, sender.clone()),
            spawn_watch::<Camera>(records, revision + 1, sender.clone()),
        ];
        Ok(Self {
            sender: std::sync::Mutex::new(Some(sender)),
            tasks,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        match &*self.sender.lock().expect("feed lock poisoned") {
            Some(sender) => sender.subscribe(),
            // Closed: a receiver whose sender is already gone ends at once.
            None => broadcast::channel(1).1,
        }
    }

    /// Ends the feed: every operator stream finishes, so a graceful server shutdown does not
    /// wait on consoles that would stay connected forever.
    pub fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.sender.lock().expect("feed lock poisoned").take();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.close();
    }
}

/// Follows one record kind forever, resuming after the last revision seen when the watch
/// breaks (store restart, leader change inside etcd).
fn spawn_watch<T: FeedRecord>(
    records: Records,
    mut from_revision: i64,
    sender: broadcast::Sender<FeedEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match records.watch::<T>(from_revision).await {
                Ok(mut changes) => {
                    while let Some(change) = changes.next().await {
                        match change {
                            Ok(Change::Put { value, revision }) => {
                                from_revision = revision + 1;
                                let _ = sender.send(T::event(value, revision));
                            }
                            Ok(Change::Deleted { revision, .. }) => from_revision = revision + 1,
                            Err(e) => {
                                tracing::warn!(kind = T::KIND, error = %e, "feed watch broke; resuming");
                                if e.is_compacted() {
                                    from_revision = records.revision().await.unwrap_or(0) + 1;
                                    let _ = sender.send(FeedEvent::Resync);
                                }
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(kind = T::KIND, error = %e, "feed watch failed to open"),
            }
            tokio::time::sleep(limits::REWATCH_DELAY).await;
        }
    })
}
