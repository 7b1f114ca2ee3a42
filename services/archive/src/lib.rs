//! Centinela's history out of etcd. etcd is the live coordination record; once an incident
//! is closed, the leader copies it here, reads it back, and only then (past the retention
//! window) removes it from the store. The archive is a real database: PostgreSQL in
//! production (`--archive postgres://...`), SQLite embedded (a file, or memory for the demo),
//! behind one schema (`migrations/`, applied at first use) and one query layer.
//!
//! Every archived incident's audit head is chained into the **ledger** (one append-only
//! table, a hash chain across incidents sealed with the audit key), so `centinela audit
//! verify` notices an incident deleted, edited or re-hashed in the archive.
//!
//! # Layout
//! - [`db`]: [`Archive`]: opening by URL, archiving (idempotent, tamper-evident), reading,
//!   paging closed incidents.
//! - [`ledger`]: the chain across incidents and [`Archive::verify`].
//! - [`retention`]: [`retention::Archiver`], the leader's loop: archive, verify, then remove
//!   from the store what is older than the retention window.
//! - [`report`]: the municipality's reports (per button, hour, weekday or unit: presses,
//!   resolutions, response times), from facts computed at archive time.
//! - [`limits`]: the bounds, each with its reason.
//! - [`error`]: what archiving can fail with, and what is worth retrying.

pub mod db;
pub mod error;
pub mod ledger;
pub mod limits;
pub mod report;
pub mod retention;

use std::time::Duration;

use centinela_core::camera::Bookmark;
use centinela_core::incident::Incident;
use centinela_core::time::Timestamp;

pub use db::Archive;
pub use error::{Error, Result};
pub use ledger::{Break, Verification};

/// How long a closed incident stays in the store after it closed, when not configured
/// (`--retention`): long enough for operators to see what just closed on the live console.
pub const RETENTION_DEFAULT: Duration = Duration::from_secs(3600);

/// A closed incident as the archive keeps it: the record (its audit trail, unit assignments
/// and timestamps included) and what the store held beside it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArchivedIncident {
    pub incident: Incident,
    /// Press ids recorded for it (those whose idempotency key had not expired yet).
    pub presses: Vec<String>,
    /// SHA-256 (hex) of the stills operators saved; the JPEGs are in the archive's `stills`.
    pub stills: Vec<String>,
    /// Its camera's recording bookmarks for it.
    pub bookmarks: Vec<Bookmark>,
}

/// What archiving did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Newly archived, as ledger entry `seq`.
    Archived { seq: i64 },
    /// The archive already held this very record: nothing changed.
    AlreadyArchived,
}

/// One page of closed incidents ([`Archive::closed`]).
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Only incidents closed at or after this.
    pub since: Option<Timestamp>,
    /// Only incidents after this one (`closed_at`, id): the last of the previous page.
    pub after: Option<(Timestamp, String)>,
    /// At most this many ([`limits::PAGE_MAX`] at most).
    pub limit: u32,
}

/// How a node keeps its history: the archive, the retention window, and whether closed
/// incidents may leave the store at all.
#[derive(Clone, Debug)]
pub struct History {
    pub archive: Archive,
    /// A closed incident stays in the store this long after closing.
    pub retention: Duration,
    /// Whether archived incidents are removed from the store. False when the archive would
    /// outlive nothing the store does not (an in-memory archive next to a real etcd): then
    /// nothing is archived or removed, and history is never lost with a restarted node.
    pub remove: bool,
}

/// Parses a retention window: a whole number and a unit, `s`, `m`, `h` or `d` (`30s`, `1h`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write it like 30s, 15m, 1h or 2d"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    let total = number
        .checked_mul(seconds)
        .filter(|&s| s <= limits::RETENTION_MAX.as_secs())
        .ok_or_else(|| {
            format!(
                "{text:?} is over {} days",
                limits::RETENTION_MAX.as_secs() / 86_400
            )
        })?;
    Ok(Duration::from_secs(total))
}

/// The history settings of a node (`--archive`, `--retention`): plain data, opened into a
/// [`History`] when the node starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `postgres://...`, `sqlite:PATH` or `sqlite::memory:`; `None`: the embedded default.
    pub archive: Option<String>,
    pub retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            archive: None,
            retention: RETENTION_DEFAULT,
        }
    }
}

impl History {
    /// Opens the settings' archive (without connecting). Without a configured archive it is
    /// SQLite in memory; closed incidents then leave the store only when the store is in
    /// memory too (`store_in_memory`: the demo, a single embedded node), since an in-memory
    /// archive beside a durable etcd would lose them at the next restart.
    pub fn open(settings: &Settings, store_in_memory: bool) -> Result<Self> {
        let (archive, remove) = match &settings.archive {
            Some(url) => (Archive::open(url)?, true),
            None => (Archive::memory(), store_in_memory),
        };
        Ok(Self {
            archive,
            retention: settings.retention,
            remove,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_windows_parse_with_their_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "1",
            "h",
            "1x",
            "-1h",
            "1.5h",
            "999999d",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
