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
//!
//! So do the marks devices make by their contact alone ([`MarkCommitter`]): cameras' devices
//! attaching and going away ([`PresenceCommitter`]), buttons recorded offline heard from again
//! ([`HeardCommitter`]), and units' positions due to be stored ([`PositionCommitter`]). Within [`limits::MARK_GROUP_WINDOW`], up to
//! [`centinela_records::limits::UPDATE_BATCH_MAX`] records of a kind are marked in one read and
//! one commit ([`Records::update_many`]), so a district's devices reconnecting after an outage
//! (or a city's at its start) cost the store a transaction per batch, not a few per device.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use centinela_core::brigade::{Brigade, BrigadeStatus};
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::geo::Position;
use centinela_core::time::Timestamp;
use centinela_records::{Close, IncidentUpdate, PressGroup, PressOutcome, Record, Records};

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

/// A change a node makes to a device's record because of the device's contact alone (a camera
/// attaching or going away, a silent button heard again, a unit's new position): batched with
/// others of its kind by a [`MarkCommitter`]. A mark the record refuses is refused for that
/// record alone.
pub trait Mark<T>: Copy + Send + Sync + 'static {
    fn apply(self, record: &mut T) -> centinela_records::Result<()>;
}

/// A camera's device, as its actor records it: attached (online), or gone at a time (offline,
/// which raises the camera-offline alert).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Online,
    Offline(Timestamp),
}

impl Mark<Camera> for Presence {
    fn apply(self, camera: &mut Camera) -> centinela_records::Result<()> {
        match self {
            Presence::Online => camera.set_online(),
            Presence::Offline(now) => camera.set_offline(now),
        }
        Ok(())
    }
}

/// A button the node had recorded offline was heard from at this time: online again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heard(pub Timestamp);

impl Mark<Button> for Heard {
    fn apply(self, button: &mut Button) -> centinela_records::Result<()> {
        button.heartbeat(self.0);
        Ok(())
    }
}

/// A unit's terminal reported this position at this time, due to be stored: a sign of life
/// too, so an offline unit comes back available.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moved {
    pub position: Position,
    pub at: Timestamp,
}

impl Mark<Brigade> for Moved {
    fn apply(self, brigade: &mut Brigade) -> centinela_records::Result<()> {
        if brigade.status == BrigadeStatus::Offline {
            brigade.come_online(self.at)?;
        }
        brigade.move_to(self.position);
        Ok(())
    }
}

/// The cameras' presences, recorded together.
pub type PresenceCommitter = MarkCommitter<Camera, Presence>;

/// The buttons heard from again after being recorded offline, recorded together.
pub type HeardCommitter = MarkCommitter<Button, Heard>;

/// The units' positions due to be stored, recorded together.
pub type PositionCommitter = MarkCommitter<Brigade, Moved>;

/// The handle through which a node's actors record marks of one kind of record (in
/// [`crate::Router`]): within [`limits::MARK_GROUP_WINDOW`], up to
/// [`centinela_records::limits::UPDATE_BATCH_MAX`] records share one read and one commit
/// ([`Records::update_many`]). Each answer is the record as stored after the change, from a
/// current read, so an actor that was not running learns there what other nodes did meanwhile.
/// A batch the store does not take as a whole (contention past its attempts, a record gone) is
/// recorded record by record, so no record's mark fails for another's. Cheap to clone.
pub struct MarkCommitter<T, M> {
    records: Records,
    requests: Queue<(String, M), centinela_records::Result<T>>,
}

impl<T, M> Clone for MarkCommitter<T, M> {
    fn clone(&self) -> Self {
        Self {
            records: self.records.clone(),
            requests: self.requests.clone(),
        }
    }
}

impl<T: Record, M: Mark<T>> MarkCommitter<T, M> {
    /// Starts the committer's task on the current tokio runtime; it ends when every handle is
    /// dropped. The queue holds at most one request per actor of this node (each waits for
    /// its answer).
    pub fn start(records: Records) -> Self {
        let gathering = Gathering {
            window: limits::MARK_GROUP_WINDOW,
            max_weight: centinela_records::limits::UPDATE_BATCH_MAX,
        };
        let writer = records.clone();
        let requests = start(gathering, move |marks: Vec<(String, M)>| {
            let span =
                tracing::debug_span!("store.mark_group", kind = T::KIND, records = marks.len());
            tracing::Instrument::instrument(record_marks(writer.clone(), marks), span)
        });
        Self { records, requests }
    }

    /// Records `mark` on the record `id` in the next batch; returns once it is durable, with
    /// the stored record.
    pub async fn record(&self, id: &str, mark: M) -> centinela_records::Result<T> {
        match submit(&self.requests, (id.to_string(), mark), 1).await {
            Ok(result) => result,
            Err(None) => Err(centinela_records::Error::Store {
                message: format!("the {} batch ended unanswered; retry", T::KIND),
                retryable: true,
            }),
            // The committer has stopped (the node is shutting down): on its own.
            Err(Some((id, mark))) => self.records.update(&id, |r: &mut T| mark.apply(r)).await,
        }
    }
}

