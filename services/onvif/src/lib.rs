//! ONVIF Profile S, the subset that cameras in the field answer: what the node sends a camera
//! and what it makes of the answers, a client that carries them over HTTP, and the camera's
//! side that the simulated cameras answer with. Both ends are tested against each other and
//! the camera's side against an independent ONVIF client (services/devices/tests).
//!
//! # Layout
//! - [`security`]: WS-Security UsernameToken with PasswordDigest, and the camera's clock offset.
//! - [`request`]: the requests (device capabilities and services, media profiles and URIs, PTZ
//!   moves and status) as SOAP envelopes.
//! - [`response`]: their answers and SOAP faults, parsed with quick-xml by local name (cameras
//!   disagree on namespace prefixes, never on element names).
//! - [`camera`]: the camera's side: what a simulated ONVIF camera answers.
//! - [`ptz`]: a camera preset's pan, tilt and zoom in ONVIF's generic normalized space.
//! - [`xml`]: the small element tree the responses are read from.
//! - [`digest`]: HTTP Digest authentication (RFC 7616, MD5 and SHA-256), which protects the
//!   snapshot URI: the client's answer and the camera's check.
//! - [`client`]: one camera over HTTP: discovery, moves, status, media URIs and snapshots (a
//!   JPEG fetched behind Digest authentication), with timeouts.
//! - [`credentials`]: the accounts the node signs in to cameras with, from the environment.

pub mod camera;
pub mod client;
pub mod credentials;
pub mod digest;
pub mod ptz;
pub mod request;
pub mod response;
pub mod security;
pub mod xml;

/// What an ONVIF exchange can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The camera answered with a SOAP fault.
    #[error("SOAP fault {code}: {reason}")]
    Fault { code: String, reason: String },
    /// The answer is not well-formed XML.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The answer is XML but lacks what the request asks for.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The camera refused our credentials over plain HTTP (the snapshot URI's Digest
    /// authentication): a wrong user name or password.
    #[error("unauthorized (HTTP 401): {0}")]
    Unauthorized(String),
    /// The camera could not be reached, or answered at the HTTP level only.
    #[error("camera unreachable: {0}")]
    Transport(String),
    /// The camera did not answer in time.
    #[error("{what} got no answer within {after:?}")]
    Timeout {
        what: &'static str,
        after: std::time::Duration,
    },
}
