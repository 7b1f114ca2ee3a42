//! The archive's bounds, each with its reason.

use std::time::Duration;

/// How long a query waits for a connection: an archive that is down must fail the leader's
/// archiving pass quickly (the incidents stay in the store and the pass is retried), never
/// hold it for minutes.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections to PostgreSQL: one leader archives and a few operators page through history;
/// more would only crowd the database's own limit (100 by default).
pub const POSTGRES_CONNECTIONS_MAX: u32 = 4;

/// Connections to an SQLite file (one writer at a time anyway; readers share WAL).
pub const SQLITE_CONNECTIONS_MAX: u32 = 4;

/// Attempts to append to the ledger when another writer took the same sequence number (two
/// leaders overlapping for a moment on a shared PostgreSQL).
pub const LEDGER_APPEND_ATTEMPTS_MAX: usize = 8;

/// Closed incidents returned by one page of `incidents --closed` at most: a page is one gRPC
/// reply, and 1,000 incidents with their audit trails stay well under its 4 MiB.
pub const PAGE_MAX: u32 = 1_000;

/// Closed incidents a page holds when the caller does not say.
pub const PAGE_DEFAULT: u32 = 100;

/// Ledger rows `verify` reads per query: the whole archive is checked in pages, so a year of
/// history is never in memory at once.
pub const VERIFY_PAGE: i64 = 500;

/// Breaks `verify` reports at most (it keeps counting past them): a wholesale tampering must
/// not turn the report into an unbounded reply.
pub const VERIFY_BREAKS_MAX: usize = 1_000;

/// The longest retention window: past a year the store holds the history this crate exists to
/// take out of it (etcd's quota is 2 GiB by default, 8 GiB at most).
pub const RETENTION_MAX: Duration = Duration::from_secs(366 * 86_400);

/// How often the leader looks for closed incidents to archive and remove.
pub const ARCHIVE_PERIOD: Duration = Duration::from_secs(5);

/// How long the archiver waits, after an incident closed, for the calls its trail still
/// shows up to end. A call may outlive its incident by the moment its hang-up takes, and
/// its end (and its recording) are appended to the trail then; an incident archived before
/// that would differ from the archived copy forever after. A recording is capped at an
/// hour; a call still "up" two hours after closing is one whose end was never written (its
/// node died with no leader to sweep it), and the incident is archived as it stands.
pub const OPEN_CALL_WAIT_MAX: Duration = Duration::from_secs(2 * 3_600);

/// Closed incidents archived per pass at most: a backlog after an outage drains over a few
/// passes instead of one long burst of store reads and archive writes.
pub const ARCHIVE_BATCH_MAX: usize = 200;

/// A still is kept in the archive up to this size (the store's own limit on stills).
pub const STILL_BYTES_MAX: usize = centinela_records::stills::STILL_BYTES_MAX;

/// Rows a report holds at most: one gRPC reply (a row is about 200 bytes), and more buttons or
/// units than any city we know of has.
pub const REPORT_GROUPS_MAX: usize = 10_000;

/// Archived incidents whose report facts are computed per transaction when filling in those
/// archived before the report tables existed: a bounded transaction and a bounded batch of
/// bodies in memory.
pub const REPORT_FILL_BATCH: i64 = 500;

/// Pranks at one button within a report's period that make it a "repeat pranks" button.
pub const REPEAT_PRANKS_MIN: u32 = 2;

/// Buttons listed under repeat pranks at most, the most pranked first: what a supervisor acts
/// on, not a second per-button report.
pub const REPEAT_PRANKS_LISTED_MAX: u32 = 100;

/// The furthest a local time is from UTC, in minutes (UTC+14:00, Kiribati): a report's hours
/// are shifted by at most this.
pub const UTC_OFFSET_MINUTES_MAX: u32 = 14 * 60;

/// Most days of synthetic history the demo may generate (`centinela demo --history DAYS`): a
/// year shows every report and a stable post plan; more only lengthens the demo's start.
pub const SYNTHETIC_DAYS_MAX: u32 = 366;

/// Incidents per day in the synthetic history, on average: a busy district's buttons (Lima's
/// centre sees about a dozen calls a day at its Serenazgo posts), enough for every button to
/// have a history within a few weeks.
pub const SYNTHETIC_INCIDENTS_PER_DAY: u32 = 12;

/// Significant decimal digits a report's response times keep (report::bucket_floor_s):
/// percentiles come from histograms with this many digits per decade, so a year of history
/// is a few dozen histogram rows per group instead of one per incident (the rows were the
/// time). Two digits: exact to the second below 100 s, then never more than 10% low, which
/// is finer than any decision taken on a p50 or p90 of response times.
pub const REPORT_BUCKET_SIGNIFICANT_DIGITS: u32 = 2;
