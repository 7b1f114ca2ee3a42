//! Brigades (Serenazgo units): how they move, what they carry, and the life cycle of one
//! assignment.
//!
//! ```text
//! Available ──dispatch──▶ Dispatched ──en_route──▶ EnRoute ──on_scene──▶ OnScene ──clear──▶ Available
//!                         Dispatched ─────────────on_scene─────────────▶ OnScene
//! Dispatched | EnRoute | OnScene ──release──▶ Available
//! Available ──out_of_service──▶ OutOfService ──back_in_service──▶ Available
//! Available | OutOfService ──go_offline──▶ Offline ──come_online──▶ Available
//! ```
//!
//! Every transition refuses illegal moves with a reason a supervisor can read; nothing is
//! silently ignored except a repeated acknowledgement, which terminals retry.

use std::fmt;

use crate::geo::Position;
use crate::ids::{BrigadeId, IncidentId, OperatorId};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("brigade {brigade} cannot go from {from} to {to}: {reason}")]
    IllegalTransition {
        brigade: BrigadeId,
        from: BrigadeStatus,
        to: BrigadeStatus,
        reason: &'static str,
    },
}

/// How a brigade patrols. Decides its speed and which incidents it may take.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Foot,
    Motorcycle,
    Car,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Foot, Mode::Motorcycle, Mode::Car];

    /// Typical average speed through central Lima, in metres per second, stops included.
    /// Cars are slower than motorcycles here: in the historic centre's congested, narrow
    /// one-way streets a motorcycle filters through traffic that holds a patrol car.
    pub fn speed_mps(self) -> f64 {
        match self {
            // A brisk walk; officers on foot do not run the whole way.
            Mode::Foot => 1.4,
            // About 30 km/h.
            Mode::Motorcycle => 8.3,
            // About 25 km/h.
            Mode::Car => 6.9,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Foot => "foot",
            Mode::Motorcycle => "motorcycle",
            Mode::Car => "car",
        })
    }
}

/// Something a brigade is equipped or trained for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Carries non-lethal weapons (batons, pepper spray, tasers): sent first to violent crime.
    NonLethalArmed,
    /// Trained and equipped for first aid: sent first to medical emergencies.
    FirstAid,
}

impl Capability {
    pub const ALL: [Capability; 2] = [Capability::NonLethalArmed, Capability::FirstAid];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`Capability`], stored as bits. Serialized as a list of snake_case names, e.g.
/// `["non_lethal_armed", "first_aid"]`.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(from = "Vec<Capability>", into = "Vec<Capability>")]
pub struct Capabilities(u8);

impl Capabilities {
    pub const EMPTY: Capabilities = Capabilities(0);

    pub fn all() -> Self {
        Capability::ALL.into_iter().collect()
    }

    /// This set with `capability` added.
    pub fn with(self, capability: Capability) -> Self {
        Self(self.0 | capability.bit())
    }

