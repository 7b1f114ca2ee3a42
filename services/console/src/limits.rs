//! Every bound the console enforces and every target its timers are colored against, each with
//! its reason.

use std::time::Duration;

/// Largest request body the console accepts (login, classify with caller details). The biggest
/// legitimate body is a classification with three caller fields of
/// `centinela_core::limits::CALLER_FIELD_LEN_MAX` bytes each, under 2 KiB of JSON; 16 KiB
/// leaves room for escaping and refuses anything that is not a form an operator typed.
pub const REQUEST_BYTES_MAX: usize = 16 * 1024;

/// Largest acknowledgement an agency may POST to its callback: an acknowledgement is a few
/// hundred bytes of JSON; past this it is refused (413) before its signature is checked.
pub const HANDOFF_ACK_BYTES_MAX: usize = 64 * 1024;

/// Most live event streams (open console tabs) one node serves at once. A call center has a
/// few dozen operator positions; each stream holds a store-watch subscriber and a task, so a
/// runaway script reconnecting in a loop is refused with 503 instead of exhausting the node.
pub const EVENT_STREAMS_MAX: usize = 256;

/// Interval of the `tick` event on every live stream. The page declares its connection dead
/// after [`STREAM_SILENCE_MAX`] without any event, which catches a node that vanished without
/// closing its sockets (a powered-off machine, a partition); the tick also carries the server
/// time, so timers do not depend on the operator's PC clock.
pub const TICK_INTERVAL: Duration = Duration::from_secs(5);

/// Silence after which the page reconnects: three missed ticks, so one slow tick never causes
/// a reconnect but a dead node is noticed within seconds.
pub const STREAM_SILENCE_MAX: Duration = Duration::from_secs(15);

/// How long a sign-in lasts: one shift (the Serenazgo works 12-hour shifts) so an operator is
/// never asked for a password in the middle of one, and a cookie left on a shared PC expires.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Password checks running at once. Each argon2id check takes ~19 MiB and tens of
/// milliseconds of a core on purpose; capping them keeps a flood of login attempts from
/// starving the node of memory and CPU that presses need.
pub const LOGIN_CHECKS_MAX: usize = 2;

/// Longest operator id or password accepted at login, in bytes. Ids are at most
/// `centinela_core::limits::ID_LEN_MAX`; passwords longer than this are pasted blobs, and
/// hashing them is wasted work.
pub const LOGIN_FIELD_LEN_MAX: usize = 256;

/// Most operator accounts one configuration may declare: a municipality's whole call center is
/// in the hundreds; the cap rejects a generated file gone wrong.
pub const OPERATORS_MAX: usize = 10_000;

/// Most recommended brigades the console asks for: the detail panel shows one screen of them.
pub const RECOMMEND_LIMIT_MAX: u32 = 20;

/// Operators should answer the intercom (acknowledge) within this long of the press: the
/// common emergency call center standard of answering within 15 seconds. The "since press"
/// timer turns amber at two thirds of it and red past it, until acknowledged.
pub const OPERATOR_ACK_TARGET: Duration = Duration::from_secs(15);

/// A dispatched brigade should be on scene within this long: an urban priority-1 response
/// target; the central district's beats are a few hundred metres, so eight minutes is
/// generous on foot and tight for a car stuck in traffic. The "since dispatch" timer turns
/// amber at two thirds of it and red past it, until a unit is on scene.
pub const ON_SCENE_TARGET: Duration = Duration::from_secs(8 * 60);

/// Most brigade app live streams one node serves at once: a city's fleet is in the hundreds of
/// units, each with one phone; a runaway page reconnecting in a loop is refused with 503.
pub const APP_STREAMS_MAX: usize = 2_048;

/// How long the brigade app's idempotency keys are remembered: a page retries a queued action
/// for as long as it is offline, but it also re-reads the current truth when it reconnects, and
/// the domain refuses a stale repeat with a clear reason; ten minutes covers a tunnel or a dead
/// zone without keeping answers forever.
pub const APP_IDEMPOTENCY_TTL: Duration = Duration::from_secs(10 * 60);

/// Most remembered answers per node (the oldest go first): a few actions per unit per incident
/// for a whole city's fleet, a few megabytes at most.
pub const APP_REPLIES_MAX: usize = 20_000;

/// Longest idempotency key, in bytes: the page sends a UUID (36).
pub const APP_IDEMPOTENCY_KEY_LEN_MAX: usize = 64;

/// Events buffered towards one browser. The watch stream behind it has its own buffer and
/// re-snapshots a subscriber that lags, so this only smooths bursts.
pub const EVENTS_BUFFER: usize = 64;

/// Longest hex string the session code decodes: a BLAKE2b-512 MAC is 64 bytes, 128 hex digits.
pub const HEX_LEN_MAX: usize = 128;

/// Camera pictures: one snapshot every 200 ms is 5 frames/s, enough to watch a person move and
/// read a gesture, at a cost a camera's snapshot service and a node bear for dozens of views
/// (full-motion video comes from the camera's RTSP stream instead).
pub const PICTURE_INTERVAL: Duration = Duration::from_millis(200);
/// How long a camera's picture loop keeps fetching after its last viewer left: an operator
/// switching between incidents comes back to a warm feed.
pub const PICTURE_LINGER: Duration = Duration::from_secs(10);
/// Longest wait between attempts on a camera that fails.
pub const PICTURE_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a still waits for a first picture from a camera nobody was watching.
pub const STILL_WAIT: Duration = Duration::from_secs(5);
/// Most MJPEG views one node serves at once: 64 views at 5 frames/s of ~30 KB are under
/// 8 MB/s; a runaway page opening views in a loop is refused with 503.
pub const LIVE_STREAMS_MAX: usize = 64;
