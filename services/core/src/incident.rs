//! Incidents: one emergency from the first press to its closure, with the audit trail of who did
//! what and when.
//!
//! The state is a high-water mark of progress and never moves backwards:
//!
//! ```text
//! New < Acknowledged < Dispatched < EnRoute < OnScene < Closed
//! ```
//!
//! Steps can arrive in any real-world order (the dispatcher assigns a unit at press time, before
//! any operator has seen the alert; a unit can report on scene before the operator acknowledges),
//! so each step raises the state to at least its own level and records itself in the audit trail,
//! but never lowers it. Every transition refuses illegal moves with an [`Error`] and leaves the
//! incident untouched when it does.

use std::fmt;
use std::time::Duration;

use crate::geo::Position;
use crate::ids::{AgencyId, BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use crate::limits::{
    AUDIT_DETAIL_LEN_MAX, AUDIT_ENTRIES_MAX, AUDIT_ENTRIES_RESERVED, AUDIT_PRESSES_MAX,
    CALLER_FIELD_LEN_MAX, CLEAR_NOTE_LEN_MAX, DECLINED_PER_INCIDENT_MAX, RECENT_PRESSES_MAX,
    UNIT_OUTCOMES_MAX, UNITS_PER_INCIDENT_MAX,
};
use crate::seal::{AuditKey, AuditSeal, SealInput, same};
use crate::time::Timestamp;

use blake2::{Blake2b256, Digest};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("incident {incident} in state {from} refused {action}: {reason}")]
    IllegalTransition {
        incident: IncidentId,
        from: IncidentState,
        action: AuditAction,
        reason: &'static str,
    },
    #[error("incident {incident} is already closed")]
    AlreadyClosed { incident: IncidentId },
    #[error("brigade {brigade} is not attached to incident {incident}")]
    UnitNotAttached {
        incident: IncidentId,
        brigade: BrigadeId,
    },
    #[error("brigade {brigade} is already attached to incident {incident}")]
    UnitAlreadyAttached {
        incident: IncidentId,
        brigade: BrigadeId,
    },
    #[error("incident {incident} already has {max} units attached, the most allowed")]
    TooManyUnits { incident: IncidentId, max: usize },
    #[error("the clear note has {len} bytes, at most {max}")]
    ClearNoteTooLong { len: usize, max: usize },
    #[error("caller {field} has {len} bytes, at most {max}")]
    CallerFieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
}

/// Progress of an incident. The derived order is the order of progress; see the module docs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Opened by a press; nobody has acted on it yet.
    New,
    /// An operator has seen it (reached only from `New`: later states already imply attention).
    Acknowledged,
    /// At least one unit has been assigned.
    Dispatched,
    /// A unit reported it is on its way.
    EnRoute,
    /// A unit reported it arrived.
    OnScene,
    Closed,
}

impl fmt::Display for IncidentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IncidentState::New => "new",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Dispatched => "dispatched",
            IncidentState::EnRoute => "en_route",
            IncidentState::OnScene => "on_scene",
            IncidentState::Closed => "closed",
        })
    }
}

/// How an incident ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A real emergency, attended.
    Handled,
    /// Deliberate misuse of the button.
    Prank,
    /// Pressed by mistake, or the situation turned out not to be an emergency.
    FalseAlarm,
    /// Withdrawn (for instance a duplicate of an incident reported another way).
    Cancelled,
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resolution::Handled => "handled",
            Resolution::Prank => "prank",
            Resolution::FalseAlarm => "false_alarm",
            Resolution::Cancelled => "cancelled",
        })
    }
}

/// How a unit left the scene, as its officer reported it when clearing: in the operators' own
/// vocabulary ([`Resolution`]), so the operator closing the incident reads it as a proposal.
/// The incident's `resolution` stays the operator's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Clearance {
    pub resolution: Resolution,
    /// What the officer adds (what was found, what was done), at most [`CLEAR_NOTE_LEN_MAX`]
    /// bytes; [`Clearance::validate`] checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Clearance {
    pub fn validate(&self) -> Result<(), Error> {
        let len = self.note.as_ref().map_or(0, String::len);
        if len > CLEAR_NOTE_LEN_MAX {
            return Err(Error::ClearNoteTooLong {
                len,
                max: CLEAR_NOTE_LEN_MAX,
            });
        }
        Ok(())
    }
}

/// A unit's [`Clearance`] as the incident keeps it: who, how, when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnitOutcome {
    pub unit: BrigadeId,
    pub resolution: Resolution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub at: Timestamp,
}

/// A recommendation the incident carries after a reclassification: `out`, attached, lacks what
/// the new `kind` prefers (an unarmed patrol on a robbery), and `into`, free (available, live,
/// not cooling down), has it. Only a recommendation: an operator swaps, or not
/// ([`crate::dispatch::swap_advice`] finds it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwapAdvice {
    pub out: BrigadeId,
    pub into: BrigadeId,
    /// The kind whose needs `into` meets and `out` does not.
    pub kind: IncidentKind,
    pub at: Timestamp,
}

/// What kind of emergency, as classified by an operator.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// Not yet classified: every incident starts here.
    Unclassified,
    Robbery,
    Assault,
    PurseSnatching,
    VehicleTheft,
    Medical,
    Other,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 7] = [
        IncidentKind::Unclassified,
        IncidentKind::Robbery,
        IncidentKind::Assault,
        IncidentKind::PurseSnatching,
        IncidentKind::VehicleTheft,
        IncidentKind::Medical,
        IncidentKind::Other,
    ];

    /// Priority an incident of this kind gets unless the operator says otherwise.
    pub fn default_priority(self) -> Priority {
        match self {
            // Someone may be hurt right now: violence against a person, or a medical emergency.
            IncidentKind::Assault | IncidentKind::Medical => Priority::Critical,
            // A panic button press is presumed serious until an operator has assessed it.
            IncidentKind::Unclassified => Priority::High,
            // Often ongoing and with a threat of violence.
            IncidentKind::Robbery => Priority::High,
            // Usually over in seconds; the response is about the victim and the description.
            IncidentKind::PurseSnatching | IncidentKind::VehicleTheft => Priority::Medium,
            IncidentKind::Other => Priority::Low,
        }
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IncidentKind::Unclassified => "unclassified",
            IncidentKind::Robbery => "robbery",
            IncidentKind::Assault => "assault",
            IncidentKind::PurseSnatching => "purse_snatching",
            IncidentKind::VehicleTheft => "vehicle_theft",
            IncidentKind::Medical => "medical",
            IncidentKind::Other => "other",
        })
    }
}

/// How urgently an incident needs a unit. Ordered: `Critical` is the greatest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        })
    }
}

/// What the operator learned from the caller over the intercom. Each field is at most
/// [`CALLER_FIELD_LEN_MAX`] bytes; [`Incident::classify`] checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallerDetails {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub notes: Option<String>,
}

impl CallerDetails {
    pub fn validate(&self) -> Result<(), Error> {
        for (field, value) in [
            ("name", &self.name),
            ("phone", &self.phone),
            ("notes", &self.notes),
        ] {
            let len = value.as_ref().map_or(0, String::len);
            if len > CALLER_FIELD_LEN_MAX {
                return Err(Error::CallerFieldTooLong {
                    field,
                    len,
                    max: CALLER_FIELD_LEN_MAX,
                });
            }
        }
        Ok(())
    }
}

/// Who performed an audited step. Serialized externally tagged: `"system"`,
/// `{"operator": "op-7"}`, `{"dispatcher": {"term": 12}}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// Centinela itself, outside the dispatcher (timers, maintenance).
    System,
    Button(ButtonId),
    Operator(OperatorId),
    /// The dispatcher, with the election term it held: ties every automatic assignment to the
    /// leader that made it.
    Dispatcher {
        term: i64,
    },
    Brigade(BrigadeId),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::Button(id) => write!(f, "button {id}"),
            Actor::Operator(id) => write!(f, "operator {id}"),
            Actor::Dispatcher { term } => write!(f, "dispatcher (term {term})"),
            Actor::Brigade(id) => write!(f, "brigade {id}"),
        }
    }
}

/// What an audited step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Opened,
    PressMerged,
    Acknowledged,
    Classified,
    Assigned,
    Unassigned,
    AckTimeout,
    UnitAcknowledged,
    UnitEnRoute,
    UnitOnScene,
    UnitCleared,
    Closed,
    /// An operator attached a still from the camera (its SHA-256 in the detail).
    StillSaved,
    /// An operator handed the incident to another agency (the agency and the CAP identifier
    /// in the detail).
    HandedOff,
    /// One delivery attempt of a hand-off's CAP message (its identifier and the outcome).
    HandoffAttempt,
    /// The agency acknowledged a hand-off on its callback.
    HandoffAcknowledged,
    /// At a verify-first site: an operator saw the scene on camera and released the held
    /// dispatch.
    Verified,
    /// At a verify-first site: nobody confirmed within the site's hold, so the dispatcher
    /// dispatched as usual.
    HoldExpired,
    /// A button's intercom called (the call's id, codec and origin in the detail); the call
    /// belongs to this incident.
    CallStarted,
    /// The call ended (who hung up, or why, in the detail).
    CallEnded,
    /// The call's recording was closed (`--record-calls`): its SHA-256 and length, or why
    /// it is incomplete, in the detail; written just before the call's end.
    CallRecorded,
    /// An operator answered the call in the console (actor: the operator).
    CallAnswered,
    /// The answering operator put the call on hold.
    CallHeld,
    /// The answering operator took the call off hold.
    CallResumed,
    /// The answering operator's browser leg dropped (page closed or crashed, network lost;
    /// actor: that operator, why in the detail): the caller stays on the line and the call
    /// rings again for every operator.
    CallLegDropped,
    /// A supervisor cleared a device's alert (in a device's audit trail, never an incident's:
    /// [`crate::device_audit`]); the alert's kind, when it was raised and the note in the
    /// detail.
    AlertCleared,
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuditAction::Opened => "opened",
            AuditAction::PressMerged => "press_merged",
            AuditAction::Acknowledged => "acknowledged",
            AuditAction::Classified => "classified",
            AuditAction::Assigned => "assigned",
            AuditAction::Unassigned => "unassigned",
            AuditAction::AckTimeout => "ack_timeout",
            AuditAction::UnitAcknowledged => "unit_acknowledged",
            AuditAction::UnitEnRoute => "unit_en_route",
            AuditAction::UnitOnScene => "unit_on_scene",
            AuditAction::UnitCleared => "unit_cleared",
            AuditAction::Closed => "closed",
            AuditAction::StillSaved => "still_saved",
            AuditAction::HandedOff => "handed_off",
            AuditAction::HandoffAttempt => "handoff_attempt",
            AuditAction::HandoffAcknowledged => "handoff_acknowledged",
            AuditAction::Verified => "verified",
            AuditAction::HoldExpired => "hold_expired",
            AuditAction::CallStarted => "call_started",
            AuditAction::CallEnded => "call_ended",
            AuditAction::CallRecorded => "call_recorded",
            AuditAction::CallAnswered => "call_answered",
            AuditAction::CallHeld => "call_held",
            AuditAction::CallResumed => "call_resumed",
            AuditAction::CallLegDropped => "call_leg_dropped",
            AuditAction::AlertCleared => "alert_cleared",
        })
    }
}

