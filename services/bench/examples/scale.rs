//! The scale scenario (docs/benchmarks.md, scripts/bench-scale.sh): a generated city of
//! 100k buttons, 100k cameras and 10k brigades as actors on one node, against empty ractor
//! actors measured in the same run.
//!
//! ```sh
//! cargo run --release -p centinela-bench --example scale -- [BUTTONS] [BRIGADES] [SEED]
//! ```
//!
//! Each part runs in its own child process (this binary again, with a phase argument), so
//! one part's freed-but-kept heap does not flatter the next:
//!
//! - `baseline`: N empty ractor actors (`State = ()`, linked to one parent like entities to
//!   their supervisor, a reference to each kept like the router's registry does), spawned
//!   one after another: RSS per actor and spawn time per actor.
//! - `node 0 0`: a node with no entities, on the embedded store served on loopback TCP: the
//!   node's fixed RSS, subtracted below.
//! - `node BUTTONS BRIGADES`: the embedded store served on loopback TCP, seeded with the city
//!   (a client like the nodes'), then a real `centinela_node::Node` on it (an empty scenario
//!   of its own: the store has the city). Start-up = `Node::start` until every entity runs on
//!   it; RSS per entity actor = (RSS with the node up − RSS after seeding − the empty node's
//!   RSS) / entities. Then a second node joins: time until both run exactly their rendezvous
//!   shares; then it leaves (graceful shutdown, lease revoked): time until the first runs
//!   everything again.
//!
//! RSS is `VmRSS` of /proc/self/status after a 1 s settle. No tracing subscriber is installed
//! (as a node with logging off; `RUST_LOG=warn` shows the nodes' logs on stderr). Prints one
//! JSON line with every figure.
//!
//! `scale wave [BUTTONS] [BRIGADES] [SEED]` runs the offline wave at scale instead (see
//! [`wave`]): one node, every button seeded online and never heard from.

use std::process::Command;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use centinela_cluster::Owner;
use centinela_core::button::{Button, ButtonHealth};
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_node::{Node, Options, StoreConfig};
use centinela_records::{Record, Records};
use centinela_store::{ConnectOptions, EmbeddedStore, Store, Txn, TxnOp};
use centinela_testkit::process::rss_bytes;

const SETTLE: Duration = Duration::from_secs(1);
const DEADLINE: Duration = Duration::from_secs(600);

fn usage() -> ! {
    eprintln!("usage: scale [wave] [BUTTONS] [BRIGADES] [SEED]   (defaults 100000 10000 7)");
    std::process::exit(2);
}

async fn settled_rss() -> u64 {
    tokio::time::sleep(SETTLE).await;
    rss_bytes()
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn mib(bytes: f64) -> f64 {
    (bytes / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

fn main() {
    // Logs only when asked (RUST_LOG=warn, say): the figures are taken with logging off.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match args.first().map(String::as_str) {
        Some("baseline") => {
            let n = args
                .get(1)
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| usage());
            println!("{}", runtime.block_on(baseline(n)));
        }
        Some("node") => {
            let num = |i: usize| -> u64 {
                args.get(i)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| usage())
            };
            let (buttons, brigades, seed) = (num(1) as usize, num(2) as usize, num(3));
            println!("{}", runtime.block_on(node(buttons, brigades, seed)));
        }
        Some("wave") => {
            let num = |i: usize, default: u64| -> u64 {
                args.get(i)
                    .map_or(default, |a| a.parse().unwrap_or_else(|_| usage()))
            };
            let (buttons, brigades, seed) = (num(1, 100_000), num(2, 10_000), num(3, 7));
            println!(
                "{}",
                runtime.block_on(wave(buttons as usize, brigades as usize, seed))
            );
        }
        _ => {
            let num = |i: usize, default: u64| -> u64 {
                args.get(i)
                    .map_or(default, |a| a.parse().unwrap_or_else(|_| usage()))
            };
            let (buttons, brigades, seed) = (num(0, 100_000), num(1, 10_000), num(2, 7));
            drop(runtime);
            parent(buttons, brigades, seed);
        }
    }
}

