//! Every bound of the cluster's bookkeeping, each with its reason.

use std::time::Duration;

/// Pause before retrying a failed membership registration or re-reading the member set: a
/// few retries fit in the lease TTL (2 s), none of them in a hot loop.
pub const MEMBERSHIP_RETRY: Duration = Duration::from_millis(200);

/// Pause between attempts to grant a new session lease while the store is unreachable.
pub const REGRANT_RETRY: Duration = Duration::from_millis(250);
