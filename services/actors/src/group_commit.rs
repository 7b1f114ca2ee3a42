//! Group commit of presses: the presses a node's button actors record within a short window
//! share one store transaction.
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

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use centinela_records::{PressGroup, PressOutcome, Records};

use crate::error::Error;
use crate::limits;

type Answer = centinela_records::Result<Vec<PressOutcome>>;

struct Request {
    group: PressGroup,
    answer: oneshot::Sender<Answer>,
}

/// The handle a node's presses go through (in [`crate::Router`]); cheap to clone.
#[derive(Clone)]
pub struct PressCommitter {
    records: Records,
    requests: mpsc::UnboundedSender<Request>,
}

impl PressCommitter {
    /// Starts the committer's task on the current tokio runtime; it ends when every handle is
    /// dropped. The queue is unbounded but holds at most one batch per button actor of this
    /// node (an actor hands over its next batch only after its answer) plus the presses this
    /// node records for unreachable owners, each waiting on a caller.
    pub fn start(records: Records) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(records.clone(), queue));
        Self { records, requests }
    }

    /// Records `group` (one button's presses) in the next group commit; returns once it is
    /// durable, with an outcome per press id in order.
    pub async fn record(&self, group: PressGroup) -> Result<Vec<PressOutcome>, Error> {
        let (answer, answered) = oneshot::channel();
        match self.requests.send(Request { group, answer }) {
            Ok(()) => match answered.await {
                Ok(result) => Ok(result?),
                Err(_) => Err(Error::unavailable("the press was not recorded; retry")),
            },
            // The committer has stopped (the node is shutting down): on its own.
            Err(mpsc::error::SendError(Request { group, .. })) => Ok(self
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

async fn run(records: Records, mut queue: mpsc::UnboundedReceiver<Request>) {
    let in_flight = Arc::new(Semaphore::new(limits::GROUP_COMMITS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let closes = Instant::now() + limits::PRESS_GROUP_WINDOW;
        let mut presses = first.group.press_ids.len();
        let mut batch = vec![first];
        while presses < limits::PRESS_GROUP_PRESSES_MAX {
            match tokio::time::timeout_at(closes, queue.recv()).await {
                Ok(Some(request)) => {
                    presses += request.group.press_ids.len();
                    batch.push(request);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Under load the wait for a permit is where presses pile up: they join this batch
        // rather than wait for a window of their own behind it.
        while presses < limits::PRESS_GROUP_PRESSES_MAX {
            let Ok(request) = queue.try_recv() else {
                break;
            };
            presses += request.group.press_ids.len();
            batch.push(request);
        }
        let records = records.clone();
        tokio::spawn(async move {
            let (groups, answers): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|r| (r.group, r.answer)).unzip();
            let span = tracing::debug_span!("store.press_group", groups = groups.len(), presses);
            let results = tracing::Instrument::instrument(records.press_groups(groups), span).await;
            for (answer, result) in answers.into_iter().zip(results) {
                let _ = answer.send(result);
            }
            drop(permit);
        });
    }
}