    pub fn insert(&mut self, capability: Capability) {
        self.0 |= capability.bit();
    }

    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Whether every capability in `other` is in this set (true for an empty `other`).
    pub fn contains_all(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The capabilities in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl From<Capability> for Capabilities {
    fn from(capability: Capability) -> Self {
        Self::EMPTY.with(capability)
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl From<Vec<Capability>> for Capabilities {
    fn from(list: Vec<Capability>) -> Self {
        list.into_iter().collect()
    }
}

impl From<Capabilities> for Vec<Capability> {
    fn from(set: Capabilities) -> Self {
        set.iter().collect()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BrigadeStatus {
    /// On patrol, free to take an incident.
    Available,
    /// Assigned; waiting for the terminal to acknowledge and the unit to move.
    Dispatched,
    EnRoute,
    OnScene,
    /// On shift but unable to take incidents (refuelling, processing a detainee, break).
    OutOfService,
    /// The terminal is not reporting.
    Offline,
}

impl fmt::Display for BrigadeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrigadeStatus::Available => "available",
            BrigadeStatus::Dispatched => "dispatched",
            BrigadeStatus::EnRoute => "en_route",
            BrigadeStatus::OnScene => "on_scene",
            BrigadeStatus::OutOfService => "out_of_service",
            BrigadeStatus::Offline => "offline",
        })
    }
}

impl BrigadeStatus {
    /// Whether the status belongs to an assignment (an incident is attached).
    pub fn is_assigned(self) -> bool {
        matches!(
            self,
            BrigadeStatus::Dispatched | BrigadeStatus::EnRoute | BrigadeStatus::OnScene
        )
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Brigade {
    pub id: BrigadeId,
    /// Radio callsign ("Serenazgo Cercado 12"): what operators and officers say on air.
    pub callsign: String,
    pub mode: Mode,
    pub capabilities: Capabilities,
    /// Last position its terminal reported.
    pub position: Position,
    pub status: BrigadeStatus,
    /// The incident it is assigned to; `Some` exactly while the status is an assigned one.
    pub incident: Option<IncidentId>,
    /// When `status` last changed: drives the ack timeout and the console's timers.
    pub status_since: Timestamp,
    /// Whether its terminal acknowledged the current assignment; the dispatcher offers the
    /// incident to the next candidate if this stays false past the ack timeout.
    pub acked: bool,
    /// Set when the unit let an assignment time out: the dispatcher does not offer it anything
    /// before this time ([`crate::limits::ACK_TIMEOUT_COOLDOWN`]), so one dead terminal does not
    /// cost every following press another ack timeout. Absent in records written before it
    /// existed, and when there is no cool-down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_until: Option<Timestamp>,
    /// The last status an operator set by hand from a radio call, for a unit without a working
    /// terminal: who and when. It keeps the unit live for
    /// [`crate::limits::RADIO_REPORT_VALID`]; cleared when the unit is set offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio: Option<RadioReport>,
}

/// An operator's record of a unit's status given over the radio.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RadioReport {
    pub operator: OperatorId,
    pub at: Timestamp,
}

impl Brigade {
    /// A brigade on patrol and available as of `now`.
    pub fn new(
        id: BrigadeId,
        callsign: String,
        mode: Mode,
        capabilities: Capabilities,
        position: Position,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            callsign,
            mode,
            capabilities,
            position,
            status: BrigadeStatus::Available,
            incident: None,
            status_since: now,
            acked: false,
            cooldown_until: None,
            radio: None,
        }
    }

    /// Whether an operator vouched for the unit by radio recently enough for it to count as
    /// live without a terminal.
    pub fn radio_live(&self, now: Timestamp) -> bool {
        self.radio.as_ref().is_some_and(|r| {
            now.saturating_duration_since(r.at) < crate::limits::RADIO_REPORT_VALID
        })
    }

    /// An operator sets the unit's status (and, if given, its position) by hand from a radio
    /// call. Available, out of service and offline only: steps on an incident are the unit's
    /// (or the operator's incident actions). A unit on an assignment must be released first.
    pub fn radio_report(
        &mut self,
        status: BrigadeStatus,
        position: Option<Position>,
        operator: OperatorId,
        now: Timestamp,
    ) -> Result<(), RadioError> {
        if !matches!(
            status,
            BrigadeStatus::Available | BrigadeStatus::OutOfService | BrigadeStatus::Offline
        ) {
            return Err(RadioError::NotSettable { status });
        }
        if self.status.is_assigned() {
            return Err(RadioError::Assigned {
                brigade: self.id.clone(),
                status: self.status,
            });
        }
        match status {
            BrigadeStatus::Available => match self.status {
                BrigadeStatus::Offline => self.come_online(now)?,
                BrigadeStatus::OutOfService => self.back_in_service(now)?,
                _ => {}
            },
            BrigadeStatus::OutOfService => match self.status {
                BrigadeStatus::Offline => {
                    self.come_online(now)?;
                    self.out_of_service(now)?;
                }
                BrigadeStatus::Available => self.out_of_service(now)?,
                _ => {}
            },
            BrigadeStatus::Offline => {
                if self.status != BrigadeStatus::Offline {
                    self.go_offline(now)?;
                }
            }
            _ => return Err(RadioError::NotSettable { status }),
        }
        if let Some(position) = position {
            self.move_to(position);
        }
        if status == BrigadeStatus::Offline {
            self.radio = None;
        } else {
            // The operator just spoke to the unit: it is reachable, so no cool-down either.
            self.radio = Some(RadioReport { operator, at: now });
            self.cooldown_until = None;
        }
        Ok(())
    }

    /// The same brigade, but `offline` until its terminal or app is heard from: how a city's
    /// units are created, so a unit whose terminal never connected is never offered a job.
    pub fn offline_until_heard(mut self) -> Self {
        debug_assert!(self.incident.is_none());
        self.status = BrigadeStatus::Offline;
        self
    }

    pub fn is_available(&self) -> bool {
        self.status == BrigadeStatus::Available
    }

    /// Whether the unit is sitting out a cool-down after letting an assignment time out.
    pub fn in_cooldown(&self, now: Timestamp) -> bool {
        self.cooldown_until.is_some_and(|until| now < until)
    }

    /// Whether the dispatcher may offer the unit a job now: available and not cooling down.
    pub fn is_offerable(&self, now: Timestamp) -> bool {
        self.is_available() && !self.in_cooldown(now)
    }

    /// Progress within the current assignment (Dispatched 1 < EnRoute 2 < OnScene 3), `None`
    /// when not assigned. Within one assignment it never decreases.
    pub fn stage(&self) -> Option<u8> {
        match self.status {
            BrigadeStatus::Dispatched => Some(1),
            BrigadeStatus::EnRoute => Some(2),
            BrigadeStatus::OnScene => Some(3),
            _ => None,
        }
    }

    /// Assigns the brigade to `incident`. Only an available brigade can be dispatched.
    pub fn dispatch(&mut self, incident: IncidentId, now: Timestamp) -> Result<(), Error> {
        let to = BrigadeStatus::Dispatched;
        match self.status {
            BrigadeStatus::Available => {}
            BrigadeStatus::OutOfService => return Err(self.refuse(to, "it is out of service")),
            BrigadeStatus::Offline => return Err(self.refuse(to, "its terminal is offline")),
            _ => return Err(self.refuse(to, "it is already assigned to an incident")),
        }
        self.incident = Some(incident);
        self.acked = false;
        // An operator who picks a cooling unit by hand knows it is reachable (by radio).
        self.cooldown_until = None;
        self.set_status(to, now);
        Ok(())
    }

    /// The terminal acknowledged the assignment to `incident`. Repeats are accepted (terminals
    /// retry), including one arriving after the unit already reported progress.
    pub fn acknowledge(&mut self, incident: &IncidentId, _now: Timestamp) -> Result<(), Error> {
        if !self.status.is_assigned() {
            return Err(self.refuse(
                BrigadeStatus::Dispatched,
                "it has no assignment to acknowledge",
            ));
        }
        if self.incident.as_ref() != Some(incident) {
            return Err(self.refuse(
                self.status,
                "the acknowledgement is for a different incident",
            ));
        }
        // Acknowledging changes no status, so `status_since` keeps timing the assignment.
        self.acked = true;
        Ok(())
    }

    /// The unit is moving to the scene.
    pub fn en_route(&mut self, now: Timestamp) -> Result<(), Error> {
        let to = BrigadeStatus::EnRoute;
        match self.status {
            BrigadeStatus::Dispatched => {}
            BrigadeStatus::EnRoute => return Err(self.refuse(to, "it is already en route")),
            BrigadeStatus::OnScene => return Err(self.refuse(to, "it is already on scene")),
            _ => return Err(self.refuse(to, "it has no assignment")),
        }
        // Moving towards the incident is as good as an acknowledgement.
        self.acked = true;
        self.set_status(to, now);
        Ok(())
    }

    /// The unit arrived. From Dispatched too: a unit already nearby may arrive without ever
    /// reporting en route.
    pub fn on_scene(&mut self, now: Timestamp) -> Result<(), Error> {
        let to = BrigadeStatus::OnScene;
        match self.status {
            BrigadeStatus::Dispatched | BrigadeStatus::EnRoute => {}
            BrigadeStatus::OnScene => return Err(self.refuse(to, "it is already on scene")),
            _ => return Err(self.refuse(to, "it has no assignment")),
        }
        self.acked = true;
        self.set_status(to, now);
        Ok(())
    }

    /// The unit finished at the scene and is available again.
    pub fn clear(&mut self, now: Timestamp) -> Result<(), Error> {
        let to = BrigadeStatus::Available;
        match self.status {
            BrigadeStatus::OnScene => {}
            BrigadeStatus::Dispatched | BrigadeStatus::EnRoute => {
                return Err(self.refuse(to, "it is not on scene yet; release it to withdraw"));
            }
            _ => return Err(self.refuse(to, "it has no assignment to clear")),
        }
        self.end_assignment(now);
        Ok(())
    }

    /// Withdraws the unit from its assignment wherever it is in it: the incident was closed early
    /// (a prank), another unit replaced it, or it did not acknowledge in time.
    pub fn release(&mut self, now: Timestamp) -> Result<(), Error> {
        if !self.status.is_assigned() {
            return Err(self.refuse(BrigadeStatus::Available, "it has no assignment to release"));
        }
        self.end_assignment(now);
        Ok(())
    }

    /// Withdraws a unit that did not acknowledge its assignment in time, and keeps it from being
    /// offered another job for `cooldown`: its terminal is probably dead or unattended.
    pub fn release_unacknowledged(
        &mut self,
        now: Timestamp,
        cooldown: std::time::Duration,
    ) -> Result<(), Error> {
        self.release(now)?;
        self.cooldown_until = Some(now.saturating_add(cooldown));
        Ok(())
    }

    /// Takes an available unit out of service. A busy one must be released first, so no incident
    /// silently loses its unit.
    pub fn out_of_service(&mut self, now: Timestamp) -> Result<(), Error> {
        let to = BrigadeStatus::OutOfService;
        match self.status {
            BrigadeStatus::Available => {}
            BrigadeStatus::OutOfService => {
                return Err(self.refuse(to, "it is already out of service"));
            }
            BrigadeStatus::Offline => return Err(self.refuse(to, "its terminal is offline")),
            _ => return Err(self.refuse(to, "it is assigned to an incident; release it first")),
        }
        self.set_status(to, now);
        Ok(())
    }

    pub fn back_in_service(&mut self, now: Timestamp) -> Result<(), Error> {
        let to = BrigadeStatus::Available;
        if self.status != BrigadeStatus::OutOfService {
            return Err(self.refuse(to, "it is not out of service"));
        }
        self.set_status(to, now);
        Ok(())
    }

    /// The terminal stopped reporting. A unit on an assignment is first released (by the
    /// dispatcher, through the ack timeout or an operator), so its incident gets another unit.
    pub fn go_offline(&mut self, now: Timestamp) -> Result<(), Error> {
        let to = BrigadeStatus::Offline;
        match self.status {
            BrigadeStatus::Available | BrigadeStatus::OutOfService => {}
            BrigadeStatus::Offline => return Err(self.refuse(to, "it is already offline")),
            _ => return Err(self.refuse(to, "it is assigned to an incident; release it first")),
        }
        self.set_status(to, now);
        Ok(())
    }

    pub fn come_online(&mut self, now: Timestamp) -> Result<(), Error> {
        let to = BrigadeStatus::Available;
        if self.status != BrigadeStatus::Offline {
            return Err(self.refuse(to, "it is not offline"));
        }
        self.set_status(to, now);
        Ok(())
    }

    /// Records a position report; allowed in every status (units move while busy too).
    pub fn move_to(&mut self, position: Position) {
        self.position = position;
    }

    fn end_assignment(&mut self, now: Timestamp) {
        self.incident = None;
        self.acked = false;
        self.set_status(BrigadeStatus::Available, now);
    }

    fn set_status(&mut self, status: BrigadeStatus, now: Timestamp) {
        self.status = status;
        self.status_since = now;
        debug_assert_eq!(
            self.status.is_assigned(),
            self.incident.is_some(),
            "a brigade has an incident exactly while assigned"
        );
    }

    fn refuse(&self, to: BrigadeStatus, reason: &'static str) -> Error {
        Error::IllegalTransition {
            brigade: self.id.clone(),
            from: self.status,
            to,
            reason,
        }
    }
}

/// A position report that cannot be a unit moving: farther from the last accepted one than
/// [`crate::limits::UNIT_SPEED_MAX_MPS`] allows in the time between them, plus
/// [`crate::limits::POSITION_JITTER_M`] of fix error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "position ({lat:.5}, {lon:.5}) is {distance_m:.0} m from the last report {elapsed_ms} ms earlier: faster than {max_mps} m/s, not a unit moving",
    lat = .to.lat(),
    lon = .to.lon(),
    max_mps = crate::limits::UNIT_SPEED_MAX_MPS
)]
pub struct ImplausibleMove {
    pub to: Position,
    pub distance_m: f64,
    pub elapsed_ms: u64,
}

