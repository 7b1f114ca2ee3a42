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

/// A UTC calendar date and time of day, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Timestamp {
    /// The UTC calendar date and time of this instant (Howard Hinnant's days-from-civil,
    /// inverted): no time-zone database, no leap seconds, exact for every `u64` millisecond.
    pub fn civil_utc(self) -> CivilTime {
        let secs = (self.0 / 1000) as i64;
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        CivilTime {
            year,
            month,
            day,
            hour: (of_day / 3600) as u32,
            minute: (of_day % 3600 / 60) as u32,
            second: (of_day % 60) as u32,
        }
    }
}

impl CivilTime {
    /// The instant of this UTC date and time (Howard Hinnant's days-from-civil); `None` for a
    /// date or time out of range, or before 1970.
    pub fn to_timestamp(self) -> Option<Timestamp> {
        let valid = (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 61;
        if !valid {
            return None;
        }
        let year = self.year - i64::from(self.month <= 2);
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let month = i64::from(self.month);
        let mp = if month > 2 { month - 3 } else { month + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        u64::try_from(secs)
            .ok()
            .map(|secs| Timestamp::from_millis(secs * 1000))
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
    fn civil_dates_cross_leap_days_and_epochs() {
        let civil = |millis| {
            let c = Timestamp::from_millis(millis).civil_utc();
            (c.year, c.month, c.day, c.hour, c.minute, c.second)
        };
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        // 2024-02-29T23:59:59Z
        assert_eq!(civil(1_709_251_199_000), (2024, 2, 29, 23, 59, 59));
        // 2026-11-27T22:05:12.345Z
        assert_eq!(civil(1_795_817_112_345), (2026, 11, 27, 22, 5, 12));
    }

    #[test]
    fn civil_times_convert_back() {
        for millis in [0, 1_709_251_199_000, 1_795_817_112_000, 4_102_444_800_000] {
            let at = Timestamp::from_millis(millis);
            assert_eq!(at.civil_utc().to_timestamp(), Some(at));
        }
        let bad = CivilTime {
            year: 2026,
            month: 13,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
        };
        assert_eq!(bad.to_timestamp(), None);
        let before_1970 = CivilTime {
            year: 1969,
            month: 12,
            day: 31,
            ..bad
        };
        assert_eq!(before_1970.to_timestamp(), None);
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
