//! Runtime bounds of the actors, each with its reason. Domain bounds (debounce window, ack
//! timeout, heartbeat timeout...) live in `centinela_core::limits`, re-exported here so the
//! actors read every bound from one module.

use std::time::Duration;

pub use centinela_core::limits::*;

/// A press waits at most this long for its button's actor: a store write plus queueing behind
/// a burst of presses of the same button. Beyond it the device retries with the same press id.
pub const PRESS_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Other entity calls (heartbeats, status updates, acks): one store round trip and a queue.
pub const ENTITY_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Dispatcher calls may wait behind a dispatch round over the whole queue.
pub const DISPATCH_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a message waits for an entity whose actor is restarting before `Unavailable`.
pub const ROUTE_WAIT: Duration = Duration::from_secs(2);
/// How often that wait looks for the actor again: a restart takes one store read.
pub const ROUTE_WAIT_POLL: Duration = Duration::from_millis(20);
/// Pause before the second attempt of a delivery whose owner was unreachable or moving:
/// quick, for an actor that is restarting...
pub const DELIVERY_RETRY_FIRST: Duration = Duration::from_millis(25);
/// ...then doubling up to this, about a tenth of the lease TTL (a dead node leaving the
/// member set).
pub const DELIVERY_RETRY_MAX: Duration = Duration::from_millis(200);