impl Actor {
    /// `operator:ana`, `dispatcher:term=7`: compact and greppable; what the audit chain hashes
    /// and the wire shows.
    pub fn tag(&self) -> String {
        match self {
            Actor::System => "system".into(),
            Actor::Button(id) => format!("button:{id}"),
            Actor::Operator(id) => format!("operator:{id}"),
            Actor::Dispatcher { term } => format!("dispatcher:term={term}"),
            Actor::Brigade(id) => format!("unit:{id}"),
        }
    }
}

/// One step in an incident's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor: Actor,
    pub action: AuditAction,
    /// Human-readable specifics (which unit, what classification, why), at most
    /// [`AUDIT_DETAIL_LEN_MAX`] bytes.
    pub detail: String,
    /// The audit chain: BLAKE2b-256 (hex) of the previous entry's hash and every other field of
    /// this entry, so an entry changed, removed or inserted behind the domain's back shows as a
    /// break ([`Incident::verify_audit`]). Every entry has one: an entry without is a break
    /// (the incident's [`AuditSeal`] makes a consistently recomputed chain one too).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// The domain separation of the audit chain, bound into its first link with the incident id.
const AUDIT_CHAIN_DOMAIN: &[u8] = b"centinela/audit-chain/v1";

/// A link of an audit chain.
pub type ChainHash = [u8; 32];

pub(crate) fn length_prefixed(hasher: &mut Blake2b256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The hash every incident's chain starts from: tied to the incident, so entries cannot be
/// moved between incidents unnoticed.
pub fn audit_chain_genesis(incident: &IncidentId) -> ChainHash {
    let mut hasher = Blake2b256::new();
    length_prefixed(&mut hasher, AUDIT_CHAIN_DOMAIN);
    length_prefixed(&mut hasher, incident.as_str().as_bytes());
    hasher.finalize().into()
}

/// The link after `previous` for `entry` (its own `hash` field excluded).
pub fn audit_chain_link(previous: &ChainHash, entry: &AuditEntry) -> ChainHash {
    let mut hasher = Blake2b256::new();
    hasher.update(previous);
    hasher.update(entry.at.as_millis().to_le_bytes());
    length_prefixed(&mut hasher, entry.actor.tag().as_bytes());
    length_prefixed(&mut hasher, entry.action.to_string().as_bytes());
    length_prefixed(&mut hasher, entry.detail.as_bytes());
    hasher.finalize().into()
}

/// Lowercase hex of a chain link, as stored.
pub fn chain_hex(hash: &ChainHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Walks a hash chain of audit entries from its `genesis` (an incident's or a device's),
/// recomputing every link: the head (hex), how many entries carry a hash, and the first entry
/// whose hash is missing (`stripped` says why one can be) or does not match.
pub(crate) fn walk_audit_chain(
    genesis: ChainHash,
    entries: &[AuditEntry],
    stripped: &str,
) -> (String, usize, Option<AuditBreak>) {
    let mut link = genesis;
    let mut chained = 0;
    let mut first_break = None;
    for (index, entry) in entries.iter().enumerate() {
        link = audit_chain_link(&link, entry);
        let problem = if entry.hash.is_empty() {
            Some(stripped)
        } else {
            chained += 1;
            (entry.hash != chain_hex(&link))
                .then_some("hash does not match the entry and the ones before it")
        };
        if first_break.is_none()
            && let Some(problem) = problem
        {
            first_break = Some(AuditBreak {
                entry: Some(index),
                reason: problem.to_string(),
            });
        }
    }
    (chain_hex(&link), chained, first_break)
}

/// What [`Incident::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerdict {
    pub entries: usize,
    /// Entries that carry a hash (all of them, in an intact record).
    pub chained: usize,
    /// The first thing that does not fit; `None` when intact.
    pub first_break: Option<AuditBreak>,
    /// Whether the seal was checked with the audit key (and matched, when intact). Without the
    /// key only the links and the seal's clear-text count and head are checked.
    pub seal_checked: bool,
    /// The chain's last link (hex), recomputed from the entries.
    pub head: String,
}

/// Where and why a record stops fitting its chain or seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The first audit entry that does not fit, when the break is in an entry; `None` when it
    /// is in the seal or the incident's fields.
    pub entry: Option<usize>,
    pub reason: String,
}

impl AuditVerdict {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    /// The button whose press opened it; later presses within the debounce window join it.
    pub button: ButtonId,
    /// The camera aimed at the scene, whose bookmarks hold the footage.
    pub camera: CameraId,
    /// Where help must go: the button's position.
    pub position: Position,
    pub kind: IncidentKind,
    pub priority: Priority,
    /// High-water mark of progress; see the module docs.
    pub state: IncidentState,
    /// How it ended; `Some` exactly when closed.
    pub resolution: Option<Resolution>,
    /// Units attached now, in assignment order, at most [`UNITS_PER_INCIDENT_MAX`].
    pub units: Vec<BrigadeId>,
    /// Units that failed to acknowledge in time: the dispatcher does not offer this incident to
    /// them again. Oldest first, at most [`DECLINED_PER_INCIDENT_MAX`].
    pub declined: Vec<BrigadeId>,
    /// Presses merged into this incident, the first included. Keeps counting after the audit
    /// stops recording individual presses ([`AUDIT_PRESSES_MAX`]).
    pub press_count: u32,
    /// When the latest presses arrived, oldest first, at most [`RECENT_PRESSES_MAX`]: with
    /// `press_count` and the first and last press, what a flood looks like without the record
    /// growing with it.
    #[serde(default)]
    pub recent_presses: Vec<Timestamp>,
    pub first_press_at: Timestamp,
    pub last_press_at: Timestamp,
    pub created_at: Timestamp,
    /// Which operator first acknowledged it, and when. Recorded whatever the state was then.
    pub acknowledged: Option<(OperatorId, Timestamp)>,
    pub caller: Option<CallerDetails>,
    pub closed_at: Option<Timestamp>,
    /// History, oldest first, at most [`AUDIT_ENTRIES_MAX`] entries; see [`Incident::audit_overflow`].
    pub audit: Vec<AuditEntry>,
    /// Steps other than repeated presses that did not fit in `audit`. Expected to stay zero: it
    /// takes hundreds of operator and unit steps on one incident to reach the limit, but if that
    /// happens the record says so instead of silently losing history.
    pub audit_overflow: u32,
    /// How the units that cleared it said they left the scene, oldest first, at most
    /// [`UNIT_OUTCOMES_MAX`] (the audit trail keeps every clear).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unit_outcomes: Vec<UnitOutcome>,
    /// A swap recommended after the last classification, while it still applies: dropped when
    /// either unit's part changes (`out` leaves, `into` is assigned), on the next
    /// classification and on closing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapAdvice>,
    /// The W3C `traceparent` of the press that opened it: the dispatcher's assignment span and
    /// everything after continue that press's trace. Not part of the incident's meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The camera's RTSP stream (ONVIF `GetStreamUri`), recorded when the camera framed the
    /// button: with `camera`, `first_press_at` and `closed_at`, what an operator needs to find
    /// the footage in the video management system or open it in their own player.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_uri: Option<String>,
    /// What a writer found wrong with this record as it read it (a broken chain or seal), in
    /// the words of [`Incident::verify_audit`]: sealed with the rest, so that a later write
    /// cannot launder an edit made behind the domain's back. `None` on a record never found
    /// broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_break: Option<String>,
    /// The keyed MAC over the chain head, the entry count and every other field, refreshed on
    /// every write ([`Incident::seal`]). `None` only in memory before the first write, and on
    /// records written before seals existed (which verify as broken: "unsealed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<AuditSeal>,
    /// At a verify-first site (`verify_first` on the button in the scenario): the dispatcher
    /// holds the recommended brigade until an operator confirms on camera
    /// ([`Incident::confirm_verified`]) or this time passes ([`Incident::hold_expired`]).
    /// `None` at an auto-dispatch site and once the hold ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<Timestamp>,
}

