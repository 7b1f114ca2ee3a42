//! The `centinela.v1` gRPC API.
//!
//! # Layout
//! - [`v1`]: the generated messages, clients and servers of package `centinela.v1`.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for the gRPC reflection service.
//! - [`codec`]: prost's codec, with a message that does not decode as `INVALID_ARGUMENT`.
//! - [`client`]: channels to one of several nodes with failover, and the device credentials
//!   every client presents.
//! - [`json`]: the JSON shapes of the messages (the CLI's `--json` contract, the console's
//!   data), and the parsers of their enum strings.
//! - [`limits`]: the wire's buffer sizes, with their reasons.
//! - [`redirect`]: owner redirects of device streams (a device that asks is sent to the node
//!   that owns it rather than proxied).
//! - [`convert`]: domain (`centinela-core`) values to wire messages and back; wire input is
//!   validated here, at the edge, and refused with a [`convert::Error`] that names the field.

pub mod client;
pub mod codec;
pub mod convert;
pub mod json;
pub mod limits;
pub mod redirect;

/// Generated code for package `centinela.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("centinela.v1");
}

/// `centinela.v1`'s file descriptor set, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/centinela_v1_descriptor.bin"));
