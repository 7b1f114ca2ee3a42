//! Every bound of a node's life cycle (start-up, leadership, readiness, shutdown), each with
//! its reason.

use std::time::Duration;

/// TTL of a node's session lease (its membership and election key): etcd's practical
/// minimum, so a dead node is replaced in about two seconds.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

/// Pause before campaigning again after losing leadership or failing to campaign.
pub const CAMPAIGN_RETRY: Duration = Duration::from_millis(200);

/// Pause before the ownership reconciler re-reads the entities after a store error.
pub const RECONCILE_RETRY: Duration = Duration::from_millis(250);

/// HTTP/2 PING interval on the node's gRPC connections, and how long to wait for the PONG:
/// a partition drops segments that are never retransmitted, and keep-alive notices the
/// wedged connection within a few seconds instead of at the next call's deadline.
pub const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// See [`GRPC_KEEPALIVE_INTERVAL`].
pub const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long start-up waits to be joined and running its share before it serves unready
/// (and keeps trying): a cold start of 210k entities takes seconds, not half a minute.
pub const FIRST_READY_WAIT: Duration = Duration::from_secs(30);
/// How often start-up looks whether the node is ready yet.
pub const FIRST_READY_POLL: Duration = Duration::from_millis(10);
/// How often a running node re-checks its readiness (lease, membership, share).
pub const READINESS_POLL: Duration = Duration::from_millis(100);

/// Pause before the leader's sweep of calls held by lost nodes reads the store again after an
/// error: the sweep only fixes the audit trail (the calls are already gone), so it can wait.
pub const LOST_CALLS_RETRY: Duration = Duration::from_secs(5);

/// Each bounded step of a graceful shutdown (the leadership loop, each supervisor, each
/// server) gets at most this: far below Kubernetes' termination grace (40 s).
pub const SHUTDOWN_STEP: Duration = Duration::from_secs(5);

// ---- connections (docs/security.md, "Connections and streams") ------------------------------

/// Connections the gRPC port holds at most. Every device keeps one (a camera's and a terminal's
/// channel live on it), every client and peer node one or a few: a district of Lima's size is
/// in the thousands. The open-file limit may lower it ([`crate::Bounds::fit`]).
pub const GRPC_CONNECTIONS_MAX: usize = 16_384;

/// Connections the HTTP port (console, public map, probes) holds at most: a call center's
/// browsers hold six each, the public map's visitors one each for a moment. Its own cap, so
/// that idle sockets on this port (1,100 of them starved presses on a node with a 1024 file
/// limit) cannot take the descriptors the gRPC port needs.
pub const HTTP_CONNECTIONS_MAX: usize = 2_048;

/// Descriptors kept out of both caps for the node's own use: the store's and peers' channels,
/// camera fetches (up to the console's 64 live views), hand-off deliveries, log files, the
/// runtime. Measured use outside the listeners is under 100.
pub const FDS_RESERVED: u64 = 256;

/// The HTTP port's share of the descriptors left after [`FDS_RESERVED`], when the file limit
/// is what bounds the caps: a quarter; devices and presses on the gRPC port take the rest.
pub const HTTP_FD_SHARE_DIVISOR: u64 = 4;

/// A connection with no byte moved either way for this long is closed. Live connections are
/// never that quiet (gRPC pings every [`GRPC_KEEPALIVE_INTERVAL`], the console's event streams
/// tick every 5 s, browsers drop idle keep-alive connections after about a minute anyway); a
/// socket that connects and says nothing holds a slot at most this long.
pub const CONNECTION_IDLE: Duration = Duration::from_secs(30);

/// Concurrent HTTP/2 streams per gRPC connection. A device runs a stream or two on its own
/// connection; a peer node's one connection carries a stream for every device channel it
/// proxies to this node (thousands in a large district), so the cap sits above that. Long-lived
/// streams an identity may open are capped per identity (`centinela_api::streams`), unary
/// calls by the rate limits: this bounds what one connection can make the node hold.
pub const GRPC_STREAMS_PER_CONNECTION: u32 = 8_192;

/// Largest header block of a gRPC call: credentials and trace context are well under 2 KiB;
/// hyper's default (16 MiB) would let one call's headers take that much memory.
pub const GRPC_HEADER_LIST_BYTES_MAX: u32 = 16 * 1024;

/// How long a failed write or watch of the shared call records waits before it is tried
/// again (with the whole desk, or a fresh read): a store that is down comes back in seconds,
/// and calls ring on their own node meanwhile.
pub const CALL_RECORDS_RETRY: Duration = Duration::from_secs(1);

/// How long a console's step on a call another node anchors waits for that node: an answer
/// binds a socket and builds an SDP answer (milliseconds); a node that does not reply within
/// this is as good as gone for the operator, who is told so rather than left waiting.
pub const CALL_STEP_TIMEOUT: Duration = Duration::from_secs(10);