impl Incident {
    /// Opens an incident for a first press of `button` at `now`.
    pub fn open(
        id: IncidentId,
        button: ButtonId,
        camera: CameraId,
        position: Position,
        now: Timestamp,
    ) -> Self {
        let kind = IncidentKind::Unclassified;
        let mut incident = Self {
            id,
            button: button.clone(),
            camera,
            position,
            kind,
            priority: kind.default_priority(),
            state: IncidentState::New,
            resolution: None,
            units: Vec::new(),
            declined: Vec::new(),
            press_count: 1,
            recent_presses: vec![now],
            first_press_at: now,
            last_press_at: now,
            created_at: now,
            acknowledged: None,
            caller: None,
            closed_at: None,
            audit: Vec::new(),
            audit_overflow: 0,
            unit_outcomes: Vec::new(),
            swap: None,
            trace: None,
            stream_uri: None,
            audit_break: None,
            seal: None,
            held_until: None,
        };
        incident.record(
            now,
            Actor::Button(button),
            AuditAction::Opened,
            String::new(),
        );
        incident
    }

    pub fn is_open(&self) -> bool {
        self.state != IncidentState::Closed
    }

    /// Whether the dispatcher should find a unit for it: open, nobody attached, and no unit has
    /// reached the scene yet. Once a unit has been on scene, sending more is an operator's call;
    /// otherwise the dispatcher would send a second unit to an incident whose first unit just
    /// cleared and which only waits for the operator to close it.
    /// Whether the dispatcher holds its brigade, waiting for a verification on camera.
    pub fn is_held(&self) -> bool {
        self.is_open() && self.held_until.is_some()
    }

    /// An operator saw the scene on camera: the held dispatch goes ahead now.
    pub fn confirm_verified(&mut self, operator: OperatorId, now: Timestamp) -> Result<(), Error> {
        self.ensure_open()?;
        if self.held_until.take().is_none() {
            return Err(self.refuse(
                AuditAction::Verified,
                "nothing is held: the site dispatches at once, or the hold already ended",
            ));
        }
        self.record(
            now,
            Actor::Operator(operator),
            AuditAction::Verified,
            String::new(),
        );
        Ok(())
    }

    /// The hold passed without a confirmation: the dispatcher dispatches as usual.
    pub fn hold_expired(&mut self, term: i64, now: Timestamp) -> Result<(), Error> {
        self.ensure_open()?;
        let Some(until) = self.held_until.take() else {
            return Err(self.refuse(AuditAction::HoldExpired, "nothing is held"));
        };
        self.record(
            now,
            Actor::Dispatcher { term },
            AuditAction::HoldExpired,
            format!("held until {until}"),
        );
        Ok(())
    }

    pub fn needs_unit(&self) -> bool {
        self.is_open() && self.units.is_empty() && self.state < IncidentState::OnScene
    }

    pub fn is_attached(&self, brigade: &BrigadeId) -> bool {
        self.units.contains(brigade)
    }

    /// Whether a press at `now` belongs to this incident: it is open and its last press was at
    /// most `window` ago.
    pub fn within_debounce(&self, now: Timestamp, window: Duration) -> bool {
        self.is_open() && now.saturating_duration_since(self.last_press_at) <= window
    }

    /// Joins another press of the same button to this incident.
    pub fn merge_press(&mut self, now: Timestamp) -> Result<(), Error> {
        self.ensure_open()?;
        self.press_count = self.press_count.saturating_add(1);
        // Presses reach the owner through different nodes and retries; keep the latest time.
        self.last_press_at = self.last_press_at.max(now);
        if self.recent_presses.len() >= RECENT_PRESSES_MAX {
            self.recent_presses.remove(0);
        }
        self.recent_presses.push(now);
        debug_assert!(self.recent_presses.len() <= RECENT_PRESSES_MAX);
        // The first few repeats are audited one by one; after that only counted.
        if self.press_count as usize <= 1 + AUDIT_PRESSES_MAX {
            let button = self.button.clone();
            let detail = format!("press {}", self.press_count);
            self.record(now, Actor::Button(button), AuditAction::PressMerged, detail);
        }
        Ok(())
    }

    /// An operator has taken the incident. From `New` this raises the state to `Acknowledged`;
    /// from a later state (the dispatcher already assigned a unit at press time) it only records
    /// who acknowledged, since lowering the state would hide that progress.
    pub fn acknowledge(&mut self, operator: OperatorId, now: Timestamp) -> Result<(), Error> {
        self.ensure_open()?;
        if self.acknowledged.is_some() {
            return Err(self.refuse(AuditAction::Acknowledged, "it was already acknowledged"));
        }
        self.acknowledged = Some((operator.clone(), now));
        self.raise(IncidentState::Acknowledged);
        self.record(
            now,
            Actor::Operator(operator),
            AuditAction::Acknowledged,
            String::new(),
        );
        Ok(())
    }

    /// Records that `operator` attached a still from `camera`: the image is kept apart, under
    /// its SHA-256 (hex), which the audit chain then covers.
    pub fn save_still(
        &mut self,
        operator: OperatorId,
        camera: &CameraId,
        sha256_hex: &str,
        bytes: usize,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        let detail = format!("camera {camera} sha256 {sha256_hex} ({bytes} bytes)");
        self.record(
            now,
            Actor::Operator(operator),
            AuditAction::StillSaved,
            detail,
        );
        Ok(())
    }

    /// Records that `button`'s intercom called into this incident (`detail`: the call's id,
    /// codec and origin). Only an open incident takes a call: the press path just opened or
    /// joined it.
    pub fn call_started(
        &mut self,
        button: ButtonId,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        self.record(
            now,
            Actor::Button(button),
            AuditAction::CallStarted,
            detail.into(),
        );
        Ok(())
    }

    /// Records the end of a call (`by` hung up, or [`Actor::System`] ended it). Also after
    /// closing: a call may outlive its incident by the moment its hang-up takes.
    pub fn call_ended(&mut self, by: Actor, detail: &str, now: Timestamp) {
        self.record(now, by, AuditAction::CallEnded, detail.into());
    }

    /// Records a call's recording (`detail`: its hash and length, or why it is incomplete).
    /// Also after closing, like [`Incident::call_ended`].
    pub fn call_recorded(&mut self, detail: &str, now: Timestamp) {
        self.record(now, Actor::System, AuditAction::CallRecorded, detail.into());
    }

    /// Records that `operator` answered the call in the console, or put it on hold
    /// ([`AuditAction::CallHeld`]) or took it off ([`AuditAction::CallResumed`]), or that
    /// their browser leg dropped ([`AuditAction::CallLegDropped`]). Also after
    /// closing, like [`Incident::call_ended`]: the call is still up.
    pub fn call_step(
        &mut self,
        operator: OperatorId,
        step: AuditAction,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        if !matches!(
            step,
            AuditAction::CallAnswered
                | AuditAction::CallHeld
                | AuditAction::CallResumed
                | AuditAction::CallLegDropped
        ) {
            return Err(self.refuse(step, "not a step of a call"));
        }
        self.record(now, Actor::Operator(operator), step, detail.into());
        Ok(())
    }

    /// Records that `operator` handed the incident to `agency` as the CAP alert `cap_id`.
    /// Only an open incident is handed off.
    pub fn hand_off(
        &mut self,
        operator: OperatorId,
        agency: &AgencyId,
        cap_id: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        let detail = format!("agency {agency} cap {cap_id}");
        self.record(
            now,
            Actor::Operator(operator),
            AuditAction::HandedOff,
            detail,
        );
        Ok(())
    }

    /// Records a delivery attempt of a hand-off's message `identifier` to `agency` and its
    /// `outcome` ("delivered (202)", "failed: connection refused"). Also after closing: the
    /// final Update or Cancel goes out once the incident is closed. The caller bounds how many
    /// attempts it records ([`crate::limits::HANDOFF_ATTEMPTS_AUDITED_MAX`]).
    pub fn handoff_attempt(
        &mut self,
        agency: &AgencyId,
        identifier: &str,
        outcome: &str,
        now: Timestamp,
    ) {
        let detail = format!("agency {agency} cap {identifier}: {outcome}");
        self.record(now, Actor::System, AuditAction::HandoffAttempt, detail);
    }

    /// Records an acknowledgement `agency` sent on its callback (`detail`: what it said).
    pub fn handoff_acknowledged(&mut self, agency: &AgencyId, detail: &str, now: Timestamp) {
        let detail = format!("agency {agency}: {detail}");
        self.record(now, Actor::System, AuditAction::HandoffAcknowledged, detail);
    }

    /// Records the operator's classification. `priority` defaults to the kind's; `caller`, when
    /// given, replaces what was recorded before. May be repeated as the operator learns more.
    pub fn classify(
        &mut self,
        operator: OperatorId,
        kind: IncidentKind,
        priority: Option<Priority>,
        caller: Option<CallerDetails>,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        if let Some(details) = &caller {
            details.validate()?;
        }
        self.kind = kind;
        self.priority = priority.unwrap_or_else(|| kind.default_priority());
        // Whatever was advised was for the previous kind: the caller advises again.
        self.swap = None;
        if caller.is_some() {
            self.caller = caller;
        }
        let detail = format!("{} ({})", self.kind, self.priority);
        self.record(
            now,
            Actor::Operator(operator),
            AuditAction::Classified,
            detail,
        );
        Ok(())
    }

    /// Attaches `brigade`. The dispatcher may not re-offer the incident to a unit that already
    /// failed to acknowledge it; an operator may, deliberately.
    pub fn assign(
        &mut self,
        brigade: BrigadeId,
        actor: Actor,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        if self.is_attached(&brigade) {
            return Err(Error::UnitAlreadyAttached {
                incident: self.id.clone(),
                brigade,
            });
        }
        if self.units.len() >= UNITS_PER_INCIDENT_MAX {
            return Err(Error::TooManyUnits {
                incident: self.id.clone(),
                max: UNITS_PER_INCIDENT_MAX,
            });
        }
        if matches!(actor, Actor::Dispatcher { .. }) && self.declined.contains(&brigade) {
            return Err(self.refuse(
                AuditAction::Assigned,
                "the unit already failed to acknowledge this incident",
            ));
        }
        if self.swap.as_ref().is_some_and(|swap| swap.into == brigade) {
            self.swap = None;
        }
        let detail = brigade.to_string();
        self.units.push(brigade);
        // An operator's explicit dispatch ends a verify-first hold as well.
        self.held_until = None;
        self.raise(IncidentState::Dispatched);
        self.record(now, actor, AuditAction::Assigned, detail);
        Ok(())
    }

