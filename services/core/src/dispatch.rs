//! Choosing a brigade for an incident, and the queue of incidents waiting for one.
//!
//! Ranking rule, used everywhere: brigades whose capabilities cover what the incident kind
//! prefers come first; then shorter ETA; then smaller brigade id, so equal candidates are always
//! ranked the same way on every node and in every replay. Only available brigades whose mode the
//! [`Policy`] allows for the kind, and that the caller did not exclude, are candidates.
//!
//! [`BrigadeIndex`] answers the ranking with R-trees; [`linear_rank`] answers the same question by
//! scanning a slice. They must agree exactly: the property tests check it, and `linear_rank`
//! doubles as the reference for benchmarks.
//!
//! # Why the index is exact
//! Brigades are stored as [`Position::unit_vector`] points, one R-tree per (mode, capability set).
//! Chord distance between unit vectors orders points exactly as great-circle distance does, and
//! for a fixed mode the ETA is non-decreasing in great-circle distance (the [`TravelTime`]
//! contract), so each tree's `nearest_neighbor_iter` yields its brigades in ETA order. A k-way
//! merge of those iterators, restricted to the trees of the allowed modes and taken one
//! capability tier at a time, therefore yields candidates in ranking order without looking at
//! the rest of the fleet.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rstar::RTree;
use rstar::primitives::GeomWithData;

use crate::brigade::{Brigade, BrigadeStatus, Capabilities, Capability, Mode};
use crate::geo::Position;
use crate::ids::{BrigadeId, IncidentId};
use crate::incident::{Incident, IncidentKind, Priority, SwapAdvice};
use crate::time::Timestamp;

/// Estimated travel time from a brigade to an incident.
///
/// Contract: for a fixed `mode` and destination, `eta` is non-decreasing in the great-circle
/// distance between `from` and `to`. [`BrigadeIndex`] relies on it to rank by walking R-trees in
/// distance order. A road-network router breaks the contract (a river or a one-way street makes
/// a nearer unit slower); such a router should shortlist with the index using a straight-line
/// estimate that never exceeds the road time, then re-rank the shortlist by its own ETA.
pub trait TravelTime {
    fn eta(&self, from: &Position, to: &Position, mode: Mode) -> Duration;
}

/// Great-circle distance stretched by a road factor, at the mode's average speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StraightLine {
    /// Ratio of street distance to straight-line distance; at least 1.
    pub road_factor: f64,
}

impl StraightLine {
    /// Central Lima is close to a grid: on a grid the street route is between 1 and √2 times the
    /// straight line, and 1.3 is the usual measured average for such street networks.
    pub const LIMA_ROAD_FACTOR: f64 = 1.3;
}

impl Default for StraightLine {
    fn default() -> Self {
        Self {
            road_factor: Self::LIMA_ROAD_FACTOR,
        }
    }
}

impl TravelTime for StraightLine {
    fn eta(&self, from: &Position, to: &Position, mode: Mode) -> Duration {
        debug_assert!(
            self.road_factor >= 1.0,
            "road factor {} below 1",
            self.road_factor
        );
        let seconds = from.distance_m(to) * self.road_factor / mode.speed_mps();
        // Only a nonsensical road factor (negative, NaN, huge) can fail the conversion; treat
        // the brigade as unreachable rather than panicking inside the dispatcher.
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}

/// What the dispatcher may send to an incident of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    modes: Vec<Mode>,
    preferred: Capabilities,
}

/// Per-kind dispatch rules: which modes may go, and which capabilities are preferred.
/// [`Policy::default`] is Lima's; [`Policy::set`] adjusts one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Indexed by `IncidentKind as usize`.
    rules: [Rule; IncidentKind::ALL.len()],
}

