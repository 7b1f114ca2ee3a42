//! The deterministic simulation's scenarios; see docs/simulation.md.

use centinela_sim::seeds;
use centinela_sim::{Config, Profile};

#[test]
fn calm() {
    let seeds = seeds::selected(0..2);
    seeds::run_all("calm", &seeds, |seed| Config::new(seed, Profile::Calm));
}