    /// Detaches `brigade` without it having cleared (replaced by a closer unit, needed
    /// elsewhere). The state keeps its high-water mark.
    pub fn unassign(
        &mut self,
        brigade: &BrigadeId,
        actor: Actor,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.detach(brigade)?;
        let detail = format!("{brigade}: {reason}");
        self.record(now, actor, AuditAction::Unassigned, detail);
        Ok(())
    }

    /// `brigade` did not acknowledge within the ack timeout: detaches it and remembers it, so the
    /// dispatcher offers the incident to someone else.
    pub fn ack_timeout(
        &mut self,
        brigade: &BrigadeId,
        term: i64,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.detach(brigade)?;
        if !self.declined.contains(brigade) {
            if self.declined.len() >= DECLINED_PER_INCIDENT_MAX {
                self.declined.remove(0);
            }
            self.declined.push(brigade.clone());
        }
        debug_assert!(self.declined.len() <= DECLINED_PER_INCIDENT_MAX);
        self.record(
            now,
            Actor::Dispatcher { term },
            AuditAction::AckTimeout,
            brigade.to_string(),
        );
        Ok(())
    }

    /// The unit's terminal acknowledged the assignment. State unchanged: the incident is
    /// already at least `Dispatched`.
    pub fn unit_acknowledged(&mut self, brigade: &BrigadeId, now: Timestamp) -> Result<(), Error> {
        self.unit_progress(brigade, AuditAction::UnitAcknowledged, None, now)
    }

    pub fn unit_en_route(&mut self, brigade: &BrigadeId, now: Timestamp) -> Result<(), Error> {
        self.unit_progress(
            brigade,
            AuditAction::UnitEnRoute,
            Some(IncidentState::EnRoute),
            now,
        )
    }

    pub fn unit_on_scene(&mut self, brigade: &BrigadeId, now: Timestamp) -> Result<(), Error> {
        self.unit_progress(
            brigade,
            AuditAction::UnitOnScene,
            Some(IncidentState::OnScene),
            now,
        )
    }

    /// The unit finished at the scene; it is detached. With a `clearance` (the officer's
    /// outcome and note), it is kept in `unit_outcomes` and in the audit entry's detail. The
    /// incident stays open until an operator closes it with a resolution.
    pub fn unit_cleared(
        &mut self,
        brigade: &BrigadeId,
        clearance: Option<&Clearance>,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        self.ensure_attached(brigade)?;
        if let Some(clearance) = clearance {
            clearance.validate()?;
        }
        self.detach(brigade)?;
        let detail = match clearance {
            None => String::new(),
            Some(Clearance {
                resolution,
                note: Some(note),
            }) if !note.is_empty() => format!("{resolution}: {note}"),
            Some(Clearance { resolution, .. }) => resolution.to_string(),
        };
        if let Some(clearance) = clearance {
            if self.unit_outcomes.len() >= UNIT_OUTCOMES_MAX {
                self.unit_outcomes.remove(0);
            }
            self.unit_outcomes.push(UnitOutcome {
                unit: brigade.clone(),
                resolution: clearance.resolution,
                note: clearance.note.clone().filter(|n| !n.is_empty()),
                at: now,
            });
        }
        debug_assert!(self.unit_outcomes.len() <= UNIT_OUTCOMES_MAX);
        self.record(
            now,
            Actor::Brigade(brigade.clone()),
            AuditAction::UnitCleared,
            detail,
        );
        Ok(())
    }

    /// Records (or, with `None`, drops) the swap recommended after a classification. `out` must
    /// be attached and `into` not. Not an audited step: the operator's swap, if any, is.
    pub fn advise_swap(&mut self, advice: Option<SwapAdvice>) -> Result<(), Error> {
        self.ensure_open()?;
        if let Some(advice) = &advice {
            self.ensure_attached(&advice.out)?;
            if self.is_attached(&advice.into) {
                return Err(Error::UnitAlreadyAttached {
                    incident: self.id.clone(),
                    brigade: advice.into.clone(),
                });
            }
        }
        self.swap = advice;
        Ok(())
    }