/// Checks that a unit could have gone from `from` (reported at `at`) to `to` by `now`.
pub fn check_move(
    from: &Position,
    at: Timestamp,
    to: &Position,
    now: Timestamp,
) -> Result<(), ImplausibleMove> {
    let elapsed = now.saturating_duration_since(at);
    let distance_m = from.distance_m(to);
    let reach_m = crate::limits::UNIT_SPEED_MAX_MPS * elapsed.as_secs_f64()
        + crate::limits::POSITION_JITTER_M;
    if distance_m <= reach_m {
        return Ok(());
    }
    Err(ImplausibleMove {
        to: *to,
        distance_m,
        elapsed_ms: elapsed.as_millis() as u64,
    })
}

/// Why an operator's radio report is refused ([`Brigade::radio_report`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RadioError {
    #[error("brigade {brigade} is {status} on an incident; release it from the incident first")]
    Assigned {
        brigade: BrigadeId,
        status: BrigadeStatus,
    },
    /// Not a status set by hand: the request is malformed.
    #[error(
        "an operator cannot set status {status} by radio; it sets available, out_of_service or offline"
    )]
    NotSettable { status: BrigadeStatus },
    #[error(transparent)]
    Transition(#[from] Error),
}

/// What a terminal's status report asks for ([`Brigade::interpret_report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Nothing to change: a repeat (a terminal retrying after a lost reply), or clearing from
    /// an incident that already released the brigade (a prank, say).
    Unchanged,
    /// A step on the brigade's own incident, recorded on the brigade and the incident together.
    OnIncident(IncidentStep, IncidentId),
    /// A change of the brigade alone.
    Unit(UnitStep),
}

