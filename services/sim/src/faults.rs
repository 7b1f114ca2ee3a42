//! The fault model: which faults a scenario draws, and when, all from the run's seed.

use rand::Rng;
use rand::rngs::StdRng;

/// One fault, applied by the driver in `lib.rs` and undone when its time is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Site A's hosts cannot reach site B's (both ways); the store stays reachable from the
    /// side named.
    SitePartition { store_with_a: bool },
    /// Messages from `from` to `to` are dropped; the other direction works.
    OneWay { from: String, to: String },
    /// Random links between servers (nodes and store) cut and healed every few hundred ms.
    Swizzle,
    /// Messages between `a` and `b` are held back (then delivered, late and in a burst).
    Hold { a: String, b: String },
    /// Every message between `a` and `b` takes `ms` milliseconds.
    Latency { a: String, b: String, ms: u64 },
    /// `node` crashes (all its state and tasks gone) and restarts when the fault ends.
    Crash { node: String },
    /// Whoever leads the dispatcher election at that moment crashes, restarting later.
    CrashLeader,
    /// `node` crashes and restarts at once.
    Bounce { node: String },
    /// `nodes` cannot reach the store (both ways) for longer than the lease TTL.
    StoreOutage { nodes: Vec<String> },
    /// Whatever the leader sends the store, and the store it, is held back for longer than the
    /// lease TTL, then delivered at once: a paused leader waking up with stale writes in flight.
    HoldLeader,
}

/// Which faults a scenario draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// None: the baseline.
    Calm,
    /// Site partitions, one-way partitions, swizzles, held and delayed messages.
    Partitions,
    /// Crashes and restarts of nodes, the leader included.
    Crashes,
    /// The store unreachable from some or all nodes for longer than the lease TTL.
    StoreOutage,
    /// Everything above.
    Chaos,
}

/// A fault and when (simulated ms) it starts and ends.
#[derive(Clone, Debug)]
pub struct Planned {
    pub at_ms: u64,
    pub until_ms: u64,
    pub fault: Fault,
}

/// Draws a sequence of faults in `[from_ms, until_ms)`: one at a time, each lasting 1–5 s
/// (store outages 2.5–5 s, longer than the 2 s lease TTL), with 0.5–2 s of calm between.
pub fn plan(
    profile: Profile,
    rng: &mut StdRng,
    nodes: &[String],
    store: &str,
    from_ms: u64,
    until_ms: u64,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    if profile == Profile::Calm {
        return planned;
    }
    let servers: Vec<String> = nodes
        .iter()
        .cloned()
        .chain(std::iter::once(store.to_string()))
        .collect();
    let pick = |rng: &mut StdRng, from: &[String]| from[rng.random_range(0..from.len())].clone();
    let pair = |rng: &mut StdRng| loop {
        let a = pick(rng, &servers);
        let b = pick(rng, &servers);
        if a != b {
            return (a, b);
        }
    };
    let mut at = from_ms;
    loop {
        let kinds: &[u8] = match profile {
            Profile::Calm => &[],
            Profile::Partitions => &[0, 1, 2, 3, 4],
            Profile::Crashes => &[5, 6, 7],
            Profile::StoreOutage => &[8, 9],
            Profile::Chaos => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        };
        let kind = kinds[rng.random_range(0..kinds.len())];
        let mut length = rng.random_range(1_000..=5_000);
        let fault = match kind {
            0 => Fault::SitePartition {
                store_with_a: rng.random_bool(0.5),
            },
            1 => {
                let (from, to) = pair(rng);
                Fault::OneWay { from, to }
            }
            2 => Fault::Swizzle,
            3 => {
                let (a, b) = pair(rng);
                Fault::Hold { a, b }
            }
            4 => {
                let (a, b) = pair(rng);
                Fault::Latency {
                    a,
                    b,
                    ms: rng.random_range(50..=600),
                }
            }
            5 => Fault::Crash {
                node: pick(rng, nodes),
            },
            6 => Fault::CrashLeader,
            7 => {
                length = 0;
                Fault::Bounce {
                    node: pick(rng, nodes),
                }
            }
            9 => {
                length = rng.random_range(2_500..=5_000);
                Fault::HoldLeader
            }
            _ => {
                length = rng.random_range(2_500..=5_000);
                let mut chosen: Vec<String> = nodes
                    .iter()
                    .filter(|_| rng.random_bool(0.5))
                    .cloned()
                    .collect();
                if chosen.is_empty() {
                    chosen = nodes.to_vec();
                }
                Fault::StoreOutage { nodes: chosen }
            }
        };
        if at + length > until_ms {
            break;
        }
        planned.push(Planned {
            at_ms: at,
            until_ms: at + length,
            fault,
        });
        at += length + rng.random_range(500..=2_000);
    }
    planned
}