    /// Closes the incident and returns the units it held, which the caller must release (for a
    /// prank, units still on their way turn back).
    pub fn close(
        &mut self,
        resolution: Resolution,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Vec<BrigadeId>, Error> {
        self.ensure_open()?;
        let released = std::mem::take(&mut self.units);
        self.swap = None;
        self.state = IncidentState::Closed;
        self.resolution = Some(resolution);
        self.closed_at = Some(now);
        let detail = if released.is_empty() {
            resolution.to_string()
        } else {
            let units: Vec<&str> = released.iter().map(BrigadeId::as_str).collect();
            format!("{resolution}; released {}", units.join(", "))
        };
        self.record(now, actor, AuditAction::Closed, detail);
        debug_assert_eq!(
            self.audit.last().map(|entry| entry.action),
            Some(AuditAction::Closed),
            "a closed incident's audit ends with its closure"
        );
        Ok(released)
    }

    fn unit_progress(
        &mut self,
        brigade: &BrigadeId,
        action: AuditAction,
        reaches: Option<IncidentState>,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        self.ensure_attached(brigade)?;
        if let Some(state) = reaches {
            self.raise(state);
        }
        self.record(now, Actor::Brigade(brigade.clone()), action, String::new());
        Ok(())
    }

    fn detach(&mut self, brigade: &BrigadeId) -> Result<(), Error> {
        self.ensure_open()?;
        self.ensure_attached(brigade)?;
        self.units.retain(|unit| unit != brigade);
        if self.swap.as_ref().is_some_and(|swap| &swap.out == brigade) {
            self.swap = None;
        }
        Ok(())
    }

    /// Checks the record: every entry's hash against the chain recomputed from the incident id
    /// (a missing hash is a break), then, with the audit `key`, the seal against the chain
    /// head, the entry count and every field (a missing seal is a break), and finally whether
    /// a writer already found the record broken. Without the key, the seal's clear-text count
    /// and head are still compared, but anyone could have forged them.
    pub fn verify_audit(&self, key: Option<&AuditKey>) -> AuditVerdict {
        let (head, chained, mut first_break) = walk_audit_chain(
            audit_chain_genesis(&self.id),
            &self.audit,
            "the entry has no hash (stripped, or written before the chain existed)",
        );
        if first_break.is_none() {
            first_break = self.seal_break(&head, key).map(|reason| AuditBreak {
                entry: None,
                reason,
            });
        }
        if first_break.is_none()
            && let Some(found) = &self.audit_break
        {
            first_break = Some(AuditBreak {
                entry: None,
                reason: format!("a writer found the record broken before it wrote it: {found}"),
            });
        }
        AuditVerdict {
            entries: self.audit.len(),
            chained,
            first_break,
            seal_checked: key.is_some(),
            head,
        }
    }

    /// Why the seal does not fit the record whose recomputed chain head is `head`, if it does
    /// not; the MAC only with `key`.
    fn seal_break(&self, head: &str, key: Option<&AuditKey>) -> Option<String> {
        let Some(seal) = &self.seal else {
            return Some(
                "unsealed: the record carries no seal (stripped, or written before seals existed)"
                    .into(),
            );
        };
        if seal.entries as usize != self.audit.len() {
            return Some(format!(
                "the seal covers {} audit entries, the record holds {} (entries dropped or added)",
                seal.entries,
                self.audit.len()
            ));
        }
        if seal.head != head {
            return Some(
                "the seal's chain head does not match the entries (the chain was rewritten)".into(),
            );
        }
        let key = key?;
        if seal.key != key.fingerprint() {
            return Some(format!(
                "sealed with audit key {}, this node holds {}: not verifiable here",
                seal.key,
                key.fingerprint()
            ));
        }
        if !same(&seal.mac, &self.seal_mac(key, seal.entries, &seal.head)) {
            return Some("the seal does not match the incident's fields (kind, priority, state, resolution, acknowledgement, caller, units, presses, times or another field was edited)".into());
        }
        None
    }

    /// Seals the record for a write with `key`: what every writer of incident records calls
    /// last, before encoding. `stored` is the record as the writer read it (`None` for a new
    /// incident): if it does not verify, the break is kept in [`Incident::audit_break`] under
    /// the new seal, so a write never launders an edit made behind the domain's back.
    pub fn seal(&mut self, stored: Option<&Incident>, key: &AuditKey) {
        if self.audit_break.is_none()
            && let Some(stored) = stored
            && let Some(found) = stored.verify_audit(Some(key)).first_break
        {
            self.audit_break = Some(match found.entry {
                Some(entry) => format!("entry {entry}: {}", found.reason),
                None => found.reason,
            });
        }
        let head = self
            .audit
            .iter()
            .fold(audit_chain_genesis(&self.id), |link, entry| {
                audit_chain_link(&link, entry)
            });
        let head = chain_hex(&head);
        let entries = self.audit.len() as u32;
        let mac = self.seal_mac(key, entries, &head);
        self.seal = Some(AuditSeal {
            key: key.fingerprint().to_string(),
            entries,
            head,
            mac,
        });
    }

    /// The seal's MAC: the key's fingerprint, the entry count, the chain head and every field
    /// of the incident but the seal itself. The destructuring names every field, so a field
    /// added to [`Incident`] does not compile until it is sealed too.
    fn seal_mac(&self, key: &AuditKey, entries: u32, head: &str) -> String {
        let Incident {
            id,
            button,
            camera,
            position,
            kind,
            priority,
            state,
            resolution,
            units,
            declined,
            press_count,
            recent_presses,
            first_press_at,
            last_press_at,
            created_at,
            acknowledged,
            caller,
            closed_at,
            audit: _, // through `entries` and `head`, which cover every entry's every field
            audit_overflow,
            unit_outcomes,
            swap,
            trace,
            stream_uri,
            audit_break,
            seal: _,
            held_until,
        } = self;
        let mut input = SealInput::new(key);
        input.text(key.fingerprint());
        input.u64(u64::from(entries));
        input.text(head);
        input.text(id);
        input.text(button);
        input.text(camera);
        // Degrees to 1e-7 (about a centimetre): the value survives a decimal round trip.
        input.text(format_args!("{:.7},{:.7}", position.lat(), position.lon()));
        input.text(kind);
        input.text(priority);
        input.text(state);
        input.option(resolution.as_ref(), |input, r| input.text(r));
        input.list(units.iter(), |input, unit| input.text(unit));
        input.list(declined.iter(), |input, unit| input.text(unit));
        input.u64(u64::from(*press_count));
        input.list(recent_presses.iter(), |input, at| input.u64(at.as_millis()));
        input.u64(first_press_at.as_millis());
        input.u64(last_press_at.as_millis());
        input.u64(created_at.as_millis());
        input.option(acknowledged.as_ref(), |input, (operator, at)| {
            input.text(operator);
            input.u64(at.as_millis());
        });
        input.option(caller.as_ref(), |input, caller| {
            let CallerDetails { name, phone, notes } = caller;
            for field in [name, phone, notes] {
                input.option(field.as_ref(), |input, text| input.text(text));
            }
        });
        input.option(closed_at.as_ref(), |input, at| input.u64(at.as_millis()));
        input.u64(u64::from(*audit_overflow));
        input.option(trace.as_ref(), |input, text| input.text(text));
        input.option(stream_uri.as_ref(), |input, text| input.text(text));
        input.option(audit_break.as_ref(), |input, text| input.text(text));
        // Only when there are any: records sealed before outcomes existed keep their MAC.
        if !unit_outcomes.is_empty() {
            input.list(unit_outcomes.iter(), |input, outcome| {
                let UnitOutcome {
                    unit,
                    resolution,
                    note,
                    at,
                } = outcome;
                input.text(unit);
                input.text(resolution);
                input.option(note.as_ref(), |input, text| input.text(text));
                input.u64(at.as_millis());
            });
        }
        // Likewise only when there is one.
        if let Some(SwapAdvice {
            out,
            into,
            kind,
            at,
        }) = swap
        {
            input.text("swap");
            input.text(out);
            input.text(into);
            input.text(kind);
            input.u64(at.as_millis());
        }
        // Likewise only while a verify-first hold lasts.
        if let Some(until) = held_until {
            input.text("held_until");
            input.u64(until.as_millis());
        }
        input.finish()
    }

    /// The chain link of the last entry: its stored hash, or recomputed when it has none.
    fn audit_head(&self) -> ChainHash {
        if let Some(stored) = self
            .audit
            .last()
            .and_then(|entry| parse_chain_hex(&entry.hash))
        {
            return stored;
        }
        self.audit
            .iter()
            .fold(audit_chain_genesis(&self.id), |link, entry| {
                audit_chain_link(&link, entry)
            })
    }

    fn ensure_open(&self) -> Result<(), Error> {
        if self.is_open() {
            Ok(())
        } else {
            Err(Error::AlreadyClosed {
                incident: self.id.clone(),
            })
        }
    }

    fn ensure_attached(&self, brigade: &BrigadeId) -> Result<(), Error> {
        if self.is_attached(brigade) {
            Ok(())
        } else {
            Err(Error::UnitNotAttached {
                incident: self.id.clone(),
                brigade: brigade.clone(),
            })
        }
    }

    /// Moves the state up to `state` if it is below; never down.
    fn raise(&mut self, state: IncidentState) {
        debug_assert!(
            state != IncidentState::Closed,
            "closing goes through close()"
        );
        // Acknowledged is reached from New only; max() gives exactly that.
        self.state = self.state.max(state);
    }

    fn refuse(&self, action: AuditAction, reason: &'static str) -> Error {
        Error::IllegalTransition {
            incident: self.id.clone(),
            from: self.state,
            action,
            reason,
        }
    }

    /// Appends an audit entry, within the bounds described on [`AUDIT_ENTRIES_RESERVED`]: merged
    /// presses stop being recorded first, then other steps are only counted in
    /// `audit_overflow`, and the last slot is kept for the closure, so every closed incident's
    /// trail ends with who closed it.
    fn record(&mut self, at: Timestamp, actor: Actor, action: AuditAction, mut detail: String) {
        let capacity = match action {
            AuditAction::PressMerged => AUDIT_ENTRIES_MAX - AUDIT_ENTRIES_RESERVED,
            AuditAction::Closed => AUDIT_ENTRIES_MAX,
            _ => AUDIT_ENTRIES_MAX - 1,
        };
        if self.audit.len() >= capacity {
            // Presses are still counted in `press_count`; anything else is counted here.
            if action != AuditAction::PressMerged {
                self.audit_overflow = self.audit_overflow.saturating_add(1);
            }
            return;
        }
        truncate_at_char_boundary(&mut detail, AUDIT_DETAIL_LEN_MAX);
        let mut entry = AuditEntry {
            at,
            actor,
            action,
            detail,
            hash: String::new(),
        };
        entry.hash = chain_hex(&audit_chain_link(&self.audit_head(), &entry));
        self.audit.push(entry);
        debug_assert!(self.audit.len() <= AUDIT_ENTRIES_MAX);
    }
}

pub(crate) fn parse_chain_hex(text: &str) -> Option<ChainHash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Shortens `text` to at most `max` bytes without splitting a character.
pub(crate) fn truncate_at_char_boundary(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// How a `call_started` detail names the node that holds the call's media (its last words).
pub const CALL_NODE_MARK: &str = " on node ";

/// A call the trail shows started on `node` and never ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCall {
    pub call_id: String,
    pub node: String,
}

impl Incident {
    /// The calls whose `call_started` names a node and that have no `call_ended`. Details
    /// are the intercom's: `call {id} {codec} from {caller} over {transport} on node {node}`
    /// and `call {id}: {why}` (a SIP Call-ID has no spaces). A start from before nodes were
    /// named is left out: nobody can say where its media was.
    pub fn open_calls(&self) -> Vec<OpenCall> {
        let mut open: Vec<OpenCall> = Vec::new();
        for entry in &self.audit {
            let Some(rest) = entry.detail.strip_prefix("call ") else {
                continue;
            };
            match entry.action {
                AuditAction::CallStarted => {
                    let call_id = rest.split(' ').next().unwrap_or_default();
                    let node = rest.rsplit_once(CALL_NODE_MARK).map(|(_, node)| node);
                    if let (false, Some(node)) = (call_id.is_empty(), node) {
                        open.push(OpenCall {
                            call_id: call_id.to_string(),
                            node: node.to_string(),
                        });
                    }
                }
                AuditAction::CallEnded => open.retain(|call| {
                    let ended = rest
                        .strip_prefix(call.call_id.as_str())
                        .is_some_and(|after| after.is_empty() || after.starts_with(':'));
                    !ended
                }),
                _ => {}
            }
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DEBOUNCE_WINDOW;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn br(s: &str) -> BrigadeId {
        BrigadeId::new(s).unwrap()
    }

    fn op() -> OperatorId {
        OperatorId::new("op-1").unwrap()
    }

    fn dispatcher() -> Actor {
        Actor::Dispatcher { term: 7 }
    }

    fn incident() -> Incident {
        Incident::open(
            IncidentId::new("I-1").unwrap(),
            ButtonId::new("BTN-1").unwrap(),
            CameraId::new("CAM-1").unwrap(),
            Position::new(-12.0464, -77.03).unwrap(),
            t(1_000),
        )
    }

    fn refusal_reason(result: Result<(), Error>) -> &'static str {
        match result {
            Err(Error::IllegalTransition { reason, .. }) => reason,
            other => panic!("expected an illegal transition, got {other:?}"),
        }
    }

    #[test]
    fn open_starts_new_high_priority_and_audited() {
        let i = incident();
        assert_eq!(i.state, IncidentState::New);
        assert_eq!(i.kind, IncidentKind::Unclassified);
        assert_eq!(i.priority, Priority::High);
        assert_eq!(i.press_count, 1);
        assert_eq!(i.first_press_at, t(1_000));
        assert!(i.is_open());
        assert!(i.needs_unit());
        assert_eq!(i.audit.len(), 1);
        assert_eq!(i.audit[0].action, AuditAction::Opened);
        assert_eq!(
            i.audit[0].actor,
            Actor::Button(ButtonId::new("BTN-1").unwrap())
        );
    }

    #[test]
    fn merge_press_counts_and_debounces() {
        let mut i = incident();
        assert!(i.within_debounce(t(1_000 + 120_000), DEBOUNCE_WINDOW));
        assert!(!i.within_debounce(t(1_000 + 120_001), DEBOUNCE_WINDOW));
        i.merge_press(t(60_000)).unwrap();
        assert_eq!(i.press_count, 2);
        assert_eq!(i.last_press_at, t(60_000));
        // The window slides with each press.
        assert!(i.within_debounce(t(170_000), DEBOUNCE_WINDOW));
        // An out-of-order earlier press does not move last_press_at back.
        i.merge_press(t(50_000)).unwrap();
        assert_eq!(i.last_press_at, t(60_000));
        assert_eq!(i.audit.last().unwrap().action, AuditAction::PressMerged);
        assert_eq!(i.audit.last().unwrap().detail, "press 3");
    }

    #[test]
    fn a_verify_first_hold_ends_once_by_confirmation_expiry_or_dispatch() {
        let held = || {
            let mut i = incident();
            i.held_until = Some(t(91_000));
            i
        };
        let mut i = held();
        assert!(i.is_held() && i.needs_unit());
        i.confirm_verified(op(), t(2_000)).unwrap();
        assert!(!i.is_held());
        let last = i.audit.last().unwrap();
        assert_eq!(
            (last.action, &last.actor),
            (AuditAction::Verified, &Actor::Operator(op()))
        );
        assert!(refusal_reason(i.confirm_verified(op(), t(3_000))).contains("nothing is held"));
        assert!(refusal_reason(i.hold_expired(7, t(3_000))).contains("nothing is held"));

        let mut i = held();
        i.hold_expired(7, t(91_000)).unwrap();
        assert!(!i.is_held());
        assert_eq!(i.audit.last().unwrap().action, AuditAction::HoldExpired);
        assert_eq!(i.audit.last().unwrap().actor, dispatcher());

        let mut i = held();
        i.assign(br("B1"), Actor::Operator(op()), t(2_000)).unwrap();
        assert!(!i.is_held(), "an operator's dispatch ends the hold");
        assert!(!incident().is_held(), "auto-dispatch: never held");
    }

    #[test]
    fn closed_incident_refuses_everything() {
        let mut i = incident();
        i.close(Resolution::Prank, Actor::Operator(op()), t(2_000))
            .unwrap();
        assert!(!i.within_debounce(t(2_001), DEBOUNCE_WINDOW));
        assert!(!i.needs_unit());
        let before = i.clone();
        let closed = Error::AlreadyClosed {
            incident: i.id.clone(),
        };
        assert_eq!(i.merge_press(t(3)).unwrap_err(), closed);
        assert_eq!(i.acknowledge(op(), t(3)).unwrap_err(), closed);
        assert_eq!(
            i.classify(op(), IncidentKind::Robbery, None, None, t(3))
                .unwrap_err(),
            closed
        );
        assert_eq!(i.assign(br("B1"), dispatcher(), t(3)).unwrap_err(), closed);
        assert_eq!(
            i.unassign(&br("B1"), dispatcher(), "x", t(3)).unwrap_err(),
            closed
        );
        assert_eq!(i.ack_timeout(&br("B1"), 7, t(3)).unwrap_err(), closed);
        assert_eq!(i.unit_acknowledged(&br("B1"), t(3)).unwrap_err(), closed);
        assert_eq!(i.unit_en_route(&br("B1"), t(3)).unwrap_err(), closed);
        assert_eq!(i.unit_on_scene(&br("B1"), t(3)).unwrap_err(), closed);
        assert_eq!(i.unit_cleared(&br("B1"), None, t(3)).unwrap_err(), closed);
        assert_eq!(
            i.close(Resolution::Handled, Actor::System, t(3))
                .unwrap_err(),
            closed
        );
        assert_eq!(closed.to_string(), "incident I-1 is already closed");
        assert_eq!(i, before);
    }

    #[test]
    fn acknowledge_from_new_raises_state() {
        let mut i = incident();
        i.acknowledge(op(), t(2_000)).unwrap();
        assert_eq!(i.state, IncidentState::Acknowledged);
        assert_eq!(i.acknowledged, Some((op(), t(2_000))));
        assert_eq!(i.audit.last().unwrap().actor, Actor::Operator(op()));
    }

    #[test]
    fn acknowledge_after_auto_dispatch_keeps_the_state() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(1_010)).unwrap();
        assert_eq!(i.state, IncidentState::Dispatched);
        i.acknowledge(op(), t(3_000)).unwrap();
        assert_eq!(i.state, IncidentState::Dispatched);
        assert_eq!(i.acknowledged, Some((op(), t(3_000))));
    }