/// A step of a brigade on its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentStep {
    EnRoute,
    OnScene,
    /// Done on scene: available again.
    Clear,
}

/// A change of a brigade's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitStep {
    OutOfService,
    BackInService,
    ComeOnline,
}

/// Why a terminal's status report is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("brigade {brigade} is not assigned to incident {incident} (it is {status}{on})", on = .on.as_ref().map(|i| format!(" on {i}")).unwrap_or_default())]
    NotAssigned {
        brigade: BrigadeId,
        incident: IncidentId,
        status: BrigadeStatus,
        on: Option<IncidentId>,
    },
    #[error("brigade {brigade} is {status}: clearing needs the incident id")]
    ClearingNeedsIncident {
        brigade: BrigadeId,
        status: BrigadeStatus,
    },
    /// Not a status a terminal reports at all: the request is malformed, not untimely.
    #[error(
        "a terminal cannot report status {status}; it reports en_route, on_scene, available or out_of_service"
    )]
    NotReportable { status: BrigadeStatus },
}

impl Brigade {
    /// What a terminal's report of `status` (about `incident`, if it names one) asks for, given
    /// the brigade as it is: the decision table of a unit's status reports.
    ///
    /// | reported                           | brigade                      | means                 |
    /// |------------------------------------|------------------------------|-----------------------|
    /// | what it already is                 | any                          | unchanged             |
    /// | en_route / on_scene / available, I | assigned to I                | that step on I        |
    /// | available, I                       | available                    | unchanged (released)  |
    /// | en_route / on_scene / available, I | anything else                | refused: not on I     |
    /// | out_of_service                     | any                          | out of service        |
    /// | available, no incident             | available                    | unchanged             |
    /// | available, no incident             | out of service / offline     | back in service / on  |
    /// | available, no incident             | assigned                     | refused: needs I      |
    /// | dispatched / offline               | any                          | not reportable        |
    pub fn interpret_report(
        &self,
        status: BrigadeStatus,
        incident: Option<&IncidentId>,
    ) -> Result<Report, ReportError> {
        use BrigadeStatus::*;
        if self.status == status && self.incident.as_ref() == incident {
            return Ok(Report::Unchanged);
        }
        match (status, incident) {
            (EnRoute | OnScene | Available, Some(incident))
                if self.incident.as_ref() == Some(incident) =>
            {
                let step = match status {
                    EnRoute => IncidentStep::EnRoute,
                    OnScene => IncidentStep::OnScene,
                    _ => IncidentStep::Clear,
                };
                Ok(Report::OnIncident(step, incident.clone()))
            }
            (Available, Some(_)) if self.status == Available => Ok(Report::Unchanged),
            (EnRoute | OnScene | Available, Some(incident)) => Err(ReportError::NotAssigned {
                brigade: self.id.clone(),
                incident: incident.clone(),
                status: self.status,
                on: self.incident.clone(),
            }),
            (OutOfService, _) => Ok(Report::Unit(UnitStep::OutOfService)),
            (Available, None) => match self.status {
                Available => Ok(Report::Unchanged),
                OutOfService => Ok(Report::Unit(UnitStep::BackInService)),
                Offline => Ok(Report::Unit(UnitStep::ComeOnline)),
                other => Err(ReportError::ClearingNeedsIncident {
                    brigade: self.id.clone(),
                    status: other,
                }),
            },
            (other, _) => Err(ReportError::NotReportable { status: other }),
        }
    }

