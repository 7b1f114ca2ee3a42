//! One store watch of a key range, shared by every consumer of this client.
//!
//! On a node, the dispatcher and the operators' feed follow the same span of keys. With a
//! watch each, the store sent every change of a press twice to the leader's node
//! (docs/benchmarks.md, issue 24). A [`SharedWatch`] holds **one** [`WatchStream`] of its
//! range while at least one consumer ([`Follower`]) is alive, and fans each revision out to
//! every consumer, in store revision order.
//!
//! # Joining at a revision
//! Consumers ask for different start revisions: each reads a snapshot at some revision `R`
//! and follows from `R + 1`. A joiner is served so that it gets every event from its
//! revision on, exactly once, in order:
//!
//! - **No watch open** (first consumer): the store watch opens from the joiner's revision
//!   (or from just after the last revision this watch delivered before it closed, when the
//!   events in between are still held, see below).
//! - **Watch open, joiner at or after the recent events held** ([`limits::SHARED_WATCH_RECENT_EVENTS`]
//!   of them, whole revisions): it is sent the held events from its revision on, then every
//!   live one. Held and live events are handed out under one lock, so nothing falls between.
//!   A joiner ahead of the watch (its snapshot is newer than what the watch delivered so far)
//!   just skips the events before its revision.
//! - **Watch open, joiner before the events held**: it gets a **private** store watch from its
//!   revision. Correct first, shared when possible: such a joiner is rare (it read its
//!   snapshot long before joining, or resumes after falling behind by more than the held
//!   events), and it joins the shared watch the next time its stream breaks and it resumes.
//!   Catching a private watch up and splicing it into the shared one would save that watch at
//!   the cost of a hand-over whose every edge (a revision split between the two, an error
//!   during the switch) would need its own proof; not worth it.
//!
//! # Slow consumers and errors
//! Each consumer has its own bounded queue ([`limits::SHARED_WATCH_QUEUE_REVISIONS`]
//! revisions). The fan-out never waits: a consumer whose queue is full is cut off with
//! [`Error::WatchCanceled`] after the revisions already queued (whole revisions: a revision's
//! events are never split), exactly as the store cancels a watcher that falls behind, so the
//! consumer resumes from its last revision + 1 like after any broken watch; the others go on.
//! When the store watch breaks (compaction, a lost connection, the store canceling it), every
//! consumer gets the error after what it has queued, and its stream ends; each resumes as it
//! would from its own watch. The next joiner opens a new store watch.
//!
//! The last consumer leaving (its [`Follower`] dropped) closes the store watch.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::limits::{SHARED_WATCH_QUEUE_REVISIONS, SHARED_WATCH_RECENT_EVENTS};
use crate::{Error, Revision, Store, WatchEvent, WatchStream};

/// One revision's events (one transaction), shared by the buffer and every queue.
type Batch = Arc<[WatchEvent]>;

/// What a consumer's queue carries: a whole revision, or the error that ends its stream.
type Item = Result<Batch, Error>;

/// One watch of `[start, end)` shared by its consumers; see the module docs. Cheap to share
/// behind an `Arc`; every [`SharedWatch::follow`] of one instance uses the same store watch.
pub struct SharedWatch {
    store: Store,
    start: Vec<u8>,
    end: Vec<u8>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWatch")
            .field("start", &String::from_utf8_lossy(&self.start))
            .field("end", &String::from_utf8_lossy(&self.end))
            .finish_non_exhaustive()
    }
}

struct Inner {
    state: Mutex<State>,
    /// Serializes joining, so two first consumers open one store watch, not two.
    joining: tokio::sync::Mutex<()>,
}

