//! Group commit of presses and closes: the presses a node's button actors record within a
//! short window share one store transaction, and so do the closes made through the node.
//!
//! Each button's actor already coalesces its own presses ([`crate::button`]); across buttons,
//! every batch a button hands over waits here at most [`limits::PRESS_GROUP_WINDOW`] for
//! others (or until [`limits::PRESS_GROUP_PRESSES_MAX`] presses are gathered), and the lot is
//! read in one transaction and written in one ([`Records::press_groups`]). Each group is
//! answered only once its write committed, so every acknowledged press is durable; a conflict
//! on one button's records sends that button's group on its own and fails no other.
//! At most [`limits::GROUP_COMMITS_IN_FLIGHT`] batches are written at once, so a burst
//! queues here rather than flooding the store, and the presses that queued while a batch
//! waited for its turn go with it: the busier the store, the larger the batches.
//!
//! Closes an operator makes through this node from the feed's copies go the same way
//! ([`CloseCommitter`]): within [`limits::CLOSE_GROUP_WINDOW`], up to
//! [`limits::CLOSE_GROUP_MAX`] share one transaction ([`Records::close_incidents_known`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use centinela_records::{Close, IncidentUpdate, PressGroup, PressOutcome, Records};

use crate::error::Error;
use crate::limits;

/// One request waiting in a committer: what it adds to a batch, and where its answer goes.
struct Request<Item, Out> {
    item: Item,
    /// Its share of the batch's size bound (a group's presses; 1 for a close).
    weight: usize,
    answer: oneshot::Sender<Out>,
}

type Queue<Item, Out> = mpsc::UnboundedSender<Request<Item, Out>>;

/// How a committer gathers: each batch waits at most `window` after its first request, or
/// until `max_weight` is reached; at most [`limits::GROUP_COMMITS_IN_FLIGHT`] are written at
/// once, and what queued while a batch waited for its turn goes with it.
#[derive(Clone, Copy)]
struct Gathering {
    window: Duration,
    max_weight: usize,
}

