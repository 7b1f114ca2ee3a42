//! Nearest suitable brigade: the rstar index against a linear scan, on the same fleet and the
//! same query points, at 100, 10k and 1M brigades with 10% and 100% of them available.
//!
//! The scan is the fair one: a single pass keeping the best candidate by the dispatcher's own
//! order (`Candidate::cmp_rank`), O(n). (`linear_rank`, the reference the property tests
//! compare the index with, sorts every candidate and would flatter the index.)

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

use centinela_bench::{fleet, position};
use centinela_core::brigade::Brigade;
use centinela_core::dispatch::{BrigadeIndex, Candidate, Policy, StraightLine, TravelTime};
use centinela_core::geo::Position;
use centinela_core::incident::IncidentKind;

fn nearest(c: &mut Criterion) {
    let travel = Arc::new(StraightLine::default());
    let policy = Policy::default();
    let mut rng = StdRng::seed_from_u64(7);
    let queries: Vec<_> = (0..1024).map(|_| position(&mut rng)).collect();
    let mut group = c.benchmark_group("nearest");
    for n in [100usize, 10_000, 1_000_000] {
        for available in [0.1, 1.0] {
            let brigades = fleet(n, available, 42);
            let mut index = BrigadeIndex::new(travel.clone());
            index.rebuild(brigades.iter());
            let label = format!("{n}/{}%", (available * 100.0) as u32);
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new("rstar", &label), |b| {
                b.iter(|| {
                    i = (i + 1) % queries.len();
                    index.best(IncidentKind::Robbery, &queries[i], &[])
                })
            });
            // A million-brigade scan takes milliseconds per query: fewer samples keep the run
            // short without changing the answer.
            if n >= 1_000_000 {
                group.sample_size(10);
            }
            group.bench_function(BenchmarkId::new("scan", &label), |b| {
                b.iter(|| {
                    i = (i + 1) % queries.len();
                    scan_best(&brigades, travel.as_ref(), &policy, &queries[i])
                })
            });
            group.sample_size(100);
        }
    }
    group.finish();
}

/// One pass over every brigade, keeping the best eligible one (preferred first, then least
/// travel time, then smallest id: the dispatcher's order), without allocating.
fn scan_best(
    brigades: &[Brigade],
    travel: &StraightLine,
    policy: &Policy,
    at: &Position,
) -> Option<Candidate> {
    let kind = IncidentKind::Robbery;
    let preferred = policy.preferred(kind);
    let mut best: Option<(bool, std::time::Duration, &Brigade)> = None;
    for brigade in brigades.iter().filter(|b| policy.is_eligible(kind, b)) {
        let key = (
            brigade.capabilities.contains_all(preferred),
            travel.eta(&brigade.position, at, brigade.mode),
            brigade,
        );
        let better = match &best {
            None => true,
            Some((p, eta, b)) => (!key.0, key.1, &key.2.id) < (!*p, *eta, &b.id),
        };
        if better {
            best = Some(key);
        }
    }
    best.map(|(preferred, eta, brigade)| Candidate {
        brigade: brigade.id.clone(),
        eta,
        preferred,
    })
}

criterion_group!(benches, nearest);
criterion_main!(benches);