struct State {
    /// The task that reads the store watch and fans it out, with its generation; `None` while
    /// nobody follows.
    pump: Option<(u64, JoinHandle<()>)>,
    /// Bumped for every pump started: a pump that was told to stop but is still running (it
    /// had not reached an await point) sees another generation and touches nothing.
    generation: u64,
    /// The most recent revisions delivered, oldest first, at most
    /// [`SHARED_WATCH_RECENT_EVENTS`] events: every event from `held_from` to `delivered`.
    recent: VecDeque<Batch>,
    /// Number of events in `recent`.
    recent_events: usize,
    /// Every event with a revision from this one through `delivered` is in `recent`
    /// (`Revision::MAX` before any watch opened: nothing is held).
    held_from: Revision,
    /// The last revision fanned out; the store watch goes on from the next one.
    delivered: Revision,
    /// Each live consumer's queue, by consumer number (ordered, so the fan-out order, and thus
    /// a simulation, is the same on every run).
    consumers: BTreeMap<u64, mpsc::Sender<Item>>,
    next_consumer: u64,
}

impl SharedWatch {
    /// A shared watch of every key in `[start, end)` on `store`; it opens nothing until the
    /// first [`SharedWatch::follow`].
    pub fn new(store: Store, start: &[u8], end: &[u8]) -> Self {
        Self {
            store,
            start: start.to_vec(),
            end: end.to_vec(),
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    pump: None,
                    generation: 0,
                    recent: VecDeque::new(),
                    recent_events: 0,
                    held_from: Revision::MAX,
                    delivered: 0,
                    consumers: BTreeMap::new(),
                    next_consumer: 0,
                }),
                joining: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Every change in the range from `from_revision` (inclusive) on, in revision order, the
    /// changes of one revision consecutive. The stream ends after its first error, as a
    /// [`WatchStream`]: resume with a new `follow` from the last revision seen + 1 (after
    /// [`Error::Compacted`], re-read the state first). Once this returns, every change from
    /// `from_revision` on reaches the stream. Fails if a store watch had to be opened and
    /// could not be.
    pub async fn follow(&self, from_revision: Revision) -> Result<Follower, Error> {
        // etcd's revisions start at 1; a watch "from 0" means "from now", which a follower
        // that read its snapshot at revision 0 of an empty store must not get.
        let from = from_revision.max(1);
        let _joining = self.inner.joining.lock().await;
        let resume = {
            let mut state = self.inner.lock();
            if state.pump.is_some() {
                if from >= state.held_from {
                    return Ok(state.join(from, &self.inner));
                }
                None
            } else if state.held_from <= from && from <= state.delivered + 1 {
                // The events between `from` and where the last watch stopped are held.
                Some(state.delivered + 1)
            } else {
                Some(from)
            }
        };
        let Some(resume) = resume else {
            tracing::debug!(
                from,
                "shared watch: joiner before the events held, private store watch"
            );
            let stream = self.open(from).await?;
            return Ok(Follower {
                source: Source::Private(Box::new(stream)),
            });
        };
        let stream = self.open(resume).await?;
        let mut state = self.inner.lock();
        if resume != state.delivered + 1 {
            state.recent.clear();
            state.recent_events = 0;
            state.held_from = resume;
            state.delivered = resume - 1;
        }
        state.generation += 1;
        let generation = state.generation;
        let follower = state.join(from, &self.inner);
        let pump = tokio::spawn(pump(self.inner.clone(), generation, stream));
        state.pump = Some((generation, pump));
        tracing::debug!(
            from,
            resume,
            "shared watch: first follower, store watch opened"
        );
        Ok(follower)
    }

    /// Whether the shared store watch is open (someone follows through it).
    pub fn is_open(&self) -> bool {
        self.inner.lock().pump.is_some()
    }

    async fn open(&self, from: Revision) -> Result<WatchStream, Error> {
        crate::client::WatchStream::open(
            &self.store,
            self.start.clone(),
            self.end.clone(),
            Some(from),
        )
        .await
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("shared watch lock poisoned")
    }
}

