//! Handing incidents to other agencies (police, firefighters, ambulance) over signed webhooks,
//! as OASIS CAP 1.2 alerts.
//!
//! # Layout
//! - [`agency`]: the agencies file (`CENTINELA_AGENCIES_FILE`): who takes hand-offs, where,
//!   with which key. Configuration only, never changed over the API.
//! - [`cap`]: an incident as a CAP 1.2 `alert` (the mapping table: docs/handoff.md).
//! - [`signature`]: HMAC-SHA256 of a body, the `X-Centinela-Signature` header both ways.
//!
//! The record of a hand-off and its messages is `centinela_core::handoff`; the store keeps it
//! (`centinela-records`), the operator API creates it, the leader's sender delivers it.

pub mod agency;
pub mod cap;
pub mod signature;
#[doc(hidden)]
pub mod testing;

pub use agency::{Agencies, Agency};
