//! Centinela's deterministic chaos simulation (turmoil).
//!
//! One run is one seed: a turmoil simulation with the **real** node code — the same actors,
//! the same gRPC services, the same etcd client — on a simulated network:
//!
//! ```text
//!   site A: n1, n2        site B: n3        store: the embedded etcd-API server, on its own host
//!   clients: buttons (presses), cameras, terminals (brigades), operator — over the same gRPC APIs
//! ```
//!
//! The seed draws the press times and buttons, the faults and their timing ([`faults`]), the
//! network's latencies and host scheduling order (turmoil), and tokio's own choices inside
//! every host (with `--cfg tokio_unstable`, see `.cargo/config.toml`). The store host follows
//! every committed change with an in-process watch (no fault can hide one); that and what the
//! devices saw is the [`History`], checked against docs/product.md §3's invariants ([`check`]) and
//! hashed: the same seed must give the same hash.
//!
//! # Layout
//! - [`net`]: tonic over turmoil's TCP (server incoming, client connector).
//! - [`devices`]: the simulated buttons, cameras, terminals and operator.
//! - [`faults`]: the fault model and the plan a seed draws.
//! - [`history`]: what a run records, and its hash. [`check`]: the invariants.
//! - [`seeds`]: `CENTINELA_SIM_SEEDS`, and running many seeds with replay instructions.

pub mod check;
pub mod devices;
pub mod faults;
pub mod history;
pub mod net;
pub mod seeds;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use centinela_actors::Clock;
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_node::{Network, Node, Options, StoreConfig};
use centinela_records::PlantedBug;
use centinela_store::{EmbeddedOptions, EmbeddedStore, EventKind, Store};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};

pub use check::{Bounds, Verdict};
pub use faults::{Fault, Profile};
pub use history::History;

/// The simulated wall clock at the start of every run: 2026-01-01T00:00:00Z. Fixed, so that
/// timestamps in records (and so the history) replay byte for byte.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// One run's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    pub profile: Profile,
    /// A bug switched on in every node (tests proving the checker catches it).
    pub planted_bug: Option<PlantedBug>,
    /// Sites and their nodes: site A first.
    pub site_a: Vec<String>,
    pub site_b: Vec<String>,
    pub buttons: usize,
    pub brigades: usize,
    /// When faults start and when everything heals (simulated ms).
    pub faults_from_ms: u64,
    pub heal_ms: u64,
}

impl Config {
    /// The standard shape: three nodes (n1, n2 in site A; n3 in site B), six buttons with
    /// cameras, five brigades, 20 s of faults.
    pub fn new(seed: u64, profile: Profile) -> Self {
        Config {
            seed,
            profile,
            planted_bug: None,
            site_a: vec!["n1".into(), "n2".into()],
            site_b: vec!["n3".into()],
            buttons: 6,
            brigades: 5,
            faults_from_ms: 5_000,
            heal_ms: 25_000,
        }
    }

    pub fn nodes(&self) -> Vec<String> {
        self.site_a.iter().chain(&self.site_b).cloned().collect()
    }

    /// The device timeline and the liveness bounds, derived from the fault window: presses
    /// for 12 s after the heal (those from 6 s after it are judged for liveness), the operator
    /// for 6 s more, and the run ends once the last judged incident has had its bound.
    pub fn timeline(&self) -> (devices::Timeline, Bounds) {
        let presses_until_ms = self.heal_ms + 12_000;
        let operator_until_ms = presses_until_ms + 6_000;
        let bounds = Bounds {
            // Leases of crashed or cut-off nodes expire (2 s), restarted nodes rejoin.
            stable_ms: self.heal_ms + 6_000,
            judge_until_ms: presses_until_ms,
            assign_within_ms: 10_000,
            camera_within_ms: 10_000,
        };
        let end_ms = (operator_until_ms + 4_000)
            .max(bounds.judge_until_ms + bounds.assign_within_ms.max(bounds.camera_within_ms));
        let timeline = devices::Timeline {
            presses_from_ms: 3_000,
            presses_until_ms,
            press_gap_ms: 900,
            operator_until_ms,
            end_ms,
        };
        (timeline, bounds)
    }
}

/// What one run produced.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub hash: u64,
    pub verdict: Verdict,
    pub history: History,
    /// Simulated time the run covered.
    pub simulated: Duration,
}