/// Starts a committer's task: it gathers requests as `gathering` says and hands each batch
/// to `commit`, whose outcomes (one per item, in order) answer the requests. It ends when
/// every sender is dropped.
fn start<Item, Out, F, Fut>(gathering: Gathering, commit: F) -> Queue<Item, Out>
where
    Item: Send + 'static,
    Out: Send + 'static,
    F: Fn(Vec<Item>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Out>> + Send + 'static,
{
    let (requests, queue) = mpsc::unbounded_channel();
    tokio::spawn(run(queue, gathering, commit));
    requests
}

/// Hands `item` to the committer behind `queue` and waits for its outcome; `None` if the
/// committer has stopped (the node is shutting down) and `item` comes back, or if its batch
/// was dropped unanswered.
async fn submit<Item, Out>(
    queue: &Queue<Item, Out>,
    item: Item,
    weight: usize,
) -> Result<Out, Option<Item>> {
    let (answer, answered) = oneshot::channel();
    match queue.send(Request {
        item,
        weight,
        answer,
    }) {
        Ok(()) => answered.await.map_err(|_| None),
        Err(mpsc::error::SendError(request)) => Err(Some(request.item)),
    }
}

async fn run<Item, Out, F, Fut>(
    mut queue: mpsc::UnboundedReceiver<Request<Item, Out>>,
    gathering: Gathering,
    commit: F,
) where
    Item: Send + 'static,
    Out: Send + 'static,
    F: Fn(Vec<Item>) -> Fut,
    Fut: Future<Output = Vec<Out>> + Send + 'static,
{
    let in_flight = Arc::new(Semaphore::new(limits::GROUP_COMMITS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let closes = Instant::now() + gathering.window;
        let mut weight = first.weight;
        let mut batch = vec![first];
        while weight < gathering.max_weight {
            match tokio::time::timeout_at(closes, queue.recv()).await {
                Ok(Some(request)) => {
                    weight += request.weight;
                    batch.push(request);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Under load the wait for a permit is where requests pile up: they join this batch
        // rather than wait for a window of their own behind it.
        while weight < gathering.max_weight {
            let Ok(request) = queue.try_recv() else {
                break;
            };
            weight += request.weight;
            batch.push(request);
        }
        let (items, answers): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|r| (r.item, r.answer)).unzip();
        let written = commit(items);
        tokio::spawn(async move {
            let outcomes = written.await;
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(outcome);
            }
            drop(permit);
        });
    }
}

type PressAnswer = centinela_records::Result<Vec<PressOutcome>>;

/// The handle a node's presses go through (in [`crate::Router`]); cheap to clone.
#[derive(Clone)]
pub struct PressCommitter {
    records: Records,
    requests: Queue<PressGroup, PressAnswer>,
}

impl PressCommitter {
    /// Starts the committer's task on the current tokio runtime; it ends when every handle is
    /// dropped. The queue is unbounded but holds at most one batch per button actor of this
    /// node (an actor hands over its next batch only after its answer) plus the presses this
    /// node records for unreachable owners, each waiting on a caller.
    pub fn start(records: Records) -> Self {
        let gathering = Gathering {
            window: limits::PRESS_GROUP_WINDOW,
            max_weight: limits::PRESS_GROUP_PRESSES_MAX,
        };
        let writer = records.clone();
        let requests = start(gathering, move |groups: Vec<PressGroup>| {
            let records = writer.clone();
            let presses: usize = groups.iter().map(|g| g.press_ids.len()).sum();
            let span = tracing::debug_span!("store.press_group", groups = groups.len(), presses);
            async move { tracing::Instrument::instrument(records.press_groups(groups), span).await }
        });
        Self { records, requests }
    }

    /// Records `group` (one button's presses) in the next group commit; returns once it is
    /// durable, with an outcome per press id in order.
    pub async fn record(&self, group: PressGroup) -> Result<Vec<PressOutcome>, Error> {
        let weight = group.press_ids.len();
        match submit(&self.requests, group, weight).await {
            Ok(result) => Ok(result?),
            Err(None) => Err(Error::unavailable("the press was not recorded; retry")),
            // The committer has stopped (the node is shutting down): on its own.
            Err(Some(group)) => Ok(self
                .records
                .press_many(
                    &group.button,
                    &group.press_ids,
                    group.now,
                    group.debounce,
                    group.trace,
                )
                .await?),
        }
    }
}

type CloseAnswer = centinela_records::Result<IncidentUpdate>;

/// The handle a node's closes from held copies go through (in [`crate::Router`]): the
/// closes operators make through this node within [`limits::CLOSE_GROUP_WINDOW`] share one
/// transaction ([`Records::close_incidents_known`]), each as durable and as guarded as on its
/// own. Cheap to clone.
#[derive(Clone)]
pub struct CloseCommitter {
    records: Records,
    requests: Queue<Close, CloseAnswer>,
}

impl CloseCommitter {
    /// Starts the committer's task on the current tokio runtime; it ends when every handle is
    /// dropped. The queue holds at most one close per operator request waiting on it.
    pub fn start(records: Records) -> Self {
        let gathering = Gathering {
            window: limits::CLOSE_GROUP_WINDOW,
            max_weight: limits::CLOSE_GROUP_MAX,
        };
        let writer = records.clone();
        let requests = start(gathering, move |closes: Vec<Close>| {
            let records = writer.clone();
            let span = tracing::debug_span!("store.close_group", closes = closes.len());
            async move {
                tracing::Instrument::instrument(records.close_incidents_known(closes), span).await
            }
        });
        Self { records, requests }
    }

    /// Makes `close` in the next group commit; returns once it is durable, with the records'
    /// own outcome.
    pub async fn close(&self, close: Close) -> CloseAnswer {
        match submit(&self.requests, close, 1).await {
            Ok(result) => result,
            Err(None) => Err(centinela_records::Error::Store {
                message: "the close's batch ended unanswered; retry".into(),
                retryable: true,
            }),
            // The committer has stopped (the node is shutting down): on its own.
            Err(Some(close)) => {
                self.records
                    .close_incident_known(&close.held, close.resolution, close.actor, close.now)
                    .await
            }
        }
    }
}
