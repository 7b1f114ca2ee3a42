//! Live video of the cameras for the console: the node pulls a camera's H.264 stream over
//! RTSP (with [`retina`]) and hands the access units, untouched, to every browser watching it.
//!
//! ```text
//!  camera ──RTSP/TCP (one session per camera)──► upstream task ──broadcast (bounded)──► Viewer ×N
//!                                                      │                                 │
//!                                                 status (watch)                  console WebSocket
//! ```
//!
//! - One upstream session per camera however many operators watch: the first viewer opens
//!   it, the last one leaving starts a [`LINGER`](limits::LINGER) after which it is closed.
//! - Viewers share a bounded broadcast. One that falls behind skips to the next key frame; it
//!   never buffers without bound.
//! - A stream that fails or stalls is reopened with back-off; viewers see the status
//!   (connecting, playing, reconnecting, refused) as it changes.
//! - The camera's account is the node's ONVIF credentials for that camera; it never reaches a
//!   browser.
//!
//! # Layout
//! - [`hub`]: [`Video`], the node's upstreams by camera, and [`Viewer`], one browser's view.
//! - [`upstream`]: one camera's RTSP session, reconnects and linger.
//! - [`wire`]: what a viewer is sent: the decoder configuration and the frames.
//! - [`limits`]: every bound, with its reason.

pub mod hub;
pub mod limits;
pub mod upstream;
pub mod wire;

pub use hub::{Event, Video, Viewer};
pub use wire::{Frame, Parameters, Status};

/// Why a camera cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("stream URI {uri:?} is not usable: {reason}")]
    Uri { uri: String, reason: String },
    #[error("this node already pulls {0} camera streams; close some views or use another node")]
    Busy(usize),
}
