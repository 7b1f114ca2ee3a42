//! Where brigades should wait: the maximal covering location problem (MCLP).
//!
//! Given demand points (where help was needed, each with a weight), candidate posts (where a
//! brigade may wait) and a coverage rule (a post covers a demand point when the travel time
//! from the post to the point is at most the target), choose N posts that maximise the covered
//! weight. A demand point covered by several posts counts once.
//!
//! Two solvers:
//! - [`exact`]: depth-first branch and bound. It branches on the candidate with the largest
//!   marginal gain (take it, or rule it out) and prunes with the bound "covered so far + the
//!   sum of the k largest marginal gains left", valid because coverage is submodular (a set of
//!   k posts never gains more than the sum of what each would gain alone). It starts from the
//!   greedy plan, so it is never worse; past [`limits::POSTS_EXACT_NODES_MAX`] nodes it stops
//!   and says the plan is not proven optimal.
//! - [`greedy`]: lazy greedy (Minoux): take the candidate with the largest marginal gain, N
//!   times, re-evaluating a candidate only when its stale gain is on top of the heap. Coverage
//!   is monotone submodular, so greedy covers at least (1 − 1/e) ≈ 63.2 % of the optimum
//!   (Nemhauser, Wolsey and Fisher, 1978). [`Plan::upper_bound`] reports the tighter of that
//!   guarantee and the plan's own submodular bound (the plan's weight plus the N largest
//!   marginal gains left over it), which on real instances is far closer.
//!
//! [`solve`] picks exact up to [`limits::POSTS_EXACT_CANDIDATES_MAX`] candidates, greedy above.
//! Recency weighting ([`recency_weight`]) and the choice of demand points and candidates are
//! the caller's (the operator service uses archived presses at button positions; see
//! docs/plan-posts.md). Everything here is pure and deterministic: ties break on the lower
//! candidate index.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::brigade::Mode;
use crate::dispatch::TravelTime;
use crate::geo::Position;
use crate::limits;

/// The greedy method's guarantee: its plan covers at least this share of the optimum.
pub const GREEDY_BOUND: f64 = 1.0 - 1.0 / std::f64::consts::E;

/// Weights below this are treated as zero: sums of many recency weights are not exact, and a
/// gain smaller than this must not decide a branch.
const WEIGHT_EPSILON: f64 = 1e-9;

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("brigades must be at least 1 (got 0)")]
    NoBrigades,
    #[error("brigades {0} is over the limit of {max}", max = limits::POSTS_BRIGADES_MAX)]
    TooManyBrigades(u32),
    #[error("no demand to cover: no presses in the period")]
    NoDemand,
    #[error("no candidate posts: no buttons to wait at")]
    NoCandidates,
    #[error("{what} {count} is over the limit of {max}", max = limits::POSTS_CANDIDATES_MAX)]
    TooLarge { what: &'static str, count: usize },
    #[error("demand weight {0} is not a finite non-negative number")]
    BadWeight(f64),
}

/// A place where help was needed, and how much it counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    pub position: Position,
    /// Non-negative; e.g. the recency-weighted number of incidents at a button.
    pub weight: f64,
}

/// Which solver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Exact up to [`limits::POSTS_EXACT_CANDIDATES_MAX`] candidates, greedy above.
    Auto,
    Exact,
    Greedy,
}

/// A coverage instance: demand weights and which demand points each candidate covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    weights: Vec<f64>,
    /// `covers[c]`: indices of the demand points candidate `c` covers, ascending.
    covers: Vec<Vec<u32>>,
}

