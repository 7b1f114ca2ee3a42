//! Live reads with and without history (docs/benchmarks.md, "Live reads with 0 and 100,000
//! archived incidents"): the open-incident listing (`Operator.ListIncidents`) and the
//! console's snapshot (`GET /api/events` until its `snapshot_done`) on one node, first with
//! an empty archive, then after 100,000 closed incidents were archived, in the same run.
//!
//! ```sh
//! cargo run -p centinela-node --example history_reads [-- ARCHIVED]   # default 100000
//! ```
//!
//! A real node on the embedded store (one process: store, node and this client) with its
//! archive in an SQLite file in a temporary directory, five open incidents pressed through
//! the button gateway, and a demo console to sign in to. The archive is filled through
//! `Archive::archive`, the leader's own insert path (audit-sealed incidents with a unit, one
//! ledger link each); archived incidents are no longer in the store, which is what the
//! retention leaves in production. Each phase times [`LISTINGS`] listings and [`SNAPSHOTS`]
//! snapshots, after [`WARMUP`] of each, and prints p50 and p99 (nearest rank) and the ratio.

use std::time::{Duration, Instant};

use centinela_archive::{Archive, ArchivedIncident};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{Actor, Incident, Resolution};
use centinela_core::scenario::Scenario;
use centinela_core::seal::AuditKey;
use centinela_core::time::Timestamp;
use centinela_node::ConsoleConfig;
use centinela_proto::v1;
use centinela_testkit::node::{NodeBuilder, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Archived incidents in the second phase, unless given on the command line.
const ARCHIVED_DEFAULT: u64 = 100_000;
/// Open incidents on the live console in both phases.
const OPEN: usize = 5;
const WARMUP: usize = 20;
const LISTINGS: usize = 500;
const SNAPSHOTS: usize = 200;
/// A snapshot that takes longer than this is a failure, not a figure.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(30);
/// 2025-12-04T00:00:00Z: the archived year starts here.
const HISTORY_START_MS: u64 = 1_764_806_400_000;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// Signs in to the demo console; the session cookie (`name=value`).
async fn demo_cookie(node: &TestNode) -> String {
    let reply = http(
        node,
        "POST /api/login/demo HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        None,
    )
    .await;
    let cookie = reply
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().split(';').next().unwrap_or("").to_owned())
        })
        .unwrap_or_else(|| panic!("no session cookie from the demo sign-in: {reply}"));
    assert!(reply.starts_with("HTTP/1.1 200"), "demo sign-in: {reply}");
    cookie
}

/// Sends `request` and reads until the connection closes, or until `until` is in what was
/// read (then drops the connection).
async fn http(node: &TestNode, request: &str, until: Option<&str>) -> String {
    let mut stream = TcpStream::connect(node.node.http_addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut read = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        if n == 0 {
            break;
        }
        read.extend_from_slice(&buffer[..n]);
        if let Some(until) = until
            && read.windows(until.len()).any(|w| w == until.as_bytes())
        {
            break;
        }
    }
    String::from_utf8_lossy(&read).into_owned()
}

/// One console snapshot: from the request to its `snapshot_done` event.
async fn snapshot(node: &TestNode, cookie: &str) -> Duration {
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: bench\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    );
    let started = Instant::now();
    let events = tokio::time::timeout(
        SNAPSHOT_DEADLINE,
        http(node, &request, Some("event: snapshot_done")),
    )
    .await
    .expect("a snapshot within the deadline");
    let elapsed = started.elapsed();
    assert!(
        events.contains("event: snapshot_done"),
        "no snapshot: {events}"
    );
    let incidents = events.matches("event: incident").count();
    assert!(incidents >= OPEN, "{incidents} incidents in the snapshot");
    elapsed
}

async fn listing(node: &TestNode) -> Duration {
    let mut operator = node.operator();
    let started = Instant::now();
    let listed = operator
        .list_incidents(v1::ListIncidentsRequest {
            include_closed: false,
        })
        .await
        .expect("listing")
        .into_inner()
        .incidents;
    let elapsed = started.elapsed();
    assert_eq!(listed.len(), OPEN, "the open incidents, only them");
    elapsed
}

struct Phase {
    listing: Vec<Duration>,
    snapshot: Vec<Duration>,
}

