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
use crate::ids::{BrigadeId, IncidentId};
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
        }
    }

    pub fn is_available(&self) -> bool {
        self.status == BrigadeStatus::Available
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
            UnitStep::OutOfService => self.out_of_service(now),
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