/// Runs one phase in a child process; its last stdout line is its JSON.
fn child(args: &[String]) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    eprintln!("scale: {}", args.join(" "));
    let out = Command::new(exe)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!("scale: phase {args:?} failed ({})\n{stdout}", out.status);
        std::process::exit(1);
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        eprintln!("scale: phase {args:?} printed no JSON ({e}): {stdout}");
        std::process::exit(1);
    })
}

fn parent(buttons: u64, brigades: u64, seed: u64) {
    let entities = 2 * buttons + brigades;
    let base = child(&["baseline".into(), entities.to_string()]);
    let empty = child(&["node".into(), "0".into(), "0".into(), seed.to_string()]);
    let full = child(&[
        "node".into(),
        buttons.to_string(),
        brigades.to_string(),
        seed.to_string(),
    ]);
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let empty_actor = f(&base, "bytes_per_actor");
    let node_fixed = f(&empty, "node_rss_bytes");
    let entity_rss = f(&full, "node_rss_bytes") - node_fixed;
    let per_entity = entity_rss / entities as f64;
    let spawn_us = f(&base, "spawn_us_per_actor");
    let startup_us = f(&full, "startup_s") * 1e6 / entities as f64;
    let result = json!({
        "buttons": buttons,
        "cameras": buttons,
        "brigades": brigades,
        "entities": entities,
        "seed": seed,
        "baseline": base,
        "empty_node": empty,
        "node": full,
        "entity_actor_bytes": per_entity.round(),
        "entity_actor_vs_empty_actor": (per_entity / empty_actor * 100.0).round() / 100.0,
        "entity_actors_mib": mib(entity_rss),
        "buttons_and_cameras_mib_at_this_rate": mib(per_entity * 2.0 * buttons as f64),
        "startup_us_per_entity": startup_us.round(),
        "startup_vs_empty_spawn": (startup_us / spawn_us * 10.0).round() / 10.0,
    });
    println!("{result}");
}

/// An actor with nothing in it.
struct Empty;