    #[test]
    fn acknowledge_twice_is_refused() {
        let mut i = incident();
        i.acknowledge(op(), t(2_000)).unwrap();
        let before = i.clone();
        let err = i
            .acknowledge(OperatorId::new("op-2").unwrap(), t(2_500))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "incident I-1 in state acknowledged refused acknowledged: it was already acknowledged"
        );
        assert_eq!(refusal_reason(Err(err)), "it was already acknowledged");
        assert_eq!(i, before);
    }

    #[test]
    fn classify_sets_kind_priority_and_caller() {
        let mut i = incident();
        i.classify(op(), IncidentKind::Assault, None, None, t(2))
            .unwrap();
        assert_eq!(i.kind, IncidentKind::Assault);
        assert_eq!(i.priority, Priority::Critical);
        let caller = CallerDetails {
            name: Some("Rosa".into()),
            phone: None,
            notes: Some("two men, one in a red jacket".into()),
        };
        i.classify(
            op(),
            IncidentKind::Robbery,
            Some(Priority::Medium),
            Some(caller.clone()),
            t(3),
        )
        .unwrap();
        assert_eq!(i.priority, Priority::Medium);
        assert_eq!(i.caller, Some(caller.clone()));
        // Reclassifying without caller details keeps the ones recorded.
        i.classify(op(), IncidentKind::Robbery, None, None, t(4))
            .unwrap();
        assert_eq!(i.caller, Some(caller));
        assert_eq!(i.priority, Priority::High);
        assert_eq!(i.audit.last().unwrap().detail, "robbery (high)");
        assert_eq!(i.state, IncidentState::New, "classifying is not progress");
    }

    #[test]
    fn classify_refuses_oversized_caller_fields() {
        let mut i = incident();
        let before = i.clone();
        let caller = CallerDetails {
            notes: Some("x".repeat(CALLER_FIELD_LEN_MAX + 1)),
            ..CallerDetails::default()
        };
        let err = i
            .classify(op(), IncidentKind::Other, None, Some(caller), t(2))
            .unwrap_err();
        assert_eq!(err.to_string(), "caller notes has 513 bytes, at most 512");
        assert_eq!(i, before);
    }

    #[test]
    fn default_priorities() {
        assert_eq!(
            IncidentKind::Unclassified.default_priority(),
            Priority::High
        );
        assert_eq!(IncidentKind::Medical.default_priority(), Priority::Critical);
        assert_eq!(IncidentKind::Other.default_priority(), Priority::Low);
        assert!(Priority::Critical > Priority::High);
        assert!(Priority::Medium > Priority::Low);
    }

    #[test]
    fn assign_rules() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        assert!(!i.needs_unit());
        assert_eq!(
            i.assign(br("B1"), Actor::Operator(op()), t(3)).unwrap_err(),
            Error::UnitAlreadyAttached {
                incident: i.id.clone(),
                brigade: br("B1"),
            }
        );
        for n in 2..=UNITS_PER_INCIDENT_MAX {
            i.assign(br(&format!("B{n}")), Actor::Operator(op()), t(4))
                .unwrap();
        }
        let err = i.assign(br("B99"), dispatcher(), t(5)).unwrap_err();
        assert_eq!(
            err,
            Error::TooManyUnits {
                incident: i.id.clone(),
                max: UNITS_PER_INCIDENT_MAX,
            }
        );
        assert_eq!(i.units.len(), UNITS_PER_INCIDENT_MAX);
    }

    #[test]
    fn assign_does_not_lower_a_later_state() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        i.unit_on_scene(&br("B1"), t(3)).unwrap();
        i.assign(br("B2"), Actor::Operator(op()), t(4)).unwrap();
        assert_eq!(i.state, IncidentState::OnScene);
    }

    #[test]
    fn ack_timeout_declines_the_unit_for_the_dispatcher_only() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        i.ack_timeout(&br("B1"), 7, t(17)).unwrap();
        assert!(i.units.is_empty());
        assert_eq!(i.declined, vec![br("B1")]);
        assert!(i.needs_unit());
        assert_eq!(i.state, IncidentState::Dispatched, "no moving back");
        let entry = i.audit.last().unwrap();
        assert_eq!(entry.action, AuditAction::AckTimeout);
        assert_eq!(entry.actor, Actor::Dispatcher { term: 7 });
        assert_eq!(
            refusal_reason(i.assign(br("B1"), dispatcher(), t(18))),
            "the unit already failed to acknowledge this incident"
        );
        // An operator may insist; a second timeout does not duplicate the entry.
        i.assign(br("B1"), Actor::Operator(op()), t(19)).unwrap();
        i.ack_timeout(&br("B1"), 7, t(34)).unwrap();
        assert_eq!(i.declined, vec![br("B1")]);
        assert_eq!(
            i.ack_timeout(&br("B1"), 7, t(35)).unwrap_err(),
            Error::UnitNotAttached {
                incident: i.id.clone(),
                brigade: br("B1"),
            }
        );
    }

    #[test]
    fn declined_is_bounded() {
        let mut i = incident();
        for n in 0..(DECLINED_PER_INCIDENT_MAX + 3) {
            let b = br(&format!("B{n}"));
            i.assign(b.clone(), dispatcher(), t(2)).unwrap();
            i.ack_timeout(&b, 7, t(3)).unwrap();
        }
        assert_eq!(i.declined.len(), DECLINED_PER_INCIDENT_MAX);
        assert_eq!(i.declined[0], br("B3"));
    }

    #[test]
    fn unit_progress_raises_state_and_needs_attachment() {
        let mut i = incident();
        let err = i.unit_en_route(&br("B1"), t(2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "brigade B1 is not attached to incident I-1"
        );
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        i.unit_acknowledged(&br("B1"), t(3)).unwrap();
        assert_eq!(i.state, IncidentState::Dispatched);
        i.unit_en_route(&br("B1"), t(4)).unwrap();
        assert_eq!(i.state, IncidentState::EnRoute);
        i.unit_on_scene(&br("B1"), t(5)).unwrap();
        assert_eq!(i.state, IncidentState::OnScene);
        // A second unit reporting en route later does not lower the state.
        i.assign(br("B2"), Actor::Operator(op()), t(6)).unwrap();
        i.unit_en_route(&br("B2"), t(7)).unwrap();
        assert_eq!(i.state, IncidentState::OnScene);
        assert_eq!(i.audit.last().unwrap().actor, Actor::Brigade(br("B2")));
    }

    #[test]
    fn cleared_units_detach_and_do_not_trigger_redispatch() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        i.unit_on_scene(&br("B1"), t(5)).unwrap();
        i.unit_cleared(&br("B1"), None, t(9)).unwrap();
        assert!(i.units.is_empty());
        assert!(i.is_open());
        assert!(!i.needs_unit());
        assert!(matches!(
            i.unit_cleared(&br("B1"), None, t(10)),
            Err(Error::UnitNotAttached { .. })
        ));
    }

    #[test]
    fn a_clear_keeps_the_officers_outcome_and_audits_it_as_the_unit() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        i.assign(br("B2"), dispatcher(), t(2)).unwrap();
        i.unit_on_scene(&br("B1"), t(5)).unwrap();
        let too_long = Clearance {
            resolution: Resolution::Handled,
            note: Some("x".repeat(CLEAR_NOTE_LEN_MAX + 1)),
        };
        let before = i.clone();
        assert!(matches!(
            i.unit_cleared(&br("B1"), Some(&too_long), t(9)),
            Err(Error::ClearNoteTooLong { .. })
        ));
        assert_eq!(i, before, "a refused clear changes nothing");
        let clearance = Clearance {
            resolution: Resolution::FalseAlarm,
            note: Some("nadie en el lugar".into()),
        };
        i.unit_cleared(&br("B1"), Some(&clearance), t(9)).unwrap();
        assert_eq!(
            i.unit_outcomes,
            [UnitOutcome {
                unit: br("B1"),
                resolution: Resolution::FalseAlarm,
                note: Some("nadie en el lugar".into()),
                at: t(9),
            }]
        );
        let entry = i.audit.last().unwrap();
        assert_eq!(entry.actor, Actor::Brigade(br("B1")));
        assert_eq!(entry.action, AuditAction::UnitCleared);
        assert_eq!(entry.detail, "false_alarm: nadie en el lugar");
        assert_eq!(i.resolution, None, "the resolution stays the operator's");
        // A clear without an outcome (a simulated terminal) keeps none.
        i.unit_cleared(&br("B2"), None, t(10)).unwrap();
        assert_eq!(i.unit_outcomes.len(), 1);
        assert_eq!(i.audit.last().unwrap().detail, "");
        // Sealed with the rest: an edited outcome is a break.
        let key = AuditKey::from_secret(b"the audit key");
        i.seal(None, &key);
        assert!(i.verify_audit(Some(&key)).is_intact());
        i.unit_outcomes[0].resolution = Resolution::Handled;
        let found = i.verify_audit(Some(&key)).first_break.expect("a break");
        assert!(
            found
                .reason
                .contains("does not match the incident's fields")
        );
    }

    #[test]
    fn unassign_detaches_with_reason() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        i.unassign(&br("B1"), Actor::Operator(op()), "replaced by B2", t(3))
            .unwrap();
        assert!(i.units.is_empty());
        assert!(i.needs_unit());
        assert_eq!(i.audit.last().unwrap().detail, "B1: replaced by B2");
        assert!(matches!(
            i.unassign(&br("B1"), Actor::System, "again", t(4)),
            Err(Error::UnitNotAttached { .. })
        ));
    }

    #[test]
    fn close_releases_units() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        i.assign(br("B2"), Actor::Operator(op()), t(3)).unwrap();
        let released = i
            .close(Resolution::Prank, Actor::Operator(op()), t(4))
            .unwrap();
        assert_eq!(released, vec![br("B1"), br("B2")]);
        assert!(i.units.is_empty());
        assert_eq!(i.state, IncidentState::Closed);
        assert_eq!(i.resolution, Some(Resolution::Prank));
        assert_eq!(i.closed_at, Some(t(4)));
        assert_eq!(i.audit.last().unwrap().detail, "prank; released B1, B2");
    }

    #[test]
    fn a_press_flood_cannot_grow_the_audit_or_crowd_out_the_closure() {
        let mut i = incident();
        for n in 0..10_000u64 {
            i.merge_press(t(1_000 + n)).unwrap();
        }
        assert_eq!(i.press_count, 10_001);
        // The first repeats are audited, the rest counted: the record does not grow with them.
        assert_eq!(i.audit.len(), 1 + AUDIT_PRESSES_MAX);
        assert_eq!(i.recent_presses.len(), RECENT_PRESSES_MAX);
        assert_eq!(i.recent_presses.last(), Some(&t(1_000 + 9_999)));
        assert_eq!(i.last_press_at, t(1_000 + 9_999));
        let flooded = serde_json::to_vec(&i).unwrap().len();
        let mut more = i.clone();
        for n in 0..10_000u64 {
            more.merge_press(t(20_000 + n)).unwrap();
        }
        let after = serde_json::to_vec(&more).unwrap().len();
        // Only the digits of the count and of the recent times can grow.
        assert!(after <= flooded + 32, "{flooded} bytes, then {after}");
        assert!(flooded < 5_000, "{flooded} bytes");
        // Operator and unit steps still fit.
        i.acknowledge(op(), t(20_000)).unwrap();
        assert_eq!(i.audit.last().unwrap().action, AuditAction::Acknowledged);
        // Even when everything else is full, the closure is recorded.
        for n in 0..(AUDIT_ENTRIES_MAX as u64) {
            i.classify(op(), IncidentKind::Other, None, None, t(30_000 + n))
                .unwrap();
        }
        assert_eq!(i.audit.len(), AUDIT_ENTRIES_MAX - 1);
        assert!(i.audit_overflow > 0);
        i.close(Resolution::Handled, Actor::Operator(op()), t(99_999))
            .unwrap();
        assert_eq!(i.audit.len(), AUDIT_ENTRIES_MAX);
        assert_eq!(i.audit.last().unwrap().action, AuditAction::Closed);
    }

    #[test]
    fn audit_detail_is_truncated_on_a_char_boundary() {
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        let reason = "ñ".repeat(AUDIT_DETAIL_LEN_MAX);
        i.unassign(&br("B1"), Actor::System, &reason, t(3)).unwrap();
        let detail = &i.audit.last().unwrap().detail;
        assert!(detail.len() <= AUDIT_DETAIL_LEN_MAX);
        assert!(detail.starts_with("B1: ñ"));
    }

    #[test]
    fn serde_contract_strings() {
        assert_eq!(
            serde_json::to_string(&IncidentState::EnRoute).unwrap(),
            "\"en_route\""
        );
        assert_eq!(
            serde_json::to_string(&Resolution::FalseAlarm).unwrap(),
            "\"false_alarm\""
        );
        assert_eq!(
            serde_json::to_string(&IncidentKind::PurseSnatching).unwrap(),
            "\"purse_snatching\""
        );
        assert_eq!(
            serde_json::to_string(&Actor::Dispatcher { term: 3 }).unwrap(),
            r#"{"dispatcher":{"term":3}}"#
        );
        assert_eq!(serde_json::to_string(&Actor::System).unwrap(), "\"system\"");
        assert_eq!(
            serde_json::to_string(&Actor::Operator(op())).unwrap(),
            r#"{"operator":"op-1"}"#
        );
        for state in [
            IncidentState::New,
            IncidentState::Acknowledged,
            IncidentState::Dispatched,
            IncidentState::EnRoute,
            IncidentState::OnScene,
            IncidentState::Closed,
        ] {
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
        }
        let mut i = incident();
        i.assign(br("B1"), dispatcher(), t(2)).unwrap();
        i.acknowledge(op(), t(3)).unwrap();
        let json = serde_json::to_string(&i).unwrap();
        let back: Incident = serde_json::from_str(&json).unwrap();
        assert_eq!(back, i);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["state"], "dispatched");
        assert_eq!(value["resolution"], serde_json::Value::Null);
        assert_eq!(value["units"][0], "B1");
    }

    #[test]
    fn a_started_call_is_open_until_its_end() {
        let mut i = incident();
        let b = ButtonId::new("B01").unwrap();
        let t = Timestamp::from_millis(1);
        i.call_started(
            b.clone(),
            "call a:1@x PCMU from 10.0.0.9:5060 over UDP on node n1",
            t,
        )
        .unwrap();
        i.call_started(
            b.clone(),
            "call a:12@x PCMA from 10.0.0.9:5060 over TCP on node n2",
            t,
        )
        .unwrap();
        // From before nodes were named: never swept.
        i.call_started(b.clone(), "call old PCMU from 10.0.0.9:5060 over UDP", t)
            .unwrap();
        assert_eq!(
            i.open_calls(),
            [
                OpenCall {
                    call_id: "a:1@x".into(),
                    node: "n1".into()
                },
                OpenCall {
                    call_id: "a:12@x".into(),
                    node: "n2".into()
                },
            ]
        );
        // `a:1@x`'s end does not end `a:12@x`, whose id it prefixes.
        i.call_ended(Actor::Button(b), "call a:1@x: the caller hung up", t);
        assert_eq!(
            i.open_calls(),
            [OpenCall {
                call_id: "a:12@x".into(),
                node: "n2".into()
            }]
        );
        i.call_ended(Actor::System, "call a:12@x: node n2 lost", t);
        assert!(i.open_calls().is_empty());
    }
}

