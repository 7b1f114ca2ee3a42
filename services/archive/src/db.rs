//! The archive database: one schema (services/archive/migrations) and one query layer over
//! PostgreSQL or SQLite. Every query is written once; [`on_pool!`] runs it on whichever pool
//! this archive has, so the two backends cannot drift apart.

use std::str::FromStr;
use std::sync::Arc;

use centinela_core::incident::Incident;
use centinela_core::seal::{AuditKey, ledger_mac};
use centinela_core::time::Timestamp;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::ledger::{self, LedgerRow};
use crate::report::{Facts, insert_facts};
use crate::{ArchivedIncident, Page, Stored, limits};

/// The schema, embedded in the binary and applied when the archive is first used.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the concrete pool: the same statement text for both.
macro_rules! on_pool {
    ($archive:expr, |$pool:ident| $body:expr) => {
        match &$archive.pool {
            $crate::db::Pool::Postgres($pool) => $body,
            $crate::db::Pool::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The archive of closed incidents and its ledger; cheap to clone.
///
/// Opening never touches the database: the schema is applied on first use, so a node whose
/// archive is down still starts and takes presses (its closed incidents wait in the store).
#[derive(Clone, Debug)]
pub struct Archive {
    pub(crate) pool: Pool,
    /// `postgres`, `sqlite` or `sqlite-memory`: for logs and `centinela status`.
    kind: &'static str,
    /// Whether the migrations ran on this archive (once; retried while they fail).
    migrated: Arc<OnceCell<()>>,
    /// Whether this process filled in the report facts of incidents archived before the
    /// report tables existed (once: every incident archived since has its facts written in
    /// the same transaction, so looking again would only re-scan the whole archive).
    pub(crate) report_facts_filled: Arc<OnceCell<()>>,
}

impl Archive {
    /// Opens the archive at `url`: `postgres://...` (or `postgresql://`), `sqlite:PATH`, or
    /// `sqlite::memory:` (the demo's). Does not connect yet.
    pub fn open(url: &str) -> Result<Self> {
        let bad = |reason: String| Error::Url {
            url: redact(url),
            reason,
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(limits::POSTGRES_CONNECTIONS_MAX)
                .acquire_timeout(limits::ACQUIRE_TIMEOUT)
                .connect_lazy_with(options);
            return Ok(Self::with(Pool::Postgres(pool), "postgres"));
        }
        if url == "sqlite::memory:" || url == "sqlite:memory" {
            return Ok(Self::memory());
        }
        let Some(path) = url.strip_prefix("sqlite:") else {
            return Err(bad(
                "expected postgres://USER@HOST/DB, sqlite:PATH or sqlite::memory:".into(),
            ));
        };
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(bad("sqlite: needs a file path".into()));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(limits::ACQUIRE_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(limits::SQLITE_CONNECTIONS_MAX)
            .acquire_timeout(limits::ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self::with(Pool::Sqlite(pool), "sqlite"))
    }

    /// An archive in memory (the demo): gone when the process ends, like the demo's store.
    pub fn memory() -> Self {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .expect("a valid sqlite url")
            .busy_timeout(limits::ACQUIRE_TIMEOUT);
        // One connection, never closed: an in-memory database lives as long as one does.
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(limits::ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Self::with(Pool::Sqlite(pool), "sqlite-memory")
    }

    fn with(pool: Pool, kind: &'static str) -> Self {
        Self {
            pool,
            kind,
            migrated: Arc::new(OnceCell::new()),
            report_facts_filled: Arc::new(OnceCell::new()),
        }
    }

    /// `postgres`, `sqlite` or `sqlite-memory`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Applies the schema's migrations (once per process; again after a failure).
    pub async fn ready(&self) -> Result<()> {
        self.migrated
            .get_or_try_init(|| async {
                on_pool!(self, |pool| MIGRATOR.run(pool).await)?;
                Ok::<(), Error>(())
            })
            .await?;
        Ok(())
    }

    /// Archives a closed incident with its extras and stills (`(sha256 hex, jpeg)`), and chains
    /// it into the ledger, in one database transaction. The same incident again is
    /// [`Stored::AlreadyArchived`] and changes nothing (its extras may have changed since: press
    /// ids expire, bookmarks roll over; the first copy stands). A different incident record
    /// under an archived id is [`Error::Tampered`].
    pub async fn archive(
        &self,
        entry: &ArchivedIncident,
        stills: &[(String, Vec<u8>)],
        key: &AuditKey,
        now: Timestamp,
    ) -> Result<Stored> {
        let incident = &entry.incident;
        let id = incident.id.to_string();
        let refused = |reason: &str| Error::Refused {
            id: id.clone(),
            reason: reason.to_string(),
        };
        let Some(closed_at) = incident.closed_at.filter(|_| !incident.is_open()) else {
            return Err(refused("it is still open"));
        };
        let verdict = incident.verify_audit(Some(key));
        if let Some(broken) = &verdict.first_break {
            return Err(refused(&format!(
                "its audit chain is broken: {}",
                broken.reason
            )));
        }
        if stills
            .iter()
            .any(|(_, jpeg)| jpeg.len() > limits::STILL_BYTES_MAX)
        {
            return Err(refused("a still is over the size limit"));
        }
        self.ready().await?;
        let incident_hash = ledger::hash_hex(&encode(incident));
        let body = encode(entry);
        let body_hash = ledger::hash_hex(&body);
        let body = String::from_utf8(body).expect("JSON is UTF-8");
        let head = verdict.head;

        for _ in 0..limits::LEDGER_APPEND_ATTEMPTS_MAX {
            let attempt: Result<Option<Stored>> = on_pool!(self, |pool| {
                let mut tx = pool.begin().await?;
                let existing = sqlx::query("SELECT incident_hash FROM incidents WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = existing {
                    let stored: String = row.try_get(0)?;
                    tx.rollback().await?;
                    if stored == incident_hash {
                        return Ok(Stored::AlreadyArchived);
                    }
                    return Err(Error::Tampered {
                        id,
                        reason: "the archive holds a different record under this id".into(),
                    });
                }
                let last = sqlx::query("SELECT seq, link FROM ledger ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
                let (seq, prev) = match last {
                    Some(row) => (row.try_get::<i64, _>(0)? + 1, row.try_get::<String, _>(1)?),
                    None => (1, ledger::genesis()),
                };
                let link = ledger::link(&prev, &id, &head, &body_hash);
                let mac = ledger_mac(key, &ledger::entry_digest(seq, &id, &head, &body_hash));
                sqlx::query(
                    "INSERT INTO incidents (id, button, kind, resolution, created_at_ms, \
                     closed_at_ms, audit_head, body, body_hash, incident_hash, archived_at_ms, \
                     district) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&id)
                .bind(incident.button.as_str())
                .bind(incident.kind.to_string())
                .bind(incident.resolution.map(|r| r.to_string()))
                .bind(millis(incident.created_at))
                .bind(millis(closed_at))
                .bind(&head)
                .bind(&body)
                .bind(&body_hash)
                .bind(&incident_hash)
                .bind(millis(now))
                .bind(&entry.district)
                .execute(&mut *tx)
                .await?;
                // The report's facts (src/report.rs), in the same transaction.
                let facts = Facts::of(entry);
                insert_facts!(tx, &facts);
                for (sha256, jpeg) in stills {
                    sqlx::query(
                        "INSERT INTO stills (incident_id, sha256, jpeg) VALUES ($1, $2, $3)",
                    )
                    .bind(&id)
                    .bind(sha256)
                    .bind(jpeg)
                    .execute(&mut *tx)
                    .await?;
                }
                let appended = sqlx::query(
                    "INSERT INTO ledger (seq, incident_id, audit_head, body_hash, prev, link, mac) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(seq)
                .bind(&id)
                .bind(&head)
                .bind(&body_hash)
                .bind(&prev)
                .bind(&link)
                .bind(&mac)
                .execute(&mut *tx)
                .await;
                match appended {
                    // Another writer took this sequence number (or archived this incident)
                    // first: the transaction is dropped (rolled back) and tried again.
                    Err(e) if is_unique_violation(&e) => Ok(None),
                    Err(e) => Err(e.into()),
                    Ok(_) => {
                        tx.commit().await?;
                        Ok(Some(Stored::Archived { seq }))
                    }
                }
            });
            match attempt {
                Ok(Some(stored)) => return Ok(stored),
                Ok(None) => continue,
                Err(Error::Database(e)) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Database(sqlx::Error::Protocol(format!(
            "the ledger stayed contended for {} attempts",
            limits::LEDGER_APPEND_ATTEMPTS_MAX
        ))))
    }

    /// The archived incident `id`, with its extras, if archived.
    pub async fn get(&self, id: &str) -> Result<Option<ArchivedIncident>> {
        self.ready().await?;
        let row = on_pool!(self, |pool| {
            sqlx::query("SELECT body FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get::<String, _>(0))
                .transpose()?
        });
        row.map(|body| decode(id, &body)).transpose()
    }

    /// The still `sha256` of archived incident `id`.
    pub async fn still(&self, id: &str, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.ready().await?;
        Ok(on_pool!(self, |pool| {
            sqlx::query("SELECT jpeg FROM stills WHERE incident_id = $1 AND sha256 = $2")
                .bind(id)
                .bind(sha256)
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get::<Vec<u8>, _>(0))
                .transpose()?
        }))
    }

    /// How many incidents the archive holds.
    pub async fn count(&self) -> Result<u64> {
        self.ready().await?;
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query("SELECT COUNT(*) FROM incidents")
                .fetch_one(pool)
                .await?
                .try_get(0)?
        });
        Ok(count.max(0) as u64)
    }

    /// One page of closed incidents, oldest closing first: those closed at or after
    /// `page.since`, strictly after `page.after` (the last of the previous page), at most
    /// `page.limit` (capped at [`limits::PAGE_MAX`]).
    pub async fn closed(&self, page: &Page) -> Result<Vec<Incident>> {
        self.ready().await?;
        let limit = i64::from(page.limit.clamp(1, limits::PAGE_MAX));
        let since = page.since.map_or(0, millis);
        let (after_at, after_id) = match &page.after {
            Some((at, id)) => (millis(*at), id.clone()),
            None => (-1, String::new()),
        };
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query(
                "SELECT id, body FROM incidents WHERE closed_at_ms >= $1 \
                 AND (closed_at_ms > $2 OR (closed_at_ms = $2 AND id > $3)) \
                 ORDER BY closed_at_ms, id LIMIT $4",
            )
            .bind(since)
            .bind(after_at)
            .bind(&after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?
        });
        rows.iter()
            .map(|(id, body)| decode(id, body).map(|entry| entry.incident))
            .collect()
    }

    /// Ledger rows after `seq`, each with what the incidents table holds for its incident
    /// (`None` when the incident's row is gone), at most `limit`.
    pub(crate) async fn ledger_page(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(LedgerRow, Option<(String, String)>)>> {
        self.ready().await?;
        Ok(on_pool!(self, |pool| {
            sqlx::query(
                "SELECT l.seq, l.incident_id, l.audit_head, l.body_hash, l.prev, l.link, l.mac, \
                 i.body, i.body_hash FROM ledger l LEFT JOIN incidents i ON i.id = l.incident_id \
                 WHERE l.seq > $1 ORDER BY l.seq LIMIT $2",
            )
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| {
                let ledger = LedgerRow {
                    seq: row.try_get(0)?,
                    incident_id: row.try_get(1)?,
                    audit_head: row.try_get(2)?,
                    body_hash: row.try_get(3)?,
                    prev: row.try_get(4)?,
                    link: row.try_get(5)?,
                    mac: row.try_get(6)?,
                };
                let body: Option<String> = row.try_get(7)?;
                let body_hash: Option<String> = row.try_get(8)?;
                Ok((ledger, body.zip(body_hash)))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        }))
    }

    /// Incidents with no ledger entry (someone inserted them past the archiver), at most
    /// `limit`.
    pub(crate) async fn unledgered(&self, limit: i64) -> Result<Vec<String>> {
        self.ready().await?;
        Ok(on_pool!(self, |pool| {
            sqlx::query(
                "SELECT i.id FROM incidents i LEFT JOIN ledger l ON l.incident_id = i.id \
                 WHERE l.incident_id IS NULL ORDER BY i.id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        }))
    }

    /// The last ledger entry's sequence number and link (`None` on an empty ledger).
    pub async fn ledger_head(&self) -> Result<Option<(i64, String)>> {
        self.ready().await?;
        Ok(on_pool!(self, |pool| {
            sqlx::query("SELECT seq, link FROM ledger ORDER BY seq DESC LIMIT 1")
                .fetch_optional(pool)
                .await?
                .map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?)))
                .transpose()?
        }))
    }

    /// Runs one statement as it is: tests use it to play someone with write access to the
    /// database (deleting or editing a row behind the archiver's back).
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64> {
        self.ready().await?;
        Ok(on_pool!(self, |pool| {
            sqlx::query(sql).execute(pool).await?.rows_affected()
        }))
    }

    /// Closes the pool (tests that stop the database first).
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("archived records serialize")
}

pub(crate) fn decode(id: &str, body: &str) -> Result<ArchivedIncident> {
    serde_json::from_str(body).map_err(|e| Error::Decode {
        id: id.to_string(),
        reason: e.to_string(),
    })
}

/// Milliseconds since the epoch as SQL's BIGINT (good until the year 292 million).
pub(crate) fn millis(at: Timestamp) -> i64 {
    i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// The URL without its password, for errors and logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_apart_and_passwords_never_shown() {
        assert!(matches!(
            Archive::open("mysql://x").unwrap_err(),
            Error::Url { .. }
        ));
        assert!(matches!(
            Archive::open("sqlite:").unwrap_err(),
            Error::Url { .. }
        ));
        assert_eq!(
            redact("postgres://centinela:s3cret@db:5432/x"),
            "postgres://centinela:***@db:5432/x"
        );
        assert_eq!(redact("sqlite:/var/lib/a.db"), "sqlite:/var/lib/a.db");
        let error = Archive::open("postgres://u:s3cret@db:notaport/x").unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}
