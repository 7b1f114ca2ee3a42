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

/// Live event streams one operator may hold on a node: a few tabs and a wall screen. Without
/// it one account reconnecting in a loop takes all [`EVENT_STREAMS_MAX`] and locks every other
/// console out (429 past it).
pub const EVENT_STREAMS_PER_OPERATOR: usize = 8;

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

/// Failed sign-ins one source may make against one account within [`LOGIN_FAILURE_WINDOW`]
/// before that source is locked out of that account for [`LOGIN_LOCKOUT`]. Five covers an
/// operator fumbling caps lock; an online guesser gets five tries per quarter hour per address
/// instead of the 725 in 10 s measured before. Only the guessing source is locked: the
/// operator at their own position still signs in.
pub const LOGIN_PAIR_FAILURES_MAX: u32 = 5;

/// Failed sign-ins one source may make across all accounts within [`LOGIN_FAILURE_WINDOW`]
/// before it is locked out of every account for [`LOGIN_LOCKOUT`]: stops one address
/// spraying a common password over every operator name. A shared call-center NAT address
/// carries a few dozen positions; twenty failures in a window is far past their typos.
pub const LOGIN_SOURCE_FAILURES_MAX: u32 = 20;

/// Failed sign-ins against one account, from every source, within [`LOGIN_FAILURE_WINDOW`]
/// after which the account is slowed down (never locked): at most one attempt per
/// [`LOGIN_ACCOUNT_SPACING`], from anywhere. A guesser rotating addresses is held to that
/// pace, while the real operator, from another source, is at worst asked to retry in a second
/// — a hard account lockout would let anyone lock any operator out mid-shift.
pub const LOGIN_ACCOUNT_FAILURES_MAX: u32 = 20;

/// The account-wide pace once [`LOGIN_ACCOUNT_FAILURES_MAX`] is reached: 3,600 guesses an
/// hour per account at most, from any number of addresses, against argon2id passwords.
pub const LOGIN_ACCOUNT_SPACING: Duration = Duration::from_secs(1);

/// How long a source an account signed in from stays known to it: a known source skips the
/// account-wide pace ([`LOGIN_ACCOUNT_SPACING`]), so a guesser with many addresses who takes
/// every paced slot still does not keep the operator out from their usual position. A 12-hour
/// shift, like a session.
pub const LOGIN_KNOWN_SOURCE_TTL: Duration = Duration::from_secs(12 * 3600);

/// The window failures are counted in (a fixed window from the first failure).
pub const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long a locked-out source (for one account, or for all) is refused, with
/// `Retry-After`. Fifteen minutes makes guessing hopeless and is a coffee break for an
/// operator who locked themselves out at one position (they can sign in from another).
pub const LOGIN_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// The `Retry-After` of an attempt refused because the failures so far plus the checks
/// still running from that source reach a bound: by then those checks (well under a second
/// each) have finished and either locked the source out or freed the slot.
pub const LOGIN_PENDING_RETRY: Duration = Duration::from_secs(1);

/// Keys (account × source, source, account) the login throttle tracks at once; past it the
/// stale ones, then the least recently touched, are dropped. ~100 bytes each: under 1 MiB. To
/// push a locked key out an attacker must fail from thousands of addresses, each failure
/// paying an argon2id check under [`LOGIN_CHECKS_MAX`].
pub const LOGIN_TRACKED_KEYS_MAX: usize = 8192;

/// Signed-out sessions one node remembers as revoked until their expiry. A call center signs
/// out a few hundred times a shift; past the cap, expired entries are dropped first, then the
/// one expiring soonest (logged).
pub const REVOKED_SESSIONS_MAX: usize = 16_384;

/// How long a session found not signed out in the store is taken as still valid before the
/// next look: a sign-out on another node takes effect here within this, at one store read per
/// active session per interval (a few hundred reads a minute for a full call center).
pub const REVOCATION_RECHECK: Duration = Duration::from_secs(5);