/// One batch of marks: in one transaction when the store takes it, else one by one. A record
/// twice in a batch (it cannot be: its actor waits for each answer) would get its last mark.
async fn record_marks<T: Record, M: Mark<T>>(
    records: Records,
    marks: Vec<(String, M)>,
) -> Vec<centinela_records::Result<T>> {
    let wanted: HashMap<&str, M> = marks.iter().map(|(id, m)| (id.as_str(), *m)).collect();
    let ids: Vec<String> = marks.iter().map(|(id, _)| id.clone()).collect();
    let batch = records
        .update_many::<T>(&ids, |record| match wanted.get(record.record_id()) {
            Some(mark) => mark.apply(record),
            None => Ok(()),
        })
        .await;
    let mut stored: HashMap<String, T> = match batch {
        Ok(found) => found
            .into_iter()
            .map(|r| (r.record_id().to_string(), r))
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, kind = T::KIND, records = ids.len(), "mark batch not taken; one by one");
            HashMap::new()
        }
    };
    let mut answers = Vec::with_capacity(marks.len());
    for (id, mark) in marks {
        let answer = match stored.remove(&id) {
            Some(record) => Ok(record),
            None => records.update(&id, |r: &mut T| mark.apply(r)).await,
        };
        answers.push(answer);
    }
    answers
}

#[cfg(test)]
mod tests {
    use centinela_core::scenario::Scenario;
    use centinela_store::{EmbeddedStore, Store};

    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_795_817_112_345);

    /// Lima's scenario seeded in an embedded store (kept alive by the returned handle).
    async fn lima() -> (EmbeddedStore, Records, Scenario) {
        let embedded = EmbeddedStore::new();
        let records = Records::new(Store::embedded(&embedded));
        let scenario = Scenario::lima_centro();
        records.seed(&scenario, NOW).await.expect("seed");
        (embedded, records, scenario)
    }

    #[tokio::test]
    async fn units_moving_together_cost_one_write_and_a_missing_one_fails_no_other() {
        let (_store, records, scenario) = lima().await;
        let units: Vec<(String, Position)> = scenario
            .brigades
            .iter()
            .map(|b| {
                let moved = Position::new(b.lat + 0.001, b.lon).unwrap();
                (b.id.to_string(), moved)
            })
            .collect();
        assert!(units.len() >= 3, "{units:?}");
        let committer = PositionCommitter::start(records.clone());
        let before = records.revision().await.unwrap();
        let at = Timestamp::from_millis(NOW.as_millis() + 2_000);
        let moving = units.iter().map(|(id, position)| {
            committer.record(
                id,
                Moved {
                    position: *position,
                    at,
                },
            )
        });
        let stray = Moved {
            position: units[0].1,
            at,
        };
        let (answers, missing) = tokio::join!(
            futures::future::join_all(moving),
            committer.record("U-UNKNOWN", stray)
        );
        for ((id, position), answer) in units.iter().zip(&answers) {
            let unit = answer.as_ref().unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(unit.position, *position, "{id} answered as stored");
            // The store's copy went through serde's floats: equal to within a millimetre.
            let stored = records.brigade(&unit.id).await.unwrap().unwrap();
            let off_m = stored.position.distance_m(position);
            assert!(off_m < 0.001, "{id} moved in the store ({off_m} m off)");
        }
        assert!(
            matches!(missing, Err(centinela_records::Error::NotFound { .. })),
            "{missing:?}"
        );
        assert_eq!(records.revision().await.unwrap() - before, 1);
    }

    #[tokio::test]
    async fn cameras_attaching_together_cost_one_write_and_a_missing_one_fails_no_other() {
        let (_store, records, scenario) = lima().await;
        let now = NOW;
        let cameras: Vec<String> = scenario
            .buttons
            .iter()
            .map(|b| b.camera.id.to_string())
            .collect();
        assert!(cameras.len() >= 3, "{cameras:?}");
        let committer = PresenceCommitter::start(records.clone());
        let before = records.revision().await.unwrap();
        // The scenario's cameras attach at once, and one camera nobody seeded.
        let attaching = cameras
            .iter()
            .map(|id| committer.record(id, Presence::Online));
        let (answers, missing) = tokio::join!(
            futures::future::join_all(attaching),
            committer.record("Q-UNKNOWN", Presence::Online)
        );
        for (id, answer) in cameras.iter().zip(&answers) {
            let camera = answer.as_ref().unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(camera.online, "{id} answered as stored, online");
            let stored = records.camera(&camera.id).await.unwrap().unwrap();
            assert!(stored.online, "{id} is online in the store");
        }
        assert!(
            matches!(missing, Err(centinela_records::Error::NotFound { .. })),
            "{missing:?}"
        );
        // One batch: one store revision for all of them.
        assert_eq!(records.revision().await.unwrap() - before, 1);
        // Gone again, together; an offline camera raises its alert.
        let later = Timestamp::from_millis(now.as_millis() + 60_000);
        let gone = cameras
            .iter()
            .map(|id| committer.record(id, Presence::Offline(later)));
        for answer in futures::future::join_all(gone).await {
            assert!(!answer.expect("offline recorded").online);
        }
        assert_eq!(records.revision().await.unwrap() - before, 2);
    }
}