impl Actor for Empty {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<()>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

async fn baseline(n: usize) -> Value {
    let (parent, _) = Actor::spawn(None, Empty, ()).await.expect("parent starts");
    let before = settled_rss().await;
    let started = Instant::now();
    let mut actors = Vec::with_capacity(n);
    for _ in 0..n {
        let (actor, _) = Actor::spawn_linked(None, Empty, (), parent.get_cell())
            .await
            .expect("empty actor starts");
        actors.push(actor);
    }
    let spawn = started.elapsed();
    let after = settled_rss().await;
    let bytes = after.saturating_sub(before) as f64 / n as f64;
    json!({
        "actors": n,
        "rss_before_mib": mib(before as f64),
        "rss_after_mib": mib(after as f64),
        "bytes_per_actor": bytes.round(),
        "spawn_s": secs(spawn),
        "spawn_us_per_actor": (spawn.as_secs_f64() * 1e6 / n as f64 * 10.0).round() / 10.0,
    })
}

type Counts = (usize, usize, usize);

fn counts(node: &Node) -> Counts {
    node.context().router.local_counts()
}

/// What `node` owns by rendezvous hashing over the members it sees now.
fn share_of(node: &Node, city: &Scenario) -> Counts {
    let topology = node.context().router.topology();
    let mine = |kind: &str, id: &str| topology.owner(kind, id) == Owner::Local;
    (
        city.buttons
            .iter()
            .filter(|b| mine("button", b.id.as_str()))
            .count(),
        city.buttons
            .iter()
            .filter(|b| mine("camera", b.camera.id.as_str()))
            .count(),
        city.brigades
            .iter()
            .filter(|b| mine("brigade", b.id.as_str()))
            .count(),
    )
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool, progress: impl Fn() -> String) {
    let started = Instant::now();
    let mut reported = Instant::now();
    while !check() {
        if started.elapsed() > DEADLINE {
            eprintln!("scale: timed out waiting for {what}: {}", progress());
            std::process::exit(1);
        }
        if reported.elapsed() > Duration::from_secs(10) {
            reported = Instant::now();
            eprintln!(
                "scale: {:.0} s waiting for {what}: {}",
                started.elapsed().as_secs_f64(),
                progress()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn options(id: &str, store_url: &str) -> Options {
    Options {
        node_id: id.into(),
        site: "site-a".into(),
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        advertise_grpc: None,
        // The store holds the city already: nothing to seed.
        scenario: Scenario {
            name: "scale".into(),
            notes: String::new(),
            buttons: Vec::new(),
            brigades: Vec::new(),
        },
        store: StoreConfig::Etcd(vec![store_url.to_owned()]),
        cameras: Default::default(),
        handoff: Default::default(),
        bounds: Default::default(),
        history: Default::default(),
        tls: None,
        sip: None,
    }
}

/// Marks every button offline, as a fleet whose devices have not connected yet: no device
/// heartbeats here, and a button that is online but silent is marked offline 30 s after its
/// actor starts, one store write each (docs/benchmarks.md: at 100k buttons that wave is a
/// finding of its own). An offline button writes nothing until its device is heard from.
async fn mark_offline(store: &Store, city: &Scenario, now: Timestamp) {
    let buttons = city.buttons(now).expect("valid city");
    for chunk in buttons.chunks(100) {
        let txn = Txn::new().and_then(chunk.iter().map(|button| {
            let mut button = button.clone();
            button.health = ButtonHealth::Offline;
            let value = serde_json::to_vec(&button).expect("a button encodes");
            TxnOp::put(Button::key_of(button.id.as_str()), value, None)
        }));
        assert!(store.txn(txn).await.expect("store reachable").succeeded);
    }
}

/// An embedded store served on loopback TCP, as the nodes reach etcd: its URL, and a client.
async fn serve_store() -> (String, Store) {
    let store = EmbeddedStore::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let store_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = store.serve(listener, std::future::pending()).await;
    });
    let client = Store::connect(std::slice::from_ref(&store_url), ConnectOptions::default())
        .await
        .expect("store reachable");
    (store_url, client)
}

/// The offline wave at scale: the city seeded *online*, one node, no device heartbeats, so
/// every button falls silent at once and is marked offline 30 s after its actor starts
/// (paced by the node's `OfflineMarker`). Reports how long until every button is offline
/// and the fewest entities the node ran meanwhile: a node that lost its session to the wave
/// stops all its actors, which shows as a drop.
async fn wave(buttons: usize, brigades: usize, seed: u64) -> Value {
    let city = centinela_bench::city(buttons, brigades, seed);
    let entities = 2 * buttons + brigades;
    let (store_url, client) = serve_store().await;
    let records = Records::new(client);
    let now = Timestamp::from_millis(1_795_817_112_000);
    let seeded = records.seed(&city, now).await.expect("seeded");
    assert_eq!(seeded.created, entities);

    let starting = Instant::now();
    let n1 = Node::start(options("n1", &store_url))
        .await
        .expect("n1 starts");
    let all = (buttons, buttons, brigades);
    wait_until(
        "n1 to run every entity",
        || counts(&n1) == all,
        || format!("n1 runs {:?}", counts(&n1)),
    )
    .await;
    let startup = starting.elapsed();
    eprintln!("scale: n1 runs all {entities} entities after {startup:?}; waiting for the wave");

    let mut fewest = entities;
    let mut last_count = Instant::now();
    let mut offline = 0;
    while offline < buttons {
        if starting.elapsed() > DEADLINE + DEADLINE {
            eprintln!("scale: timed out waiting for the wave: {offline} of {buttons} offline");
            std::process::exit(1);
        }
        let (b, c, g) = counts(&n1);
        fewest = fewest.min(b + c + g);
        if last_count.elapsed() >= Duration::from_secs(5) {
            last_count = Instant::now();
            let (all_buttons, _) = records.snapshot::<Button>().await.expect("buttons");
            offline = all_buttons
                .iter()
                .filter(|b| b.health == ButtonHealth::Offline)
                .count();
            eprintln!(
                "scale: {:.0} s: {offline} of {buttons} buttons offline, n1 runs {:?}",
                starting.elapsed().as_secs_f64(),
                counts(&n1)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = starting.elapsed();
    n1.shutdown().await;
    json!({
        "buttons": buttons,
        "entities": entities,
        "startup_s": secs(startup),
        "all_offline_after_s": secs(done),
        "fewest_running_during_wave": fewest,
    })
}

async fn node(buttons: usize, brigades: usize, seed: u64) -> Value {
    let generated = Instant::now();
    let city = centinela_bench::city(buttons, brigades, seed);
    let generate = generated.elapsed();
    let entities = 2 * buttons + brigades;

    let (store_url, client) = serve_store().await;
    let seeding = Instant::now();
    let now = Timestamp::from_millis(1_795_817_112_000);
    let seeded = Records::new(client.clone())
        .seed(&city, now)
        .await
        .expect("seeded");
    assert_eq!(seeded.created, entities);
    mark_offline(&client, &city, now).await;
    let seed_time = seeding.elapsed();
    let before = settled_rss().await;

    // One node: start-up until it runs every entity.
    let starting = Instant::now();
    let n1 = Node::start(options("n1", &store_url))
        .await
        .expect("n1 starts");
    let start_returned = starting.elapsed();
    let all = (buttons, buttons, brigades);
    wait_until(
        "n1 to run every entity",
        || counts(&n1) == all,
        || format!("n1 runs {:?}", counts(&n1)),
    )
    .await;
    let startup = starting.elapsed();
    let with_node = settled_rss().await;
    let node_rss = with_node.saturating_sub(before);
    eprintln!(
        "scale: seeded in {seed_time:?}, n1 started in {startup:?}, RSS {} -> {} MiB",
        mib(before as f64),
        mib(with_node as f64)
    );
    let mut result = json!({
        "generate_s": secs(generate),
        "seed_s": secs(seed_time),
        "rss_seeded_mib": mib(before as f64),
        "rss_with_node_mib": mib(with_node as f64),
        "node_rss_bytes": node_rss,
        "node_start_returned_s": secs(start_returned),
        "startup_s": secs(startup),
    });
    if entities == 0 {
        n1.shutdown().await;
        return result;
    }

    // A second node joins: until both run exactly their shares.
    let joining = Instant::now();
    let n2 = Node::start(options("n2", &store_url))
        .await
        .expect("n2 starts");
    let n2_returned = joining.elapsed();
    wait_until(
        "both nodes to see each other",
        || {
            n1.context().router.topology().members().len() == 2
                && n2.context().router.topology().members().len() == 2
        },
        String::new,
    )
    .await;
    let (share1, share2) = (share_of(&n1, &city), share_of(&n2, &city));
    wait_until(
        "both nodes to run their shares",
        || counts(&n1) == share1 && counts(&n2) == share2,
        || {
            format!(
                "n1 runs {:?} of {share1:?}, n2 runs {:?} of {share2:?}",
                counts(&n1),
                counts(&n2)
            )
        },
    )
    .await;
    let join = joining.elapsed();
    let with_two = settled_rss().await;
    eprintln!("scale: n2 joined, settled in {join:?}");

    // It leaves (graceful: its lease is revoked): until the first runs everything again.
    let leaving = Instant::now();
    n2.shutdown().await;
    let shutdown = leaving.elapsed();
    wait_until(
        "n1 to run every entity again",
        || counts(&n1) == all,
        || format!("n1 runs {:?}", counts(&n1)),
    )
    .await;
    let leave = leaving.elapsed();
    let after_leave = settled_rss().await;

    let obj = result.as_object_mut().expect("object");
    obj.insert("join_s".into(), json!(secs(join)));
    obj.insert("join_n2_start_returned_s".into(), json!(secs(n2_returned)));
    obj.insert("share_n1".into(), json!([share1.0, share1.1, share1.2]));
    obj.insert("share_n2".into(), json!([share2.0, share2.1, share2.2]));
    obj.insert("rss_two_nodes_mib".into(), json!(mib(with_two as f64)));
    obj.insert("leave_s".into(), json!(secs(leave)));
    obj.insert("leave_shutdown_s".into(), json!(secs(shutdown)));
    obj.insert("rss_after_leave_mib".into(), json!(mib(after_leave as f64)));
    n1.shutdown().await;
    result
}