    /// Applies a step on the brigade's own incident (see [`Brigade::interpret_report`]).
    pub fn step(&mut self, step: IncidentStep, now: Timestamp) -> Result<(), Error> {
        match step {
            IncidentStep::EnRoute => self.en_route(now),
            IncidentStep::OnScene => self.on_scene(now),
            IncidentStep::Clear => self.clear(now),
        }
    }

    /// Applies a change of availability (see [`Brigade::interpret_report`]).
    pub fn change(&mut self, step: UnitStep, now: Timestamp) -> Result<(), Error> {
        match step {
            UnitStep::OutOfService => {
                // The report itself shows the terminal is back: online, then out of service.
                if self.status == BrigadeStatus::Offline {
                    self.come_online(now)?;
                }
                self.out_of_service(now)
            }
            UnitStep::BackInService => self.back_in_service(now),
            UnitStep::ComeOnline => self.come_online(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn inc(s: &str) -> IncidentId {
        IncidentId::new(s).unwrap()
    }

    fn brigade() -> Brigade {
        Brigade::new(
            BrigadeId::new("BR-1").unwrap(),
            "Cercado 1".into(),
            Mode::Motorcycle,
            Capability::NonLethalArmed.into(),
            Position::new(-12.05, -77.04).unwrap(),
            t(0),
        )
    }

    fn in_status(status: BrigadeStatus) -> Brigade {
        let mut b = brigade();
        match status {
            BrigadeStatus::Available => {}
            BrigadeStatus::Dispatched => b.dispatch(inc("I-1"), t(1)).unwrap(),
            BrigadeStatus::EnRoute => {
                b.dispatch(inc("I-1"), t(1)).unwrap();
                b.en_route(t(2)).unwrap();
            }
            BrigadeStatus::OnScene => {
                b.dispatch(inc("I-1"), t(1)).unwrap();
                b.on_scene(t(2)).unwrap();
            }
            BrigadeStatus::OutOfService => b.out_of_service(t(1)).unwrap(),
            BrigadeStatus::Offline => b.go_offline(t(1)).unwrap(),
        }
        b
    }

    fn reason(result: Result<(), Error>) -> &'static str {
        match result {
            Err(Error::IllegalTransition { reason, .. }) => reason,
            Ok(()) => panic!("expected a refusal"),
        }
    }

    #[test]
    fn full_assignment_cycle() {
        let mut b = brigade();
        assert!(b.is_available());
        assert_eq!(b.stage(), None);
        b.dispatch(inc("I-1"), t(10)).unwrap();
        assert_eq!(b.status, BrigadeStatus::Dispatched);
        assert_eq!(b.incident, Some(inc("I-1")));
        assert!(!b.acked);
        assert_eq!(b.stage(), Some(1));
        b.acknowledge(&inc("I-1"), t(11)).unwrap();
        assert!(b.acked);
        b.acknowledge(&inc("I-1"), t(12)).unwrap(); // idempotent
        assert_eq!(b.status_since, t(10));
        b.en_route(t(13)).unwrap();
        assert_eq!(b.stage(), Some(2));
        b.acknowledge(&inc("I-1"), t(14)).unwrap(); // late retry still fine
        b.on_scene(t(20)).unwrap();
        assert_eq!(b.stage(), Some(3));
        b.clear(t(30)).unwrap();
        assert!(b.is_available());
        assert_eq!(b.incident, None);
        assert!(!b.acked);
        assert_eq!(b.status_since, t(30));
    }

    #[test]
    fn on_scene_straight_from_dispatched_counts_as_acked() {
        let mut b = in_status(BrigadeStatus::Dispatched);
        b.on_scene(t(5)).unwrap();
        assert!(b.acked);
    }

    #[test]
    fn dispatch_only_from_available() {
        assert_eq!(
            reason(in_status(BrigadeStatus::Dispatched).dispatch(inc("I-2"), t(9))),
            "it is already assigned to an incident"
        );
        assert_eq!(
            reason(in_status(BrigadeStatus::OnScene).dispatch(inc("I-2"), t(9))),
            "it is already assigned to an incident"
        );
        assert_eq!(
            reason(in_status(BrigadeStatus::OutOfService).dispatch(inc("I-2"), t(9))),
            "it is out of service"
        );
        let err = in_status(BrigadeStatus::Offline)
            .dispatch(inc("I-2"), t(9))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "brigade BR-1 cannot go from offline to dispatched: its terminal is offline"
        );
    }

    #[test]
    fn acknowledge_rules() {
        assert_eq!(
            reason(brigade().acknowledge(&inc("I-1"), t(1))),
            "it has no assignment to acknowledge"
        );
        assert_eq!(
            reason(in_status(BrigadeStatus::Dispatched).acknowledge(&inc("I-9"), t(5))),
            "the acknowledgement is for a different incident"
        );
    }

    #[test]
    fn en_route_rules() {
        assert_eq!(reason(brigade().en_route(t(1))), "it has no assignment");
        assert_eq!(
            reason(in_status(BrigadeStatus::EnRoute).en_route(t(5))),
            "it is already en route"
        );
        assert_eq!(
            reason(in_status(BrigadeStatus::OnScene).en_route(t(5))),
            "it is already on scene"
        );
        assert_eq!(
            reason(in_status(BrigadeStatus::Offline).en_route(t(5))),
            "it has no assignment"
        );
    }

    #[test]
    fn on_scene_rules() {
        assert_eq!(reason(brigade().on_scene(t(1))), "it has no assignment");
        assert_eq!(
            reason(in_status(BrigadeStatus::OnScene).on_scene(t(5))),
            "it is already on scene"
        );
        let mut b = in_status(BrigadeStatus::EnRoute);
        b.on_scene(t(5)).unwrap();
        assert_eq!(b.status, BrigadeStatus::OnScene);
    }

    #[test]
    fn clear_only_from_on_scene() {
        assert_eq!(
            reason(in_status(BrigadeStatus::EnRoute).clear(t(5))),
            "it is not on scene yet; release it to withdraw"
        );
        assert_eq!(
            reason(in_status(BrigadeStatus::Dispatched).clear(t(5))),
            "it is not on scene yet; release it to withdraw"
        );
        assert_eq!(
            reason(brigade().clear(t(5))),
            "it has no assignment to clear"
        );
    }

    #[test]
    fn release_from_any_assigned_status() {
        for status in [
            BrigadeStatus::Dispatched,
            BrigadeStatus::EnRoute,
            BrigadeStatus::OnScene,
        ] {
            let mut b = in_status(status);
            b.release(t(50)).unwrap();
            assert!(b.is_available());
            assert_eq!(b.incident, None);
            assert!(!b.acked);
        }
        for status in [
            BrigadeStatus::Available,
            BrigadeStatus::OutOfService,
            BrigadeStatus::Offline,
        ] {
            assert_eq!(
                reason(in_status(status).release(t(50))),
                "it has no assignment to release"
            );
        }
    }

    #[test]
    fn service_and_connectivity() {
        let mut b = brigade();
        b.out_of_service(t(1)).unwrap();
        assert_eq!(
            reason(b.clone().out_of_service(t(2))),
            "it is already out of service"
        );
        b.go_offline(t(2)).unwrap();
        assert_eq!(reason(b.clone().go_offline(t(3))), "it is already offline");
        assert_eq!(
            reason(b.clone().back_in_service(t(3))),
            "it is not out of service"
        );
        assert_eq!(
            reason(b.clone().out_of_service(t(3))),
            "its terminal is offline"
        );
        b.come_online(t(3)).unwrap();
        assert!(b.is_available());
        assert_eq!(reason(b.clone().come_online(t(4))), "it is not offline");
        b.out_of_service(t(4)).unwrap();
        b.back_in_service(t(5)).unwrap();
        assert!(b.is_available());
        b.go_offline(t(6)).unwrap();
        assert_eq!(b.status, BrigadeStatus::Offline);
        for status in [
            BrigadeStatus::Dispatched,
            BrigadeStatus::EnRoute,
            BrigadeStatus::OnScene,
        ] {
            assert_eq!(
                reason(in_status(status).out_of_service(t(9))),
                "it is assigned to an incident; release it first"
            );
            assert_eq!(
                reason(in_status(status).go_offline(t(9))),
                "it is assigned to an incident; release it first"
            );
        }
    }

    #[test]
    fn refusals_leave_the_brigade_unchanged() {
        let b = in_status(BrigadeStatus::EnRoute);
        let mut copy = b.clone();
        assert!(copy.dispatch(inc("I-2"), t(99)).is_err());
        assert!(copy.clear(t(99)).is_err());
        assert_eq!(copy, b);
    }

    #[test]
    fn new_units_are_offline_until_heard() {
        let mut b = brigade().offline_until_heard();
        assert_eq!(b.status, BrigadeStatus::Offline);
        assert_eq!(
            reason(b.clone().dispatch(inc("I-1"), t(1))),
            "its terminal is offline"
        );
        b.come_online(t(2)).unwrap();
        assert!(b.is_available());
    }

    #[test]
    fn an_unacknowledged_release_cools_the_unit_down() {
        let mut b = in_status(BrigadeStatus::Dispatched);
        b.release_unacknowledged(t(1_000), std::time::Duration::from_secs(60))
            .unwrap();
        assert!(b.is_available());
        assert!(b.in_cooldown(t(1_000)));
        assert!(!b.is_offerable(t(60_999)));
        assert!(b.is_offerable(t(61_000)));
        // An operator may still send it by hand; that ends the cool-down.
        b.dispatch(inc("I-2"), t(2_000)).unwrap();
        assert_eq!(b.cooldown_until, None);
        assert_eq!(
            reason(brigade().release_unacknowledged(t(5), std::time::Duration::from_secs(1))),
            "it has no assignment to release"
        );
    }

    #[test]
    fn cooldown_is_absent_from_old_records_and_from_json_when_unset() {
        let json = serde_json::to_value(brigade()).unwrap();
        assert!(json.get("cooldown_until").is_none());
        let mut b = brigade();
        b.cooldown_until = Some(t(7));
        let back: Brigade = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back.cooldown_until, Some(t(7)));
    }