impl Default for Policy {
    fn default() -> Self {
        let mut policy = Policy {
            rules: std::array::from_fn(|_| Rule {
                modes: Mode::ALL.to_vec(),
                preferred: Capabilities::EMPTY,
            }),
        };
        // A stolen vehicle is gone at driving speed: a unit on foot cannot follow it.
        policy.set(
            IncidentKind::VehicleTheft,
            &[Mode::Motorcycle, Mode::Car],
            Capabilities::EMPTY,
        );
        // Robbery and assault in progress: officers may face armed or violent offenders.
        let armed = Capabilities::from(Capability::NonLethalArmed);
        policy.set(IncidentKind::Robbery, &Mode::ALL, armed);
        policy.set(IncidentKind::Assault, &Mode::ALL, armed);
        // Someone may need first aid before an ambulance gets through the traffic.
        policy.set(
            IncidentKind::Medical,
            &Mode::ALL,
            Capability::FirstAid.into(),
        );
        policy
    }
}

impl Policy {
    /// Sets the rule for `kind`. `modes` must not be empty: a kind nobody may attend would leave
    /// its incidents waiting forever.
    pub fn set(&mut self, kind: IncidentKind, modes: &[Mode], preferred: Capabilities) {
        assert!(!modes.is_empty(), "policy for {kind} allows no mode");
        let mut modes = modes.to_vec();
        modes.sort();
        modes.dedup();
        self.rules[kind as usize] = Rule { modes, preferred };
    }

    pub fn allowed_modes(&self, kind: IncidentKind) -> &[Mode] {
        &self.rules[kind as usize].modes
    }

    pub fn preferred(&self, kind: IncidentKind) -> Capabilities {
        self.rules[kind as usize].preferred
    }

    /// Whether a brigade with `capabilities` is in the preferred tier for `kind`. Nobody is when
    /// the kind prefers nothing.
    pub fn is_preferred(&self, kind: IncidentKind, capabilities: Capabilities) -> bool {
        let preferred = self.preferred(kind);
        !preferred.is_empty() && capabilities.contains_all(preferred)
    }

    /// Whether `brigade` may be sent to an incident of `kind` at all (ignoring exclusions).
    pub fn is_eligible(&self, kind: IncidentKind, brigade: &Brigade) -> bool {
        brigade.is_available() && self.allowed_modes(kind).contains(&brigade.mode)
    }
}

/// A brigade that could be sent, as ranked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub brigade: BrigadeId,
    pub eta: Duration,
    /// Whether it has every capability the incident kind prefers.
    pub preferred: bool,
}

impl Candidate {
    /// The ranking order: preferred first, then ETA ascending, then brigade id ascending.
    pub fn cmp_rank(&self, other: &Candidate) -> Ordering {
        other
            .preferred
            .cmp(&self.preferred)
            .then(self.eta.cmp(&other.eta))
            .then_with(|| self.brigade.cmp(&other.brigade))
    }
}

/// Ranks `brigades` for an incident of `kind` at `at` by scanning them all: the reference
/// semantics of [`BrigadeIndex::rank`]. Returns at most `limit` candidates, best first.
pub fn linear_rank(
    brigades: &[Brigade],
    travel_time: &(impl TravelTime + ?Sized),
    policy: &Policy,
    kind: IncidentKind,
    at: &Position,
    excluded: &[BrigadeId],
    limit: usize,
) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = brigades
        .iter()
        .filter(|b| policy.is_eligible(kind, b) && !excluded.contains(&b.id))
        .map(|b| Candidate {
            brigade: b.id.clone(),
            eta: travel_time.eta(&b.position, at, b.mode),
            preferred: policy.is_preferred(kind, b.capabilities),
        })
        .collect();
    candidates.sort_by(Candidate::cmp_rank);
    candidates.truncate(limit);
    candidates
}

