//! Every bound the domain enforces, in one place, each with the reason for its value.
//!
//! Anything that can grow (a record, a list, a string from a device or an operator) has a limit
//! here, so that a flood of presses, a stuck terminal or a careless client cannot grow state
//! without bound. Timeouts live here too: they are the other kind of limit.

use std::time::Duration;

/// Longest id, in bytes. Ids travel in every gRPC message, store key and log line; 64 bytes fits
/// a UUID with a prefix (`inc:` + 36) with room to spare while keeping keys short.
pub const ID_LEN_MAX: usize = 64;

/// A press on the same button within this window of the previous one joins the open incident
/// instead of opening a new one: a person pressing again while waiting for help is the same
/// emergency, and two minutes covers the usual wait for the intercom to be answered.
pub const DEBOUNCE_WINDOW: Duration = Duration::from_secs(120);

/// How long a brigade's terminal has to acknowledge an assignment before the dispatcher offers
/// the incident to the next candidate. Long enough for an officer to glance at the terminal,
/// short enough that a dead terminal costs seconds, not minutes, of response time.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// At a verify-first site (`verify_first = true` on the button in the scenario), the
/// dispatcher holds the recommended brigade this long for an operator to confirm on camera,
/// then dispatches anyway: a minute and a half is enough to acknowledge the call, look at the
/// camera wall and decide, and a real emergency waits no longer than that for its brigade
/// when nobody is watching. A site may set its own (`verify_hold_s`).
pub const VERIFY_HOLD: Duration = Duration::from_secs(90);

/// Longest hold a site may set: past five minutes a held emergency waits longer than the
/// response it was meant to spare.
pub const VERIFY_HOLD_MAX: Duration = Duration::from_secs(300);

/// A unit that let an assignment time out is not offered another for this long. Its terminal
/// is probably dead or unattended: offering it the next press too would cost that caller
/// another [`ACK_TIMEOUT`]. Two minutes lets an officer who missed the ring notice and call in,
/// and the liveness bounds meanwhile mark a dead terminal offline.
pub const ACK_TIMEOUT_COOLDOWN: Duration = Duration::from_secs(120);

/// A unit whose terminal or app has no open stream is still live this long after its last
/// report (a position or a heartbeat): the brigade app reports at least every 10 s while it is
/// open, so two missed reports and a slow mobile network are tolerated before the unit is
/// shown `offline` and stops being offered jobs.
pub const UNIT_REPORT_SILENCE_MAX: Duration = Duration::from_secs(30);

/// A unit whose status an operator set by radio (it has no working terminal) counts as live
/// this long afterwards. Radio check-ins on a Serenazgo shift come every half hour or so; past
/// that the operator has no fresher knowledge than "offline", and must call the unit again.
pub const RADIO_REPORT_VALID: Duration = Duration::from_secs(30 * 60);

/// Fastest a unit is believed to move, in metres per second (360 km/h). No patrol car or
/// motorcycle does half of it in a city; the simulated terminals at `--speedup 10` stay under
/// 85. A faster move between two reports is a broken GPS or a forged report, and is refused.
pub const UNIT_SPEED_MAX_MPS: f64 = 100.0;

/// Distance a position may jump between two reports however close in time, in metres: a phone's
/// fix moves by tens of metres indoors or when it switches from network to GPS positioning.
pub const POSITION_JITTER_M: f64 = 200.0;

/// A button with no heartbeat for this long is shown offline. Devices beat every 10 s, so two
/// missed beats plus jitter is tolerated before operators are told the pole is dark.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most brigades attached to one incident at a time. A street emergency rarely needs more than
/// a handful; the cap stops a runaway dispatcher or operator from stripping a district bare.
pub const UNITS_PER_INCIDENT_MAX: usize = 8;

/// Most brigades remembered as having failed to acknowledge one incident. Past it the oldest is
/// forgotten (and may be offered again), which is better than refusing to record a timeout.
/// 64 is larger than any district's fleet, so in practice nobody is forgotten.
pub const DECLINED_PER_INCIDENT_MAX: usize = 64;

