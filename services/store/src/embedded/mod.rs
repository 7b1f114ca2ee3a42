//! [`EmbeddedStore`]: an in-memory store that speaks the subset of etcd's gRPC API we use, with
//! etcd's semantics, so the one etcd client path runs in the demo and in simulations.
//!
//! What it implements (all in etcd's messages, codes and error strings):
//! - **KV**: `Range` (single key, `[key, range_end)`, `"\0"` = unbounded, prefixes; limit,
//!   count_only, keys_only, sort, min/max mod/create revision filters, reads at past revisions
//!   back to the compaction point), `Put` (lease, prev_kv, ignore_value, ignore_lease),
//!   `DeleteRange` (prev_kv), `Txn` (compares on VERSION/CREATE/MOD/VALUE/LEASE with
//!   EQUAL/GREATER/LESS/NOT_EQUAL and range_end; Range/Put/DeleteRange ops; one revision per
//!   txn that writes, none for a read-only one), `Compact`.
//! - **Watch**: create (range, start_revision replay, NOPUT/NODELETE filters, prev_kv,
//!   progress_notify, watch_id), cancel, progress request. A watcher whose stream falls
//!   [`limits::WATCH_OUTBOX_RESPONSES_MAX`] responses behind is canceled with a reason (never
//!   silently dropped; it resumes from its last revision + 1); writers never wait for watchers.
//! - **Lease**: grant (TTL raised to etcd's 2 s minimum), revoke, keep-alive stream,
//!   time-to-live with keys, leases. Deadlines are `tokio::time` instants, and one task sleeps
//!   until the next one, so leases follow simulated time (turmoil, `tokio::time::pause`).
//! - **Maintenance** `Status` and **Cluster** `MemberList`, for one fixed member.
//!
//! Not implemented: nested txns (`UNIMPLEMENTED`), watch fragmentation, auth, persistence
//! (it is memory only: a restart is a new, empty cluster).
//!
//! # Known differences from etcd 3.4
//!
//! The contract suite (`tests/contract`) passes unchanged against both; beyond it:
//! - A slow watcher is canceled with a reason once its stream has
//!   [`limits::WATCH_OUTBOX_RESPONSES_MAX`] responses queued; etcd instead parks it as
//!   "unsynced" and catches it up from disk, canceling only if it falls behind compaction.
//! - History is bounded ([`limits::HISTORY_EVENTS_MAX`] events, older revisions compacted
//!   automatically); etcd keeps everything until compacted (by a client or its auto-compactor).
//! - The cancel sent for a watch that starts before the compaction point carries the current
//!   revision in its header and the reason "mvcc: required revision has been compacted"
//!   (etcd 3.4: revision 0, no reason; later versions add the reason).
//! - `LeaseTimeToLive` lists keys sorted (etcd: in no particular order).
//! - One member, forever leader: fixed cluster/member IDs and raft term, no leader changes, no
//!   request size limit (etcd: 1.5 MiB); `Status` sizes are estimates; serializable and
//!   linearizable reads are the same thing, unless a test makes serializable reads lag
//!   ([`EmbeddedStore::lag_serializable_reads`]) to play a follower that is behind.
//! - Lease IDs are sequential and deterministic; lease expiry is exact at the deadline on the
//!   tokio clock (etcd checks every 500 ms, so its leases outlive their TTL by up to that).
//!
//! Serve it with [`EmbeddedStore::serve`] (TCP), [`EmbeddedStore::serve_incoming`] (any stream
//! of connections, e.g. turmoil's), or use [`EmbeddedStore::channel`] for an in-process tonic
//! channel with no socket at all.

mod mvcc;
mod service;
pub(crate) mod transport;
mod watch;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::limits;
use crate::pb::etcdserverpb::ResponseHeader;
use mvcc::{Change, Mvcc};
use watch::Watchers;

/// The cluster ID in every response header (fixed: there is one embedded "cluster").
pub const CLUSTER_ID: u64 = 0x6365_6e74_696e_656c;
/// The member ID in every response header, and the leader in `Status`.
pub const MEMBER_ID: u64 = 0x656d_6265_6464_6564;
/// The raft term in every response header (etcd's first term with a leader is 2).
pub const RAFT_TERM: u64 = 2;
/// What `Status.version` reports: the etcd API level we mimic.
pub const VERSION: &str = "3.4.0-centinela-embedded";