/// The swap to recommend for `incident` after it was classified, if any: when its kind prefers
/// capabilities none of its units has, the first attached unit still on its way (dispatched or
/// en route: one on scene stays) is matched with the best free unit that has them (available,
/// live, not cooling down, allowed for the kind, not one that let this incident time out), by
/// the usual ranking. `None` when the kind prefers nothing, a unit on it already fits, or no
/// better-suited unit is free. Scans `brigades` (every unit's record): called once per
/// classification, not per press.
pub fn swap_advice(
    policy: &Policy,
    travel_time: &(impl TravelTime + ?Sized),
    incident: &Incident,
    brigades: &[Brigade],
    now: Timestamp,
) -> Option<SwapAdvice> {
    let kind = incident.kind;
    if !incident.is_open() || policy.preferred(kind).is_empty() {
        return None;
    }
    let attached: Vec<&Brigade> = incident
        .units
        .iter()
        .filter_map(|id| brigades.iter().find(|b| &b.id == id))
        .collect();
    if attached
        .iter()
        .any(|b| policy.is_preferred(kind, b.capabilities))
    {
        return None;
    }
    let out = attached.iter().find(|b| {
        matches!(b.status, BrigadeStatus::Dispatched | BrigadeStatus::EnRoute)
            && b.incident.as_ref() == Some(&incident.id)
    })?;
    let mut excluded: Vec<BrigadeId> = incident.units.clone();
    excluded.extend(incident.declined.iter().cloned());
    excluded.extend(
        brigades
            .iter()
            .filter(|b| b.in_cooldown(now))
            .map(|b| b.id.clone()),
    );
    let best = linear_rank(
        brigades,
        travel_time,
        policy,
        kind,
        &incident.position,
        &excluded,
        1,
    )
    .into_iter()
    .next()
    .filter(|c| c.preferred)?;
    Some(SwapAdvice {
        out: out.id.clone(),
        into: best.brigade,
        kind,
        at: now,
    })
}

/// How much later than the best pending candidate every tree's frontier must be before that
/// candidate is emitted. Unit vectors and haversine distances are computed in floating point, so
/// two brigades nanometres apart can come out of a tree in the opposite order to their ETAs;
/// looking this far ahead absorbs that noise (it is about a centimetre even on foot) and also
/// gathers every brigade tied on ETA, so ties are broken by id exactly as [`linear_rank`] does.
const MERGE_LOOKAHEAD: Duration = Duration::from_millis(1);

/// What a tree stores per brigade: its unit-sphere point, its id and its position (for the ETA).
type Entry = GeomWithData<[f64; 3], Slot>;

#[derive(Debug, Clone, PartialEq)]
struct Slot {
    brigade: BrigadeId,
    position: Position,
}

/// Which tree a brigade is in.
type TreeKey = (Mode, Capabilities);

/// Where an indexed brigade is, so it can be found again to move or remove it.
#[derive(Debug, Clone)]
struct Member {
    key: TreeKey,
    entry: Entry,
}

/// The available brigades, indexed for ranking. Holds only available brigades: [`upsert`] every
/// brigade whose status, position, mode or capabilities change and the index keeps itself right.
///
/// [`upsert`]: BrigadeIndex::upsert
pub struct BrigadeIndex {
    travel_time: Arc<dyn TravelTime + Send + Sync>,
    policy: Policy,
    /// One tree per (mode, capability set): at most 3 × 4 trees. Splitting by mode keeps ETA
    /// monotone in distance within a tree; splitting by capabilities lets a tier query skip
    /// trees that cannot qualify.
    trees: BTreeMap<TreeKey, RTree<Entry>>,
    members: HashMap<BrigadeId, Member>,
}

