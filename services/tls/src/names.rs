//! What a certificate must name: the identities of nodes and devices.
//!
//! Identities are DNS names in the certificate's subject alternative names, so the standard
//! verifier checks them (no parser of our own):
//! - a node: `<node id>.node.centinela` (plus the names and addresses clients dial it by);
//! - a device: `<device id>.button.centinela`, `<camera id>.camera.centinela`,
//!   `<brigade id>.unit.centinela`.
//!
//! A node dials a peer with the peer's node name as the TLS server name, whatever address
//! it connects to, so a member record that points at another process gets a handshake error,
//! not a call. A node serving a peer call checks that the caller's client certificate names
//! the node the call claims to come from.

use rustls::client::verify_server_name;
use rustls::server::ParsedCertificate;
use rustls_pki_types::{CertificateDer, ServerName};

/// The suffix of every identity name.
pub const DOMAIN: &str = "centinela";

/// The kinds of identities a certificate can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Node,
    Button,
    Camera,
    Unit,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Button => "button",
            Kind::Camera => "camera",
            Kind::Unit => "unit",
        }
    }
}

/// The DNS name a certificate for `id` of `kind` carries, e.g. `n1.node.centinela`. `None`
/// when `id` cannot be a DNS label (ids may contain `:`; such an entity cannot use a
/// certificate).
pub fn name(kind: Kind, id: &str) -> Option<ServerName<'static>> {
    let name = format!("{}.{}.{DOMAIN}", id.to_ascii_lowercase(), kind.label());
    ServerName::try_from(name).ok()
}

/// Whether the (already chain-verified) certificate `certificate` names `id` of `kind`.
pub fn names(certificate: &CertificateDer<'_>, kind: Kind, id: &str) -> bool {
    let Some(expected) = name(kind, id) else {
        return false;
    };
    let Ok(parsed) = ParsedCertificate::try_from(certificate) else {
        return false;
    };
    verify_server_name(&parsed, &expected).is_ok()
}