/// Bounds of one embedded store; the defaults come from [`crate::limits`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Changes kept for historical reads and watch replay; see [`limits::HISTORY_EVENTS_MAX`].
    pub history_events_max: usize,
    /// Responses queued per watch stream before its lagging watcher is canceled; see
    /// [`limits::WATCH_OUTBOX_RESPONSES_MAX`].
    pub watch_outbox_responses_max: usize,
    /// The wall clock at creation (ms since the Unix epoch) for the servers' HTTP `date`
    /// headers, advanced with `tokio::time`; `None`: the system's. A simulation sets it so that
    /// no real time reaches the network ([`crate::http_date`]).
    pub wall_clock_ms: Option<u64>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            history_events_max: limits::HISTORY_EVENTS_MAX,
            watch_outbox_responses_max: limits::WATCH_OUTBOX_RESPONSES_MAX,
            wall_clock_ms: None,
        }
    }
}

/// An in-memory etcd (the KV/Watch/Lease subset). Cheap to clone: clones share one store.
///
/// Creating one spawns its lease-expiry task, so call [`EmbeddedStore::new`] inside a tokio
/// runtime (the runtime, or turmoil host, whose clock its leases follow). The task ends when the
/// last clone (and every server and channel using it) is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    core: Arc<Core>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self.core.lock();
        f.debug_struct("EmbeddedStore")
            .field("revision", &shared.mvcc.revision())
            .field("keys", &shared.mvcc.key_count())
            .finish_non_exhaustive()
    }
}

impl Default for EmbeddedStore {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbeddedStore {
    /// An empty store (revision 1) with default bounds.
    pub fn new() -> Self {
        Self::with_options(EmbeddedOptions::default())
    }

    /// An empty store with the given bounds.
    pub fn with_options(options: EmbeddedOptions) -> Self {
        let lease_wake = Arc::new(Notify::new());
        let core = Arc::new(Core {
            shared: Mutex::new(Shared {
                mvcc: Mvcc::new(options.history_events_max),
                watchers: Watchers::default(),
            }),
            lease_wake: lease_wake.clone(),
            next_stream_id: AtomicU64::new(1),
            serializable_lag: AtomicI64::new(0),
            requests: RequestCounts::default(),
            wall_clock: options
                .wall_clock_ms
                .map_or_else(crate::http_date::system, crate::http_date::anchored_at),
            options,
        });
        tokio::spawn(expire_leases(Arc::downgrade(&core), lease_wake));
        EmbeddedStore { core }
    }

    /// The current revision (for tests and diagnostics; clients use the API).
    pub fn revision(&self) -> i64 {
        self.core.lock().mvcc.revision()
    }

    /// The KV requests served so far, by kind (for tests and diagnostics: a path that should
    /// not read or write shows it here).
    pub fn requests(&self) -> Requests {
        let counts = &self.core.requests;
        Requests {
            ranges: counts.ranges.load(Ordering::Relaxed),
            txns: counts.txns.load(Ordering::Relaxed),
            puts: counts.puts.load(Ordering::Relaxed),
            deletes: counts.deletes.load(Ordering::Relaxed),
        }
    }

    /// How many open watches would see a change to `key` (for tests and diagnostics: a node
    /// that should not be watching something shows it here).
    pub fn watchers_of(&self, key: &str) -> usize {
        self.core.lock().watchers.covering(key.as_bytes())
    }

    /// For tests (feature `fault-injection`): from now on, serializable reads (a `Range`, or a transaction without
    /// compares or writes whose reads are all serializable) that ask for the latest revision
    /// are answered `revisions` revisions back (never before the compaction point), as an etcd
    /// follower that lags would answer them. 0 (the default) answers them at the latest.
    #[cfg(feature = "fault-injection")]
    pub fn lag_serializable_reads(&self, revisions: i64) {
        self.core
            .serializable_lag
            .store(revisions.max(0), Ordering::Relaxed);
    }
}

/// The KV requests a store served, by kind ([`EmbeddedStore::requests`]), counted as etcd's
/// `etcd_server_requests`-style metrics count them: one per RPC, whatever it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// `Range` calls (a transaction's reads are not counted here).
    pub ranges: u64,
    /// `Txn` calls, read-only or not.
    pub txns: u64,
    pub puts: u64,
    pub deletes: u64,
}

