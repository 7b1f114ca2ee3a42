//! Watch streams of the embedded store.
//!
//! Each `Watch` RPC gets an [`Outbox`] (a bounded queue of responses that the gRPC response
//! stream drains) and a task that reads the client's create/cancel/progress requests. Writers
//! publish a revision's events to every matching watcher *under the store lock*, with a
//! non-blocking push; so events of one revision travel together, in revision order, and a slow
//! client never blocks a writer. When a stream's outbox is full the watcher is removed and gets a
//! canceled response (queued past the bound, so it always arrives, after every event it was
//! sent): nothing is ever dropped silently, and the client resumes from its last revision + 1.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use tokio::sync::Notify;
use tonic::Status;

use super::Core;
use super::mvcc::{Change, KeyRange};
use crate::limits;
use crate::pb::etcdserverpb::{
    WatchCreateRequest, WatchRequest, WatchResponse, watch_create_request::FilterType,
    watch_request,
};
use crate::pb::mvccpb::event::EventType;

/// etcd's reason for a watch canceled because its start revision was compacted.
const REASON_COMPACTED: &str = "mvcc: required revision has been compacted";
/// etcd's reason for a watch ID already used on the stream.
const REASON_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// Our reason when a watcher's stream fell [`limits::WATCH_OUTBOX_RESPONSES_MAX`] behind.
pub(crate) const REASON_TOO_SLOW: &str = "centinela embedded store: watcher too slow, its stream queue is full; resume from the last received revision + 1";

/// The response stream type of the embedded `Watch` RPC.
pub(crate) type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send + 'static>>;

/// A bounded queue of responses for one watch stream.
pub(crate) struct Outbox {
    state: Mutex<OutboxState>,
    capacity: usize,
    /// Wakes the response stream (one consumer).
    readable: Notify,
    /// Wakes the stream task waiting for room to replay history (one producer waits).
    writable: Notify,
    /// Wakes the stream task when the client is gone.
    closed: Notify,
}

struct OutboxState {
    queue: VecDeque<WatchResponse>,
    closed: bool,
}

impl Outbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Outbox {
            state: Mutex::new(OutboxState {
                queue: VecDeque::new(),
                closed: false,
            }),
            capacity: capacity.max(1),
            readable: Notify::new(),
            writable: Notify::new(),
            closed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxState> {
        self.state.lock().expect("watch outbox lock poisoned")
    }

    /// Queues `response` if there is room. `false` means full: the caller must cancel the
    /// watcher. (A closed outbox accepts and discards: its client is gone.)
    fn try_push(&self, response: WatchResponse) -> bool {
        let mut state = self.lock();
        if state.closed {
            return true;
        }
        if state.queue.len() >= self.capacity {
            return false;
        }
        state.queue.push_back(response);
        drop(state);
        self.readable.notify_one();
        true
    }

    /// Queues `response` even past the bound: control responses (created, canceled, progress)
    /// are few and must never be lost.
    fn push_control(&self, response: WatchResponse) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.queue.push_back(response);
        drop(state);
        self.readable.notify_one();
    }

    /// Waits until there is room, then queues. `false` if the client is gone.
    async fn push(&self, response: WatchResponse) -> bool {
        loop {
            {
                let mut state = self.lock();
                if state.closed {
                    return false;
                }
                if state.queue.len() < self.capacity {
                    state.queue.push_back(response);
                    drop(state);
                    self.readable.notify_one();
                    return true;
                }
            }
            // `notify_one` stores a permit, so a pop between the check and here is not missed.
            self.writable.notified().await;
        }
    }

    async fn pop(&self) -> Option<WatchResponse> {
        loop {
            {
                let mut state = self.lock();
                if let Some(response) = state.queue.pop_front() {
                    drop(state);
                    self.writable.notify_one();
                    return Some(response);
                }
                if state.closed {
                    return None;
                }
            }
            self.readable.notified().await;
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_one();
        self.writable.notify_one();
        self.closed.notify_one();
    }

    async fn wait_closed(&self) {
        loop {
            if self.lock().closed {
                return;
            }
            self.closed.notified().await;
        }
    }

    #[cfg(test)]
    pub(crate) fn drain(&self) -> Vec<WatchResponse> {
        self.lock().queue.drain(..).collect()
    }
}

/// One registered watcher: it receives every event with revision `>= next_revision` in `range`.
#[derive(Clone)]
struct Watcher {
    range: KeyRange,
    next_revision: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    outbox: Arc<Outbox>,
}

