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

/// Each bounded step of a graceful shutdown (the leadership loop, each supervisor, each
/// server) gets at most this: far below Kubernetes' termination grace (40 s).
pub const SHUTDOWN_STEP: Duration = Duration::from_secs(5);
