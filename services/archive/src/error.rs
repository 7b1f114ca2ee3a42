//! What the archive can fail with.

/// An archive error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive URL is not one we know how to open.
    #[error("archive url {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// The database did not answer, refused, or failed a query: worth retrying later.
    #[error("archive database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema's migrations could not be applied.
    #[error("archive migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The archive already holds a different body for this incident, or what it holds does not
    /// match what was written: someone changed it.
    #[error("archive tampering at incident {id}: {reason}")]
    Tampered { id: String, reason: String },
    /// The incident cannot be archived as it is (still open, or its audit chain is broken).
    #[error("incident {id} cannot be archived: {reason}")]
    Refused { id: String, reason: String },
    /// A stored body does not decode.
    #[error("archive record {id}: {reason}")]
    Decode { id: String, reason: String },
    /// A report was asked for with arguments it cannot have (an empty period, too many rows).
    #[error("report: {0}")]
    Query(String),
    /// The coordination store failed (the leader's archiving pass).
    #[error("store: {0}")]
    Records(#[from] centinela_records::Error),
}

impl Error {
    /// Whether retrying later may succeed (the database or the store was unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Database(_) | Error::Records(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