impl State {
    /// Adds a consumer from `from`, queueing the held revisions it needs.
    fn join(&mut self, from: Revision, inner: &Arc<Inner>) -> Follower {
        debug_assert!(from >= self.held_from);
        // One slot more than the revisions it may hold: the error that ends it always fits.
        let (sender, receiver) = mpsc::channel(SHARED_WATCH_QUEUE_REVISIONS + 1);
        for batch in self
            .recent
            .iter()
            .filter(|batch| revision_of(batch) >= from)
        {
            // Fits: the held revisions are fewer than the queue's slots (limits.rs asserts).
            let queued = sender.try_send(Ok(batch.clone()));
            debug_assert!(queued.is_ok());
        }
        let id = self.next_consumer;
        self.next_consumer += 1;
        self.consumers.insert(id, sender);
        Follower {
            source: Source::Shared {
                receiver,
                current: None,
                from,
                id,
                inner: inner.clone(),
                ended: false,
            },
        }
    }

    /// Whether the pump of `generation` is the running one.
    fn runs(&self, generation: u64) -> bool {
        matches!(self.pump, Some((running, _)) if running == generation)
    }

    /// Hands one revision to every consumer and holds it for joiners.
    fn fan_out(&mut self, batch: Batch) {
        let revision = revision_of(&batch);
        self.delivered = revision;
        self.recent_events += batch.len();
        self.recent.push_back(batch.clone());
        while self.recent_events > SHARED_WATCH_RECENT_EVENTS
            && let Some(oldest) = self.recent.pop_front()
        {
            self.recent_events -= oldest.len();
            self.held_from = revision_of(&oldest) + 1;
        }
        self.consumers.retain(|id, queue| {
            if queue.is_closed() {
                return false;
            }
            // The last slot is kept for the error that cuts a consumer off.
            if queue.capacity() <= 1 {
                tracing::warn!(
                    consumer = id,
                    revision,
                    "shared watch: a follower fell behind, cut off (it resumes)"
                );
                let _ = queue.try_send(Err(Error::WatchCanceled {
                    reason: format!(
                        "follower fell behind the shared watch by {SHARED_WATCH_QUEUE_REVISIONS} \
                         revisions"
                    ),
                }));
                return false;
            }
            queue.try_send(Ok(batch.clone())).is_ok()
        });
        if self.consumers.is_empty() {
            // Those left were all cut off or gone: nobody follows, close the watch (the pump
            // sees it is no longer the running one and ends).
            self.pump = None;
        }
    }

    /// Ends every consumer with `error` (the store watch broke).
    fn end_all(&mut self, error: &Error) {
        for queue in std::mem::take(&mut self.consumers).into_values() {
            let _ = queue.try_send(Err(copy_error(error)));
        }
        self.pump = None;
    }
}

/// Reads the store watch, a whole revision at a time, and fans it out until it breaks or its
/// shared watch stops it.
async fn pump(inner: Arc<Inner>, generation: u64, stream: WatchStream) {
    let mut stream = stream.peekable();
    loop {
        let first = stream.next().await;
        let mut state = inner.lock();
        if !state.runs(generation) {
            return;
        }
        let first = match first {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                tracing::debug!(%error, "shared watch: store watch broke");
                state.end_all(&error);
                return;
            }
            None => {
                state.end_all(&Error::Unavailable("shared store watch ended".to_owned()));
                return;
            }
        };
        let revision = first.revision;
        let mut batch = vec![first];
        // A revision's events come in one response from the store, so the rest of it is
        // already buffered: take it without waiting (an error stays for the next turn).
        while let Some(Some(Ok(next))) = Pin::new(&mut stream)
            .next_if(|next| matches!(next, Ok(event) if event.revision == revision))
            .now_or_never()
        {
            batch.push(next);
        }
        state.fan_out(batch.into());
        if !state.runs(generation) {
            return;
        }
    }
}

fn revision_of(batch: &Batch) -> Revision {
    batch.first().map_or(0, |event| event.revision)
}

