//! Centinela's coordination layer: etcd's own gRPC API (KV, Watch, Lease), spoken everywhere.
//! Nothing here knows Centinela's domain: the records and their transactions are
//! `centinela-records`, on top of this crate.
//!
//! A node always talks etcd's wire protocol through one client, [`Store`]. In production the
//! other end is a real etcd cluster; in the single-node demo and in deterministic simulations it
//! is [`EmbeddedStore`], an in-process server that implements the subset of etcd's API we use
//! with etcd's semantics (revisions, leases on `tokio::time`, compare-and-swap transactions,
//! prefix watches with history replay). So the code path exercised by every simulation is the
//! production one, and one contract test suite (`tests/contract`) runs unchanged against both.
//!
//! On top of KV + lease + watch, [`election`] builds a leader election whose term (the leader's
//! key create revision) fences every write of the dispatcher: a deposed leader's transactions
//! fail their compare.
//!
//! # Layout
//!
//! - [`pb`]: the code generated from etcd's protos (vendored, trimmed, in `/proto/etcd`).
//! - [`client`]: [`Store`], the cheap-to-clone client handle; typed [`Kv`], [`Txn`] builder,
//!   [`LeaseKeeper`], [`WatchStream`].
//! - [`embedded`]: [`EmbeddedStore`], the in-memory MVCC server, servable on any listener or as
//!   an in-process channel with no socket.
//! - [`election`]: [`Election::campaign`] / [`Election::observe`], and the [`Leadership`] fence.
//! - [`shared_watch`]: [`SharedWatch`], one store watch of a key range shared by every
//!   consumer of a node (the dispatcher and the operators' feed), each from its own revision.
//! - [`keys`]: prefix ranges (`prefix_end`).
//! - [`http_date`]: HTTP `date` headers from a given clock (so a simulation's wire carries no
//!   real time), for the embedded store's servers and the node's.
//! - [`limits`]: every bound (timeouts, queue sizes, history) with its reason.
//!
//! Errors are one [`Error`] enum; [`Error::is_retryable`] tells a caller whether trying again
//! (after a pause, possibly with a fresh lease or from a later revision) can succeed.

pub mod client;
pub mod election;
pub mod embedded;
pub mod http_date;
pub mod keys;
pub mod limits;
pub mod pb;
pub mod shared_watch;

/// A client TLS configuration ([`ConnectOptions::tls`]).
pub use centinela_tls::ClientTls;
pub use client::{
    Compare, ConnectOptions, EventKind, Kv, LeaseId, LeaseKeeper, LeaseTtl, OpResponse, Revision,
    ServerStatus, Store, Txn, TxnOp, TxnOutcome, WatchEvent, WatchStream,
};
pub use election::{Election, Fence, LeaderInfo, Leadership};
pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use shared_watch::{Follower, SharedWatch};

/// Everything that can go wrong talking to the store.
///
/// Retryable errors ([`Error::is_retryable`]) are transient: the store could not be reached or
/// answered too late, or the caller's lease vanished and a new one is needed. After
/// [`Error::Unavailable`] or [`Error::Timeout`] a write's outcome is unknown (it may have been
/// applied), so retry writes only when they are idempotent or guarded by a compare (as every
/// fenced dispatcher write is).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be reached, or it has no leader right now.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The call did not complete within its deadline.
    #[error("store request timed out")]
    Timeout,
    /// The lease does not exist (never granted, expired, or revoked). Retry with a new lease.
    #[error("lease not found")]
    LeaseNotFound,
    /// The requested revision was compacted: re-read the current state and continue from there.
    #[error("revision compacted (history starts at {compact_revision})")]
    Compacted {
        /// The oldest revision still available, when the server said (0 if unknown).
        compact_revision: Revision,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("revision is in the future")]
    FutureRevision,
    /// The server canceled a watch (e.g. the watcher fell too far behind). Resume from the
    /// stream's last revision + 1.
    #[error("watch canceled by the store: {reason}")]
    WatchCanceled {
        /// The server's reason, verbatim.
        reason: String,
    },
    /// The request was malformed (the store said `InvalidArgument`, or we refused to send it).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The store answered something we cannot use (a non-UTF-8 key in our layout, a missing field).
    #[error("unexpected data from the store: {0}")]
    InvalidData(String),
    /// Any other gRPC failure.
    #[error("store rpc failed: {0}")]
    Rpc(Box<tonic::Status>),
    /// The TLS handshake with etcd failed: the server's certificate is not signed by the CA we
    /// were given or names another host, or etcd refused our client certificate. The text says
    /// which, endpoint by endpoint.
    #[error("etcd TLS: {0}")]
    Tls(String),
    /// A transport could not be set up or served (bad endpoint, listener failure).
    #[error("store transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl Error {
    /// Whether the same operation can succeed later without the caller changing anything but
    /// time (and, for [`Error::LeaseNotFound`], its lease; for [`Error::WatchCanceled`], its
    /// watch, resumed from the last revision + 1).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable(_)
            | Error::Timeout
            | Error::LeaseNotFound
            | Error::WatchCanceled { .. } => true,
            Error::Rpc(status) => status_is_transient(status),
            Error::Compacted { .. }
            | Error::FutureRevision
            | Error::InvalidRequest(_)
            | Error::InvalidData(_)
            | Error::Tls(_)
            | Error::Transport(_) => false,
        }
    }
}

/// Codes that describe the path to the server rather than the request. A status generated on the
/// client from a broken connection carries its transport error as `source`.
fn status_is_transient(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    use tonic::Code;
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::Cancelled => true,
        Code::Unknown | Code::Internal => status.source().is_some(),
        _ => false,
    }
}

impl From<tonic::Status> for Error {
    /// Maps etcd's gRPC errors (see etcd's `api/v3rpc/rpctypes`) to ours.
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let message = status.message();
        match status.code() {
            Code::NotFound if message.contains("lease not found") => Error::LeaseNotFound,
            Code::OutOfRange if message.contains("compacted") => Error::Compacted {
                compact_revision: 0,
            },
            Code::OutOfRange if message.contains("future revision") => Error::FutureRevision,
            Code::Unavailable => Error::Unavailable(message.to_owned()),
            Code::DeadlineExceeded => Error::Timeout,
            Code::InvalidArgument => Error::InvalidRequest(message.to_owned()),
            _ => Error::Rpc(Box::new(status)),
        }
    }
}
