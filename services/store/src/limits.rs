//! Every bound of this crate in one place, each with its reason.

use std::time::Duration;

/// Default deadline for one unary call (client side). A call to a crashed or partitioned host may
/// neither fail nor time out by itself until the host returns; this makes it fail.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Default deadline for establishing a TCP + HTTP/2 connection to an etcd endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// HTTP/2 PING interval, and how long to wait for the PONG. A partition drops segments that are
/// never retransmitted; keep-alive notices the wedged connection within about a second. Real etcd
/// must be run with `--grpc-keepalive-min-time` at or below this (see `ConnectOptions`).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_millis(500);
/// See [`KEEP_ALIVE_INTERVAL`].
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_millis(500);

/// Largest gRPC message the client accepts. etcd's own default send limit is unbounded; tonic's
/// default 4 MiB would fail a large prefix read before pagination kicks in.
pub const MAX_DECODING_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Page size of [`crate::Store::get_prefix`]: large prefixes are read in pages at one revision.
pub const RANGE_PAGE_KEYS: i64 = 1000;

/// Lease keep-alive period as a fraction of the TTL (etcd's clients use TTL/3).
pub const KEEP_ALIVE_DIVISOR: u32 = 3;
/// Pause between failed keep-alive attempts, so a lost connection is retried several times within
/// one TTL but never in a hot loop.
pub const KEEP_ALIVE_RETRY: Duration = Duration::from_millis(200);

/// Pause before an election observer re-reads after a failed read or a broken watch.
pub const OBSERVE_RETRY: Duration = Duration::from_millis(250);

/// After a server's shutdown signal, how long open connections may drain before `serve` returns
/// anyway (watch and keep-alive streams never end by themselves).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Events the embedded store keeps for watch replay and historical reads. Older revisions are
/// compacted automatically (whole revisions at a time), like etcd's periodic compaction.
pub const HISTORY_EVENTS_MAX: usize = 100_000;

/// Watch responses queued per watch stream in the embedded store. A watcher whose stream is this
/// far behind is canceled with a reason (it resumes from its last revision + 1), so a slow
/// watcher never blocks writers and never silently loses events.
pub const WATCH_OUTBOX_RESPONSES_MAX: usize = 1024;

/// Events per replay response when a watcher starts from a past revision (whole revisions only,
/// so one response may exceed it by the size of one revision).
pub const WATCH_REPLAY_BATCH_EVENTS: usize = 512;

/// How often a watcher created with `progress_notify` gets an empty response carrying the current
/// revision when it has seen no events (etcd's default is 10 minutes).
pub const WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);

/// Operations per txn branch (etcd's `--max-txn-ops` default).
pub const TXN_OPS_MAX: usize = 128;

/// Shortest lease the embedded store grants, in seconds. etcd computes its minimum from the
/// election timeout (1.5 x 1 s, rounded up): with default timing a requested TTL below 2 s is
/// silently raised to 2 s, and so is it here.
pub const LEASE_TTL_MIN_SECS: i64 = 2;

/// Longest lease, in seconds (etcd's `MaxLeaseTTL`).
pub const LEASE_TTL_MAX_SECS: i64 = 9_000_000_000;

/// Events a [`crate::SharedWatch`] holds from the revisions it delivered last (whole
/// revisions), to serve a consumer that joins after the watch opened without a store watch of
/// its own. A consumer joins at the revision of the snapshot it just read, a round trip or two
/// behind the watch: at the cluster's measured peak (about 200 presses/s, 7 events a press in
/// the followed span) that is about 140 events per 100 ms; 512 covers over a third of a second.
/// Each event is one record (an incident with its audit trail is a few KiB), so a few MiB.
pub const SHARED_WATCH_RECENT_EVENTS: usize = 512;

/// Revisions queued for one consumer of a [`crate::SharedWatch`] that has not taken them yet.
/// A consumer this far behind is cut off with a `WatchCanceled` error (it resumes from its last
/// revision + 1, as after the store's own cancel for [`WATCH_OUTBOX_RESPONSES_MAX`]), so a
/// slow consumer never holds the others back nor grows memory without bound. The queued
/// revisions are shared with the other consumers and the held events (one copy each).
pub const SHARED_WATCH_QUEUE_REVISIONS: usize = 1024;

// A joiner is sent the held revisions (at most one per held event) into its empty queue.
const _: () = assert!(SHARED_WATCH_RECENT_EVENTS < SHARED_WATCH_QUEUE_REVISIONS);
