//! Bounds of the simulated devices' SIP calls, each with its reason. (The terminals' own
//! timings are settings: [`crate::SimOptions`].)

use std::time::Duration;

/// How long a simulated button talks before it hangs up, when nobody hangs up first: long
/// enough for the demo's operator to notice the ringing call, answer it and listen, short
/// enough that an unanswered demo does not hold every button in a call.
pub const TALK_TIME: Duration = Duration::from_secs(90);

/// RFC 3261's T1 (an estimate of the round trip): the first retransmission interval of a
/// request over UDP (Timer A for INVITE, Timer E for BYE).
pub const T1: Duration = Duration::from_millis(500);

/// RFC 3261's T2: the cap of a non-INVITE request's retransmission interval.
pub const T2: Duration = Duration::from_secs(4);

/// RFC 3261's Timer B and Timer F (64·T1): a request nobody answered by then has failed.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(32);

/// How long an INVITE that got a provisional response may wait for its final one. The
/// gateway answers once the press behind the call is durable (its own bound is 10 s); RFC
/// 3261's Timer C (3 min) is for people picking up phones, which a gateway does not do.
pub const FINAL_RESPONSE_WAIT: Duration = Duration::from_secs(30);

/// Digest challenges answered per call: one, then a second only when the first answer was
/// stale. A third challenge means the password is wrong.
pub const AUTH_ROUNDS_MAX: usize = 2;

/// The largest SIP message read: the gateway's responses are well under 2 KiB.
pub const SIP_MESSAGE_LEN_MAX: usize = 8 * 1024;

/// The largest RTP packet read: 20 ms of G.711 is 172 bytes.
pub const RTP_PACKET_LEN_MAX: usize = 1500;

/// Audio per RTP packet (the `ptime` offered): 20 ms, 160 samples at 8 kHz, what every
/// G.711 phone sends.
pub const PTIME: Duration = Duration::from_millis(20);

/// Simulated buttons in a call at once: each call is two sockets, a task and 50 packets a
/// second; the demo rarely has more than a couple of open incidents.
pub const SIM_CALLS_MAX: usize = 4;

/// Incidents the simulator remembers having called for, so an update to one does not
/// redial; the oldest are forgotten first.
pub const CALLED_INCIDENTS_REMEMBERED: usize = 256;

/// A press opened its incident this recently: its button calls. An incident older than
/// this (one the watch finds open when the simulator starts) was pressed before the
/// simulator ran, and a field intercom does not call back about an old press.
pub const FRESH_PRESS: Duration = Duration::from_secs(30);

/// Button heartbeats in flight at once. One at a time, a round of 100,000 buttons took longer
/// than the node's 30 s offline timeout on a loaded machine (each call a round trip, most of
/// them forwarded to the owning node); 64 keeps the node's device rate limit and the HTTP/2
/// connection far from their caps while a round of 100,000 fits well inside 10 s when the node
/// keeps up.
pub const HEARTBEATS_IN_FLIGHT: usize = 64;

/// Long-lived device streams (a camera's commands, a terminal's assignments) the simulator
/// puts on one connection: half of what a node accepts per connection (8,192,
/// `centinela_node::limits::GRPC_STREAMS_PER_CONNECTION`), so a large district's devices never
/// wait for a stream slot; each group of this many devices gets its own connection, the groups
/// spread over the node addresses given, as real devices spread over the nodes.
pub const DEVICE_STREAMS_PER_CONNECTION: usize = 4_096;

/// Largest reply of the inventory lists (buttons, cameras, units) the simulator accepts: ~80
/// bytes per device, so about 800k devices; tonic's default 4 MiB stopped at ~50k buttons,
/// short of a 100,000-button city.
pub const INVENTORY_REPLY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Longest wait a simulated device takes when a node refuses to attach its channel now, whether
/// the node asked for it (`retry-after`; a node asks for 1–30 s by its pace) or the device's
/// own doubling reached it: a node's wrong answer must not park a device for good.
pub const RETRY_AFTER_HONOURED_MAX: Duration = Duration::from_secs(30);

/// Owner redirects a device follows in a row without being served (`route::Route`): during a
/// rebalance two nodes may disagree for a moment about who owns a device, and this bounds the
/// bouncing; past it the device backs off and starts again from the addresses it was given.
pub const REDIRECTS_IN_A_ROW_MAX: u32 = 4;

/// How long an owner's address a device could not reach is not followed (`route::Route`): a
/// node may advertise an address devices cannot route to (inside its own network); they are
/// relayed at home meanwhile, and try the address again after this (the node may have moved).
pub const UNREACHABLE_OWNER_FORGET: Duration = Duration::from_secs(60);