async fn measure(node: &TestNode, cookie: &str) -> Phase {
    for _ in 0..WARMUP {
        listing(node).await;
        snapshot(node, cookie).await;
    }
    let mut phase = Phase {
        listing: Vec::with_capacity(LISTINGS),
        snapshot: Vec::with_capacity(SNAPSHOTS),
    };
    for _ in 0..LISTINGS {
        phase.listing.push(listing(node).await);
    }
    for _ in 0..SNAPSHOTS {
        phase.snapshot.push(snapshot(node, cookie).await);
    }
    phase.listing.sort();
    phase.snapshot.sort();
    phase
}

/// A closed, sealed incident like the ones the leader archives: pressed, acknowledged, a
/// unit assigned and on scene, handled.
fn closed_incident(n: u64, scenario: &Scenario) -> Incident {
    let button = &scenario.buttons[n as usize % scenario.buttons.len()];
    let unit = &scenario.brigades[n as usize % scenario.brigades.len()];
    // One incident every ~5 minutes over the year before the run.
    let at = Timestamp::from_millis(HISTORY_START_MS + n * 315_000);
    let step = |s: u64| at.saturating_add(Duration::from_secs(s));
    let op = OperatorId::new("op-bench").unwrap();
    let mut incident = Incident::open(
        IncidentId::new(format!("archived-{n:06}")).unwrap(),
        ButtonId::new(button.id.as_str()).unwrap(),
        CameraId::new(button.camera.id.as_str()).unwrap(),
        Position::new(button.lat, button.lon).unwrap(),
        at,
    );
    incident.acknowledge(op.clone(), step(8)).unwrap();
    let brigade = BrigadeId::new(unit.id.as_str()).unwrap();
    incident
        .assign(brigade.clone(), Actor::Operator(op.clone()), step(20))
        .unwrap();
    incident.unit_on_scene(&brigade, step(300)).unwrap();
    incident
        .close(Resolution::Handled, Actor::Operator(op), step(900))
        .unwrap();
    incident.seal(None, &AuditKey::public());
    incident
}

async fn fill(archive: &Archive, count: u64, scenario: &Scenario) {
    let key = AuditKey::public();
    let started = Instant::now();
    for n in 0..count {
        let entry = ArchivedIncident {
            incident: closed_incident(n, scenario),
            presses: vec![format!("press-{n}")],
            stills: Vec::new(),
            bookmarks: Vec::new(),
            district: None,
        };
        let now = Timestamp::from_millis(HISTORY_START_MS + n * 315_000 + 3_600_000);
        archive
            .archive(&entry, &[], &key, now)
            .await
            .expect("archived");
        if (n + 1) % 10_000 == 0 {
            eprintln!(
                "archived {} in {:.0} s",
                n + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

fn print(label: &str, phase: &Phase) {
    println!(
        "{label}: listing p50 {} ms p99 {} ms ({} calls); snapshot p50 {} ms p99 {} ms ({} loads)",
        ms(percentile(&phase.listing, 50)),
        ms(percentile(&phase.listing, 99)),
        phase.listing.len(),
        ms(percentile(&phase.snapshot, 50)),
        ms(percentile(&phase.snapshot, 99)),
        phase.snapshot.len(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let archived: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ARCHIVED is a whole number"))
        .unwrap_or(ARCHIVED_DEFAULT);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("archive.db").display());
    let scenario = Scenario::lima_centro();
    let node = NodeBuilder::new("history-reads")
        .archive(&url)
        .console(ConsoleConfig::demo())
        .start()
        .await;
    node.wait_for_dispatcher().await;
    for (n, button) in scenario.buttons.iter().take(OPEN).enumerate() {
        node.press(button.id.as_str(), &format!("open-{n}")).await;
    }
    let cookie = demo_cookie(&node).await;

    let before = measure(&node, &cookie).await;
    print("archive empty", &before);

    let archive = Archive::open(&url).unwrap();
    let started = Instant::now();
    fill(&archive, archived, &scenario).await;
    let count = archive.count().await.unwrap();
    assert_eq!(count, archived, "every incident archived");
    println!(
        "archived {count} incidents in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let after = measure(&node, &cookie).await;
    print(&format!("archive with {count}"), &after);
    let ratio = |a: &[Duration], b: &[Duration], p| {
        percentile(a, p).as_secs_f64() / percentile(b, p).as_secs_f64()
    };
    println!(
        "ratio after/before: listing p50 {:.2}x p99 {:.2}x; snapshot p50 {:.2}x p99 {:.2}x",
        ratio(&after.listing, &before.listing, 50),
        ratio(&after.listing, &before.listing, 99),
        ratio(&after.snapshot, &before.snapshot, 50),
        ratio(&after.snapshot, &before.snapshot, 99),
    );
    archive.close().await;
    node.shutdown().await;
}
