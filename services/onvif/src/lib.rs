//! ONVIF Profile S, the subset that cameras in the field answer, as messages: what the node
//! sends a camera and what it makes of the answers. No IO here: the camera driver in the
//! actors carries these over HTTP, and the simulated camera answers them, so both ends are
//! tested against each other and against an independent ONVIF client.
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

pub mod camera;
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
}
