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
//! - [`demand`]: archived incidents per button, weighted by recency, for planning brigade
//!   posts.
//! - [`report`]: the municipality's reports (per button, hour, weekday or unit: presses,
//!   resolutions, response times), from facts computed at archive time.
//! - [`synthetic`]: a plausible history for the demo (`centinela demo --history DAYS`).
//! - [`limits`]: the bounds, each with its reason.
//! - [`error`]: what archiving can fail with, and what is worth retrying.

pub mod db;
pub mod demand;
pub mod error;
pub mod ledger;
pub mod limits;
pub mod report;
pub mod retention;
pub mod synthetic;

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
    /// The district of its button when it was archived (the button record's, copied by the
    /// leader; docs/reports.md). `None` for a button without one and for every incident
    /// archived before districts existed: reports put them under
    /// [`centinela_core::button::DISTRICT_UNKNOWN`]. Left out of the body when `None`, so
    /// those bodies read and hash as they always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
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
    /// The node's data directory (`--data-dir`): where the embedded default archive is kept,
    /// as [`DEFAULT_ARCHIVE_FILE`], when the store is etcd and no archive is configured.
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            archive: None,
            retention: RETENTION_DEFAULT,
            data_dir: None,
        }
    }
}

/// The embedded default archive's file in a node's data directory.
pub const DEFAULT_ARCHIVE_FILE: &str = "archive.db";

impl History {
    /// Opens the settings' archive (without connecting). Without a configured archive it is
    /// the embedded default: SQLite in memory beside a store in memory (`store_in_memory`: the
    /// demo, a single embedded node); beside etcd, an SQLite file in the node's data directory
    /// ([`DEFAULT_ARCHIVE_FILE`], the directory created if missing); beside etcd without a data
    /// directory, SQLite in memory that nothing is removed into (an in-memory archive beside a
    /// durable etcd would lose incidents at the next restart), so closed incidents stay in etcd.
    pub fn open(settings: &Settings, store_in_memory: bool) -> Result<Self> {
        let (archive, remove) = match (&settings.archive, &settings.data_dir) {
            (Some(url), _) => (Archive::open(url)?, true),
            (None, _) if store_in_memory => (Archive::memory(), true),
            (None, Some(dir)) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::Url {
                    url: dir.display().to_string(),
                    reason: format!("cannot create the data directory: {e}"),
                })?;
                let file = dir.join(DEFAULT_ARCHIVE_FILE);
                (Archive::open(&format!("sqlite:{}", file.display()))?, true)
            }
            (None, None) => (Archive::memory(), false),
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

    #[tokio::test]
    async fn the_default_archive_beside_etcd_is_a_file_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("node-1");
        let settings = Settings {
            data_dir: Some(data_dir.clone()),
            ..Settings::default()
        };
        let history = History::open(&settings, false).unwrap();
        assert!(history.remove, "archived incidents leave etcd");
        assert_eq!(history.archive.kind(), "sqlite");
        // The schema is applied at first use, in the file.
        let page = history.archive.closed(&Page::default()).await.unwrap();
        assert!(page.is_empty());
        assert!(data_dir.join(DEFAULT_ARCHIVE_FILE).is_file());

        // Without a data dir, nothing leaves etcd; beside a store in memory, memory is fine.
        let bare = History::open(&Settings::default(), false).unwrap();
        assert!(!bare.remove);
        let demo = History::open(&settings, true).unwrap();
        assert!(demo.remove);
        assert!(!dir.path().join(DEFAULT_ARCHIVE_FILE).exists());
        // A configured archive wins over the data dir.
        let configured = Settings {
            archive: Some(format!("sqlite:{}", dir.path().join("other.db").display())),
            ..settings
        };
        assert!(History::open(&configured, false).unwrap().remove);
    }

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