impl Report {
    /// A one-line summary: seed, hash, figures.
    pub fn summary(&self) -> String {
        let sent = self.history.sent.len();
        let acked: BTreeSet<&str> = self
            .history
            .acked
            .iter()
            .map(|p| p.press_id.as_str())
            .collect();
        format!(
            "seed {} hash {:016x}: {} presses sent, {} acked; {} incidents ({} closed), {} \
             assignments by terms {:?}; {} faults; {} store revisions; {} violation(s)",
            self.seed,
            self.hash,
            sent,
            acked.len(),
            self.verdict.incidents,
            self.verdict.closed,
            self.verdict.assignments,
            self.verdict.terms,
            self.history
                .faults
                .iter()
                .filter(|(_, f)| f.starts_with("inject"))
                .count(),
            self.verdict.revisions,
            self.verdict.violations.len()
        )
    }
}

/// The scenario every node seeds: buttons on a small grid in Lima's centre, brigades around.
pub fn scenario(buttons: usize, brigades: usize) -> Scenario {
    let buttons = (0..buttons).map(|i| {
        let lat = -12.046 - 0.002 * (i % 3) as f64;
        let lon = -77.030 - 0.002 * (i / 3) as f64;
        Button::new(format!("B{i}"), lat, lon)
            .name(format!("Button {i}"))
            .camera(format!("C{i}"))
    });
    let modes = ["foot", "motorcycle", "car"];
    let brigades = (0..brigades).map(|i| {
        let lat = -12.045 - 0.0015 * i as f64;
        let lon = -77.031 + 0.001 * (i % 2) as f64;
        Brigade::new(format!("U{i}"), modes[i % modes.len()], lat, lon)
            .callsign(format!("Unit {i}"))
    });
    ScenarioBuilder::new("sim")
        .buttons(buttons)
        .brigades(brigades)
        .build()
}