/// The same error for another consumer ([`Error`] holds a `tonic::Status`, not `Clone`):
/// same variant and retryability, the gRPC details kept as text.
fn copy_error(error: &Error) -> Error {
    match error {
        Error::Unavailable(message) => Error::Unavailable(message.clone()),
        Error::Timeout => Error::Timeout,
        Error::LeaseNotFound => Error::LeaseNotFound,
        Error::Compacted { compact_revision } => Error::Compacted {
            compact_revision: *compact_revision,
        },
        Error::FutureRevision => Error::FutureRevision,
        Error::WatchCanceled { reason } => Error::WatchCanceled {
            reason: reason.clone(),
        },
        Error::InvalidRequest(message) => Error::InvalidRequest(message.clone()),
        Error::InvalidData(message) => Error::InvalidData(message.clone()),
        Error::Tls(message) => Error::Tls(message.clone()),
        Error::Rpc(_) if error.is_retryable() => Error::Unavailable(error.to_string()),
        Error::Rpc(status) => Error::Rpc(Box::new(tonic::Status::new(
            status.code(),
            status.message(),
        ))),
        // Only a connection's set-up fails so; a running watch never does.
        Error::Transport(_) => Error::InvalidRequest(error.to_string()),
    }
}

/// One consumer's changes from a [`SharedWatch`], as a stream of `Result<WatchEvent, Error>`
/// with a [`WatchStream`]'s contract: revision order, one revision's events together, one
/// error and then the end. Dropping it leaves the shared watch (closing the store watch if it
/// was the last).
pub struct Follower {
    source: Source,
}

enum Source {
    /// Through the shared store watch.
    Shared {
        receiver: mpsc::Receiver<Item>,
        /// The revision being handed out, and how many of its events are out.
        current: Option<(Batch, usize)>,
        /// Events before this revision are skipped (the watch was ahead of the snapshot).
        from: Revision,
        id: u64,
        inner: Arc<Inner>,
        ended: bool,
    },
    /// A store watch of its own (it joined before the events held). Boxed: a watch stream
    /// is several times the shared side's size, and rare.
    Private(Box<WatchStream>),
}

impl Follower {
    /// Whether this follower has a store watch of its own rather than the shared one.
    pub fn is_private(&self) -> bool {
        matches!(self.source, Source::Private(_))
    }
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("private", &self.is_private())
            .finish_non_exhaustive()
    }
}