    #[test]
    fn moves_faster_than_a_vehicle_are_refused() {
        let from = Position::new(-12.05, -77.04).unwrap();
        // About 1.1 km north.
        let far = Position::new(-12.04, -77.04).unwrap();
        // Within the fix error, at once.
        let near = Position::new(-12.0495, -77.04).unwrap();
        check_move(&from, t(0), &near, t(0)).unwrap();
        // 1.1 km in 10 s is 110 m/s (plus jitter allowance: still too fast at 5 s).
        let refused = check_move(&from, t(0), &far, t(5_000)).unwrap_err();
        assert!(
            refused.to_string().contains("not a unit moving"),
            "{refused}"
        );
        // The same 1.1 km in a minute is a car.
        check_move(&from, t(0), &far, t(60_000)).unwrap();
    }

    #[test]
    fn radio_reports_set_availability_and_vouch_for_the_unit() {
        use BrigadeStatus::*;
        let op = OperatorId::new("op-1").unwrap();
        let here = Position::new(-12.06, -77.03).unwrap();
        let mut b = brigade().offline_until_heard();
        b.radio_report(Available, Some(here), op.clone(), t(10))
            .unwrap();
        assert!(b.is_available());
        assert_eq!(b.position, here);
        assert_eq!(
            b.radio,
            Some(RadioReport {
                operator: op.clone(),
                at: t(10)
            })
        );
        assert!(b.radio_live(t(10)));
        assert!(!b.radio_live(t(10).saturating_add(crate::limits::RADIO_REPORT_VALID)));
        b.radio_report(OutOfService, None, op.clone(), t(11))
            .unwrap();
        assert_eq!(b.status, OutOfService);
        b.radio_report(Offline, None, op.clone(), t(12)).unwrap();
        assert_eq!(b.status, Offline);
        assert_eq!(b.radio, None);
        b.radio_report(OutOfService, None, op.clone(), t(13))
            .unwrap();
        assert_eq!(b.status, OutOfService);
        // Cooling units are vouched for too.
        let mut cooling = in_status(Dispatched);
        cooling
            .release_unacknowledged(t(20), std::time::Duration::from_secs(60))
            .unwrap();
        cooling
            .radio_report(Available, None, op.clone(), t(21))
            .unwrap();
        assert!(cooling.is_offerable(t(22)));
        // Refusals.
        let busy = in_status(EnRoute).radio_report(Available, None, op.clone(), t(30));
        assert_eq!(
            busy.unwrap_err().to_string(),
            "brigade BR-1 is en_route on an incident; release it from the incident first"
        );
        assert_eq!(
            brigade().radio_report(OnScene, None, op, t(30)),
            Err(RadioError::NotSettable { status: OnScene })
        );
    }