/// The counters behind [`Requests`].
#[derive(Default)]
pub(crate) struct RequestCounts {
    pub(crate) ranges: AtomicU64,
    pub(crate) txns: AtomicU64,
    pub(crate) puts: AtomicU64,
    pub(crate) deletes: AtomicU64,
}

impl RequestCounts {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything behind the lock.
pub(crate) struct Shared {
    pub(crate) mvcc: Mvcc,
    pub(crate) watchers: Watchers,
}

/// The store proper, shared by every clone, service and watch stream.
pub(crate) struct Core {
    /// One lock for data and watchers: a commit and the delivery of its events to watchers are
    /// one atomic step, which is what keeps watch streams gap-free and in order. Never held
    /// across an await.
    shared: Mutex<Shared>,
    /// Wakes the expiry task when a lease may now expire before the deadline it sleeps to.
    lease_wake: Arc<Notify>,
    next_stream_id: AtomicU64,
    /// See [`EmbeddedStore::lag_serializable_reads`].
    serializable_lag: AtomicI64,
    /// See [`EmbeddedStore::requests`].
    pub(crate) requests: RequestCounts,
    /// For the servers' HTTP `date` headers.
    pub(crate) wall_clock: crate::http_date::WallClock,
    options: EmbeddedOptions,
}

impl Drop for Core {
    fn drop(&mut self) {
        // The expiry task holds only a weak reference: wake it so it sees we are gone.
        self.lease_wake.notify_one();
    }
}

impl Core {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().expect("embedded store lock poisoned")
    }

    /// The revision a serializable read of the latest state is answered at: the latest,
    /// or as far back as a test's lag says ([`EmbeddedStore::lag_serializable_reads`]).
    pub(crate) fn serializable_read_revision(&self, mvcc: &Mvcc) -> Option<i64> {
        let lag = self.serializable_lag.load(Ordering::Relaxed);
        (lag > 0).then(|| {
            (mvcc.revision() - lag)
                .max(mvcc.compact_revision() + 1)
                .max(1)
        })
    }

    pub(crate) fn next_stream_id(&self) -> u64 {
        self.next_stream_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs a write on the state and, under the same lock, hands its changes to the watchers.
    pub(crate) fn write<R, E>(
        &self,
        apply: impl FnOnce(&mut Mvcc) -> Result<(R, Vec<Change>), E>,
    ) -> Result<R, E> {
        let mut shared = self.lock();
        let (result, changes) = apply(&mut shared.mvcc)?;
        shared.watchers.publish(&changes);
        Ok(result)
    }

    /// Revokes every lease whose deadline is `<= now`, each in its own revision (as etcd does).
    fn expire_due_leases(&self, now: Instant) {
        loop {
            let mut shared = self.lock();
            let Some(id) = shared.mvcc.expired_lease(now) else {
                return;
            };
            let changes = shared
                .mvcc
                .lease_revoke(id)
                .expect("an expired lease is in the lease table");
            tracing::debug!(lease = id, keys = changes.len(), "lease expired");
            shared.watchers.publish(&changes);
        }
    }
}

/// The response header etcd sends: this member, this term, the given revision.
pub(crate) fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        cluster_id: CLUSTER_ID,
        member_id: MEMBER_ID,
        revision,
        raft_term: RAFT_TERM,
    }
}

/// The single lease-expiry task of a store: sleeps until the earliest lease deadline (or until
/// a grant may have moved it earlier), then revokes what is due.
async fn expire_leases(core: Weak<Core>, wake: Arc<Notify>) {
    loop {
        let next_expiry = {
            let Some(core) = core.upgrade() else {
                return;
            };
            core.expire_due_leases(Instant::now());
            core.lock().mvcc.next_lease_expiry()
        };
        match next_expiry {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests;
