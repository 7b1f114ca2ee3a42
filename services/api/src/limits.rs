//! Every bound of the node's gRPC edge in one place, each with its reason: request size,
//! credentials, rate limits. Domain bounds (id length, coordinates, audit caps) live in
//! `centinela_core::limits`; the button actor's press coalescing in `centinela_actors::limits`.

use std::time::Duration;

/// Largest request a client may send: every centinela.v1 request is a few hundred bytes; a
/// megabyte is an attack or a bug and gets `RESOURCE_EXHAUSTED` before it is decoded.
pub const REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Longest tamper description a button may send: a sentence from the device, not a log dump.
pub const TAMPER_DETAIL_LEN_MAX: usize = 256;

/// Events buffered per operator feed subscriber before it is declared lagging (and
/// re-snapshotted): a few seconds of a busy city.
pub const FEED_CAPACITY: usize = 4096;

/// Open incidents a node's feed keeps a copy of at most, and as many brigades on a job and
/// cameras aimed at an incident, for a close through the node to commit from
/// (`Feed::held_close`) or to name the records it reads (`Feed::held_incident`): far above
/// the open incidents a city has at once; beyond it, a close reads first, as without copies.
pub const FEED_HELD_INCIDENTS_MAX: usize = 10_000;
/// Pause before the feed re-opens a broken store watch.
pub const REWATCH_DELAY: Duration = Duration::from_millis(200);
/// Buffered events per operator `Watch` stream; the feed's lag handling covers slower
/// consoles.
pub const WATCH_CHANNEL_CAPACITY: usize = 256;

/// A gRPC message travels behind a 5-byte prefix (compression flag and length).
pub const GRPC_FRAME_PREFIX_BYTES: usize = 5;

/// How long a client may take to send its (small) request body. A trickling client would
/// otherwise hold a task and a buffer for as long as the connection lives.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most `authorization` values one call may carry: a device token, an operator's password
/// and a node's cluster credential are the only ones a client ever combines.
pub const AUTHORIZATION_VALUES_MAX: usize = 3;

/// Longest `authorization` value, in bytes: tokens and passwords are tens of bytes; anything
/// longer is refused before it is decoded or hashed.
pub const AUTHORIZATION_LEN_MAX: usize = 1024;

/// Shortest device token or shared device token accepted by a node that enforces
/// credentials: 16 random bytes as hex or base64 are out of reach of guessing. (An open demo
/// node takes any non-empty shared token.)
pub const DEVICE_TOKEN_LEN_MIN: usize = 16;

/// Shortest cluster secret: like the console's session secret, 32 bytes of a random string.
pub const CLUSTER_SECRET_LEN_MIN: usize = 32;

/// Most per-device credentials one node loads: several times Lima's whole network of buttons,
/// cameras and terminals; a larger file is a mistake caught at start-up.
pub const DEVICE_CREDENTIALS_MAX: usize = 100_000;

/// How long a verified operator password is remembered (as a hash of the whole credential).
/// Checking an argon2id hash costs tens of milliseconds of CPU by design; the CLI sends the
/// password with every call, so without this each call would pay it again. A password change
/// or a removed account takes effect at the next node restart anyway (accounts are
/// configuration).
pub const OPERATOR_CACHE_TTL: Duration = Duration::from_secs(300);

/// Verified operator credentials remembered at most: a call center's roster is tens of
/// people; past this the cache is emptied (and passwords checked again).
pub const OPERATOR_CACHE_ENTRIES_MAX: usize = 1024;

/// A token bucket: `burst` calls at once, refilled at `per_s` calls per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_s: f64,
    pub burst: f64,
}

/// Calls per device (a button, a camera, a unit terminal), whatever credential carries them.
/// A real device makes a call every second or so (positions) and a person leaning on a panic
/// button presses a few times a second; 50/s sustained is far beyond both, yet above what the
/// demo's load generator puts on one button at 500 presses/s over 15 buttons (33/s). The first
/// press of an emergency always finds a full bucket.
pub const DEVICE_RATE: Rate = Rate {
    per_s: 50.0,
    burst: 100.0,
};

