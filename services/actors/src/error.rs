//! What can go wrong delivering a message to an entity, or in the entity acting on it.

use centinela_records as records;

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
    /// The entity refuses the request in its current state, without a store change: a unit
    /// whose terminal already holds a live assignment stream refuses a second one.
    #[error("{0}")]
    Busy(String),
    /// A message from another node could not be decoded.
    #[error("{0}")]
    Malformed(String),
    /// Another node answered a forwarded message with this status.
    #[error("{message}")]
    Peer {
        node: String,
        code: tonic::Code,
        message: String,
    },
}

impl Error {
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }

    pub fn from_peer(node: &centinela_cluster::Member, status: tonic::Status) -> Self {
        Self::Peer {
            node: node.id.clone(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    /// Whether delivering again (possibly to another node) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable(_) | Error::Timeout { .. } => true,
            Error::Peer { code, message, .. } => {
                matches!(
                    code,
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) || (*code == tonic::Code::Unknown && message.contains("transport"))
            }
            Error::NotFound { .. } | Error::Records(_) | Error::Malformed(_) | Error::Busy(_) => {
                false
            }
        }
    }
}