impl fmt::Debug for BrigadeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrigadeIndex")
            .field("policy", &self.policy)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl BrigadeIndex {
    /// An empty index with Lima's default [`Policy`].
    pub fn new(travel_time: Arc<dyn TravelTime + Send + Sync>) -> Self {
        Self::with_policy(travel_time, Policy::default())
    }

    pub fn with_policy(travel_time: Arc<dyn TravelTime + Send + Sync>, policy: Policy) -> Self {
        Self {
            travel_time,
            policy,
            trees: BTreeMap::new(),
            members: HashMap::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn travel_time(&self) -> &(dyn TravelTime + Send + Sync) {
        &*self.travel_time
    }

    /// Replaces the contents with the available brigades among `brigades` (e.g. on becoming
    /// leader), bulk-loading the trees.
    pub fn rebuild<'a>(&mut self, brigades: impl IntoIterator<Item = &'a Brigade>) {
        self.members.clear();
        let mut per_tree: BTreeMap<TreeKey, Vec<Entry>> = BTreeMap::new();
        for brigade in brigades {
            if !brigade.is_available() {
                continue;
            }
            let key = (brigade.mode, brigade.capabilities);
            let entry = entry_for(brigade);
            if let Some(previous) = self.members.insert(
                brigade.id.clone(),
                Member {
                    key,
                    entry: entry.clone(),
                },
            ) {
                // The same id twice: the later record wins, as with upsert.
                let list = per_tree.entry(previous.key).or_default();
                if let Some(at) = list.iter().position(|e| *e == previous.entry) {
                    list.swap_remove(at);
                }
            }
            per_tree.entry(key).or_default().push(entry);
        }
        self.trees = per_tree
            .into_iter()
            .map(|(key, entries)| (key, RTree::bulk_load(entries)))
            .collect();
        self.debug_check_sizes();
    }

    /// Brings the index in line with `brigade`: indexed (at its current position, mode and
    /// capabilities) if available, absent otherwise. Returns whether it is indexed now.
    pub fn upsert(&mut self, brigade: &Brigade) -> bool {
        self.remove(&brigade.id);
        if !brigade.is_available() {
            return false;
        }
        let key = (brigade.mode, brigade.capabilities);
        let entry = entry_for(brigade);
        self.trees.entry(key).or_default().insert(entry.clone());
        self.members
            .insert(brigade.id.clone(), Member { key, entry });
        self.debug_check_sizes();
        true
    }

    /// Takes the brigade out of the index; returns whether it was there.
    pub fn remove(&mut self, brigade: &BrigadeId) -> bool {
        let Some(member) = self.members.remove(brigade) else {
            return false;
        };
        let removed = self
            .trees
            .get_mut(&member.key)
            .and_then(|tree| tree.remove(&member.entry));
        debug_assert!(removed.is_some(), "member {brigade} missing from its tree");
        true
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn contains(&self, brigade: &BrigadeId) -> bool {
        self.members.contains_key(brigade)
    }

    /// The best candidate for an incident of `kind` at `at`, skipping `excluded`.
    pub fn best(
        &self,
        kind: IncidentKind,
        at: &Position,
        excluded: &[BrigadeId],
    ) -> Option<Candidate> {
        self.rank(kind, at, excluded, 1).pop()
    }

    /// Up to `limit` candidates, best first; identical to [`linear_rank`] over the same
    /// available brigades.
    pub fn rank(
        &self,
        kind: IncidentKind,
        at: &Position,
        excluded: &[BrigadeId],
        limit: usize,
    ) -> Vec<Candidate> {
        let mut ranked = Vec::with_capacity(limit.min(self.len()));
        if limit == 0 {
            return ranked;
        }
        let modes = self.policy.allowed_modes(kind);
        let query = Query {
            travel_time: &*self.travel_time,
            at,
            point: at.unit_vector(),
            excluded,
            limit,
        };
        // Preferred tier first, then the rest; within a tier, a merge across its trees.
        for preferred_tier in [true, false] {
            let trees = self.trees.iter().filter(|((mode, capabilities), tree)| {
                tree.size() > 0
                    && modes.contains(mode)
                    && self.policy.is_preferred(kind, *capabilities) == preferred_tier
            });
            query.merge(trees, preferred_tier, &mut ranked);
            if ranked.len() >= limit {
                break;
            }
        }
        debug_assert!(ranked.len() <= limit);
        debug_assert!(ranked.is_sorted_by(|a, b| a.cmp_rank(b) != Ordering::Greater));
        ranked
    }

    fn debug_check_sizes(&self) {
        debug_assert_eq!(
            self.trees.values().map(RTree::size).sum::<usize>(),
            self.members.len(),
            "every indexed brigade is in exactly one tree"
        );
    }
}

fn entry_for(brigade: &Brigade) -> Entry {
    GeomWithData::new(
        brigade.position.unit_vector(),
        Slot {
            brigade: brigade.id.clone(),
            position: brigade.position,
        },
    )
}

/// One ranking request, shared by the tier merges.
struct Query<'a> {
    travel_time: &'a (dyn TravelTime + Send + Sync),
    at: &'a Position,
    point: [f64; 3],
    excluded: &'a [BrigadeId],
    limit: usize,
}

/// One tree's nearest-first walk, and the largest ETA it has produced so far: every brigade it
/// has not produced yet is at least that far away (up to [`MERGE_LOOKAHEAD`]).
struct Walk<I> {
    mode: Mode,
    entries: I,
    frontier: Option<Duration>,
    exhausted: bool,
}

impl Query<'_> {
    /// Appends to `ranked`, in ranking order, the candidates from `trees` (one tier) until
    /// `ranked` holds `limit` or the trees run out.
    fn merge<'t>(
        &self,
        trees: impl Iterator<Item = (&'t TreeKey, &'t RTree<Entry>)>,
        preferred: bool,
        ranked: &mut Vec<Candidate>,
    ) {
        let mut walks: Vec<_> = trees
            .map(|((mode, _), tree)| Walk {
                mode: *mode,
                entries: tree.nearest_neighbor_iter(self.point),
                frontier: None,
                exhausted: false,
            })
            .collect();
        // Pulled but not yet emitted, smallest (eta, id) on top.
        let mut pending: BinaryHeap<Reverse<(Duration, BrigadeId)>> = BinaryHeap::new();
        while ranked.len() < self.limit {
            // Pull until every unfinished walk is past the best pending ETA by the lookahead:
            // then nothing still inside the trees can rank before it.
            loop {
                let horizon = pending
                    .peek()
                    .map(|Reverse((eta, _))| eta.saturating_add(MERGE_LOOKAHEAD));
                let mut pulled = false;
                for walk in walks.iter_mut().filter(|walk| !walk.exhausted) {
                    let behind = match (walk.frontier, horizon) {
                        (Some(frontier), Some(horizon)) => frontier <= horizon,
                        _ => true,
                    };
                    if !behind {
                        continue;
                    }
                    pulled = true;
                    let Some(entry) = walk.entries.next() else {
                        walk.exhausted = true;
                        continue;
                    };
                    let slot = &entry.data;
                    let eta = self.travel_time.eta(&slot.position, self.at, walk.mode);
                    walk.frontier = Some(walk.frontier.map_or(eta, |f| f.max(eta)));
                    if !self.excluded.contains(&slot.brigade) {
                        pending.push(Reverse((eta, slot.brigade.clone())));
                    }
                }
                if !pulled {
                    break;
                }
            }
            let Some(Reverse((eta, brigade))) = pending.pop() else {
                return;
            };
            ranked.push(Candidate {
                brigade,
                eta,
                preferred,
            });
        }
    }
}