impl Problem {
    /// Builds the instance from positions with the travel-time model: candidate `c` covers
    /// demand `d` when a brigade in `mode` waiting at `c` reaches `d` within `target`.
    pub fn new(
        demands: &[Demand],
        candidates: &[Position],
        travel: &(dyn TravelTime + Send + Sync),
        mode: Mode,
        target: Duration,
    ) -> Result<Self, Error> {
        let covers = candidates
            .iter()
            .map(|post| {
                demands
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| travel.eta(post, &d.position, mode) <= target)
                    .map(|(i, _)| i as u32)
                    .collect()
            })
            .collect();
        Self::from_covers(demands.iter().map(|d| d.weight).collect(), covers)
    }

    /// An instance from its weights and coverage sets directly (tests, benchmarks).
    pub fn from_covers(weights: Vec<f64>, covers: Vec<Vec<u32>>) -> Result<Self, Error> {
        if let Some(bad) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return Err(Error::BadWeight(*bad));
        }
        for (what, count) in [
            ("demand points", weights.len()),
            ("candidates", covers.len()),
        ] {
            if count > limits::POSTS_CANDIDATES_MAX {
                return Err(Error::TooLarge { what, count });
            }
        }
        debug_assert!(
            covers
                .iter()
                .flatten()
                .all(|&d| (d as usize) < weights.len()),
            "a cover names a demand point that does not exist"
        );
        Ok(Self { weights, covers })
    }

    pub fn candidates(&self) -> usize {
        self.covers.len()
    }

    /// The weight of every demand point.
    pub fn total_weight(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// The weight covered by posts at these candidates (each demand point once).
    pub fn covered_weight(&self, posts: &[usize]) -> f64 {
        let mut covered = vec![false; self.weights.len()];
        for &post in posts {
            for &d in &self.covers[post] {
                covered[d as usize] = true;
            }
        }
        covered
            .iter()
            .zip(&self.weights)
            .filter(|(c, _)| **c)
            .map(|(_, w)| w)
            .sum()
    }
}

/// The share of demand weight that brigades at `posts` reach within `target` (0 with no
/// demand). What the city covers today, from its brigades' positions, is this over them.
pub fn coverage(
    demands: &[Demand],
    posts: &[Position],
    travel: &(dyn TravelTime + Send + Sync),
    mode: Mode,
    target: Duration,
) -> f64 {
    let total: f64 = demands.iter().map(|d| d.weight).sum();
    if total <= WEIGHT_EPSILON {
        return 0.0;
    }
    let covered: f64 = demands
        .iter()
        .filter(|d| {
            posts
                .iter()
                .any(|p| travel.eta(p, &d.position, mode) <= target)
        })
        .map(|d| d.weight)
        .sum();
    (covered / total).clamp(0.0, 1.0)
}

/// The weight of one press `age` old: halves every `half_life` (exponential decay).
pub fn recency_weight(age: Duration, half_life: Duration) -> f64 {
    if half_life.is_zero() {
        return if age.is_zero() { 1.0 } else { 0.0 };
    }
    0.5_f64.powf(age.as_secs_f64() / half_life.as_secs_f64())
}

/// Which solver produced a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    Exact,
    Greedy,
}

impl Solver {
    pub fn as_str(self) -> &'static str {
        match self {
            Solver::Exact => "exact",
            Solver::Greedy => "greedy",
        }
    }
}

/// A set of posts and what it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Candidate indices, in the order chosen. Fewer than asked when more posts would cover
    /// nothing more (every coverable point is already covered) or there are fewer candidates.
    pub posts: Vec<usize>,
    pub covered_weight: f64,
    pub total_weight: f64,
    pub solver: Solver,
    /// Whether the plan is proven to cover the most any plan can.
    pub optimal: bool,
    /// An upper bound on the optimum's covered weight: the plan's own weight when optimal;
    /// otherwise the tighter of greedy's guarantee and the branch-and-bound root bound.
    pub upper_bound_weight: f64,
    /// Branch-and-bound nodes visited (0 for greedy).
    pub nodes: u64,
}

impl Plan {
    /// Covered share of the demand, 0..=1 (0 with no demand).
    pub fn coverage(&self) -> f64 {
        share(self.covered_weight, self.total_weight)
    }

    /// Upper bound on the best possible share, 0..=1.
    pub fn upper_bound(&self) -> f64 {
        share(self.upper_bound_weight, self.total_weight)
    }
}

fn share(part: f64, total: f64) -> f64 {
    if total <= WEIGHT_EPSILON {
        0.0
    } else {
        (part / total).clamp(0.0, 1.0)
    }
}

/// Checks the request and solves it with `method`.
pub fn solve(problem: &Problem, brigades: u32, method: Method) -> Result<Plan, Error> {
    if brigades == 0 {
        return Err(Error::NoBrigades);
    }
    if brigades > limits::POSTS_BRIGADES_MAX {
        return Err(Error::TooManyBrigades(brigades));
    }
    if problem.total_weight() <= WEIGHT_EPSILON {
        return Err(Error::NoDemand);
    }
    if problem.candidates() == 0 {
        return Err(Error::NoCandidates);
    }
    let n = brigades as usize;
    Ok(match method {
        Method::Exact => exact(problem, n, limits::POSTS_EXACT_NODES_MAX),
        Method::Greedy => greedy(problem, n),
        Method::Auto if problem.candidates() <= limits::POSTS_EXACT_CANDIDATES_MAX => {
            exact(problem, n, limits::POSTS_EXACT_NODES_MAX)
        }
        Method::Auto => greedy(problem, n),
    })
}

