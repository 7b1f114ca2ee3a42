//! etcd's size after 10,000 incidents, with retention and without (docs/benchmarks.md,
//! "etcd's database size after 10,000 incidents").
//!
//! ```sh
//! cargo run -p centinela-node --example etcd_size [-- INCIDENTS]   # default 10000
//! ```
//!
//! Two real etcd members (Debian's, `centinela_testkit::etcd`), each under one real node on
//! the lima-centro scenario, in this process. Each node gets INCIDENTS incidents, each opened
//! by a press through `ButtonGateway.Press` and closed by `Operator.Resolve` (15 workers, one
//! per button, one incident at a time):
//!
//! - **retention**: the node archives into an SQLite file in a temporary directory with a
//!   1-second retention window: every closed incident leaves etcd once archived and checked.
//!   The default window is one hour; a run of minutes stands for it by making "older than the
//!   window" true at once: what is measured is that closed incidents leave, so the live
//!   keyspace holds open incidents and the last window's closed ones only (at a thousand
//!   incidents a day, about 42 in a 1-hour window).
//! - **before**: the node has no `--archive` and no `--data-dir` beside etcd, the one setting
//!   in which the node removes nothing (`History::open`: an in-memory archive is never removed
//!   into): closed incidents stay in etcd, as they all did before the archive existed.
//!
//! For each, the keys under `/centinela/` counted by their first segment, then a compaction
//! at the current revision (physical) and a defragmentation with `etcdctl`, and etcd's own
//! `etcd_mvcc_db_total_size_in_bytes` and `etcd_mvcc_db_total_size_in_use_in_bytes` from its
//! `/metrics`: the live data, without the history of revisions. Press-id keys live on leases
//! of `PRESS_KEY_TTL` (10 min) in both runs (before the archive they never expired); the
//! retention run is measured again once its press leases have expired.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use centinela_node::StoreConfig;
use centinela_proto::v1;
use centinela_testkit::etcd::EtcdCluster;
use centinela_testkit::node::{NodeBuilder, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Incidents per run, unless given on the command line.
const INCIDENTS_DEFAULT: u64 = 10_000;
/// The retention run's window: "older than the window" holds as soon as an incident closes.
const RETENTION: Duration = Duration::from_secs(1);
/// How long the archiver may take to empty etcd of closed incidents after the last close.
const DRAIN_DEADLINE: Duration = Duration::from_secs(900);
/// How long press leases may take to expire: `PRESS_KEY_TTL` + `PRESS_LEASE_REUSE` + margin.
const PRESS_EXPIRY_DEADLINE: Duration = Duration::from_secs(600 + 60 + 120);
const BUTTONS: [&str; 15] = [
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B13",
    "B14", "B15",
];

/// What etcd holds, live.
#[derive(Debug)]
struct Size {
    keys: BTreeMap<String, u64>,
    revision: i64,
    db_total: u64,
    db_in_use: u64,
}

impl Size {
    fn total_keys(&self) -> u64 {
        self.keys.values().sum()
    }

    fn print(&self, label: &str) {
        println!(
            "{label}: {} keys under /centinela/ at revision {}; db total {} bytes ({:.2} MiB), in use {} bytes ({:.2} MiB)",
            self.total_keys(),
            self.revision,
            self.db_total,
            self.db_total as f64 / 1_048_576.0,
            self.db_in_use,
            self.db_in_use as f64 / 1_048_576.0,
        );
        for (prefix, count) in &self.keys {
            println!("  {prefix:<24} {count}");
        }
    }
}

fn etcdctl(endpoint: &str, args: &[&str]) -> String {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .expect("etcdctl runs (Debian's etcd-client)");
    assert!(
        output.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("etcdctl prints UTF-8")
}

/// The keys under `/centinela/`, by their first segment (`incidents`, `presses`, ...).
fn keys(endpoint: &str) -> BTreeMap<String, u64> {
    let listing = etcdctl(endpoint, &["get", "/centinela/", "--prefix", "--keys-only"]);
    let mut keys = BTreeMap::new();
    for key in listing.lines().filter(|l| !l.is_empty()) {
        let rest = key.trim_start_matches("/centinela/");
        let segment = rest.split('/').next().unwrap_or(rest);
        *keys.entry(format!("{segment}/")).or_insert(0) += 1;
    }
    keys
}

fn count(endpoint: &str, prefix: &str) -> u64 {
    // etcdctl 3.4 has no `--count-only`: the keys, listed.
    etcdctl(
        endpoint,
        &[
            "get",
            &format!("/centinela/{prefix}"),
            "--prefix",
            "--keys-only",
        ],
    )
    .lines()
    .filter(|line| !line.is_empty())
    .count() as u64
}

/// One of etcd's gauges from its `/metrics`.
async fn metric(endpoint: &str, name: &str) -> u64 {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("etcd's client port");
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse::<f64>().ok())
        })
        .unwrap_or_else(|| panic!("etcd's /metrics has no {name}")) as u64
}

