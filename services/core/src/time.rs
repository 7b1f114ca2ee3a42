//! Instants as plain numbers. The domain never reads a clock: every operation that depends on
//! time takes `now: Timestamp` as an argument, which keeps it deterministic in simulations and
//! replayable from the audit trail.

use std::fmt;
use std::time::Duration;

/// Milliseconds since the unix epoch. Serialized as a bare number.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + duration`, clamped at the largest timestamp instead of overflowing. Sub-millisecond
    /// parts of `duration` are dropped.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// Time elapsed from `earlier` to `self`, or zero when `earlier` is later: timestamps come from
    /// different nodes' clocks, so a small inversion is an operating condition, not a bug.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(t.saturating_add(Duration::from_secs(2)).as_millis(), 3_000);
        assert_eq!(
            Timestamp::from_millis(u64::MAX - 1)
                .saturating_add(Duration::from_secs(1))
                .as_millis(),
            u64::MAX
        );
        assert_eq!(
            Timestamp::from_millis(5_000).saturating_duration_since(t),
            Duration::from_secs(4)
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_millis(5_000)),
            Duration::ZERO
        );
    }

    #[test]
    fn serde_is_a_number() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000123");
        assert_eq!(
            serde_json::from_str::<Timestamp>("1700000000123").unwrap(),
            t
        );
    }
}
