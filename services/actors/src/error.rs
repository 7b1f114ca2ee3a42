//! What can go wrong delivering a message to an entity, or in the entity acting on it.

use centinela_store::records;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No such entity exists (not in the store): the caller named something unknown.
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },
    /// The entity exists but its actor cannot take the message now (restarting, stopping, or
    /// out of restart budget), or there is no dispatcher leader: retry, possibly elsewhere.
    #[error("{0}")]
    Unavailable(String),
    /// The actor did not answer in time.
    #[error("{what} timed out")]
    Timeout { what: &'static str },
    /// The store refused or failed the change.
    #[error(transparent)]
    Records(#[from] records::Error),
}

impl Error {
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }
}