/// Compacts at the current revision, defragments, and reads the size and the keys.
async fn measure(endpoint: &str) -> Size {
    let status = etcdctl(endpoint, &["endpoint", "status", "-w", "json"]);
    let revision: i64 = status
        .split("\"revision\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the revision in etcdctl's status");
    etcdctl(endpoint, &["compact", &revision.to_string(), "--physical"]);
    etcdctl(endpoint, &["defrag"]);
    Size {
        keys: keys(endpoint),
        revision,
        db_total: metric(endpoint, "etcd_mvcc_db_total_size_in_bytes").await,
        db_in_use: metric(endpoint, "etcd_mvcc_db_total_size_in_use_in_bytes").await,
    }
}

/// `incidents` incidents opened and closed on `node`, 15 at a time; the time it took.
async fn run(node: &TestNode, label: &str, incidents: u64) -> Duration {
    node.wait_for_dispatcher().await;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for button in BUTTONS {
        let (mut buttons, mut operator, next) = (node.buttons(), node.operator(), next.clone());
        let label = label.to_string();
        workers.push(tokio::spawn(async move {
            let mut last = String::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= incidents {
                    return;
                }
                let reply = buttons
                    .press(v1::PressRequest {
                        button_id: button.into(),
                        press_id: format!("{label}-{n}"),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("press {button}: {e}"))
                    .into_inner();
                assert_ne!(
                    reply.incident_id, last,
                    "a press after a close opens a new incident"
                );
                last = reply.incident_id.clone();
                operator
                    .resolve(v1::ResolveRequest {
                        incident_id: reply.incident_id,
                        operator_id: "ana".into(),
                        resolution: v1::Resolution::Handled as i32,
                    })
                    .await
                    .unwrap_or_else(|e| panic!("resolve at {button}: {e}"));
                if (n + 1) % 1000 == 0 {
                    println!("{label}: {} incidents closed", n + 1);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let incidents: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("INCIDENTS is a number"))
        .unwrap_or(INCIDENTS_DEFAULT);
    let dir = tempfile::tempdir().unwrap();

    // Retention.
    let etcd_retained = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap();
    let endpoint_retained = etcd_retained.endpoints()[0].clone();
    let retained = NodeBuilder::new("size-retention")
        .store(StoreConfig::Etcd(etcd_retained.endpoints()))
        .history(centinela_archive::Settings {
            archive: Some(format!(
                "sqlite:{}",
                dir.path().join("archive.db").display()
            )),
            retention: RETENTION,
            data_dir: None,
        })
        .start()
        .await;
    let empty = measure(&endpoint_retained).await;
    empty.print("retention, before any press");
    let took = run(&retained, "retention", incidents).await;
    let pressed_at = Instant::now();
    println!(
        "retention: {incidents} incidents in {:.0} s",
        took.as_secs_f64()
    );
    let drained = Instant::now();
    while count(&endpoint_retained, "incidents/") > 0 {
        assert!(
            drained.elapsed() < DRAIN_DEADLINE,
            "closed incidents still in etcd after {DRAIN_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "retention: etcd held no incident {:.0} s after the last close",
        drained.elapsed().as_secs_f64()
    );
    let with_retention = measure(&endpoint_retained).await;
    with_retention.print("retention, after the run (press keys still on their leases)");

    // Before: nothing removed.
    let etcd_before = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap();
    let endpoint_before = etcd_before.endpoints()[0].clone();
    let before = NodeBuilder::new("size-before")
        .store(StoreConfig::Etcd(etcd_before.endpoints()))
        .history(centinela_archive::Settings {
            archive: None,
            retention: centinela_archive::RETENTION_DEFAULT,
            data_dir: None,
        })
        .start()
        .await;
    let took = run(&before, "before", incidents).await;
    println!(
        "before: {incidents} incidents in {:.0} s",
        took.as_secs_f64()
    );
    let without = measure(&endpoint_before).await;
    without.print("before (nothing removed), after the run");
    assert_eq!(
        without.keys.get("incidents/").copied().unwrap_or(0),
        incidents,
        "every closed incident stays in etcd without an archive to remove into"
    );

    // The retention run once its press keys' leases have expired.
    while count(&endpoint_retained, "presses/") > 0 {
        assert!(
            pressed_at.elapsed() < PRESS_EXPIRY_DEADLINE,
            "press keys still in etcd {PRESS_EXPIRY_DEADLINE:?} after the last press"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let settled = measure(&endpoint_retained).await;
    settled.print("retention, press keys expired");

    println!(
        "\nsummary ({incidents} incidents): before {} keys, {:.2} MiB in use; retention {} keys, {:.2} MiB in use (press keys expired: {} keys, {:.2} MiB); empty {:.2} MiB",
        without.total_keys(),
        without.db_in_use as f64 / 1_048_576.0,
        with_retention.total_keys(),
        with_retention.db_in_use as f64 / 1_048_576.0,
        settled.total_keys(),
        settled.db_in_use as f64 / 1_048_576.0,
        empty.db_in_use as f64 / 1_048_576.0,
    );
    before.shutdown().await;
    retained.shutdown().await;
    drop(etcd_before);
    drop(etcd_retained);
}
