//! Every bound of the intercom gateway, with its reason.

use std::time::Duration;

/// The largest SIP message read (UDP datagram or TCP frame). An intercom's INVITE with its
/// G.711 offer is under 2 KiB; 8 KiB leaves room for long Via chains without letting a
/// sender make us buffer more.
pub const MESSAGE_LEN_MAX: usize = 8 * 1024;

/// The largest SDP body accepted in an INVITE: a few codecs and attributes.
pub const SDP_LEN_MAX: usize = 4 * 1024;

/// Calls held at once on one node (set up or talking). A city's buttons seldom have more
/// than a handful of callers at a time; each call costs a media socket and a task.
pub const CALLS_MAX: usize = 64;

/// INVITEs being set up at once (each is a press transaction on the store). Past it a new
/// INVITE gets 503 with Retry-After: a flood costs a response, never a store write.
pub const INVITES_IN_FLIGHT_MAX: usize = 16;

/// Seconds a refused caller is told to wait (`Retry-After`): field intercoms redial.
pub const RETRY_AFTER_SECS: u32 = 5;

/// TCP connections held at once; past it new ones are closed at accept.
pub const TCP_CONNECTIONS_MAX: usize = 128;

/// A TCP connection with no complete message for this long is closed (intercoms that use
/// TCP send a keep-alive OPTIONS every 30–60 s).
pub const TCP_IDLE: Duration = Duration::from_secs(120);

/// How long a digest nonce is accepted after it was issued. A caller answers a challenge in
/// well under a second; intercoms that REGISTER reuse the nonce for their next requests.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// RFC 3261's T1: the first retransmission interval of a 2xx to an INVITE over UDP.
pub const T1: Duration = Duration::from_millis(500);

/// RFC 3261's T2: the retransmission interval's cap.
pub const T2: Duration = Duration::from_secs(4);

/// RFC 3261's Timer F (64·T1): our BYE over UDP is re-sent (Timer E: T1 doubling to T2)
/// until a final response or this long, then given up and logged.
pub const BYE_WAIT: Duration = Duration::from_secs(32);

/// RFC 3261's Timer H (64·T1): a 2xx not acknowledged by then ends the call.
pub const ACK_WAIT: Duration = Duration::from_secs(32);

/// How long the press behind a call may take before the INVITE is refused (503): the press
/// path's own deadlines are shorter; this only keeps a stuck store from holding calls.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest RTP packet relayed: 20 ms of G.711 is 172 bytes; jumbo frames are noise.
pub const RTP_PACKET_LEN_MAX: usize = 1500;

/// Registrations accepted per REGISTER (seconds): what we answer in `Expires`, whatever
/// was asked, so an intercom refreshes within the nonce's lifetime.
pub const REGISTER_EXPIRES_SECS: u32 = 300;

/// Call changes buffered for each console watching the desk: a console that falls this far
/// behind misses changes (it is told, and takes the desk's list again).
pub const DESK_EVENTS_BUFFER: usize = 256;

/// The largest WebRTC offer taken from a browser: Chromium's audio-only offer with its ICE
/// candidates gathered is 3–5 KiB.
pub const WEBRTC_OFFER_LEN_MAX: usize = 16 * 1024;

/// The button's RTP packets queued toward the browser: 50 packets is a second of G.711;
/// past it packets are dropped, like lost datagrams, rather than delayed.
pub const BRIDGE_INBOX: usize = 50;

/// The longest a call's recording runs (seconds): a call to the call center lasts minutes;
/// an hour is 57.6 MB of stereo G.711. Past it the recording stops (the call goes on) and
/// its audit entry says it was truncated.
pub const RECORDING_SECONDS_MAX: u64 = 60 * 60;

/// Packets queued toward a recording's writer thread: 250 is five seconds of both sides
/// (a packet each way every 20 ms), room for a slow disk's hiccup. A full queue drops the
/// packet (the media path never waits for the disk) and marks the recording incomplete.
pub const RECORDING_QUEUE: usize = 250;

/// The operator's samples held until the caller's next ones (the caller's RTP paces the
/// file): one second. Past it (a button that stopped sending) the oldest are dropped.
pub const RECORDING_OPERATOR_BACKLOG: usize = 8_000;

/// How long the operator's browser leg may stay ICE-disconnected before the call goes back
/// to ringing for every operator. str0m (ICE-lite) calls the leg disconnected once the
/// browser's consent checks (every few seconds) have been missing for 15 s; this grace on
/// top lets a Wi-Fi roam or a brief outage (the page's checks resume, the operator keeps
/// the caller) pass, while a closed or crashed page frees the caller for another operator
/// within about 20 s. A page that closes its connection cleanly frees it at once.
pub const BROWSER_LEG_GRACE: Duration = Duration::from_secs(5);
