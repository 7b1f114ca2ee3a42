//! Property tests for the domain's two promises that examples cannot pin down:
//!
//! 1. Progress never moves backwards: an incident's state is a high-water mark and a closed
//!    incident stays closed; a brigade's stage never decreases within one assignment. Refused
//!    operations leave the value untouched.
//! 2. The R-tree [`BrigadeIndex`] ranks exactly like the plain scan [`linear_rank`], for random
//!    fleets around Lima (plus a few far away), random incident kinds, places and exclusions,
//!    and after random moves, status changes, re-equipment and removals.

use std::collections::BTreeMap;
use std::sync::Arc;

use centinela_core::brigade::{Brigade, BrigadeStatus, Capabilities, Capability, Mode};
use centinela_core::dispatch::{
    BrigadeIndex, Candidate, Policy, StraightLine, TravelTime, linear_rank,
};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{
    Actor, Incident, IncidentKind, IncidentState, Priority, Resolution,
};
use centinela_core::limits::{AUDIT_ENTRIES_MAX, UNITS_PER_INCIDENT_MAX};
use centinela_core::time::Timestamp;
use proptest::prelude::*;

const LIMA: (f64, f64) = (-12.05, -77.04);
/// About 5 km in degrees of latitude (and, at Lima's latitude, of longitude).
const SPREAD_DEG: f64 = 0.045;
const FLEET_MAX: usize = 200;