impl Watcher {
    fn wants(&self, change: &Change) -> bool {
        change.revision() >= self.next_revision
            && self.range.contains(&change.kv.key)
            && match change.kind {
                EventType::Put => !self.no_put,
                EventType::Delete => !self.no_delete,
            }
    }
}

/// Every synced watcher of the store, keyed by (stream id, watch id).
#[derive(Default)]
pub(crate) struct Watchers {
    by_id: BTreeMap<(u64, i64), Watcher>,
}

impl Watchers {
    /// How many watchers' ranges hold `key`.
    pub(crate) fn covering(&self, key: &[u8]) -> usize {
        self.by_id
            .values()
            .filter(|watcher| watcher.range.contains(key))
            .count()
    }

    /// Delivers one committed revision's `changes` to every interested watcher, in one response
    /// each. Called under the store lock, right after the commit.
    pub(crate) fn publish(&mut self, changes: &[Change]) {
        let Some(revision) = changes.first().map(Change::revision) else {
            return;
        };
        debug_assert!(changes.iter().all(|c| c.revision() == revision));
        let mut overflowed = Vec::new();
        for (&(stream, watch_id), watcher) in &self.by_id {
            let events: Vec<_> = changes
                .iter()
                .filter(|change| watcher.wants(change))
                .map(|change| change.to_event(watcher.prev_kv))
                .collect();
            if events.is_empty() {
                continue;
            }
            let response = WatchResponse {
                header: Some(super::header(revision)),
                watch_id,
                events,
                ..WatchResponse::default()
            };
            if !watcher.outbox.try_push(response) {
                overflowed.push((stream, watch_id));
            }
        }
        for id in overflowed {
            if let Some(watcher) = self.by_id.remove(&id) {
                tracing::warn!(
                    stream = id.0,
                    watch_id = id.1,
                    revision,
                    "watcher too slow, canceled"
                );
                watcher.outbox.push_control(WatchResponse {
                    header: Some(super::header(revision)),
                    watch_id: id.1,
                    canceled: true,
                    cancel_reason: REASON_TOO_SLOW.to_owned(),
                    ..WatchResponse::default()
                });
            }
        }
    }