/// Sessions whose last store check this node remembers; past it the memory is cleared, which
/// only costs re-checks.
pub const REVOCATION_CHECKS_MAX: usize = 16_384;

/// Live camera views one operator may hold at once: a console shows one incident's camera,
/// an operator with a few tabs open needs a handful; eight keeps one operator (or a script with
/// their cookie) from taking all [`LIVE_STREAMS_MAX`] of the node's views.
pub const LIVE_STREAMS_PER_OPERATOR_MAX: usize = 8;

/// How long a client may take to send a request's headers (hyper's header read timeout): a
/// browser sends them in one segment; a client trickling them a byte at a time (slowloris)
/// would otherwise hold a connection slot for as long as it keeps trickling.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest read buffer of an HTTP/1 connection, which bounds a request's header block: a
/// browser's headers with the session cookie are a few KiB; hyper's default is ~400 KiB per
/// connection.
pub const HTTP1_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// A stale public map (a button changed) is rebuilt at most this often: one store read of
/// every button per interval at most, however many clients poll (16 of them reading 10,000
/// buttons per request took press latency from 3.4 to 156 ms). A second is far below what a
/// published map of working buttons needs.
pub const PUBLIC_MAP_REBUILD_INTERVAL: Duration = Duration::from_secs(1);

/// The public map keeps its feed subscription (and so the node's store watch) this long after
/// its last request. A map polled every few seconds stays current for free; a node whose map
/// nobody asks holds no watch for it, and its next request costs one store read (the body is
/// rebuilt, since changes made meanwhile were not seen).
pub const PUBLIC_MAP_FOLLOW_IDLE: Duration = Duration::from_secs(60);

/// `Cache-Control: max-age` of the public map: browsers and caches in front reuse it this
/// long, then revalidate with its `ETag` (a 304 costs no store read either).
pub const PUBLIC_MAP_MAX_AGE: Duration = Duration::from_secs(5);

/// Most live video views (WebSocket) one node serves at once. Each forwards one camera's
/// stream (1 to 4 Mbit/s) without transcoding; 64 views are under 256 Mbit/s out, and a
/// runaway page opening views in a loop is refused with 503.
pub const VIDEO_VIEWS_MAX: usize = 64;
/// A ping on a video view that sent nothing for this long (the camera is reconnecting): a
/// browser that vanished without closing is noticed by the failed send.
pub const VIDEO_KEEPALIVE: Duration = Duration::from_secs(10);
/// Longest one message may take to leave for a browser. A browser that stops reading falls
/// behind the camera's bounded broadcast and skips to key frames; one whose connection hangs
/// outright is closed after this.
pub const VIDEO_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a browser may send on a video view: it sends none but pongs and the close.
pub const VIDEO_INBOUND_BYTES_MAX: usize = 1024;

/// How long a browser remembers a language choice (`centinela_lang` cookies): a year, so an
/// operator chooses once per workstation, not once per shift.
pub const LANG_COOKIE_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Longest time zone name, tile URL template or map attribution accepted from the
/// environment: real ones are tens of bytes; the bound keeps a pasted blob out of every page.
pub const DISPLAY_SETTING_LEN_MAX: usize = 512;
/// The `Strict-Transport-Security` value of a console served over TLS: a year (what browsers'
/// preload lists ask for), subdomains included (the console's host has no plaintext
/// neighbours worth keeping).
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The longest SIP `Call-ID` taken in a call's URL: intercoms use 20–60 characters; the SIP
/// message bound (8 KiB) would allow far more than any console needs to name.
pub const CALL_ID_LEN_MAX: usize = 256;

/// Brigade-post plans (`GET /api/plan-posts`) computed at once on one node. A plan takes up to
/// about a second of one core on a large city (docs/benchmarks.md, "plan-posts"); it is a
/// planning question a supervisor asks now and then, so two at once serve any real use, and a
/// script asking in a loop gets 429 instead of taking the node's cores from the presses.
pub const PLAN_POSTS_AT_ONCE_MAX: usize = 2;