/// Most audit entries one incident keeps. Enough for a long, busy incident (every operator and
/// unit step, many presses) while keeping the stored record a few tens of kilobytes.
pub const AUDIT_ENTRIES_MAX: usize = 256;

/// Audit entries kept free of repeated presses: once the audit holds
/// `AUDIT_ENTRIES_MAX - AUDIT_ENTRIES_RESERVED` entries, further merged presses are only counted
/// (in `press_count`), so a caller leaning on the button cannot crowd out the record of who
/// acknowledged, dispatched and closed the incident.
pub const AUDIT_ENTRIES_RESERVED: usize = 64;

/// Repeated presses audited one by one per incident; later ones are only counted
/// (`press_count`, `last_press_at` and the recent list). A press flood from one pole rewrote a
/// ~35 KB record per press when 192 of them were audited: the record's size, and what each
/// merge costs the store, must not grow with the presses. Sixteen show the pattern of a
/// caller pressing again while waiting.
pub const AUDIT_PRESSES_MAX: usize = 16;

/// Press times an incident keeps in its recent list (oldest dropped first): enough to see the
/// rhythm of the last presses, a few hundred bytes of record.
pub const RECENT_PRESSES_MAX: usize = 16;

const _: () = assert!(AUDIT_PRESSES_MAX < AUDIT_ENTRIES_MAX - AUDIT_ENTRIES_RESERVED);

/// Presses of one incident that get their own `presses/{button}/{press_id}` key in the
/// store (the idempotency record a retried press id resolves through). Past it, further presses are still
/// acknowledged as merged into the open incident and counted in its `press_count`, but leave
/// no key: one pole's token leaning on its button (1,800 presses in 40 s within the device rate
/// limit) must not add a key per press to etcd. A real caller presses a handful of times;
/// 64 leaves room for any of them, and a retry of an unkeyed press is merged (counted) again,
/// which only overstates a count already in the thousands.
pub const PRESS_KEYS_PER_INCIDENT_MAX: usize = 64;

/// Longest free-text detail in one audit entry, in bytes; longer text is cut at a character
/// boundary. The detail is a note for humans, not a data channel.
pub const AUDIT_DETAIL_LEN_MAX: usize = 256;

/// Most recording bookmarks a camera keeps; the oldest is dropped first. The recorder keeps its
/// own index; these are the recent ones an operator jumps to from the console.
pub const BOOKMARKS_MAX: usize = 32;

/// Longest caller detail field (name, phone, notes), in bytes. Operators type these while on the
/// intercom; 512 bytes is a long paragraph of notes and stops pasted blobs.
pub const CALLER_FIELD_LEN_MAX: usize = 512;

/// Longest human name (button location name, brigade callsign), in bytes: shown on map labels
/// and terminals, which truncate long before this.
pub const NAME_LEN_MAX: usize = 128;

/// Most buttons, and separately most brigades, one scenario may declare. Lima's whole network is
/// in the low thousands, but the cluster is sized and measured for a larger city's (100,000
/// buttons and cameras, 10,000 brigades: docs/benchmarks.md, "The issue's size on three
/// nodes"); the cap rejects a generated file gone wrong before it is loaded.
pub const SCENARIO_ENTRIES_MAX: usize = 100_000;

/// Delivery attempts of one hand-off message recorded in the incident's audit trail; later
/// failures are only counted on the hand-off record (its `attempts` and `last_error`), and the
/// successful attempt is always recorded. An agency down for hours must not fill the audit.
pub const HANDOFF_ATTEMPTS_AUDITED_MAX: u32 = 5;

/// Most CAP messages one hand-off sends (the Alert, Updates, the final Update or Cancel).
/// Updates go out on classification and on closing; past the cap, changes are not sent (the
/// final message on closing always is: it replaces the last Update still queued).
pub const HANDOFF_MESSAGES_MAX: usize = 8;