#[cfg(test)]
mod audit_chain_tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn key() -> AuditKey {
        AuditKey::from_secret(b"the audit key")
    }

    fn incident() -> Incident {
        let mut i = Incident::open(
            IncidentId::new("I-1").unwrap(),
            ButtonId::new("BTN-1").unwrap(),
            CameraId::new("CAM-1").unwrap(),
            Position::new(-12.0464, -77.03).unwrap(),
            t(1_000),
        );
        i.merge_press(t(2_000)).unwrap();
        i.acknowledge(OperatorId::new("ana").unwrap(), t(3_000))
            .unwrap();
        i.assign(
            BrigadeId::new("U1").unwrap(),
            Actor::Dispatcher { term: 4 },
            t(3_001),
        )
        .unwrap();
        i.seal(None, &key());
        i
    }

    fn entry_break(i: &Incident) -> Option<usize> {
        i.verify_audit(Some(&key()))
            .first_break
            .and_then(|b| b.entry)
    }

    fn reason(i: &Incident) -> String {
        let verdict = i.verify_audit(Some(&key()));
        verdict.first_break.expect("a break").reason
    }

    #[test]
    fn every_step_extends_the_chain() {
        let i = incident();
        let verdict = i.verify_audit(Some(&key()));
        assert!(verdict.is_intact(), "{verdict:?}");
        assert!(verdict.seal_checked);
        assert_eq!((verdict.entries, verdict.chained), (4, 4));
        assert_eq!(verdict.head, i.audit.last().unwrap().hash);
        assert_eq!(verdict.head.len(), 64);
        // Same history, same chain; another incident id, another chain.
        assert_eq!(incident().audit, i.audit);
        let mut other = i.clone();
        other.id = IncidentId::new("I-2").unwrap();
        assert_eq!(entry_break(&other), Some(0));
    }

    #[test]
    fn edits_removals_insertions_and_reordering_break_it() {
        let mut edited = incident();
        edited.audit[1].detail = "press 1".into();
        assert_eq!(entry_break(&edited), Some(1));

        let mut retimed = incident();
        retimed.audit[2].at = t(2_500);
        assert_eq!(entry_break(&retimed), Some(2));

        let mut removed = incident();
        removed.audit.remove(1);
        assert_eq!(entry_break(&removed), Some(1));

        let mut inserted = incident();
        let forged = inserted.audit[2].clone();
        inserted.audit.insert(1, forged);
        assert!(!inserted.verify_audit(Some(&key())).is_intact());

        let mut swapped = incident();
        swapped.audit.swap(2, 3);
        assert_eq!(entry_break(&swapped), Some(2));

        let mut stripped = incident();
        stripped.audit[3].hash.clear();
        assert_eq!(entry_break(&stripped), Some(3));
        assert!(
            reason(&stripped).contains("no hash"),
            "{}",
            reason(&stripped)
        );
    }

    #[test]
    fn stripping_every_hash_and_the_seal_is_a_break() {
        let mut stripped = incident();
        for entry in &mut stripped.audit {
            entry.hash.clear();
        }
        assert_eq!(entry_break(&stripped), Some(0));
        stripped.seal = None;
        assert_eq!(entry_break(&stripped), Some(0));
        // Without the key too: the links are public.
        let verdict = stripped.verify_audit(None);
        assert_eq!(verdict.first_break.and_then(|b| b.entry), Some(0));
        assert_eq!(verdict.chained, 0);

        // A record written before seals existed, chain intact: "unsealed".
        let mut unsealed = incident();
        unsealed.seal = None;
        assert!(
            reason(&unsealed).starts_with("unsealed"),
            "{}",
            reason(&unsealed)
        );
    }

    #[test]
    fn dropping_the_last_entry_is_a_break_even_with_the_chain_recomputed() {
        let mut cut = incident();
        cut.audit.pop();
        assert!(reason(&cut).contains("the seal covers 4 audit entries, the record holds 3"));
        // The attacker fixes the seal's clear-text count and head: the MAC then fails.
        let mut forged = cut.clone();
        let seal = forged.seal.as_mut().unwrap();
        seal.entries = 3;
        seal.head = forged.audit.last().unwrap().hash.clone();
        assert!(reason(&forged).contains("does not match the incident's fields"));
        // ...which a node without the key cannot tell.
        assert!(forged.verify_audit(None).is_intact());
    }

    #[test]
    fn a_rewritten_chain_is_a_break() {
        // An entry edited and every later link recomputed (the links are unkeyed).
        let mut rewritten = incident();
        rewritten.audit[2].actor = Actor::Operator(OperatorId::new("mallory").unwrap());
        let mut link = audit_chain_genesis(&rewritten.id);
        for entry in &mut rewritten.audit {
            link = audit_chain_link(&link, entry);
            entry.hash = chain_hex(&link);
        }
        assert_eq!(entry_break(&rewritten), None, "the links fit");
        assert!(
            reason(&rewritten).contains("chain head"),
            "{}",
            reason(&rewritten)
        );
    }

    /// A named edit of a sealed record.
    type Edit = (&'static str, fn(&mut Incident));

    #[test]
    fn an_edit_of_any_field_breaks_the_seal() {
        let edits: Vec<Edit> = vec![
            ("kind", |i| i.kind = IncidentKind::Other),
            ("priority", |i| i.priority = Priority::Low),
            ("state", |i| i.state = IncidentState::OnScene),
            ("resolution", |i| i.resolution = Some(Resolution::Handled)),
            ("acknowledged by", |i| {
                i.acknowledged = Some((OperatorId::new("mallory").unwrap(), t(3_000)))
            }),
            ("acknowledged at", |i| {
                i.acknowledged.as_mut().unwrap().1 = t(2_999);
            }),
            ("caller", |i| {
                i.caller = Some(CallerDetails {
                    name: Some("someone else".into()),
                    ..CallerDetails::default()
                })
            }),
            ("units", |i| i.units.clear()),
            ("declined", |i| {
                i.declined.push(BrigadeId::new("U9").unwrap())
            }),
            ("press count", |i| i.press_count = 1),
            ("recent presses", |i| i.recent_presses.clear()),
            ("first press", |i| i.first_press_at = t(999)),
            ("last press", |i| i.last_press_at = t(999)),
            ("created", |i| i.created_at = t(999)),
            ("closed", |i| i.closed_at = Some(t(5_000))),
            ("overflow", |i| i.audit_overflow = 1),
            ("trace", |i| i.trace = Some("00-x".into())),
            ("stream", |i| i.stream_uri = Some("rtsp://elsewhere".into())),
            ("audit break", |i| i.audit_break = Some("x".into())),
            ("button", |i| i.button = ButtonId::new("BTN-2").unwrap()),
            ("camera", |i| i.camera = CameraId::new("CAM-2").unwrap()),
            ("position", |i| {
                i.position = Position::new(-12.05, -77.03).unwrap()
            }),
        ];
        let sealed = incident();
        for (field, edit) in edits {
            let mut edited = sealed.clone();
            edit(&mut edited);
            assert_ne!(edited, sealed, "{field}: the edit changes something");
            let verdict = edited.verify_audit(Some(&key()));
            let found = verdict
                .first_break
                .unwrap_or_else(|| panic!("{field} passed"));
            assert!(
                found
                    .reason
                    .contains("does not match the incident's fields")
                    || found.reason.contains("found the record broken"),
                "{field}: {found:?}"
            );
        }
        // A caller detail edited in place, too.
        let mut classified = incident();
        let caller = CallerDetails {
            name: Some("Rosa".into()),
            phone: Some("999".into()),
            notes: None,
        };
        classified
            .classify(
                OperatorId::new("ana").unwrap(),
                IncidentKind::Robbery,
                None,
                Some(caller),
                t(4_000),
            )
            .unwrap();
        classified.seal(None, &key());
        assert!(classified.verify_audit(Some(&key())).is_intact());
        classified.caller.as_mut().unwrap().phone = Some("998".into());
        assert!(reason(&classified).contains("does not match the incident's fields"));
    }

    #[test]
    fn another_key_is_named_not_mistaken_for_an_edit() {
        let i = incident();
        let other = AuditKey::from_secret(b"another key");
        let found = i.verify_audit(Some(&other)).first_break.unwrap();
        assert!(found.reason.contains("sealed with audit key"), "{found:?}");
        assert!(found.reason.contains(other.fingerprint()));
    }

    #[test]
    fn seals_survive_the_stored_form() {
        let i = incident();
        let json = serde_json::to_string(&i).unwrap();
        let back: Incident = serde_json::from_str(&json).unwrap();
        assert_eq!(back, i);
        assert!(back.verify_audit(Some(&key())).is_intact());
    }

    #[test]
    fn a_write_does_not_launder_an_edit() {
        let mut stored = incident();
        stored.kind = IncidentKind::Other; // behind the domain's back
        let mut next = stored.clone();
        next.unit_en_route(&BrigadeId::new("U1").unwrap(), t(6_000))
            .unwrap();
        next.seal(Some(&stored), &key());
        let found = next.verify_audit(Some(&key())).first_break.unwrap();
        assert!(
            found.reason.contains("found the record broken before"),
            "{found:?}"
        );
        assert!(
            found
                .reason
                .contains("does not match the incident's fields")
        );
        // And the mark is sealed: removing it breaks the seal.
        let mut cleaned = next.clone();
        cleaned.audit_break = None;
        assert!(reason(&cleaned).contains("does not match the incident's fields"));
        // An honest write on an intact record adds no mark.
        let intact = incident();
        let mut honest = intact.clone();
        honest
            .unit_en_route(&BrigadeId::new("U1").unwrap(), t(6_000))
            .unwrap();
        honest.seal(Some(&intact), &key());
        assert!(honest.verify_audit(Some(&key())).is_intact());
    }
}