/// Presses that only join a button's already open incident are recorded at most once per
/// this interval (every press queued meanwhile in the same transaction): a person or a script
/// leaning on a button costs about ten store writes a second, not one per press. Such a press
/// is acknowledged up to this much later, once durable; the press that opens an incident
/// never waits.
pub const MERGE_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// ...and once the open incident is past its press budget
/// ([`centinela_records::limits::PRESS_KEYS_PER_INCIDENT_MAX`] presses, which no real caller
/// reaches), at most once per this interval: a flood at the device rate limit (50/s) then
/// costs one record rewrite a second (a few KB of etcd history until compaction) instead of
/// ten, every press still acknowledged once counted durably. Under the devices' 2 s call
/// timeout, and 50 presses a second queue far below [`PRESS_QUEUE_MAX`].
pub const FLOOD_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Presses recorded in one transaction at most (the store's bound, under etcd's
/// `--max-txn-ops`); a full batch is recorded at once.
pub const PRESS_BATCH_MAX: usize = centinela_records::limits::PRESS_BATCH_MAX;

/// Presses of one button waiting for their transaction at most; past it a press is refused as
/// `UNAVAILABLE` (the device retries with the same press id). The per-device rate limit at
/// the edge keeps a real flood far below this.
pub const PRESS_QUEUE_MAX: usize = 1_000;

const _: () = assert!(FLOOD_FLUSH_INTERVAL.as_millis() < 2_000);
const _: () = assert!(MERGE_FLUSH_INTERVAL.as_millis() <= FLOOD_FLUSH_INTERVAL.as_millis());

/// Entity actors a supervisor starts at once, their records read in one store transaction
/// ([`Records::get_many`](centinela_records::Records::get_many)): a node taking over a
/// member's share (tens of thousands of entities) or a wave of passivated entities woken by
/// their devices reconnecting costs the store a request per batch, not one per entity (nor a
/// linearizable read each, which etcd answers only after confirming its leadership). The
/// actors then start without a read of their own.
pub const START_BATCH: usize = centinela_records::limits::READ_BATCH_MAX;

/// Entities a supervisor takes on in one go before it handles what else came meanwhile (the
/// supervision events of the fresh actors that passivated at once): keeps a node that starts
/// or takes over 100k entities from holding them all, or all their stop events, at a time.
pub const START_CHUNK: usize = 256;

/// An entity actor with nothing to do (`Entity::idle`) for this long stops; its next message
/// starts it again from its record (a store read, tens of µs). Long against the bursts of one
/// incident (presses, the aim, the assignment, acks and status changes come within seconds to
/// minutes), so a busy entity is not stopped and started again between its messages; short
/// enough that the actors of a storm of incidents are freed within minutes of their end.
pub const IDLE_AFTER: Duration = Duration::from_secs(120);
/// How often a running entity actor checks whether it has been idle for [`IDLE_AFTER`].
pub const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Messages held for an entity while its actor starts or stops (the registry's handover).
/// A flood of presses at a passivated button lands here while its actor reads its record,
/// and must be absorbed as a running actor absorbs it (coalesced, none refused): so the slot
/// holds at least what the button takes before it refuses ([`PRESS_QUEUE_MAX`]), with as
/// much again for the entity's other messages. Past it the actor cannot be starting normally
/// (the store is unreachable) and callers are better told `UNAVAILABLE` to retry. Only a
/// slot with waiting messages holds any memory.
pub const WAKE_QUEUE_MAX: usize = 2 * PRESS_QUEUE_MAX;

const _: () = assert!(WAKE_QUEUE_MAX >= PRESS_QUEUE_MAX);

/// Delay before a supervisor retries children that failed to start (the store was
/// unreachable, say).
pub const START_RETRY: Duration = Duration::from_millis(500);

/// Restart budget of an entity actor: more panics than this within the window means the
/// fault is not transient; the supervisor stops restarting it and logs an error.
pub const RESTARTS_MAX: usize = 5;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Commands buffered for a device channel; a device that falls this far behind is cut off
/// (it reconnects and gets the current state again).
pub const DEVICE_CHANNEL_CAPACITY: usize = 32;
/// How often the node's liveness sweep looks for silent buttons (one pass over its table):
/// a silent button is queued for its offline mark at most this long after its timeout.
pub const LIVENESS_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Silent buttons asking to be marked offline within this window of the first share one
/// batch ([`crate::liveness`]): the actors of a wave tick within milliseconds of each other.
pub const OFFLINE_BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Offline batches start at most this often per node: 5 transactions, 320 buttons a second.
/// A district's few hundred buttons are recorded within a couple of seconds of the timeout,
/// a whole 100k-button node in about 5 minutes, and presses, assignments and the node's lease
/// keep-alive meanwhile see the store as if nothing happened (docs/benchmarks.md, "The
/// offline wave": press → assigned max 30 ms across a 1000-button wave at 50 presses/s).
pub const OFFLINE_BATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Brigade positions reach the store (and so the dispatcher) at most this often per brigade,
/// and on every status change.
pub const POSITION_PERSIST_INTERVAL: Duration = Duration::from_secs(2);
/// ... and only once the brigade is this far from its stored position: a parked unit's
/// terminal reporting every second writes nothing, a unit on foot patrol writes about every
/// 20 s, a car every few seconds. The dispatcher's "nearest" is off by at most this much
/// (its travel-time estimate by a few seconds); a status change still writes the latest fix.
/// At 10,000 brigades the store was written 5,000 times a second for positions alone
/// (docs/benchmarks.md, "Scale on three nodes with devices attached").
pub const POSITION_PERSIST_DISTANCE_M: f64 = 25.0;
/// A brigade whose terminal disconnected and stayed away this long is marked offline (when
/// it was available), so the dispatcher stops choosing it.
pub const TERMINAL_GRACE: Duration = Duration::from_secs(10);
/// The dispatcher re-examines its queue this often even without events (retries after store
/// conflicts, ack deadlines).
pub const DISPATCH_TICK: Duration = Duration::from_secs(1);
/// Assignments planned and committed together in one dispatch round: they touch different
/// incidents and brigades, so they commit in one fenced transaction (one etcd request and
/// one round trip for the round, not one per incident). 31: a round's guards (two compares
/// for each of its incident and brigade) and the fence's compare fit under etcd's
/// `--max-txn-ops` (128), so a full round is still one transaction. A full round is followed
/// by another at once.
pub const DISPATCH_BATCH_MAX: usize = 31;
const _: () =
    assert!(4 * DISPATCH_BATCH_MAX <= centinela_records::limits::KNOWN_BATCH_COMPARES_MAX);
/// Candidates listed by a recommendation at most.
pub const RECOMMEND_MAX: usize = 20;

/// A press forwarded to its button's owner waits this long for it before this node records
/// the press itself: intake must not wait out a dead owner's lease.
pub const PEER_PRESS_ATTEMPT: Duration = Duration::from_secs(1);
/// One forwarded call to another node, at most (the whole delivery retries to its deadline).
pub const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting to another node: loopback or a LAN between sites answers in milliseconds.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Fire-and-forget messages (camera aim, assignment, cancellation) keep being retried this
/// long while their entity moves to a new owner: several lease TTLs.
pub const TELL_DEADLINE: Duration = Duration::from_secs(10);
/// A camera aim keeps being retried this long: across a cut between the node that took the
/// press and the camera's owner, until the link heals. (A camera actor that starts also aims
/// at its button's open incident.)
pub const CAMERA_AIM_DEADLINE: Duration = Duration::from_secs(120);

/// ONVIF cameras. A PTZ dome crosses its whole range in two to five seconds; one still moving
/// after this long is stuck (shown to operators, the camera stays online).
pub const ONVIF_SETTLE_MAX: Duration = Duration::from_secs(15);
/// How often a moving camera's status is read: `on_target` is known within this of arriving,
/// at five small requests a second to one camera.
pub const ONVIF_STATUS_POLL: Duration = Duration::from_millis(200);
/// How often an idle camera's status is read, so a camera that died between incidents shows
/// offline (and alerts) before the next press needs it.
pub const ONVIF_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// Reconnection backoff: quick after a blip, capped so a camera back on the network is driven
/// again within seconds, and a dead one costs one attempt per this long.
pub const ONVIF_RECONNECT_MIN: Duration = Duration::from_millis(500);
pub const ONVIF_RECONNECT_MAX: Duration = Duration::from_secs(10);
/// Orders queued for the driver task: only the latest move matters, a few absorb a burst of
/// presses and an operator's manual moves.
pub const ONVIF_ORDERS_CAPACITY: usize = 16;
/// Longest camera fault reason kept in the record (it can quote a SOAP fault's text).
pub const CAMERA_FAULT_BYTES_MAX: usize = 300;

/// Group commit ([`crate::group_commit`]): a batch of presses handed over by a button's actor
/// waits at most this long for batches of other buttons, so that a burst across a district
/// costs one store transaction rather than one per button. Small against the press's own
/// round trips (a read and a write, a few ms each on etcd) and invisible to a person.
pub const PRESS_GROUP_WINDOW: Duration = Duration::from_millis(2);

/// ...or until this many presses are gathered: with one compare and one put per press and a
/// few per button, a full group stays under etcd's `--max-txn-ops` (128) in most shapes, and
/// the records split a larger one ([`centinela_records::limits::GROUP_COMMIT_OPS_MAX`]).
pub const PRESS_GROUP_PRESSES_MAX: usize = 64;

/// Closes from held copies ([`crate::group_commit::CloseCommitter`]): a close an operator
/// makes through a node waits at most this long for others made through it, so that a busy
/// call center's closes cost one store transaction rather than one each; as small as a press's.
pub const CLOSE_GROUP_WINDOW: Duration = Duration::from_millis(2);

/// ...or until this many closes are gathered: a close of an incident with one unit compares
/// three records (two compares each) and the pointer, so sixteen stay under etcd's
/// `--max-txn-ops` (128); the records split a larger batch
/// ([`centinela_records::limits::KNOWN_BATCH_COMPARES_MAX`]).
pub const CLOSE_GROUP_MAX: usize = 16;

/// Devices' marks ([`crate::group_commit::MarkCommitter`]: a camera's device attaching or going
/// away, a button recorded offline heard again) wait at most this long for others of their
/// kind, so that thousands of devices reconnecting at once (after a node's loss, or at a
/// city's start) cost the store one transaction per batch rather than a few per device. Only
/// the device's own attach or heartbeat waits on it.
pub const MARK_GROUP_WINDOW: Duration = Duration::from_millis(10);

/// Group commits written at once by one node (of each kind: presses, closes, marks): enough to overlap a batch's write with the
/// next batch's window, few enough that a burst queues in the committer (and batches better)
/// instead of flooding the store with concurrent transactions.
pub const GROUP_COMMITS_IN_FLIGHT: usize = 4;
