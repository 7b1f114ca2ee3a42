//! Wall-clock timestamps that follow `tokio::time`.
//!
//! Audit entries and incident ids need wall-clock time; timers and leases need monotonic time.
//! [`Clock`] reads the wall clock once, at start, and advances it with `tokio::time::Instant`,
//! so under a paused tokio clock or inside a turmoil simulation every timestamp is simulated
//! time and a seed replays byte for byte.

use std::time::{SystemTime, UNIX_EPOCH};

use centinela_core::time::Timestamp;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Timestamp,
    start: Instant,
}

impl Clock {
    /// Anchored at the system's wall clock now.
    pub fn system() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Self::starting_at(Timestamp::from_millis(millis))
    }

    /// Anchored at a fixed instant (simulations, tests).
    pub fn starting_at(base: Timestamp) -> Self {
        Self {
            base,
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.base.saturating_add(self.start.elapsed())
    }
}
