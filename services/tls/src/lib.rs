//! TLS for Centinela: every port of a node, every client, and the node-to-node calls.
//!
//! One crypto backend for the whole build, ring; configurations are built with it explicitly
//! ([`provider`]), never through rustls's process-wide default, so a second backend linked
//! by some dependency cannot make a handshake panic.
//!
//! # Layout
//! - [`pem`]: certificate chains, private keys and CA bundles from PEM files, with errors
//!   that name the file and what is wrong with it.
//! - [`reload`]: [`Pair`], a certificate and key re-read when their files change (rotation
//!   without a restart).
//! - [`server`]: [`ServerTls`], a listener's TLS (client certificates verified against the
//!   CA when one is given), and the stream of handshaken connections a server takes.
//! - [`client`]: [`ClientTls`], a client's TLS and the tonic connector that speaks it.
//! - [`names`]: the identities certificates carry (`n1.node.centinela`, `B01.button.centinela`).
//! - [`error`]: [`Error`], and [`describe`], which turns a TLS failure buried in a transport
//!   error into "certificate expired", "unknown CA", "wrong name".
//! - [`limits`]: every bound, with its reason.

pub mod client;
pub mod error;
pub mod limits;
pub mod names;
pub mod pem;
pub mod reload;
pub mod server;

use std::sync::Arc;

pub use client::{ClientTls, plain_uri, server_name_of};
pub use error::{Error, describe, tls_cause};
pub use names::Kind;
pub use reload::{Files, Pair};
pub use rustls_pki_types::{CertificateDer, ServerName};
pub use server::{Protocol, RemoteAddr, ServerTls, TlsConnection, TlsInfo};

/// The one crypto backend: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
