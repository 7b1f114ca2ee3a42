//! The bounds of the records' transactions, each with its reason. They sit under etcd's
//! `--max-txn-ops` ([`centinela_store::limits::TXN_OPS_MAX`], 128 by default), which a real
//! etcd enforces and the embedded store does too.

use std::time::Duration;

/// Attempts of one optimistic transaction (read, apply, compare-and-swap) before giving up with
/// `Contention`: conflicts come from a handful of writers on the same incident (a button, the
/// dispatcher, an operator, a brigade), so a few retries always suffice unless something loops.
pub const CAS_ATTEMPTS_MAX: usize = 16;

/// Pause after a conflicting commit before the next attempt, doubling from this...
pub const CAS_BACKOFF_FIRST: Duration = Duration::from_millis(1);
/// ...up to this: the competing writer is one store round trip ahead, never seconds.
pub const CAS_BACKOFF_MAX: Duration = Duration::from_millis(50);

/// Records changed per transaction by [`crate::Records::update_many`]: one get, one compare
/// and at most one put per record, each under etcd's `--max-txn-ops`.
pub const UPDATE_BATCH_MAX: usize = 64;

/// Records read per transaction by [`crate::Records::get_many`]: one get each, under etcd's
/// `--max-txn-ops`.
pub const READ_BATCH_MAX: usize = 64;

/// Records created per transaction when seeding a scenario: under etcd's default
/// `--max-txn-ops` (128) with one compare and one put per record.
pub const SEED_BATCH: usize = 50;

/// Seeding transactions in flight at once: a round trip each, so 21,000 records (420
/// batches) take a few seconds rather than one round trip after another; few enough that a
/// node seeding a large city does not crowd etcd while its peers start too.
pub const SEED_TXNS_IN_FLIGHT: usize = 4;

/// Presses of one button recorded in one transaction at most ([`crate::Records::press_many`]):
/// each needs its `presses/` key compared and written, plus the incident, the open pointer, the
/// open-incident index entry, a new incident's key and the camera it aims, all under etcd's
/// `--max-txn-ops`.
pub const PRESS_BATCH_MAX: usize = 100;

/// The shortest lease a session revocation takes ([`crate::Records::revoke_session`]): etcd
/// rounds a lease up to its minimum TTL anyway, and a session about to expire must still be
/// refused until it has.
pub const REVOCATION_LEASE_MIN: Duration = Duration::from_secs(5);

/// Longest session id a revocation names (hex): the console's ids are 32 hex digits.
pub const SESSION_ID_LEN_MAX: usize = 128;

/// Presses of one incident that get their own `presses/` key: the press budget, a domain
/// bound ([`centinela_core::limits::PRESS_KEYS_PER_INCIDENT_MAX`], with its reason).
pub use centinela_core::limits::PRESS_KEYS_PER_INCIDENT_MAX;

/// How long a press id keeps resolving to its incident: its `presses/` key is attached to an
/// etcd lease of this TTL (plus [`PRESS_LEASE_REUSE`]) and then expires, so press keys do not
/// accumulate for ever. Devices retry a press for seconds, not minutes, and a press after the
/// debounce window (2 min) opens a new incident anyway: five windows is ample.
pub const PRESS_KEY_TTL: Duration = Duration::from_secs(600);

/// How long one press lease is reused for new press keys before a new one is granted: one
/// lease grant per minute per node instead of one per press. A key thus lives between
/// [`PRESS_KEY_TTL`] and `PRESS_KEY_TTL + PRESS_LEASE_REUSE`.
pub const PRESS_LEASE_REUSE: Duration = Duration::from_secs(60);

/// Incident records read at once when listing the open incidents through their index
/// ([`crate::Records::open_incidents_snapshot`]): one historical read per incident, this many in
/// flight, so a few hundred open incidents cost a few round trips, not a few hundred, without
/// flooding the store with concurrent requests.
pub const OPEN_INDEX_READS_IN_FLIGHT: usize = 32;

/// Attempts at a consistent listing of the open incidents: a listing fails only if the store
/// compacts the revision it reads at this many times in a row (etcd compacts every few minutes
/// at most; a listing takes milliseconds).
pub const OPEN_INDEX_SNAPSHOT_ATTEMPTS: usize = 3;

/// Index entries written per transaction when the index of open incidents is built on an older
/// keyspace ([`crate::Records::build_open_index`]): a compare and a put per incident, under
/// etcd's `--max-txn-ops` with the fence's compare.
pub const OPEN_INDEX_BUILD_BATCH: usize = 50;

const _: () = assert!(OPEN_INDEX_BUILD_BATCH < centinela_store::limits::TXN_OPS_MAX);
const _: () = assert!(2 * UPDATE_BATCH_MAX <= centinela_store::limits::TXN_OPS_MAX);
const _: () = assert!(READ_BATCH_MAX <= centinela_store::limits::TXN_OPS_MAX);
const _: () = assert!(2 * SEED_BATCH <= centinela_store::limits::TXN_OPS_MAX);
const _: () = assert!(PRESS_BATCH_MAX + 4 <= centinela_store::limits::TXN_OPS_MAX);

/// Store operations in one group commit of presses ([`crate::Records::press_groups`]) at most,
/// counted per group as [`crate::press::PressGroup::ops`] (the largest of its reads, guards and
/// writes): etcd refuses a transaction with more than `--max-txn-ops` in any one part, so
/// groups beyond it go in another transaction.
pub const GROUP_COMMIT_OPS_MAX: usize = centinela_store::limits::TXN_OPS_MAX;

/// Commits of one group commit's shared transaction: the first, and one more without the
/// groups a conflict was traced to (their guards read again). A second conflict means the
/// records are busy: each remaining group is then recorded on its own, with its own retries
/// ([`CAS_ATTEMPTS_MAX`]), so no group waits on another's contention.
pub const GROUP_COMMIT_ATTEMPTS: usize = 2;

const _: () = assert!(PRESS_BATCH_MAX + 4 <= GROUP_COMMIT_OPS_MAX);

/// Compares in one transaction of a batch of changes from held copies
/// ([`crate::Records::update_incidents_known`]): two a guarded record, and the fence's one
/// besides, under etcd's `--max-txn-ops`; a larger batch goes in more than one transaction.
pub const KNOWN_BATCH_COMPARES_MAX: usize = centinela_store::limits::TXN_OPS_MAX - 1;

/// Commits of one such transaction: the first, and one more without the changes a conflict
/// was traced to. A second conflict means the records are busy: each remaining change then
/// goes alone, with its own retries ([`CAS_ATTEMPTS_MAX`]).
pub const KNOWN_BATCH_ATTEMPTS: usize = 2;
