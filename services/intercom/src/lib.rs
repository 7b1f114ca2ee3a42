//! The intercom gateway: field buttons are SIP user agents (2N, Akuvox, Zenitel, Commend...)
//! that place a call when pressed. This crate is the narrow SIP server they call
//! (`sip:centinela@NODE`, `--sip ADDR`, UDP and TCP): it authenticates each button with SIP
//! digest, answers G.711, and hands the call to the node, which opens or joins the button's
//! incident through the same press path a `Press` takes, durably before the call is answered,
//! and records the call's start and end in the incident's audit trail. docs/intercom.md says
//! how to connect a real intercom.
//!
//! # Layout
//! - [`sip`]: requests parsed with `ezk-sip-types` (no grammar of ours), TCP framing, the
//!   responses we write.
//! - [`digest`]: digest authentication: stateless nonces, the check of an answer against the
//!   button's `HA1`.
//! - [`sdp`]: the caller's offer (with `ezk-sdp-types`) and our G.711 answer.
//! - [`gateway`]: the UDP and TCP servers, the call table, what each method does, and the
//!   [`gateway::Backend`] the node implements.
//! - [`desk`]: the operators' side: a call rings in the console, one operator answers it over
//!   WebRTC (str0m, ICE-lite) bridged to the button's RTP untranscoded, holds it, hangs up.
//! - [`recording`]: a call's audio both ways into a WAV file, its hash for the audit trail
//!   (off unless [`Config::recordings`] says where).
//! - [`remote`]: calls across nodes: each node publishes its desk's calls in the store and
//!   follows the others'; a step on a call another node anchors is forwarded to it.
//! - [`limits`]: every bound, with its reason.

pub mod desk;
pub mod digest;
pub mod gateway;
pub mod limits;
pub mod recording;
pub mod remote;
pub mod sdp;
pub mod sip;

pub use desk::{Desk, DeskCall, DeskError, DeskState};
pub use gateway::{
    Backend, CallInfo, CallState, CallStep, CallView, Config, EndedBy, Gateway, Passwords,
};
pub use recording::Recorded;