impl Stream for Follower {
    type Item = Result<WatchEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (receiver, current, from, ended) = match &mut self.get_mut().source {
            Source::Private(stream) => return stream.poll_next_unpin(cx),
            Source::Shared {
                receiver,
                current,
                from,
                ended,
                ..
            } => (receiver, current, from, ended),
        };
        loop {
            if let Some((batch, next)) = current {
                if let Some(event) = batch.get(*next) {
                    *next += 1;
                    return Poll::Ready(Some(Ok(event.clone())));
                }
                *current = None;
            }
            if *ended {
                return Poll::Ready(None);
            }
            match receiver.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(batch))) => {
                    if revision_of(&batch) >= *from {
                        *current = Some((batch, 0));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    *ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    // Only a dropped shared watch closes a queue without an error first.
                    *ended = true;
                    return Poll::Ready(Some(Err(Error::Unavailable(
                        "shared watch closed".to_owned(),
                    ))));
                }
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let Source::Shared { id, inner, .. } = &self.source else {
            return;
        };
        let mut state = inner.lock();
        state.consumers.remove(id);
        if state.consumers.is_empty()
            && let Some((_, pump)) = state.pump.take()
        {
            // Dropping the pump's stream cancels the store watch.
            pump.abort();
            tracing::debug!("shared watch: last follower gone, store watch closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;
    use crate::EmbeddedStore;
    use crate::keys::prefix_end;
    use crate::limits::{SHARED_WATCH_QUEUE_REVISIONS, SHARED_WATCH_RECENT_EVENTS};

    const PREFIX: &str = "/t/";

    fn shared(embedded: &EmbeddedStore) -> (Store, SharedWatch) {
        let store = Store::embedded(embedded);
        let watch = SharedWatch::new(
            store.clone(),
            PREFIX.as_bytes(),
            &prefix_end(PREFIX.as_bytes()),
        );
        (store, watch)
    }

    /// Writes `/t/k{n}` and returns the write's revision.
    async fn write(store: &Store, n: usize) -> Revision {
        store
            .put(&format!("{PREFIX}k{n}"), "v", None)
            .await
            .unwrap()
    }

    /// The next `count` revisions `follower` yields (each put here is one event).
    async fn next_revisions(follower: &mut Follower, count: usize) -> Vec<Revision> {
        let mut revisions = Vec::with_capacity(count);
        for _ in 0..count {
            let event = tokio::time::timeout(Duration::from_secs(30), follower.next())
                .await
                .expect("an event within the deadline")
                .expect("the stream goes on")
                .expect("no error");
            revisions.push(event.revision);
        }
        revisions
    }

    /// Waits (generous deadline) until the store counts `expected` watches of the prefix: the
    /// server notices a dropped stream asynchronously.
    async fn until_watchers(embedded: &EmbeddedStore, expected: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while embedded.watchers_of("/t/probe") != expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the store still counts {} watches, not {expected}",
                embedded.watchers_of("/t/probe")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_joiner_is_served_from_the_held_events_on_the_one_store_watch() {
        let embedded = EmbeddedStore::new();
        let (store, watch) = shared(&embedded);
        let start = store.put("/other", "x", None).await.unwrap();
        let mut first = watch.follow(start + 1).await.unwrap();
        let written = vec![
            write(&store, 1).await,
            write(&store, 2).await,
            write(&store, 3).await,
        ];
        assert_eq!(next_revisions(&mut first, 3).await, written);

        // Joins at the snapshot it read before the three writes: served from what is held.
        let mut late = watch.follow(start + 1).await.unwrap();
        assert!(!late.is_private());
        assert_eq!(
            embedded.watchers_of("/t/probe"),
            1,
            "one store watch for both"
        );
        assert_eq!(next_revisions(&mut late, 3).await, written);
        // One joining ahead of what the watch delivered skips what it already read.
        let ahead = write(&store, 4).await;
        let mut later = watch.follow(ahead).await.unwrap();
        let next = write(&store, 5).await;
        assert_eq!(next_revisions(&mut first, 2).await, vec![ahead, next]);
        assert_eq!(next_revisions(&mut late, 2).await, vec![ahead, next]);
        assert_eq!(next_revisions(&mut later, 2).await, vec![ahead, next]);
        assert_eq!(embedded.watchers_of("/t/probe"), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_joiner_before_the_held_events_gets_a_private_watch_and_misses_nothing() {
        let embedded = EmbeddedStore::new();
        let (store, watch) = shared(&embedded);
        let start = store.put("/other", "x", None).await.unwrap();
        let mut first = watch.follow(start + 1).await.unwrap();
        let count = SHARED_WATCH_RECENT_EVENTS + 10;
        let mut written = Vec::with_capacity(count);
        for n in 0..count {
            written.push(write(&store, n).await);
            // In step, so the first follower is never behind.
            assert_eq!(next_revisions(&mut first, 1).await, vec![written[n]]);
        }
        let mut late = watch.follow(start + 1).await.unwrap();
        assert!(
            late.is_private(),
            "the held events no longer reach its revision"
        );
        assert_eq!(embedded.watchers_of("/t/probe"), 2);
        assert_eq!(next_revisions(&mut late, count).await, written);
        let next = write(&store, count).await;
        assert_eq!(next_revisions(&mut late, 1).await, vec![next]);
        assert_eq!(next_revisions(&mut first, 1).await, vec![next]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_follower_is_cut_off_and_resumes_without_gap_or_duplicate() {
        let embedded = EmbeddedStore::new();
        let (store, watch) = shared(&embedded);
        let start = store.put("/other", "x", None).await.unwrap();
        let mut fast = watch.follow(start + 1).await.unwrap();
        let mut slow = watch.follow(start + 1).await.unwrap();
        let count = SHARED_WATCH_QUEUE_REVISIONS + 20;
        let mut written = Vec::with_capacity(count);
        for n in 0..count {
            written.push(write(&store, n).await);
            // The fast one keeps up; the slow one reads nothing meanwhile.
            assert_eq!(next_revisions(&mut fast, 1).await, vec![written[n]]);
        }
        // The slow one gets what was queued for it, then the error that cut it off.
        let mut seen = Vec::new();
        let error = loop {
            match slow.next().await.expect("an error before the end") {
                Ok(event) => seen.push(event.revision),
                Err(error) => break error,
            }
        };
        assert!(matches!(error, Error::WatchCanceled { .. }), "{error}");
        assert!(error.is_retryable());
        assert!(slow.next().await.is_none(), "one error, then the end");
        assert_eq!(seen, written[..SHARED_WATCH_QUEUE_REVISIONS]);
        // It resumes from its last revision + 1, as after any broken watch.
        let mut resumed = watch.follow(seen.last().unwrap() + 1).await.unwrap();
        seen.extend(next_revisions(&mut resumed, count - SHARED_WATCH_QUEUE_REVISIONS).await);
        assert_eq!(seen, written, "every revision once, in order");
        // The fast one never noticed.
        let next = write(&store, count).await;
        assert_eq!(next_revisions(&mut fast, 1).await, vec![next]);
        assert_eq!(next_revisions(&mut resumed, 1).await, vec![next]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_follower_leaving_closes_the_store_watch() {
        let embedded = EmbeddedStore::new();
        let (store, watch) = shared(&embedded);
        assert_eq!(
            embedded.watchers_of("/t/probe"),
            0,
            "nothing opened before a follower"
        );
        let start = store.put("/other", "x", None).await.unwrap();
        let first = watch.follow(start + 1).await.unwrap();
        let mut second = watch.follow(start + 1).await.unwrap();
        assert!(watch.is_open());
        assert_eq!(embedded.watchers_of("/t/probe"), 1);
        drop(first);
        assert!(watch.is_open(), "one follower remains");
        let written = write(&store, 1).await;
        assert_eq!(next_revisions(&mut second, 1).await, vec![written]);
        assert_eq!(embedded.watchers_of("/t/probe"), 1);
        drop(second);
        assert!(!watch.is_open());
        until_watchers(&embedded, 0).await;

        // Reopened from where it stopped, the held events serve a follower from before it.
        let after = write(&store, 2).await;
        let mut again = watch.follow(written).await.unwrap();
        assert!(!again.is_private());
        assert_eq!(next_revisions(&mut again, 2).await, vec![written, after]);
        assert_eq!(embedded.watchers_of("/t/probe"), 1);
    }

    #[tokio::test]
    async fn a_broken_store_watch_ends_every_follower_with_its_error() {
        let embedded = EmbeddedStore::new();
        let (_store, watch) = shared(&embedded);
        let (mut first, mut second) = {
            let mut state = watch.inner.lock();
            state.held_from = 1;
            (state.join(1, &watch.inner), state.join(1, &watch.inner))
        };
        watch.inner.lock().end_all(&Error::Compacted {
            compact_revision: 7,
        });
        for follower in [&mut first, &mut second] {
            let error = follower.next().await.unwrap().unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::Compacted {
                        compact_revision: 7
                    }
                ),
                "{error}"
            );
            assert!(follower.next().await.is_none());
        }
    }
}
