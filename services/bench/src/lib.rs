//! Benchmark fixtures shared by the criterion benches in `benches/` (run them with
//! `cargo bench -p centinela-bench`; docs/benchmarks.md has the figures and the machine).
//!
//! Fleets are generated from a seed, so every run measures the same brigades and queries.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use centinela_core::brigade::{Brigade, BrigadeStatus, Capabilities, Capability, Mode};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, IncidentId};
use centinela_core::time::Timestamp;

/// Lima's Plaza Mayor: the centre of every generated fleet.
pub const CENTRE: (f64, f64) = (-12.0464, -77.0300);
/// Fleets spread over a square this many degrees wide (~20 km): Lima's metropolitan core.
const SPREAD_DEG: f64 = 0.18;

/// A point near the centre, uniformly in the square.
pub fn position(rng: &mut StdRng) -> Position {
    let lat = CENTRE.0 + rng.random_range(-SPREAD_DEG / 2.0..SPREAD_DEG / 2.0);
    let lon = CENTRE.1 + rng.random_range(-SPREAD_DEG / 2.0..SPREAD_DEG / 2.0);
    Position::new(lat, lon).expect("generated positions are valid")
}

/// `n` brigades of mixed modes and capabilities; `available` of them (a fraction) available,
/// the rest dispatched.
pub fn fleet(n: usize, available: f64, seed: u64) -> Vec<Brigade> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Timestamp::from_millis(1_795_817_112_000);
    (0..n)
        .map(|i| {
            let mode = [Mode::Foot, Mode::Motorcycle, Mode::Car][i % 3];
            let mut capabilities = Capabilities::default();
            if rng.random_bool(0.3) {
                capabilities.insert(Capability::NonLethalArmed);
            }
            if rng.random_bool(0.2) {
                capabilities.insert(Capability::FirstAid);
            }
            let mut brigade = Brigade::new(
                BrigadeId::new(format!("U{i:07}")).expect("valid id"),
                format!("unit {i}"),
                mode,
                capabilities,
                position(&mut rng),
                now,
            );
            if !rng.random_bool(available) {
                brigade
                    .dispatch(IncidentId::new("BUSY").expect("valid id"), now)
                    .expect("a new brigade can be dispatched");
                debug_assert_eq!(brigade.status, BrigadeStatus::Dispatched);
            }
            brigade
        })
        .collect()
}