/// Most acknowledgements one hand-off keeps from its agency; past it the oldest is dropped.
pub const HANDOFF_ACKS_MAX: usize = 8;

/// Longest operator note on a hand-off, in bytes.
pub const HANDOFF_NOTE_LEN_MAX: usize = 512;

/// Longest note an officer adds to a clear (what was found, what was done), in bytes: typed on
/// a phone at the scene, a few sentences at most; the operator's own notes go elsewhere.
pub const CLEAR_NOTE_LEN_MAX: usize = 280;

/// Most clear outcomes one incident keeps (one per unit that cleared it); past it the oldest is
/// dropped (the audit trail keeps every clear). Equal to [`UNITS_PER_INCIDENT_MAX`]: every unit
/// attached at once can report how it left the scene.
pub const UNIT_OUTCOMES_MAX: usize = UNITS_PER_INCIDENT_MAX;

/// Alert clearances one device record keeps (who cleared which alert, when): the newest are
/// the ones a supervisor reviewing a pole's history reads, and the record stays a few KiB even
/// for a button that is tampered with every night. Past it the oldest is dropped (the node's
/// log keeps an `alert cleared` line for each).
pub const ALERT_CLEARANCES_KEPT_MAX: usize = 32;

/// How fast an old press stops counting when planning brigade posts ([`crate::posts`]): a
/// press this old weighs half of one today. Thirty days follows the city's month-to-month
/// changes (a new market, a closed street) without letting one quiet week erase a year.
pub const POSTS_DEMAND_HALF_LIFE: Duration = Duration::from_secs(30 * 86_400);

/// Most brigades one post plan may place: above every municipality's Serenazgo fleet (Lima's
/// largest district fields a few hundred units), and it bounds the solver's work.
pub const POSTS_BRIGADES_MAX: u32 = 1_000;

/// Longest coverage target a post plan accepts, in minutes: past an hour "reachable in time"
/// no longer means anything for an emergency, and every post covers the whole city.
pub const POSTS_TARGET_MINUTES_MAX: u32 = 60;

/// Most candidate posts (and demand points) one plan considers: the coverage table holds
/// candidates × demand points travel times, 4 M at most (a few tens of MB, under a second to
/// fill), and 2,000 is above the buttons of the largest deployment we plan for.
pub const POSTS_CANDIDATES_MAX: usize = 2_000;

/// The switch point between the solvers: with at most this many candidate posts the plan is
/// solved exactly (branch and bound); above it, by lazy greedy with its (1 − 1/e) bound.
/// Sixty candidates with a handful of brigades is where branch and bound on this coverage
/// model finishes in milliseconds; well past it the search can grow exponentially.
pub const POSTS_EXACT_CANDIDATES_MAX: usize = 60;

/// Branch-and-bound nodes the exact solver may visit before it stops and returns the best plan
/// found so far (never worse than greedy's), marked as not proven optimal. A node costs one
/// pass over the candidates' coverage: with at most [`POSTS_EXACT_CANDIDATES_MAX`] candidates
/// the budget is well under a second on a slow core (docs/benchmarks.md).
pub const POSTS_EXACT_NODES_MAX: u64 = 200_000;

/// Longest period of history a post plan reads: three years. Older incidents weigh under a
/// millionth of today's at the default half-life, and the demand query's rows grow with
/// buttons × days.
pub const POSTS_PERIOD_MAX: Duration = Duration::from_secs(3 * 366 * 86_400);

/// Longest note a supervisor attaches to a clearance, in bytes ("pole inspected, door
/// resealed"): it goes into the clearance's audit entry with the alert's kind and time
/// (about 50 bytes), within [`AUDIT_DETAIL_LEN_MAX`]. A longer note is refused, not cut.
pub const ALERT_NOTE_LEN_MAX: usize = 192;

const _: () = assert!(ALERT_NOTE_LEN_MAX + 64 <= AUDIT_DETAIL_LEN_MAX);