fn brigade_id(n: usize) -> BrigadeId {
    BrigadeId::new(format!("B{n:03}")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. Progress never moves backwards
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum IncidentOp {
    Merge,
    Acknowledge(u8),
    Classify(usize, Option<u8>),
    Assign(usize, bool),
    Unassign(usize),
    AckTimeout(usize),
    UnitAcknowledged(usize),
    UnitEnRoute(usize),
    UnitOnScene(usize),
    UnitCleared(usize),
    Close(u8),
}

fn incident_op() -> impl Strategy<Value = IncidentOp> {
    // A small pool of units so the same unit is acted on repeatedly.
    let unit = 0..10usize;
    prop_oneof![
        3 => Just(IncidentOp::Merge),
        1 => (0..3u8).prop_map(IncidentOp::Acknowledge),
        1 => (0..IncidentKind::ALL.len(), proptest::option::of(0..4u8))
            .prop_map(|(k, p)| IncidentOp::Classify(k, p)),
        4 => (unit.clone(), any::<bool>()).prop_map(|(u, d)| IncidentOp::Assign(u, d)),
        1 => unit.clone().prop_map(IncidentOp::Unassign),
        1 => unit.clone().prop_map(IncidentOp::AckTimeout),
        2 => unit.clone().prop_map(IncidentOp::UnitAcknowledged),
        2 => unit.clone().prop_map(IncidentOp::UnitEnRoute),
        2 => unit.clone().prop_map(IncidentOp::UnitOnScene),
        2 => unit.prop_map(IncidentOp::UnitCleared),
        1 => (0..4u8).prop_map(IncidentOp::Close),
    ]
}

fn apply_incident_op(incident: &mut Incident, op: &IncidentOp, now: Timestamp) -> bool {
    let operator = |n: u8| OperatorId::new(format!("op-{n}")).unwrap();
    let priorities = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ];
    let resolutions = [
        Resolution::Handled,
        Resolution::Prank,
        Resolution::FalseAlarm,
        Resolution::Cancelled,
    ];
    match op {
        IncidentOp::Merge => incident.merge_press(now).is_ok(),
        IncidentOp::Acknowledge(n) => incident.acknowledge(operator(*n), now).is_ok(),
        IncidentOp::Classify(kind, priority) => incident
            .classify(
                operator(0),
                IncidentKind::ALL[*kind],
                priority.map(|p| priorities[p as usize]),
                None,
                now,
            )
            .is_ok(),
        IncidentOp::Assign(unit, by_dispatcher) => {
            let actor = if *by_dispatcher {
                Actor::Dispatcher { term: 3 }
            } else {
                Actor::Operator(operator(1))
            };
            incident.assign(brigade_id(*unit), actor, now).is_ok()
        }
        IncidentOp::Unassign(unit) => incident
            .unassign(&brigade_id(*unit), Actor::System, "test", now)
            .is_ok(),
        IncidentOp::AckTimeout(unit) => incident.ack_timeout(&brigade_id(*unit), 3, now).is_ok(),
        IncidentOp::UnitAcknowledged(unit) => {
            incident.unit_acknowledged(&brigade_id(*unit), now).is_ok()
        }
        IncidentOp::UnitEnRoute(unit) => incident.unit_en_route(&brigade_id(*unit), now).is_ok(),
        IncidentOp::UnitOnScene(unit) => incident.unit_on_scene(&brigade_id(*unit), now).is_ok(),
        IncidentOp::UnitCleared(unit) => {
            incident.unit_cleared(&brigade_id(*unit), None, now).is_ok()
        }
        IncidentOp::Close(r) => incident
            .close(resolutions[*r as usize], Actor::Operator(operator(2)), now)
            .is_ok(),
    }
}

#[derive(Debug, Clone)]
enum BrigadeOp {
    Dispatch(u8),
    Acknowledge(u8),
    EnRoute,
    OnScene,
    Clear,
    Release,
    OutOfService,
    BackInService,
    GoOffline,
    ComeOnline,
    Move(f64, f64),
}

fn brigade_op() -> impl Strategy<Value = BrigadeOp> {
    prop_oneof![
        3 => (0..3u8).prop_map(BrigadeOp::Dispatch),
        2 => (0..3u8).prop_map(BrigadeOp::Acknowledge),
        2 => Just(BrigadeOp::EnRoute),
        2 => Just(BrigadeOp::OnScene),
        2 => Just(BrigadeOp::Clear),
        1 => Just(BrigadeOp::Release),
        1 => Just(BrigadeOp::OutOfService),
        1 => Just(BrigadeOp::BackInService),
        1 => Just(BrigadeOp::GoOffline),
        1 => Just(BrigadeOp::ComeOnline),
        1 => (-SPREAD_DEG..SPREAD_DEG, -SPREAD_DEG..SPREAD_DEG)
            .prop_map(|(dlat, dlon)| BrigadeOp::Move(dlat, dlon)),
    ]
}

fn apply_brigade_op(brigade: &mut Brigade, op: &BrigadeOp, now: Timestamp) -> bool {
    let incident = |n: u8| IncidentId::new(format!("I-{n}")).unwrap();
    match op {
        BrigadeOp::Dispatch(n) => brigade.dispatch(incident(*n), now).is_ok(),
        BrigadeOp::Acknowledge(n) => brigade.acknowledge(&incident(*n), now).is_ok(),
        BrigadeOp::EnRoute => brigade.en_route(now).is_ok(),
        BrigadeOp::OnScene => brigade.on_scene(now).is_ok(),
        BrigadeOp::Clear => brigade.clear(now).is_ok(),
        BrigadeOp::Release => brigade.release(now).is_ok(),
        BrigadeOp::OutOfService => brigade.out_of_service(now).is_ok(),
        BrigadeOp::BackInService => brigade.back_in_service(now).is_ok(),
        BrigadeOp::GoOffline => brigade.go_offline(now).is_ok(),
        BrigadeOp::ComeOnline => brigade.come_online(now).is_ok(),
        BrigadeOp::Move(dlat, dlon) => {
            brigade.move_to(Position::new(LIMA.0 + dlat, LIMA.1 + dlon).unwrap());
            true
        }
    }
}

proptest! {
    #[test]
    fn incident_state_never_moves_backwards(
        ops in proptest::collection::vec((incident_op(), 0..5_000u64), 1..120),
    ) {
        let mut now = Timestamp::from_millis(1_700_000_000_000);
        let mut incident = Incident::open(
            IncidentId::new("I-1").unwrap(),
            ButtonId::new("BTN-1").unwrap(),
            CameraId::new("CAM-1").unwrap(),
            Position::new(LIMA.0, LIMA.1).unwrap(),
            now,
        );
        for (op, step_ms) in &ops {
            now = now.saturating_add(std::time::Duration::from_millis(*step_ms));
            let before = incident.clone();
            let applied = apply_incident_op(&mut incident, op, now);
            prop_assert!(incident.state >= before.state, "{op:?} moved {} back to {}", before.state, incident.state);
            if !applied {
                prop_assert_eq!(&incident, &before, "a refused {:?} changed the incident", op);
            }
            if before.state == IncidentState::Closed {
                prop_assert!(!applied, "{op:?} was accepted on a closed incident");
                prop_assert_eq!(incident.state, IncidentState::Closed);
            }
            // Structural invariants after every step.
            prop_assert_eq!(incident.is_open(), incident.resolution.is_none());
            prop_assert_eq!(incident.is_open(), incident.closed_at.is_none());
            prop_assert!(incident.units.len() <= UNITS_PER_INCIDENT_MAX);
            let mut units = incident.units.clone();
            units.sort();
            units.dedup();
            prop_assert_eq!(units.len(), incident.units.len(), "a unit attached twice");
            prop_assert!(incident.audit.len() <= AUDIT_ENTRIES_MAX);
            if !incident.is_open() {
                prop_assert!(incident.units.is_empty());
                prop_assert_eq!(
                    incident.audit.last().map(|e| e.action),
                    Some(centinela_core::incident::AuditAction::Closed)
                );
            }
            if incident.state >= IncidentState::Dispatched && incident.state != IncidentState::Closed {
                // Dispatched or beyond means someone was assigned at some point.
                prop_assert!(incident.audit.iter().any(|e| e.action == centinela_core::incident::AuditAction::Assigned));
            }
        }
    }

    #[test]
    fn brigade_stage_never_moves_backwards_within_an_assignment(
        ops in proptest::collection::vec((brigade_op(), 0..5_000u64), 1..120),
    ) {
        let mut now = Timestamp::from_millis(1_700_000_000_000);
        let mut brigade = Brigade::new(
            brigade_id(1),
            "Moto 1".into(),
            Mode::Motorcycle,
            Capabilities::EMPTY,
            Position::new(LIMA.0, LIMA.1).unwrap(),
            now,
        );
        for (op, step_ms) in &ops {
            now = now.saturating_add(std::time::Duration::from_millis(*step_ms));
            let before = brigade.clone();
            let applied = apply_brigade_op(&mut brigade, op, now);
            if !applied {
                prop_assert_eq!(&brigade, &before, "a refused {:?} changed the brigade", op);
            }
            if let (Some(was), Some(is)) = (before.stage(), brigade.stage())
                && before.incident == brigade.incident
            {
                prop_assert!(is >= was, "{op:?} moved stage {was} back to {is}");
            }
            // An assignment only starts from Available, so a changed incident passed through it.
            if brigade.incident.is_some() && brigade.incident != before.incident {
                prop_assert_eq!(before.status, BrigadeStatus::Available);
                prop_assert_eq!(brigade.stage(), Some(1));
                prop_assert!(!brigade.acked);
            }
            prop_assert_eq!(brigade.incident.is_some(), brigade.stage().is_some());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2 and 3. The index ranks exactly like the linear scan
// ---------------------------------------------------------------------------------------------

/// A few grid points shared by many brigades, so exact ETA ties (across modes and trees too)
/// are common enough to exercise the id tie-break.
const GRID: [(f64, f64); 4] = [(0.0, 0.0), (0.01, 0.0), (0.0, -0.01), (-0.02, 0.015)];

fn position_near_lima() -> impl Strategy<Value = Position> {
    prop_oneof![
        12 => (-SPREAD_DEG..SPREAD_DEG, -SPREAD_DEG..SPREAD_DEG)
            .prop_map(|(dlat, dlon)| Position::new(LIMA.0 + dlat, LIMA.1 + dlon).unwrap()),
        3 => (0..GRID.len()).prop_map(|i| {
            Position::new(LIMA.0 + GRID[i].0, LIMA.1 + GRID[i].1).unwrap()
        }),
        // Far away: other cities, the antimeridian, near the poles.
        1 => (-89.0..89.0f64, -180.0..=180.0f64)
            .prop_map(|(lat, lon)| Position::new(lat, lon).unwrap()),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(Mode::ALL.to_vec())
}

fn capabilities() -> impl Strategy<Value = Capabilities> {
    (any::<bool>(), any::<bool>()).prop_map(|(armed, aid)| {
        let mut set = Capabilities::EMPTY;
        if armed {
            set.insert(Capability::NonLethalArmed);
        }
        if aid {
            set.insert(Capability::FirstAid);
        }
        set
    })
}

/// Which status to put a brigade in: mostly available, as on a normal shift.
fn status() -> impl Strategy<Value = BrigadeStatus> {
    prop_oneof![
        10 => Just(BrigadeStatus::Available),
        1 => Just(BrigadeStatus::Dispatched),
        1 => Just(BrigadeStatus::EnRoute),
        1 => Just(BrigadeStatus::OnScene),
        1 => Just(BrigadeStatus::OutOfService),
        1 => Just(BrigadeStatus::Offline),
    ]
}

/// Drives `brigade` to `status` through legal transitions.
fn set_status(brigade: &mut Brigade, status: BrigadeStatus) {
    let now = Timestamp::from_millis(1);
    // Back to Available first, from wherever it is.
    match brigade.status {
        BrigadeStatus::Available => {}
        BrigadeStatus::OutOfService => brigade.back_in_service(now).unwrap(),
        BrigadeStatus::Offline => brigade.come_online(now).unwrap(),
        _ => brigade.release(now).unwrap(),
    }
    let incident = IncidentId::new("I-elsewhere").unwrap();
    match status {
        BrigadeStatus::Available => {}
        BrigadeStatus::Dispatched => brigade.dispatch(incident, now).unwrap(),
        BrigadeStatus::EnRoute => {
            brigade.dispatch(incident, now).unwrap();
            brigade.en_route(now).unwrap();
        }
        BrigadeStatus::OnScene => {
            brigade.dispatch(incident, now).unwrap();
            brigade.on_scene(now).unwrap();
        }
        BrigadeStatus::OutOfService => brigade.out_of_service(now).unwrap(),
        BrigadeStatus::Offline => brigade.go_offline(now).unwrap(),
    }
    assert_eq!(brigade.status, status);
}

type BrigadeParts = (Mode, Capabilities, BrigadeStatus, Position);

fn brigade_parts() -> impl Strategy<Value = BrigadeParts> {
    (mode(), capabilities(), status(), position_near_lima())
}

fn build_brigade(n: usize, (mode, capabilities, status, position): BrigadeParts) -> Brigade {
    let mut brigade = Brigade::new(
        brigade_id(n),
        format!("Unit {n}"),
        mode,
        capabilities,
        position,
        Timestamp::from_millis(0),
    );
    set_status(&mut brigade, status);
    brigade
}

fn fleet(max: usize) -> impl Strategy<Value = Vec<Brigade>> {
    proptest::collection::vec(brigade_parts(), 1..=max).prop_map(|parts| {
        parts
            .into_iter()
            .enumerate()
            .map(|(n, p)| build_brigade(n, p))
            .collect()
    })
}

fn kind() -> impl Strategy<Value = IncidentKind> {
    prop::sample::select(IncidentKind::ALL.to_vec())
}

/// Exclusions as indices into the fleet (some may point past its end, which is harmless).
fn exclusions() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..FLEET_MAX, 0..6)
}

fn excluded_ids(indices: &[usize]) -> Vec<BrigadeId> {
    indices.iter().map(|&n| brigade_id(n)).collect()
}

fn travel_time() -> Arc<StraightLine> {
    Arc::new(StraightLine::default())
}

fn index_of<'a>(brigades: impl IntoIterator<Item = &'a Brigade>) -> BrigadeIndex {
    let mut index = BrigadeIndex::new(travel_time());
    for brigade in brigades {
        index.upsert(brigade);
    }
    index
}

/// Checks `rank(k) == linear_rank(k)` for every k up to the fleet size (and one past it).
fn assert_rank_matches(
    index: &BrigadeIndex,
    brigades: &[Brigade],
    kind: IncidentKind,
    at: &Position,
    excluded: &[BrigadeId],
) -> Result<(), TestCaseError> {
    let policy = Policy::default();
    let straight_line = StraightLine::default();
    for k in 1..=brigades.len() + 1 {
        let expected = linear_rank(brigades, &straight_line, &policy, kind, at, excluded, k);
        let actual = index.rank(kind, at, excluded, k);
        prop_assert_eq!(&actual, &expected, "k = {}", k);
        if expected.len() < k {
            // Fewer candidates than asked: every larger k gives the same answer.
            break;
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum FleetOp {
    /// A position report from brigade `n` (index into the current fleet, modulo its size).
    Move(usize, Position),
    Status(usize, BrigadeStatus),
    Reequip(usize, Mode, Capabilities),
    Remove(usize),
    /// A brigade joins the fleet (new id).
    Join(BrigadeParts),
}

fn fleet_op() -> impl Strategy<Value = FleetOp> {
    let n = 0..FLEET_MAX;
    prop_oneof![
        4 => (n.clone(), position_near_lima()).prop_map(|(n, p)| FleetOp::Move(n, p)),
        3 => (n.clone(), status()).prop_map(|(n, s)| FleetOp::Status(n, s)),
        1 => (n.clone(), mode(), capabilities()).prop_map(|(n, m, c)| FleetOp::Reequip(n, m, c)),
        1 => n.prop_map(FleetOp::Remove),
        1 => brigade_parts().prop_map(FleetOp::Join),
    ]
}

proptest! {
    #[test]
    fn best_is_the_linear_first_and_the_fastest_of_its_tier(
        brigades in fleet(FLEET_MAX),
        kind in kind(),
        at in position_near_lima(),
        excluded in exclusions(),
    ) {
        let index = index_of(&brigades);
        let excluded = excluded_ids(&excluded);
        let policy = Policy::default();
        let straight_line = StraightLine::default();
        let best = index.best(kind, &at, &excluded);
        let linear = linear_rank(&brigades, &straight_line, &policy, kind, &at, &excluded, usize::MAX);
        prop_assert_eq!(best.as_ref(), linear.first());

        let eligible: Vec<&Brigade> = brigades
            .iter()
            .filter(|b| b.is_available()
                && policy.allowed_modes(kind).contains(&b.mode)
                && !excluded.contains(&b.id))
            .collect();
        let preferred: Vec<&Brigade> = eligible
            .iter()
            .copied()
            .filter(|b| policy.is_preferred(kind, b.capabilities))
            .collect();
        let tier = if preferred.is_empty() { &eligible } else { &preferred };
        let fastest = tier.iter().map(|b| straight_line.eta(&b.position, &at, b.mode)).min();
        match (&best, fastest) {
            (None, None) => {}
            (Some(Candidate { eta, preferred: is_preferred, .. }), Some(fastest)) => {
                prop_assert_eq!(*eta, fastest);
                prop_assert_eq!(*is_preferred, !preferred.is_empty());
            }
            (best, fastest) => prop_assert!(false, "best {best:?} but fastest {fastest:?}"),
        }
    }

    #[test]
    fn rank_equals_linear_rank_for_every_k_also_after_changes(
        brigades in fleet(FLEET_MAX),
        kind in kind(),
        at in position_near_lima(),
        excluded in exclusions(),
        changes in proptest::collection::vec(fleet_op(), 0..40),
        kind_after in kind(),
    ) {
        let excluded = excluded_ids(&excluded);
        let mut index = index_of(&brigades);
        prop_assert_eq!(index.len(), brigades.iter().filter(|b| b.is_available()).count());
        assert_rank_matches(&index, &brigades, kind, &at, &excluded)?;

        // The same changes applied to a model fleet and, through upsert/remove, to the index.
        let mut model: BTreeMap<BrigadeId, Brigade> =
            brigades.into_iter().map(|b| (b.id.clone(), b)).collect();
        let mut next_id = FLEET_MAX;
        for change in changes {
            let ids: Vec<BrigadeId> = model.keys().cloned().collect();
            let pick = |n: usize| ids.get(n % ids.len().max(1)).cloned();
            match change {
                FleetOp::Move(n, position) => {
                    let Some(id) = pick(n) else { continue };
                    let brigade = model.get_mut(&id).unwrap();
                    brigade.move_to(position);
                    index.upsert(brigade);
                }
                FleetOp::Status(n, status) => {
                    let Some(id) = pick(n) else { continue };
                    let brigade = model.get_mut(&id).unwrap();
                    set_status(brigade, status);
                    prop_assert_eq!(index.upsert(brigade), status == BrigadeStatus::Available);
                }
                FleetOp::Reequip(n, mode, capabilities) => {
                    let Some(id) = pick(n) else { continue };
                    let brigade = model.get_mut(&id).unwrap();
                    brigade.mode = mode;
                    brigade.capabilities = capabilities;
                    index.upsert(brigade);
                }
                FleetOp::Remove(n) => {
                    let Some(id) = pick(n) else { continue };
                    let brigade = model.remove(&id).unwrap();
                    prop_assert_eq!(index.remove(&id), brigade.is_available());
                    prop_assert!(!index.contains(&id));
                }
                FleetOp::Join(parts) => {
                    let brigade = build_brigade(next_id, parts);
                    next_id += 1;
                    index.upsert(&brigade);
                    model.insert(brigade.id.clone(), brigade);
                }
            }
        }
        let brigades: Vec<Brigade> = model.into_values().collect();
        prop_assert_eq!(index.len(), brigades.iter().filter(|b| b.is_available()).count());
        assert_rank_matches(&index, &brigades, kind_after, &at, &excluded)?;

        // A bulk rebuild (as on becoming leader) ranks the same as the incrementally kept index.
        let mut rebuilt = BrigadeIndex::new(travel_time());
        rebuilt.rebuild(&brigades);
        prop_assert_eq!(
            rebuilt.rank(kind_after, &at, &excluded, brigades.len()),
            index.rank(kind_after, &at, &excluded, brigades.len())
        );
    }
}
