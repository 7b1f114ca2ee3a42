//! What a change to the records can fail with.

use centinela_core::{brigade, camera, incident};

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },
    /// A domain rule refused the change (an illegal transition, say).
    #[error("{0}")]
    Refused(String),
    /// The request itself is invalid (too long a field, say).
    #[error("{0}")]
    Invalid(String),
    /// The dispatcher's term no longer holds: another node leads now.
    #[error("leadership lost: this node's dispatcher term no longer holds")]
    Fenced,
    /// Concurrent writers kept winning; the change was not applied.
    #[error("too much contention on the store: gave up after {attempts} attempts")]
    Contention { attempts: usize },
    #[error("store: {message}")]
    Store { message: String, retryable: bool },
    #[error("corrupt record at {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Contention { .. }
                | Error::Fenced
                | Error::Store {
                    retryable: true,
                    ..
                }
        )
    }

    /// The store's history no longer reaches the requested revision.
    pub fn is_compacted(&self) -> bool {
        matches!(self, Error::Store { message, .. } if message.contains("compacted"))
    }

    /// A store answer this crate cannot use (a programmer error or a broken store).
    pub(crate) fn unexpected(message: impl Into<String>) -> Self {
        Error::Store {
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<centinela_store::Error> for Error {
    fn from(e: centinela_store::Error) -> Self {
        Error::Store {
            retryable: e.is_retryable(),
            message: e.to_string(),
        }
    }
}

impl From<incident::Error> for Error {
    fn from(e: incident::Error) -> Self {
        match e {
            incident::Error::CallerFieldTooLong { .. } => Error::Invalid(e.to_string()),
            _ => Error::Refused(e.to_string()),
        }
    }
}

impl From<brigade::Error> for Error {
    fn from(e: brigade::Error) -> Self {
        Error::Refused(e.to_string())
    }
}

impl From<camera::Error> for Error {
    fn from(e: camera::Error) -> Self {
        Error::Refused(e.to_string())
    }
}