/// A heap entry: a candidate and its (possibly stale) marginal gain.
#[derive(PartialEq)]
struct Entry {
    gain: f64,
    candidate: usize,
}

impl Eq for Entry {}

impl Ord for Entry {
    /// Largest gain first; on a tie, the lower candidate index.
    fn cmp(&self, other: &Self) -> Ordering {
        self.gain
            .total_cmp(&other.gain)
            .then_with(|| other.candidate.cmp(&self.candidate))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn gain(problem: &Problem, covered: &[u32], candidate: usize) -> f64 {
    problem.covers[candidate]
        .iter()
        .filter(|&&d| covered[d as usize] == 0)
        .map(|&d| problem.weights[d as usize])
        .sum()
}

/// Lazy greedy: at least (1 − 1/e) of the optimum. Stops early when no candidate adds weight.
pub fn greedy(problem: &Problem, brigades: usize) -> Plan {
    let mut covered = vec![0u32; problem.weights.len()];
    let mut heap: BinaryHeap<Entry> = (0..problem.candidates())
        .map(|candidate| Entry {
            gain: gain(problem, &covered, candidate),
            candidate,
        })
        .collect();
    let mut posts = Vec::with_capacity(brigades);
    let mut covered_weight = 0.0;
    while posts.len() < brigades {
        let Some(top) = heap.pop() else { break };
        let fresh = gain(problem, &covered, top.candidate);
        // Gains only shrink as posts are added, so a fresh gain still at least the next stale
        // one is the true maximum.
        let next = heap.peek().map_or(f64::NEG_INFINITY, |e| e.gain);
        if fresh + WEIGHT_EPSILON < next {
            heap.push(Entry {
                gain: fresh,
                candidate: top.candidate,
            });
            continue;
        }
        if fresh <= WEIGHT_EPSILON {
            break;
        }
        for &d in &problem.covers[top.candidate] {
            covered[d as usize] += 1;
        }
        covered_weight += fresh;
        posts.push(top.candidate);
    }
    let total_weight = problem.total_weight();
    // Stopping early because nothing adds weight means every coverable point is covered: that
    // is optimal. Otherwise greedy's guarantee bounds the optimum.
    let saturated = posts.len() < brigades;
    let upper_bound_weight = if saturated {
        covered_weight
    } else {
        // Two bounds on the optimum, the tighter one reported: greedy's guarantee, and the
        // data-dependent one submodularity gives for any set S (here the plan): no N posts
        // cover more than S plus the N largest marginal gains over S.
        let mut gains: Vec<f64> = (0..problem.candidates())
            .map(|c| gain(problem, &covered, c))
            .collect();
        gains.sort_by(|a, b| b.total_cmp(a));
        let online = covered_weight + gains.iter().take(brigades).sum::<f64>();
        (covered_weight / GREEDY_BOUND)
            .min(online)
            .min(total_weight)
    };
    Plan {
        posts,
        covered_weight,
        total_weight,
        solver: Solver::Greedy,
        optimal: saturated || covered_weight >= total_weight - WEIGHT_EPSILON,
        upper_bound_weight,
        nodes: 0,
    }
}

/// Branch-and-bound state.
struct Search<'a> {
    problem: &'a Problem,
    brigades: usize,
    covered: Vec<u32>,
    excluded: Vec<bool>,
    chosen: Vec<usize>,
    best: Vec<usize>,
    best_weight: f64,
    nodes: u64,
    nodes_max: u64,
    aborted: bool,
    root_bound: Option<f64>,
}

impl Search<'_> {
    fn run(&mut self, covered_weight: f64) {
        self.nodes += 1;
        if self.nodes > self.nodes_max {
            self.aborted = true;
            return;
        }
        if covered_weight > self.best_weight + WEIGHT_EPSILON {
            self.best_weight = covered_weight;
            self.best.clone_from(&self.chosen);
        }
        let left = self.brigades - self.chosen.len();
        if left == 0 {
            return;
        }
        let mut gains: Vec<(f64, usize)> = (0..self.problem.candidates())
            // A chosen candidate gains nothing more: its points are all covered.
            .filter(|&c| !self.excluded[c])
            .map(|c| (gain(self.problem, &self.covered, c), c))
            .filter(|(g, _)| *g > WEIGHT_EPSILON)
            .collect();
        if gains.is_empty() {
            return;
        }
        gains.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let bound = covered_weight + gains.iter().take(left).map(|(g, _)| g).sum::<f64>();
        self.root_bound.get_or_insert(bound);
        if bound <= self.best_weight + WEIGHT_EPSILON {
            return;
        }
        let (top_gain, candidate) = gains[0];
        // Take it…
        for &d in &self.problem.covers[candidate] {
            self.covered[d as usize] += 1;
        }
        self.chosen.push(candidate);
        self.run(covered_weight + top_gain);
        self.chosen.pop();
        for &d in &self.problem.covers[candidate] {
            self.covered[d as usize] -= 1;
        }
        if self.aborted {
            return;
        }
        // …or rule it out.
        self.excluded[candidate] = true;
        self.run(covered_weight);
        self.excluded[candidate] = false;
    }
}