fn init_tracing() {
    // Logs only when asked (`RUST_LOG=info`), into the test's captured output.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The store host: the embedded etcd-API server on [`net::STORE_PORT`], and the recorder that
/// follows every committed change in-process.
async fn store_host(history: devices::Shared) -> turmoil::Result {
    // Its servers' HTTP `date` headers follow simulated time (centinela_store::http_date).
    let store = EmbeddedStore::with_options(EmbeddedOptions {
        wall_clock_ms: Some(EPOCH_MS + devices::now_ms()),
        ..EmbeddedOptions::default()
    });
    let incoming = net::incoming(net::STORE_PORT).await?;
    let recorder = Store::embedded(&store);
    tokio::spawn(async move {
        let mut from = 1;
        loop {
            if let Ok(mut events) = recorder.watch_prefix("/centinela/", Some(from)).await {
                while let Some(Ok(event)) = events.next().await {
                    from = event.revision + 1;
                    history.lock().unwrap().store.push(history::StoreEvent {
                        t_ms: devices::now_ms(),
                        revision: event.revision,
                        value: match event.kind {
                            EventKind::Put => Some(event.kv.value.clone()),
                            EventKind::Delete => None,
                        },
                        create_revision: event.kv.create_revision,
                        key: event.kv.key,
                    });
                }
            }
            // Canceled (a slow watcher) or failed: resume after the last change recorded.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    store
        .serve_incoming(incoming, std::future::pending())
        .await?;
    Ok(())
}

/// A node host: the real node, started on the simulated network; retried while the store is
/// unreachable (a node restarted during a fault).
async fn node_host(
    name: String,
    site: String,
    scenario: Scenario,
    planted_bug: Option<PlantedBug>,
) -> turmoil::Result {
    loop {
        let incoming = net::incoming(net::GRPC_PORT).await?;
        let store_url = format!("http://{}:{}", net::STORE_HOST, net::STORE_PORT);
        let store = Store::from_channel(net::channel(&store_url)?);
        // Every host shares the simulated wall clock: the run's epoch plus simulated time.
        let clock = Clock::starting_at(Timestamp::from_millis(EPOCH_MS + devices::now_ms()));
        let network = Network {
            incoming,
            store,
            dial: net::peer_dialer(),
            clock,
            planted_bug,
        };
        let options = Options {
            node_id: name.clone(),
            site: site.clone(),
            grpc_addr: ([0, 0, 0, 0], net::GRPC_PORT).into(),
            http_addr: ([0, 0, 0, 0], 0).into(),
            advertise_grpc: Some(format!("{name}:{}", net::GRPC_PORT)),
            scenario: scenario.clone(),
            store: StoreConfig::Embedded,
            cameras: Default::default(),
            handoff: Default::default(),
            bounds: Default::default(),
            history: Default::default(),
            tls: None,
            sip: None,
        };
        match Node::start_with_network(
            options,
            centinela_console::Config::default(),
            centinela_api::Security::open(),
            network,
        )
        .await
        {
            Ok(node) => {
                std::future::pending::<()>().await;
                drop(node);
            }
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "node did not start; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The faults in effect, so they can be undone.
#[derive(Default)]
struct Active {
    cut: BTreeSet<(String, String)>,
    oneway: BTreeSet<(String, String)>,
    held: BTreeSet<(String, String)>,
    slow: BTreeSet<(String, String)>,
    crashed: BTreeSet<String>,
    swizzle: bool,
}

const BASE_MIN_LATENCY: Duration = Duration::from_millis(1);
const BASE_MAX_LATENCY: Duration = Duration::from_millis(8);

/// Simulations in one process run one at a time (see [`align_task_ids`]).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How many shards tokio's current-thread runtime splits its task list into (`OwnedTasks::new(1)`
/// gives `1.next_power_of_two() * 4`), rounded up generously.
const TASK_ID_ALIGNMENT: u64 = 64;

/// Makes the next tokio task id a multiple of [`TASK_ID_ALIGNMENT`].
///
/// turmoil crashes a host by dropping its runtime, which shuts the host's tasks down shard by
/// shard, a task's shard being its id modulo the shard count; every task dropped closes its
/// sockets, and each FIN turmoil sends draws a latency from the run's RNG. Task ids come from
/// one process-wide counter, so without this a seed's second run in a process (ids offset by
/// the first run's) dropped tasks in another order, drew other latencies and diverged from the
/// first. With the counter aligned at the start of every run (and runs not overlapping: see
/// [`ONE_AT_A_TIME`]) a run's task ids modulo the shard count depend on the seed alone.
fn align_task_ids() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    loop {
        let id = runtime.spawn(async {}).id();
        let id: u64 = id
            .to_string()
            .parse()
            .expect("tokio task ids display as numbers");
        if (id + 1).is_multiple_of(TASK_ID_ALIGNMENT) {
            break;
        }
    }
}

/// Runs one seed; see the crate docs.
pub fn run(config: &Config) -> Report {
    init_tracing();
    // A panicking run (a failed seed) poisons the lock; the next run is still sound.
    let _one_at_a_time = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    align_task_ids();
    let nodes = config.nodes();
    let (timeline, bounds) = config.timeline();
    let scenario = scenario(config.buttons, config.brigades);
    let history: devices::Shared = Arc::new(Mutex::new(History::default()));

    let mut sim = turmoil::Builder::new()
        .rng_seed(config.seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_millis(timeline.end_ms + 60_000))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(BASE_MIN_LATENCY)
        .max_message_latency(BASE_MAX_LATENCY)
        .tcp_capacity(1 << 16)
        .enable_random_order()
        .build();

    {
        let history = history.clone();
        sim.host(net::STORE_HOST, move || store_host(history.clone()));
    }
    for (site, members) in [("site-a", &config.site_a), ("site-b", &config.site_b)] {
        for name in members {
            let name = name.clone();
            let scenario = scenario.clone();
            let bug = config.planted_bug;
            sim.host(name.clone(), move || {
                node_host(name.clone(), site.to_string(), scenario.clone(), bug)
            });
        }
    }
    let button_ids: Vec<String> = (0..config.buttons).map(|i| format!("B{i}")).collect();
    let camera_ids: Vec<String> = (0..config.buttons).map(|i| format!("C{i}")).collect();
    let unit_ids: Vec<String> = (0..config.brigades).map(|i| format!("U{i}")).collect();
    sim.client(
        "buttons",
        devices::buttons(
            config.seed,
            nodes.clone(),
            button_ids,
            timeline.clone(),
            history.clone(),
        ),
    );
    sim.client(
        "cameras",
        devices::cameras(nodes.clone(), camera_ids, timeline.end_ms),
    );
    sim.client(
        "terminals",
        devices::terminals(nodes.clone(), unit_ids, timeline.end_ms, history.clone()),
    );
    sim.client(
        "operator",
        devices::operator(
            config.seed,
            nodes.clone(),
            timeline.clone(),
            history.clone(),
        ),
    );

    let mut rng = StdRng::seed_from_u64(config.seed ^ 0xfa17_5eed);
    let plan = faults::plan(
        config.profile,
        &mut rng,
        &nodes,
        net::STORE_HOST,
        config.faults_from_ms,
        config.heal_ms,
    );
    let mut plan = plan.into_iter().peekable();
    let mut current: Option<(u64, Fault)> = None;
    let mut active = Active::default();
    let mut next_swizzle = 0u64;
    let mut healed = false;
    let servers: Vec<String> = nodes
        .iter()
        .cloned()
        .chain(std::iter::once(net::STORE_HOST.to_string()))
        .collect();

    loop {
        let now = sim.elapsed().as_millis() as u64;
        // End the current fault, start the next one.
        if let Some((until, fault)) = &current
            && now >= *until
        {
            note(&history, now, format!("heal {fault:?}"));
            heal(&mut sim, &mut active);
            current = None;
        }
        if current.is_none()
            && !healed
            && let Some(next) = plan.peek()
            && now >= next.at_ms
        {
            let next = plan.next().expect("peeked");
            let fault = resolve(next.fault, &history);
            note(&history, now, format!("inject {fault:?}"));
            inject(&mut sim, &mut active, &fault, config);
            current = Some((next.until_ms, fault));
        }
        if active.swizzle && now >= next_swizzle {
            let a = servers[rng.random_range(0..servers.len())].clone();
            let b = servers[rng.random_range(0..servers.len())].clone();
            if a != b {
                let link = ordered(&a, &b);
                if active.cut.remove(&link) {
                    sim.repair(a.as_str(), b.as_str());
                } else {
                    sim.partition(a.as_str(), b.as_str());
                    active.cut.insert(link);
                }
            }
            next_swizzle = now + rng.random_range(200..=800);
        }
        if !healed && now >= config.heal_ms {
            healed = true;
            if let Some((_, fault)) = current.take() {
                note(&history, now, format!("heal {fault:?}"));
            }
            heal(&mut sim, &mut active);
            note(&history, now, "everything healed".into());
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => panic!("seed {}: the simulation failed: {e}", config.seed),
        }
    }

    let simulated = sim.elapsed();
    drop(sim);
    let history = Arc::try_unwrap(history)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_else(|shared| shared.lock().unwrap().clone());
    let verdict = check::check(&history, &bounds);
    Report {
        seed: config.seed,
        hash: history.hash(),
        verdict,
        history,
        simulated,
    }
}

fn note(history: &devices::Shared, now: u64, text: String) {
    history.lock().unwrap().faults.push((now, text));
}

fn ordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// Turns "the leader" into a node, as of now.
fn resolve(fault: Fault, history: &devices::Shared) -> Fault {
    match fault {
        Fault::CrashLeader => match history.lock().unwrap().leader() {
            Some((node, _)) => Fault::Crash { node },
            None => Fault::CrashLeader,
        },
        Fault::HoldLeader => match history.lock().unwrap().leader() {
            Some((node, _)) => Fault::Hold {
                a: node,
                b: net::STORE_HOST.to_string(),
            },
            None => Fault::HoldLeader,
        },
        other => other,
    }
}

fn inject(sim: &mut turmoil::Sim<'_>, active: &mut Active, fault: &Fault, config: &Config) {
    match fault {
        Fault::SitePartition { store_with_a } => {
            let mut a: Vec<String> = config.site_a.clone();
            let mut b: Vec<String> = config.site_b.clone();
            if *store_with_a {
                a.push(net::STORE_HOST.into());
            } else {
                b.push(net::STORE_HOST.into());
            }
            for x in &a {
                for y in &b {
                    sim.partition(x.as_str(), y.as_str());
                    active.cut.insert(ordered(x, y));
                }
            }
        }
        Fault::OneWay { from, to } => {
            sim.partition_oneway(from.as_str(), to.as_str());
            active.oneway.insert((from.clone(), to.clone()));
        }
        Fault::Swizzle => active.swizzle = true,
        Fault::Hold { a, b } => {
            sim.hold(a.as_str(), b.as_str());
            active.held.insert(ordered(a, b));
        }
        Fault::Latency { a, b, ms } => {
            sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_millis(*ms));
            active.slow.insert(ordered(a, b));
        }
        Fault::Crash { node } => {
            sim.crash(node.as_str());
            active.crashed.insert(node.clone());
        }
        Fault::CrashLeader | Fault::HoldLeader => {} // no leader yet: nothing to do
        Fault::Bounce { node } => sim.bounce(node.as_str()),
        Fault::StoreOutage { nodes } => {
            for node in nodes {
                sim.partition(node.as_str(), net::STORE_HOST);
                active.cut.insert(ordered(node, net::STORE_HOST));
            }
        }
    }
}

/// Undoes every fault in effect.
fn heal(sim: &mut turmoil::Sim<'_>, active: &mut Active) {
    active.swizzle = false;
    for (a, b) in std::mem::take(&mut active.cut) {
        sim.repair(a.as_str(), b.as_str());
    }
    for (from, to) in std::mem::take(&mut active.oneway) {
        sim.repair_oneway(from.as_str(), to.as_str());
    }
    for (a, b) in std::mem::take(&mut active.held) {
        sim.release(a.as_str(), b.as_str());
    }
    for (a, b) in std::mem::take(&mut active.slow) {
        sim.set_link_latency(a.as_str(), b.as_str(), BASE_MIN_LATENCY);
        sim.set_link_max_message_latency(a.as_str(), b.as_str(), BASE_MAX_LATENCY);
    }
    for node in std::mem::take(&mut active.crashed) {
        sim.bounce(node.as_str());
    }
}