/// Calls per operator (or per anonymous caller of an open demo node). The load generator acts
/// as an operator closing every incident it opens, so this follows the press rate it is run at;
/// a person clicking in the console makes a few calls a second.
pub const OPERATOR_RATE: Rate = Rate {
    per_s: 1_000.0,
    burst: 2_000.0,
};

/// Calls per peer node: everything a node forwards (presses, positions, camera and terminal
/// traffic of the devices connected to it), so an order of magnitude above one operator.
pub const PEER_RATE: Rate = Rate {
    per_s: 10_000.0,
    burst: 20_000.0,
};

/// Rate-limit buckets kept at most. Keys are the identities that called recently (devices,
/// operators, nodes); buckets idle long enough to be full again are dropped first, so this is
/// only reached by a flood of distinct identities, and then the table starts afresh rather
/// than growing.
pub const RATE_BUCKETS_MAX: usize = 200_000;

// ---- connections and long-lived streams (docs/security.md, "Connections and streams") ----

/// Live `Operator.Watch` streams one operator may hold on a node: a console or two, a CLI
/// `watch`, a wall screen. Each costs a task, a feed subscriber and up to
/// [`WATCH_CHANNEL_CAPACITY`] buffered events (about 100 KiB measured); one operator's 10,000
/// streams took a node from 75 to 1,029 MiB and cost it its cluster lease.
pub const WATCH_STREAMS_PER_OPERATOR: usize = 8;

/// Live `Operator.Watch` streams per node, all operators together: a call center's positions
/// several times over, at most ~50 MiB of buffers; past it a console goes to another node.
pub const WATCH_STREAMS_MAX: usize = 512;

/// Live `grpc.health.v1.Health/Watch` streams per node. Anyone may open one (health needs no
/// credentials) and Kubernetes' probes use `Check`, not `Watch`: a load balancer or two and
/// monitoring watch; 30,000 anonymous watches were all accepted before this cap.
pub const HEALTH_WATCHES_MAX: usize = 64;

/// A listener at its cap logs refused connections at most this often (with the number
/// refused since): a flood must not turn into a flood of log lines.
pub const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (out of file descriptors, out of buffers): retrying at once
/// would spin a core while the condition lasts.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The longest SIP `Call-ID` another node may forward a step for (`Peer.CallStep`): the same
/// bound as the console's call URLs (intercoms use 20–60 characters).
pub const CALL_ID_LEN_MAX: usize = 256;

/// Device channels (a camera's `Commands`, a unit's `Assignments`) being attached at once on
/// one node's device edge (`admission`): each attach may wake the entity's actor (a store
/// read) or open a proxied stream to the owner. 11,000 devices attaching at once on three nodes
/// left each node's runtime so busy that it missed its 2 s session lease, which dropped every
/// stream and made the devices attach again (docs/benchmarks.md, "Scale on three nodes with
/// devices attached"). At a few milliseconds an attach, 128 at once still admits thousands a
/// second; past it the device is told when to come back.
pub const ATTACHES_IN_PROGRESS_MAX: usize = 128;

/// The least wait a device refused by [`ATTACHES_IN_PROGRESS_MAX`] is told (the `retry-after`
/// metadata, whole seconds as HTTP's header): long enough for the attaches in progress to
/// finish, short enough that a camera misses little when only a few are refused.
pub const ATTACH_RETRY_AFTER_MIN: Duration = Duration::from_secs(1);

/// The longest wait a refused device is told, however far behind the node is: a camera back
/// within a minute (devices spread their retries over up to twice the wait), and what the
/// simulated devices honour at most.
pub const ATTACH_RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// How often the admission compares the attaches it refused with those it completed, and
/// moves the wait it tells by their ratio: a second holds hundreds of attaches on a loaded
/// node, enough for a ratio, and a storm grows the wait to its bound within five.
pub const PACE_WINDOW: Duration = Duration::from_secs(1);
