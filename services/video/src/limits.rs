//! Every bound of the live video, with its reason.

use std::time::Duration;

/// Frames the broadcast of one camera holds for its slowest viewer: 2 s at 30 frames/s. A
/// viewer further behind than this (a slow link, a busy browser) is not live any more; it
/// skips to the next key frame instead of buffering, so memory per camera stays bounded
/// (about 2 s of the camera's bitrate, ~1 MB at 4 Mbit/s) however slow its viewers are.
pub const BROADCAST_FRAMES_MAX: usize = 60;

/// How long a camera's upstream session stays open after its last viewer left: an operator
/// switching between incidents, or a page reloading, comes back to a warm stream instead of
/// waiting for a new RTSP session and the next key frame.
pub const LINGER: Duration = Duration::from_secs(10);

/// How often an upstream checks whether anyone still watches (the precision of [`LINGER`]).
pub const LINGER_CHECK: Duration = Duration::from_secs(1);

/// Longest an RTSP session may take to open (DESCRIBE, SETUP, PLAY, digest challenges
/// included). Cameras on a LAN answer in tens of milliseconds; one that takes longer is
/// treated as down and retried with back-off.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest silence of a playing stream before it counts as stalled and is reopened. Cameras
/// send 10 to 30 frames a second (1 at the slowest night settings); 5 s without any frame is a
/// camera or link that hangs without closing the connection.
pub const STALL_MAX: Duration = Duration::from_secs(5);

/// First pause before reopening a failed stream; it doubles on each consecutive failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);

/// Longest pause between attempts on a failing camera: a camera coming back is seen within
/// 5 s, and a dead one costs one attempt every 5 s while someone watches it.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Most cameras one node pulls at once. Forwarding without transcoding costs little CPU per
/// stream; the bound is the camera-side and network budget (64 streams of 4 Mbit/s are
/// 256 Mbit/s into one node) and stops a runaway page from opening every camera.
pub const UPSTREAMS_MAX: usize = 64;

/// Longest failure reason passed to viewers: the first line of the RTSP error, enough to
/// say what went wrong without echoing a camera's whole response.
pub const REASON_LEN_MAX: usize = 240;

/// Largest access unit forwarded. A 1080p H.264 key frame is a few hundred kilobytes; larger
/// units are a broken stream, dropped (the viewers then wait for the next key frame) rather
/// than copied to every browser.
pub const ACCESS_UNIT_BYTES_MAX: usize = 4 * 1024 * 1024;