/// Incidents waiting for a unit, most urgent first: higher priority, then earlier first press,
/// then incident id (so every node drains the queue in the same order).
#[derive(Debug, Clone, Default)]
pub struct PendingQueue {
    order: BTreeSet<PendingKey>,
    keys: HashMap<IncidentId, PendingKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PendingKey {
    priority: Reverse<Priority>,
    first_press_at: Timestamp,
    incident: IncidentId,
}

impl PendingQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `incident`, or moves it to its new place if already queued (its priority changed
    /// after classification). Returns whether it was newly added.
    pub fn push(&mut self, incident: &Incident) -> bool {
        let key = PendingKey {
            priority: Reverse(incident.priority),
            first_press_at: incident.first_press_at,
            incident: incident.id.clone(),
        };
        let previous = self.keys.insert(incident.id.clone(), key.clone());
        if let Some(previous) = &previous {
            self.order.remove(previous);
        }
        self.order.insert(key);
        debug_assert_eq!(self.order.len(), self.keys.len());
        previous.is_none()
    }

    /// Takes `incident` out of the queue; returns whether it was queued.
    pub fn remove(&mut self, incident: &IncidentId) -> bool {
        let Some(key) = self.keys.remove(incident) else {
            return false;
        };
        let removed = self.order.remove(&key);
        debug_assert!(removed);
        true
    }

    pub fn contains(&self, incident: &IncidentId) -> bool {
        self.keys.contains_key(incident)
    }

    /// Queued incidents, most urgent first.
    pub fn iter(&self) -> impl Iterator<Item = &IncidentId> {
        self.order.iter().map(|key| &key.incident)
    }

    pub fn first(&self) -> Option<&IncidentId> {
        self.order.first().map(|key| &key.incident)
    }

    pub fn pop_first(&mut self) -> Option<IncidentId> {
        let key = self.order.pop_first()?;
        self.keys.remove(&key.incident);
        Some(key.incident)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ButtonId, CameraId};

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn pos(lat: f64, lon: f64) -> Position {
        Position::new(lat, lon).unwrap()
    }

    fn br(id: &str, mode: Mode, caps: Capabilities, lat: f64, lon: f64) -> Brigade {
        Brigade::new(
            BrigadeId::new(id).unwrap(),
            id.into(),
            mode,
            caps,
            pos(lat, lon),
            t(0),
        )
    }

    fn index() -> BrigadeIndex {
        BrigadeIndex::new(Arc::new(StraightLine::default()))
    }

    fn ids(candidates: &[Candidate]) -> Vec<&str> {
        candidates.iter().map(|c| c.brigade.as_str()).collect()
    }

    const PLAZA_MAYOR: (f64, f64) = (-12.0464, -77.0300);

    #[test]
    fn straight_line_eta() {
        let a = pos(0.0, 0.0);
        let b = pos(0.0, 0.01); // about 1113 m
        let eta = StraightLine::default().eta(&a, &b, Mode::Foot);
        let expected = a.distance_m(&b) * 1.3 / 1.4;
        assert!((eta.as_secs_f64() - expected).abs() < 1e-6);
        assert_eq!(
            StraightLine::default().eta(&a, &a, Mode::Car),
            Duration::ZERO
        );
        assert_eq!(
            StraightLine { road_factor: 1e300 }.eta(&a, &b, Mode::Car),
            Duration::MAX
        );
    }

    #[test]
    fn default_policy() {
        let policy = Policy::default();
        assert_eq!(
            policy.allowed_modes(IncidentKind::VehicleTheft),
            &[Mode::Motorcycle, Mode::Car]
        );
        assert_eq!(policy.allowed_modes(IncidentKind::Medical), &Mode::ALL);
        assert!(
            policy
                .preferred(IncidentKind::Robbery)
                .contains(Capability::NonLethalArmed)
        );
        assert!(
            policy
                .preferred(IncidentKind::Assault)
                .contains(Capability::NonLethalArmed)
        );
        assert!(
            policy
                .preferred(IncidentKind::Medical)
                .contains(Capability::FirstAid)
        );
        assert!(policy.preferred(IncidentKind::Unclassified).is_empty());
        assert!(!policy.is_preferred(IncidentKind::Other, Capabilities::all()));
        assert!(policy.is_preferred(IncidentKind::Medical, Capabilities::all()));
    }

    #[test]
    #[should_panic(expected = "allows no mode")]
    fn policy_refuses_a_kind_nobody_may_attend() {
        Policy::default().set(IncidentKind::Other, &[], Capabilities::EMPTY);
    }

    #[test]
    fn preferred_beats_faster_and_modes_are_filtered() {
        let (lat, lon) = PLAZA_MAYOR;
        let armed = Capabilities::from(Capability::NonLethalArmed);
        let fleet = vec![
            br(
                "near-foot",
                Mode::Foot,
                Capabilities::EMPTY,
                lat + 0.0005,
                lon,
            ),
            br("far-armed-car", Mode::Car, armed, lat + 0.02, lon),
            br(
                "mid-moto",
                Mode::Motorcycle,
                Capabilities::EMPTY,
                lat + 0.005,
                lon,
            ),
        ];
        let mut idx = index();
        for b in &fleet {
            assert!(idx.upsert(b));
        }
        let at = pos(lat, lon);
        let robbery = idx.rank(IncidentKind::Robbery, &at, &[], 3);
        assert_eq!(ids(&robbery), ["far-armed-car", "near-foot", "mid-moto"]);
        assert!(robbery[0].preferred && !robbery[1].preferred);
        let theft = idx.rank(IncidentKind::VehicleTheft, &at, &[], 3);
        assert_eq!(ids(&theft), ["mid-moto", "far-armed-car"]);
        let policy = Policy::default();
        let linear = linear_rank(
            &fleet,
            &StraightLine::default(),
            &policy,
            IncidentKind::Robbery,
            &at,
            &[],
            3,
        );
        assert_eq!(linear, robbery);
    }

    #[test]
    fn ties_break_by_id_and_exclusions_apply() {
        let (lat, lon) = PLAZA_MAYOR;
        let mut idx = index();
        for id in ["c", "a", "b"] {
            idx.upsert(&br(id, Mode::Car, Capabilities::EMPTY, lat + 0.003, lon));
        }
        let at = pos(lat, lon);
        assert_eq!(
            ids(&idx.rank(IncidentKind::Other, &at, &[], 10)),
            ["a", "b", "c"]
        );
        let excluded = [BrigadeId::new("a").unwrap()];
        assert_eq!(
            idx.best(IncidentKind::Other, &at, &excluded)
                .unwrap()
                .brigade
                .as_str(),
            "b"
        );
        assert!(idx.rank(IncidentKind::Other, &at, &[], 0).is_empty());
    }

    #[test]
    fn only_available_brigades_are_indexed() {
        let (lat, lon) = PLAZA_MAYOR;
        let mut idx = index();
        let mut b = br("b1", Mode::Car, Capabilities::EMPTY, lat, lon);
        assert!(idx.upsert(&b));
        assert!(idx.contains(&b.id));
        b.dispatch(IncidentId::new("I-1").unwrap(), t(1)).unwrap();
        assert!(!idx.upsert(&b));
        assert!(!idx.contains(&b.id));
        assert!(idx.is_empty());
        assert!(idx.best(IncidentKind::Other, &pos(lat, lon), &[]).is_none());
        b.release(t(2)).unwrap();
        b.move_to(pos(lat + 0.01, lon));
        b.mode = Mode::Motorcycle;
        idx.upsert(&b);
        assert_eq!(idx.len(), 1);
        let best = idx.best(IncidentKind::Other, &pos(lat, lon), &[]).unwrap();
        assert_eq!(
            best.eta,
            StraightLine::default().eta(&b.position, &pos(lat, lon), Mode::Motorcycle)
        );
        assert!(idx.remove(&b.id));
        assert!(!idx.remove(&b.id));
        assert_eq!(idx.len(), 0);
    }

    #[test]
    fn rebuild_matches_upserts() {
        let (lat, lon) = PLAZA_MAYOR;
        let mut fleet: Vec<Brigade> = (0..20)
            .map(|n| {
                let mode = Mode::ALL[n % 3];
                let caps = if n % 2 == 0 {
                    Capability::FirstAid.into()
                } else {
                    Capabilities::EMPTY
                };
                br(
                    &format!("B{n:02}"),
                    mode,
                    caps,
                    lat + n as f64 * 0.001,
                    lon - n as f64 * 0.0007,
                )
            })
            .collect();
        fleet[3].out_of_service(t(1)).unwrap();
        let mut bulk = index();
        bulk.rebuild(&fleet);
        let mut one_by_one = index();
        for b in &fleet {
            one_by_one.upsert(b);
        }
        assert_eq!(bulk.len(), 19);
        let at = pos(lat + 0.004, lon);
        assert_eq!(
            bulk.rank(IncidentKind::Medical, &at, &[], 20),
            one_by_one.rank(IncidentKind::Medical, &at, &[], 20)
        );
    }

    fn incident(id: &str, priority: Priority, first_press_ms: u64) -> Incident {
        let mut i = Incident::open(
            IncidentId::new(id).unwrap(),
            ButtonId::new("BTN-1").unwrap(),
            CameraId::new("CAM-1").unwrap(),
            pos(PLAZA_MAYOR.0, PLAZA_MAYOR.1),
            t(first_press_ms),
        );
        i.priority = priority;
        i
    }

    #[test]
    fn swap_advice_after_a_reclassification() {
        use crate::ids::OperatorId;
        use crate::incident::Actor;
        let (lat, lon) = PLAZA_MAYOR;
        let armed: Capabilities = Capability::NonLethalArmed.into();
        let mut foot = br("FOOT", Mode::Foot, Capabilities::EMPTY, lat, lon);
        let far_armed = br("ARMED", Mode::Car, armed, lat + 0.03, lon);
        let near_armed = br("ARMED2", Mode::Car, armed, lat + 0.01, lon);
        let plain = br("PLAIN", Mode::Car, Capabilities::EMPTY, lat + 0.001, lon);
        let mut i = incident("I-1", Priority::High, 0);
        foot.dispatch(i.id.clone(), t(1)).unwrap();
        i.assign(foot.id.clone(), Actor::Dispatcher { term: 1 }, t(1))
            .unwrap();
        let policy = Policy::default();
        let travel = StraightLine::default();
        let advise =
            |i: &Incident, fleet: &[Brigade]| swap_advice(&policy, &travel, i, fleet, t(5));
        let fleet = vec![
            foot.clone(),
            far_armed.clone(),
            near_armed.clone(),
            plain.clone(),
        ];
        // Unclassified prefers nothing: no advice.
        assert_eq!(advise(&i, &fleet), None);
        let operator = OperatorId::new("ana").unwrap();
        i.classify(operator.clone(), IncidentKind::Robbery, None, None, t(4))
            .unwrap();
        let advice = advise(&i, &fleet).expect("an armed car is free");
        assert_eq!(
            (advice.out.as_str(), advice.into.as_str(), advice.kind),
            ("FOOT", "ARMED2", IncidentKind::Robbery),
            "the nearest armed unit, not the nearer unarmed one"
        );
        // Cooling down or offline units are not free; with none left, no advice.
        let mut cooling = near_armed.clone();
        cooling.cooldown_until = Some(t(60_000));
        let mut offline = far_armed.clone();
        offline.status = BrigadeStatus::Offline;
        assert_eq!(
            advise(&i, &[foot.clone(), cooling.clone(), offline, plain.clone()]),
            None
        );
        let advice_far = advise(
            &i,
            &[foot.clone(), cooling, far_armed.clone(), plain.clone()],
        );
        assert_eq!(advice_far.unwrap().into.as_str(), "ARMED");
        // A unit on it that already fits: nothing to swap.
        let mut with_armed = i.clone();
        with_armed
            .assign(
                near_armed.id.clone(),
                Actor::Operator(operator.clone()),
                t(6),
            )
            .unwrap();
        assert_eq!(advise(&with_armed, &fleet), None);
        // The incident keeps it until a unit's part changes or it is classified again.
        i.advise_swap(Some(advice.clone())).unwrap();
        assert_eq!(i.swap.as_ref(), Some(&advice));
        let mut swapped = i.clone();
        swapped
            .unassign(&foot.id, Actor::Operator(operator.clone()), "swap", t(7))
            .unwrap();
        assert_eq!(swapped.swap, None, "out has left");
        i.classify(operator, IncidentKind::Medical, None, None, t(8))
            .unwrap();
        assert_eq!(i.swap, None, "advice was for the previous kind");
    }

    #[test]
    fn pending_queue_orders_by_priority_then_age_then_id() {
        let mut q = PendingQueue::new();
        assert!(q.push(&incident("I-3", Priority::High, 30)));
        assert!(q.push(&incident("I-1", Priority::Low, 10)));
        assert!(q.push(&incident("I-2", Priority::High, 20)));
        assert!(q.push(&incident("I-0", Priority::High, 20)));
        assert!(q.push(&incident("I-9", Priority::Critical, 99)));
        let order: Vec<&str> = q.iter().map(IncidentId::as_str).collect();
        assert_eq!(order, ["I-9", "I-0", "I-2", "I-3", "I-1"]);
        // Re-pushing re-positions instead of duplicating.
        assert!(!q.push(&incident("I-1", Priority::Critical, 10)));
        assert_eq!(q.len(), 5);
        assert_eq!(q.first().unwrap().as_str(), "I-1");
        assert!(q.remove(&IncidentId::new("I-2").unwrap()));
        assert!(!q.remove(&IncidentId::new("I-2").unwrap()));
        assert!(!q.contains(&IncidentId::new("I-2").unwrap()));
        assert_eq!(q.pop_first().unwrap().as_str(), "I-1");
        assert_eq!(q.pop_first().unwrap().as_str(), "I-9");
        assert_eq!(q.len(), 2);
        q.pop_first();
        q.pop_first();
        assert!(q.pop_first().is_none());
        assert!(q.is_empty());
    }
}