    fn remove_stream(&mut self, stream: u64) {
        self.by_id.retain(|(s, _), _| *s != stream);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// Starts serving one `Watch` RPC: spawns the request task and returns the response stream.
pub(crate) fn open(core: Arc<Core>, requests: tonic::Streaming<WatchRequest>) -> ResponseStream {
    let stream_id = core.next_stream_id();
    let outbox = Arc::new(Outbox::new(core.options.watch_outbox_responses_max));
    let session = Session {
        core: core.clone(),
        stream_id,
        outbox: outbox.clone(),
        next_watch_id: 0,
    };
    tokio::spawn(session.run(requests));
    // The guard unregisters this stream's watchers when tonic drops the response stream
    // (client gone), even if the request task is still waiting.
    let guard = StreamGuard {
        core,
        stream_id,
        outbox,
    };
    Box::pin(futures::stream::unfold(guard, |guard| async move {
        let response = guard.outbox.pop().await?;
        Some((Ok(response), guard))
    }))
}

struct StreamGuard {
    core: Arc<Core>,
    stream_id: u64,
    outbox: Arc<Outbox>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.outbox.close();
        self.core.lock().watchers.remove_stream(self.stream_id);
    }
}

/// Progress of a history replay.
enum ReplayStep {
    /// Caught up and registered, or canceled.
    Done,
    /// Queue `response` (waiting for room), then continue from `next`.
    More {
        response: Option<WatchResponse>,
        next: i64,
    },
}

/// The request side of one watch stream.
struct Session {
    core: Arc<Core>,
    stream_id: u64,
    outbox: Arc<Outbox>,
    /// Next automatically assigned watch ID (etcd assigns 0, 1, 2... per stream).
    next_watch_id: i64,
}

impl Session {
    async fn run(mut self, mut requests: tonic::Streaming<WatchRequest>) {
        let period = limits::WATCH_PROGRESS_NOTIFY_INTERVAL;
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.message() => match request {
                    Ok(Some(request)) => {
                        if !self.handle(request).await {
                            break;
                        }
                    }
                    // etcd ends the whole stream when the client stops sending.
                    Ok(None) | Err(_) => break,
                },
                _ = progress.tick() => self.notify_progress(),
                () = self.outbox.wait_closed() => break,
            }
        }
        self.core.lock().watchers.remove_stream(self.stream_id);
        self.outbox.close();
    }

    /// Returns `false` when the client is gone.
    async fn handle(&mut self, request: WatchRequest) -> bool {
        match request.request_union {
            Some(watch_request::RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(watch_request::RequestUnion::CancelRequest(cancel)) => {
                self.cancel(cancel.watch_id);
                true
            }
            Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                // etcd 3.4: one response with watch_id -1 for the whole stream; every later
                // event of any of its watchers has a higher revision than this header.
                let shared = self.core.lock();
                self.outbox.push_control(WatchResponse {
                    header: Some(super::header(shared.mvcc.revision())),
                    watch_id: -1,
                    ..WatchResponse::default()
                });
                true
            }
            None => true,
        }
    }

    fn assign_watch_id(&mut self, requested: i64) -> Option<i64> {
        let shared = self.core.lock();
        let in_use = |id: i64| shared.watchers.by_id.contains_key(&(self.stream_id, id));
        if requested != 0 {
            return (!in_use(requested)).then_some(requested);
        }
        while in_use(self.next_watch_id) {
            self.next_watch_id += 1;
        }
        let id = self.next_watch_id;
        self.next_watch_id += 1;
        Some(id)
    }

    async fn create(&mut self, create: WatchCreateRequest) -> bool {
        let Some(watch_id) = self.assign_watch_id(create.watch_id) else {
            let revision = self.core.lock().mvcc.revision();
            // etcd answers with watch ID -1: no watcher was made.
            self.outbox.push_control(WatchResponse {
                header: Some(super::header(revision)),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: REASON_DUPLICATE_ID.to_owned(),
                ..WatchResponse::default()
            });
            return true;
        };
        let watcher = Watcher {
            range: KeyRange::new(&create.key, &create.range_end),
            next_revision: 0,
            no_put: create.filters.contains(&(FilterType::Noput as i32)),
            no_delete: create.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: create.prev_kv,
            progress_notify: create.progress_notify,
            outbox: self.outbox.clone(),
        };

        let mut next_revision = {
            let mut shared = self.core.lock();
            let current = shared.mvcc.revision();
            self.outbox.push_control(WatchResponse {
                header: Some(super::header(current)),
                watch_id,
                created: true,
                ..WatchResponse::default()
            });
            let start = if create.start_revision <= 0 {
                current + 1
            } else {
                create.start_revision
            };
            if start > current {
                // Nothing to replay: from now on the writers deliver.
                shared.watchers.by_id.insert(
                    (self.stream_id, watch_id),
                    Watcher {
                        next_revision: start,
                        ..watcher
                    },
                );
                return true;
            }
            start
        };

        // Replay history in batches of whole revisions. The lock is released while waiting for
        // room; the last batch is queued and the watcher registered under one lock, so no
        // revision is missed or sent twice between replay and live delivery.
        loop {
            match self.replay_step(&watcher, watch_id, next_revision) {
                ReplayStep::Done => return true,
                ReplayStep::More { response, next } => {
                    next_revision = next;
                    if let Some(response) = response
                        && !self.outbox.push(response).await
                    {
                        return false;
                    }
                }
            }
        }
    }

    /// One batch of replay from `next_revision`, under the lock.
    fn replay_step(&self, watcher: &Watcher, watch_id: i64, next_revision: i64) -> ReplayStep {
        let mut shared = self.core.lock();
        let compact_revision = shared.mvcc.compact_revision();
        if next_revision < compact_revision {
            self.outbox.push_control(WatchResponse {
                header: Some(super::header(shared.mvcc.revision())),
                watch_id,
                canceled: true,
                compact_revision,
                cancel_reason: REASON_COMPACTED.to_owned(),
                ..WatchResponse::default()
            });
            return ReplayStep::Done;
        }
        let current = shared.mvcc.revision();
        let mut events = Vec::new();
        let mut last_revision = next_revision - 1;
        let mut caught_up = true;
        for change in shared.mvcc.history_from(next_revision) {
            if events.len() >= limits::WATCH_REPLAY_BATCH_EVENTS
                && change.revision() != last_revision
            {
                caught_up = false;
                break;
            }
            last_revision = change.revision();
            if watcher.range.contains(&change.kv.key)
                && match change.kind {
                    EventType::Put => !watcher.no_put,
                    EventType::Delete => !watcher.no_delete,
                }
            {
                events.push(change.to_event(watcher.prev_kv));
            }
        }
        let response = (!events.is_empty()).then(|| WatchResponse {
            header: Some(super::header(current)),
            watch_id,
            events,
            ..WatchResponse::default()
        });
        if !caught_up {
            return ReplayStep::More {
                response,
                next: last_revision + 1,
            };
        }
        if let Some(response) = response {
            self.outbox.push_control(response);
        }
        shared.watchers.by_id.insert(
            (self.stream_id, watch_id),
            Watcher {
                next_revision: current + 1,
                ..watcher.clone()
            },
        );
        ReplayStep::Done
    }

    fn cancel(&mut self, watch_id: i64) {
        let mut shared = self.core.lock();
        if shared
            .watchers
            .by_id
            .remove(&(self.stream_id, watch_id))
            .is_some()
        {
            self.outbox.push_control(WatchResponse {
                header: Some(super::header(shared.mvcc.revision())),
                watch_id,
                canceled: true,
                ..WatchResponse::default()
            });
        }
    }

    fn notify_progress(&self) {
        let shared = self.core.lock();
        let revision = shared.mvcc.revision();
        let from = (self.stream_id, i64::MIN);
        let to = (self.stream_id, i64::MAX);
        for (&(_, watch_id), watcher) in shared.watchers.by_id.range(from..=to) {
            if watcher.progress_notify {
                watcher.outbox.push_control(WatchResponse {
                    header: Some(super::header(revision)),
                    watch_id,
                    ..WatchResponse::default()
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::mvccpb::KeyValue;

    fn change(revision: i64, key: &str) -> Change {
        Change {
            kind: EventType::Put,
            kv: KeyValue {
                key: key.into(),
                mod_revision: revision,
                create_revision: revision,
                version: 1,
                ..KeyValue::default()
            },
            prev: None,
        }
    }

    fn watcher(outbox: &Arc<Outbox>, range: KeyRange) -> Watcher {
        Watcher {
            range,
            next_revision: 0,
            no_put: false,
            no_delete: false,
            prev_kv: false,
            progress_notify: false,
            outbox: outbox.clone(),
        }
    }

    #[test]
    fn overflow_cancels_only_the_slow_watcher_after_its_queued_events() {
        let slow_outbox = Arc::new(Outbox::new(2));
        let fast_outbox = Arc::new(Outbox::new(100));
        let mut watchers = Watchers::default();
        let everything = KeyRange::new(b"a", &[0]);
        watchers
            .by_id
            .insert((1, 0), watcher(&slow_outbox, everything.clone()));
        watchers
            .by_id
            .insert((2, 0), watcher(&fast_outbox, everything));

        for revision in 2..=5 {
            watchers.publish(&[change(revision, "a")]);
        }
        assert_eq!(watchers.len(), 1, "only the slow watcher is gone");

        let slow: Vec<_> = slow_outbox.drain();
        let revisions: Vec<i64> = slow
            .iter()
            .filter(|r| !r.events.is_empty())
            .map(|r| r.header.unwrap().revision)
            .collect();
        assert_eq!(revisions, [2, 3], "what fit was queued in order");
        let cancel = slow.last().unwrap();
        assert!(cancel.canceled && cancel.cancel_reason == REASON_TOO_SLOW);
        assert_eq!(
            slow.len(),
            3,
            "and the cancel came after them, exactly once"
        );

        assert_eq!(fast_outbox.drain().len(), 4);
    }

    #[test]
    fn publish_filters_by_range_revision_and_event_type() {
        let outbox = Arc::new(Outbox::new(100));
        let mut watchers = Watchers::default();
        let mut only_deletes = watcher(&outbox, KeyRange::new(b"p/", b"p0"));
        only_deletes.no_put = true;
        watchers.by_id.insert((1, 7), only_deletes);
        let mut later = watcher(&outbox, KeyRange::new(b"p/x", &[]));
        later.next_revision = 4;
        watchers.by_id.insert((1, 8), later);

        watchers.publish(&[change(2, "p/x"), change(2, "q")]);
        let mut delete = change(3, "p/x");
        delete.kind = EventType::Delete;
        watchers.publish(&[delete]);
        watchers.publish(&[change(4, "p/x")]);

        let delivered: Vec<(i64, i64)> = outbox
            .drain()
            .iter()
            .map(|r| (r.watch_id, r.header.unwrap().revision))
            .collect();
        assert_eq!(delivered, [(7, 3), (8, 4)]);
    }
}
