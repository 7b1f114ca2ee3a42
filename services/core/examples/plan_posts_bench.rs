//! The plan-posts benchmark of docs/benchmarks.md: a synthetic metropolitan city of 1,000
//! buttons (a 25 km square, half of them in a dozen dense districts), recency weights over a
//! year of incidents, 200 brigades by car with a 2-minute target; exact (branch and bound
//! with its node budget) against lazy greedy, time and coverage. Seeded: the same figures on
//! every run of the same build.
//!
//! `cargo run --release -p centinela-core --example plan_posts_bench [BUTTONS BRIGADES MINUTES]`

use std::time::{Duration, Instant};

use centinela_core::brigade::Mode;
use centinela_core::dispatch::StraightLine;
use centinela_core::geo::Position;
use centinela_core::limits::{POSTS_DEMAND_HALF_LIFE, POSTS_EXACT_NODES_MAX};
use centinela_core::posts::{self, Demand, Problem, recency_weight};

struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: f64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let buttons = arg(0, 1_000.0) as usize;
    let brigades = arg(1, 200.0) as u32;
    let minutes = arg(2, 2.0);

    let mut rng = Lcg(2026);
    // Lima's centre; a degree of latitude is 111 km, of longitude here about 108.7 km.
    let (lat0, lon0) = (-12.05, -77.03);
    let side_deg = (25.0 / 111.0, 25.0 / 108.7);
    let districts: Vec<(f64, f64)> = (0..12)
        .map(|_| (rng.unit() * side_deg.0, rng.unit() * side_deg.1))
        .collect();
    let mut demands = Vec::with_capacity(buttons);
    for i in 0..buttons {
        let (dlat, dlon) = if i % 2 == 0 {
            let (c_lat, c_lon) = districts[i % districts.len()];
            // Within about 1.5 km of the district's centre.
            (
                c_lat + (rng.unit() - 0.5) * 0.027,
                c_lon + (rng.unit() - 0.5) * 0.027,
            )
        } else {
            (rng.unit() * side_deg.0, rng.unit() * side_deg.1)
        };
        let position = Position::new(lat0 - dlat, lon0 + dlon).expect("inside Lima");
        // 0 to 20 incidents over the last year, each at a random age.
        let incidents = (rng.unit() * 21.0) as usize;
        let weight = (0..incidents)
            .map(|_| {
                let age = Duration::from_secs_f64(rng.unit() * 365.0 * 86_400.0);
                recency_weight(age, POSTS_DEMAND_HALF_LIFE)
            })
            .sum();
        demands.push(Demand { position, weight });
    }
    let candidates: Vec<Position> = demands.iter().map(|d| d.position).collect();
    let target = Duration::from_secs_f64(minutes * 60.0);

    let started = Instant::now();
    let problem = Problem::new(
        &demands,
        &candidates,
        &StraightLine::default(),
        Mode::Car,
        target,
    )
    .expect("within the planner's limits");
    let build = started.elapsed();

    let started = Instant::now();
    let greedy = posts::greedy(&problem, brigades as usize);
    let greedy_time = started.elapsed();

    let started = Instant::now();
    let exact = posts::exact(&problem, brigades as usize, POSTS_EXACT_NODES_MAX);
    let exact_time = started.elapsed();

    println!(
        "{buttons} buttons, {brigades} brigades, {minutes} min by car; coverage table {:.1} ms",
        build.as_secs_f64() * 1e3
    );
    for (name, plan, time) in [
        ("greedy", &greedy, greedy_time),
        ("exact", &exact, exact_time),
    ] {
        println!(
            "{name:>6}: {:>8.1} ms, {} posts, coverage {:.4}, proven optimal {}, upper bound {:.4}, nodes {}",
            time.as_secs_f64() * 1e3,
            plan.posts.len(),
            plan.coverage(),
            plan.optimal,
            plan.upper_bound(),
            plan.nodes,
        );
    }
}