/// Branch and bound from the greedy plan; proven optimal unless it visits more than
/// `nodes_max` nodes, in which case it returns the best plan found (never worse than greedy).
pub fn exact(problem: &Problem, brigades: usize, nodes_max: u64) -> Plan {
    let start = greedy(problem, brigades);
    let mut search = Search {
        problem,
        brigades,
        covered: vec![0; problem.weights.len()],
        excluded: vec![false; problem.candidates()],
        chosen: Vec::with_capacity(brigades),
        best: start.posts.clone(),
        best_weight: start.covered_weight,
        nodes: 0,
        nodes_max,
        aborted: false,
        root_bound: None,
    };
    if !start.optimal {
        search.run(0.0);
    }
    let optimal = start.optimal || !search.aborted;
    let upper_bound_weight = if optimal {
        search.best_weight
    } else {
        search
            .root_bound
            .unwrap_or(start.upper_bound_weight)
            .min(start.upper_bound_weight)
            .max(search.best_weight)
    };
    Plan {
        covered_weight: search.best_weight,
        posts: search.best,
        total_weight: start.total_weight,
        solver: Solver::Exact,
        optimal,
        upper_bound_weight,
        nodes: search.nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::StraightLine;

    /// A deterministic generator for random instances (no RNG dependency in core).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn pos(lat: f64, lon: f64) -> Position {
        Position::new(lat, lon).unwrap()
    }

    /// Every subset of size `n`: the optimum by brute force.
    fn brute_force(problem: &Problem, n: usize) -> f64 {
        let c = problem.candidates();
        let mut best = 0.0_f64;
        for mask in 0u32..(1 << c) {
            if mask.count_ones() as usize > n {
                continue;
            }
            let posts: Vec<usize> = (0..c).filter(|i| mask & (1 << i) != 0).collect();
            best = best.max(problem.covered_weight(&posts));
        }
        best
    }

    fn random_problem(rng: &mut Lcg) -> Problem {
        let demands = 1 + rng.below(14) as usize;
        let candidates = 1 + rng.below(12) as usize;
        let weights = (0..demands).map(|_| 1.0 + rng.below(9) as f64).collect();
        let covers = (0..candidates)
            .map(|_| {
                (0..demands as u32)
                    .filter(|_| rng.below(100) < 30)
                    .collect()
            })
            .collect();
        Problem::from_covers(weights, covers).unwrap()
    }

    /// Four neighbourhoods 5 km apart (central Lima and three others), each a cluster of
    /// buttons within 300 m; brigades by car with an 8-minute target cover one cluster from
    /// any post inside it and no other. With four brigades, the only optimum puts one in each.
    fn four_clusters() -> (Vec<Demand>, Vec<Position>) {
        let centres = [
            (-12.046, -77.043),
            (-12.091, -77.043),
            (-12.046, -76.997),
            (-12.091, -76.997),
        ];
        // Uneven sizes so greedy's order is fixed: 6, 5, 4, 3 buttons.
        let mut demands = Vec::new();
        for (k, (lat, lon)) in centres.iter().enumerate() {
            for i in 0..(6 - k) {
                let p = pos(lat + 0.0005 * i as f64, lon + 0.0004 * (i % 3) as f64);
                demands.push(Demand {
                    position: p,
                    weight: 1.0,
                });
            }
        }
        let candidates = demands.iter().map(|d| d.position).collect();
        (demands, candidates)
    }

    #[test]
    fn exact_puts_one_post_in_each_far_apart_cluster() {
        let (demands, candidates) = four_clusters();
        let travel = StraightLine::default();
        let problem = Problem::new(
            &demands,
            &candidates,
            &travel,
            Mode::Car,
            Duration::from_secs(8 * 60),
        )
        .unwrap();
        let plan = solve(&problem, 4, Method::Exact).unwrap();
        assert!(plan.optimal);
        assert_eq!(plan.solver, Solver::Exact);
        assert!((plan.coverage() - 1.0).abs() < 1e-12, "{plan:?}");
        let mut clusters: Vec<usize> = plan
            .posts
            .iter()
            .map(|&c| {
                // Which centre the post's button belongs to: the buttons are listed per cluster.
                [6, 11, 15, 18].iter().position(|&end| c < end).unwrap()
            })
            .collect();
        clusters.sort_unstable();
        assert_eq!(clusters, vec![0, 1, 2, 3]);
        // Three brigades: the three largest clusters, 15 of 18 buttons.
        let plan = solve(&problem, 3, Method::Exact).unwrap();
        assert!((plan.covered_weight - 15.0).abs() < 1e-12, "{plan:?}");
        assert!(plan.optimal);
    }

    /// Greedy's classic trap: a big central candidate that overlaps two halves. With two
    /// brigades greedy takes the centre first and is stuck below the optimum; exact is not.
    #[test]
    fn exact_beats_greedy_where_greedy_is_trapped() {
        // Demand points 0..6; candidate 0 covers 1..=4 (weight 4), candidate 1 covers 0..=2,
        // candidate 2 covers 3..=5.
        let weights = vec![1.0; 6];
        let covers = vec![vec![1, 2, 3, 4], vec![0, 1, 2], vec![3, 4, 5]];
        let problem = Problem::from_covers(weights, covers).unwrap();
        let greedy_plan = solve(&problem, 2, Method::Greedy).unwrap();
        let exact_plan = solve(&problem, 2, Method::Exact).unwrap();
        assert_eq!(greedy_plan.posts[0], 0);
        assert!((greedy_plan.covered_weight - 5.0).abs() < 1e-12);
        assert!(!greedy_plan.optimal);
        assert!((exact_plan.covered_weight - 6.0).abs() < 1e-12);
        let mut posts = exact_plan.posts.clone();
        posts.sort_unstable();
        assert_eq!(posts, vec![1, 2]);
        // Greedy's reported bound must hold the true optimum.
        assert!(greedy_plan.upper_bound_weight >= 6.0 - 1e-9);
    }

    #[test]
    fn exact_matches_brute_force_and_greedy_keeps_its_bound_on_random_instances() {
        let mut rng = Lcg(0x5eed_2026);
        for round in 0..300 {
            let problem = random_problem(&mut rng);
            let n = 1 + rng.below(4) as usize;
            let optimum = brute_force(&problem, n);
            let exact_plan = exact(&problem, n, u64::MAX);
            let greedy_plan = greedy(&problem, n);
            assert!(exact_plan.optimal, "round {round}");
            assert!(
                (exact_plan.covered_weight - optimum).abs() < 1e-9,
                "round {round}: exact {} optimum {optimum}",
                exact_plan.covered_weight
            );
            assert!(
                (problem.covered_weight(&exact_plan.posts) - exact_plan.covered_weight).abs()
                    < 1e-9,
                "round {round}: the posts must cover what the plan says"
            );
            assert!(exact_plan.posts.len() <= n);
            assert!(
                greedy_plan.covered_weight >= GREEDY_BOUND * optimum - 1e-9,
                "round {round}: greedy {} under (1-1/e)·{optimum}",
                greedy_plan.covered_weight
            );
            assert!(
                greedy_plan.upper_bound_weight >= optimum - 1e-9,
                "round {round}"
            );
        }
    }

    #[test]
    fn exact_out_of_nodes_returns_at_least_greedy_and_says_so() {
        let mut rng = Lcg(7);
        let weights = (0..200).map(|_| 1.0 + rng.below(5) as f64).collect();
        let covers = (0..60)
            .map(|_| (0..200).filter(|_| rng.below(100) < 8).collect())
            .collect();
        let problem = Problem::from_covers(weights, covers).unwrap();
        let greedy_plan = greedy(&problem, 10);
        let plan = exact(&problem, 10, 50);
        assert!(!plan.optimal);
        assert!(plan.covered_weight >= greedy_plan.covered_weight - 1e-9);
        assert!(plan.upper_bound_weight >= plan.covered_weight);
        assert!(plan.nodes > 50);
    }

    #[test]
    fn degenerate_inputs_give_clear_errors_or_results() {
        let problem = Problem::from_covers(vec![1.0, 2.0], vec![vec![0], vec![1]]).unwrap();
        assert_eq!(solve(&problem, 0, Method::Auto), Err(Error::NoBrigades));
        assert_eq!(
            solve(&problem, limits::POSTS_BRIGADES_MAX + 1, Method::Auto),
            Err(Error::TooManyBrigades(limits::POSTS_BRIGADES_MAX + 1))
        );
        let empty = Problem::from_covers(vec![], vec![vec![]]).unwrap();
        assert_eq!(solve(&empty, 2, Method::Auto), Err(Error::NoDemand));
        let zero = Problem::from_covers(vec![0.0], vec![vec![0]]).unwrap();
        assert_eq!(solve(&zero, 2, Method::Auto), Err(Error::NoDemand));
        let none = Problem::from_covers(vec![1.0], vec![]).unwrap();
        assert_eq!(solve(&none, 2, Method::Auto), Err(Error::NoCandidates));
        assert!(matches!(
            Problem::from_covers(vec![f64::NAN], vec![]),
            Err(Error::BadWeight(_))
        ));
        // More brigades than candidates: every useful candidate, full coverage, optimal.
        for method in [Method::Exact, Method::Greedy] {
            let plan = solve(&problem, 5, method).unwrap();
            let mut posts = plan.posts.clone();
            posts.sort_unstable();
            assert_eq!(posts, vec![0, 1]);
            assert!((plan.coverage() - 1.0).abs() < 1e-12);
            assert!(plan.optimal);
        }
        // A demand point no candidate reaches caps the coverage below 1, and more brigades
        // than useful posts stop early instead of stacking posts.
        let partial = Problem::from_covers(vec![1.0, 3.0], vec![vec![0], vec![0]]).unwrap();
        let plan = solve(&partial, 2, Method::Auto).unwrap();
        assert_eq!(plan.posts.len(), 1);
        assert!((plan.coverage() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn auto_switches_to_greedy_above_the_switch_point() {
        let n = limits::POSTS_EXACT_CANDIDATES_MAX + 1;
        let problem =
            Problem::from_covers(vec![1.0; n], (0..n as u32).map(|d| vec![d]).collect()).unwrap();
        assert_eq!(
            solve(&problem, 3, Method::Auto).unwrap().solver,
            Solver::Greedy
        );
        let small = Problem::from_covers(vec![1.0], vec![vec![0]]).unwrap();
        assert_eq!(
            solve(&small, 1, Method::Auto).unwrap().solver,
            Solver::Exact
        );
    }

    #[test]
    fn recency_weight_halves_every_half_life() {
        let half = Duration::from_secs(86_400);
        assert!((recency_weight(Duration::ZERO, half) - 1.0).abs() < 1e-12);
        assert!((recency_weight(half, half) - 0.5).abs() < 1e-12);
        assert!((recency_weight(half * 3, half) - 0.125).abs() < 1e-12);
    }

    #[test]
    fn coverage_counts_each_demand_once_and_zero_without_demand() {
        let travel = StraightLine::default();
        let a = pos(-12.046, -77.043);
        let far = pos(-12.2, -77.2);
        let demands = [
            Demand {
                position: a,
                weight: 3.0,
            },
            Demand {
                position: far,
                weight: 1.0,
            },
        ];
        let five = Duration::from_secs(300);
        let c = coverage(&demands, &[a, a], &travel, Mode::Car, five);
        assert!((c - 0.75).abs() < 1e-12);
        assert_eq!(coverage(&[], &[a], &travel, Mode::Car, five), 0.0);
        assert_eq!(coverage(&demands, &[], &travel, Mode::Car, five), 0.0);
    }
}