    #[test]
    fn move_to_works_in_any_status() {
        let mut b = in_status(BrigadeStatus::OnScene);
        let p = Position::new(-12.06, -77.03).unwrap();
        b.move_to(p);
        assert_eq!(b.position, p);
    }

    #[test]
    fn capabilities_set_operations_and_serde() {
        let armed: Capabilities = Capability::NonLethalArmed.into();
        let both = Capabilities::all();
        assert!(both.contains_all(armed));
        assert!(!armed.contains_all(both));
        assert!(armed.contains_all(Capabilities::EMPTY));
        assert!(armed.contains(Capability::NonLethalArmed));
        assert!(!armed.contains(Capability::FirstAid));
        assert_eq!(both.len(), 2);
        assert!(Capabilities::EMPTY.is_empty());
        assert_eq!(
            both.iter().collect::<Vec<_>>(),
            vec![Capability::NonLethalArmed, Capability::FirstAid]
        );
        assert_eq!(
            serde_json::to_string(&both).unwrap(),
            r#"["non_lethal_armed","first_aid"]"#
        );
        let back: Capabilities = serde_json::from_str(r#"["first_aid","first_aid"]"#).unwrap();
        assert_eq!(back, Capability::FirstAid.into());
        assert!(serde_json::from_str::<Capabilities>(r#"["laser"]"#).is_err());
    }

    #[test]
    fn enums_serialize_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&BrigadeStatus::EnRoute).unwrap(),
            "\"en_route\""
        );
        assert_eq!(
            serde_json::to_string(&BrigadeStatus::OutOfService).unwrap(),
            "\"out_of_service\""
        );
        assert_eq!(
            serde_json::to_string(&Mode::Motorcycle).unwrap(),
            "\"motorcycle\""
        );
        for status in [
            BrigadeStatus::Available,
            BrigadeStatus::Dispatched,
            BrigadeStatus::EnRoute,
            BrigadeStatus::OnScene,
            BrigadeStatus::OutOfService,
            BrigadeStatus::Offline,
        ] {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
    }

    #[test]
    fn motorcycles_are_fastest_in_lima() {
        assert!(Mode::Motorcycle.speed_mps() > Mode::Car.speed_mps());
        assert!(Mode::Car.speed_mps() > Mode::Foot.speed_mps());
    }

    #[test]
    fn status_reports_follow_the_decision_table() {
        use BrigadeStatus::*;
        let i1 = inc("I-1");
        let i2 = inc("I-2");
        let report = |status, reported, incident: Option<&IncidentId>| {
            in_status(status).interpret_report(reported, incident)
        };
        // Repeats change nothing.
        assert_eq!(report(EnRoute, EnRoute, Some(&i1)), Ok(Report::Unchanged));
        assert_eq!(report(Available, Available, None), Ok(Report::Unchanged));
        // Steps on the brigade's own incident.
        assert_eq!(
            report(Dispatched, EnRoute, Some(&i1)),
            Ok(Report::OnIncident(IncidentStep::EnRoute, i1.clone()))
        );
        assert_eq!(
            report(EnRoute, OnScene, Some(&i1)),
            Ok(Report::OnIncident(IncidentStep::OnScene, i1.clone()))
        );
        assert_eq!(
            report(OnScene, Available, Some(&i1)),
            Ok(Report::OnIncident(IncidentStep::Clear, i1.clone()))
        );
        // Clearing from an incident that already released the brigade.
        assert_eq!(
            report(Available, Available, Some(&i1)),
            Ok(Report::Unchanged)
        );
        // Another incident, or none while assigned.
        let refused = report(EnRoute, OnScene, Some(&i2)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "brigade BR-1 is not assigned to incident I-2 (it is en_route on I-1)"
        );
        assert!(matches!(
            report(Available, EnRoute, Some(&i1)),
            Err(ReportError::NotAssigned { on: None, .. })
        ));
        assert!(matches!(
            report(OnScene, Available, None),
            Err(ReportError::ClearingNeedsIncident { .. })
        ));
        // Availability.
        for status in [Available, Dispatched, OnScene, Offline] {
            assert_eq!(
                report(status, OutOfService, None),
                Ok(Report::Unit(UnitStep::OutOfService)),
                "{status}"
            );
        }
        assert_eq!(
            report(OutOfService, Available, None),
            Ok(Report::Unit(UnitStep::BackInService))
        );
        assert_eq!(
            report(Offline, Available, None),
            Ok(Report::Unit(UnitStep::ComeOnline))
        );
        // What a terminal never reports.
        for status in [Dispatched, Offline] {
            assert_eq!(
                report(Available, status, None),
                Err(ReportError::NotReportable { status })
            );
        }
    }
}
