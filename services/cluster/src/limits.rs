//! Every bound of the cluster's bookkeeping, each with its reason, and the session thread's name.

use std::time::Duration;

/// Pause before retrying a failed membership registration or re-reading the member set: a
/// few retries fit in the lease TTL (2 s), none of them in a hot loop.
pub const MEMBERSHIP_RETRY: Duration = Duration::from_millis(200);

/// Pause between attempts to grant a new session lease while the store is unreachable.
pub const REGRANT_RETRY: Duration = Duration::from_millis(250);

/// Name of the thread a session keeps its lease alive from on a real etcd
/// ([`crate::session::KeepAlive::Dedicated`]): its own runtime and connection, so that a node
/// busy with thousands of device streams still renews its 2 s lease (shown in `top -H`).
pub const SESSION_THREAD: &str = "centinela-session";
