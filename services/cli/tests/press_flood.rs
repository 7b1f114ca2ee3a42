//! One pole's token leaning on its button at the device rate limit (issue 21): every press is
//! acknowledged, and etcd does not grow with the presses (docs/security.md, "Press budget and
//! record size").
//!
//! An hour at the rate limit is 180,000 presses; this test sends 1,800 (36 s at 50/s, the
//! number the issue reproduced with) in two phases and measures what the second phase, 1,600
//! presses all past the press budget, added to the live keyspace: nothing but digits of the
//! incident's press count. Past the budget a press adds no key, no audit entry and no byte to
//! the record, so the growth measured between the phases is the growth of any longer flood.
//! The etcd database itself (dbSize after compaction and defragmentation) is measured too.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use centinela_core::limits::PRESS_KEYS_PER_INCIDENT_MAX;
use centinela_store::Store;
use common::*;

/// The device rate limit the node enforces (`centinela_api::limits::DEVICE_RATE`, 50/s).
const PRESSES_PER_S: u64 = 50;
/// Presses before the first measurement: past the press budget (64 keyed presses) and the
/// audited repeats (16), so the incident is at its full size.
const WARM_UP: usize = 200;
/// Presses between the two measurements.
const FLOOD: usize = 1_600;
/// What the live keyspace may grow by during the flood: the press count's digits (4 → 4 here)
/// and the recent press times' (same length), with room for a brigade record changing size
/// (the dispatcher works on the incident meanwhile). Before: ~35 KB more per merge and one key
/// per press.
const FLOOD_GROWTH_BYTES_MAX: i64 = 4_096;

/// The live keyspace under `/centinela/`: key count and the sum of key and value sizes, and
/// the same for the press keys and the incident records alone.
struct Keyspace {
    keys: usize,
    bytes: i64,
    press_keys: usize,
    incident_bytes: i64,
}

async fn keyspace(store: &Store) -> Keyspace {
    let (kvs, _) = read_prefix(store, "/centinela/").await;
    let size = |kv: &centinela_store::Kv| (kv.key.len() + kv.value.len()) as i64;
    Keyspace {
        keys: kvs.len(),
        bytes: kvs.iter().map(size).sum(),
        press_keys: kvs
            .iter()
            .filter(|kv| kv.key.starts_with("/centinela/presses/"))
            .count(),
        incident_bytes: kvs
            .iter()
            .filter(|kv| kv.key.starts_with("/centinela/incidents/"))
            .map(size)
            .sum(),
    }
}

/// Presses `count` times at the rate limit, every press with its own id, each retried until
/// acknowledged (the presses run concurrently: a slow acknowledgement does not slow the rate).
async fn flood(presser: &Presser, count: usize) {
    let mut tick = tokio::time::interval(Duration::from_millis(1_000 / PRESSES_PER_S));
    let mut presses = tokio::task::JoinSet::new();
    for _ in 0..count {
        tick.tick().await;
        let presser = presser.clone();
        presses.spawn(async move { presser.press("B01").await });
    }
    while let Some(pressed) = presses.join_next().await {
        pressed
            .expect("the press task")
            .expect("every press acknowledged");
    }
}

/// etcd's database size after a compaction at the current revision and a defragmentation,
/// with `etcdctl` (Debian's etcd-client); `None` without it.
fn compacted_db_size(endpoint: &str, revision: i64) -> Option<i64> {
    let etcdctl = |args: &[&str]| {
        Command::new("etcdctl")
            .args(["--endpoints", endpoint])
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
    };
    etcdctl(&["compact", &revision.to_string(), "--physical"])?;
    etcdctl(&["defrag"])?;
    let status = etcdctl(&["endpoint", "status", "-w", "json"])?;
    let status: Value = serde_json::from_slice(&status.stdout).ok()?;
    status[0]["Status"]["dbSize"].as_i64()
}

#[test]
fn a_press_flood_at_the_rate_limit_grows_etcd_by_a_bounded_amount() {
    let etcd = start_etcd(1);
    let node = Node::start("n1", "site-a", &etcd.endpoints());
    let rt = runtime();
    let store = rt.block_on(connect_store(&etcd.endpoints()));
    let presser = Presser::new(std::slice::from_ref(&node.grpc), "flood");
    let endpoint = etcd.endpoints()[0].clone();

    let start = rt.block_on(keyspace(&store));
    rt.block_on(flood(&presser, WARM_UP));
    let warm = rt.block_on(keyspace(&store));
    let revision = rt.block_on(store.status()).unwrap().revision;
    let warm_db = compacted_db_size(&endpoint, revision);
    rt.block_on(flood(&presser, FLOOD));
    let flooded = rt.block_on(keyspace(&store));
    let revision = rt.block_on(store.status()).unwrap().revision;
    let flooded_db = compacted_db_size(&endpoint, revision);

    // Every press acknowledged, all into one incident, and counted in it.
    let acked = presser.acked();
    assert_eq!(acked.len(), WARM_UP + FLOOD);
    assert!(presser.lost().is_empty());
    let incidents: BTreeSet<&str> = acked.iter().map(|a| a.incident.as_str()).collect();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = cli_json(
        std::slice::from_ref(&node.grpc),
        &["incident", incidents.first().unwrap()],
    );
    // A press retried after its batch committed (its acknowledgement was late) and past the
    // budget (no key to find it by) is counted again: at most once per extra attempt.
    let retries: u64 = acked.iter().map(|a| u64::from(a.attempts - 1)).sum();
    let counted = incident["press_count"].as_u64().expect("a press count");
    let sent = (WARM_UP + FLOOD) as u64;
    assert!(
        (sent..=sent + retries).contains(&counted),
        "{counted} presses counted, {sent} sent with {retries} retries"
    );

    figure("flood_presses", WARM_UP + FLOOD);
    figure("keys_start", start.keys);
    figure("keys_after_warm_up", warm.keys);
    figure("keys_after_flood", flooded.keys);
    figure("live_bytes_start", start.bytes);
    figure("live_bytes_after_warm_up", warm.bytes);
    figure("live_bytes_after_flood", flooded.bytes);
    figure("incident_record_bytes_after_warm_up", warm.incident_bytes);
    figure("incident_record_bytes_after_flood", flooded.incident_bytes);
    figure("press_keys_after_flood", flooded.press_keys);
    if let (Some(warm_db), Some(flooded_db)) = (warm_db, flooded_db) {
        figure("etcd_db_bytes_compacted_after_warm_up", warm_db);
        figure("etcd_db_bytes_compacted_after_flood", flooded_db);
    }

    // The press budget: keys for the first presses only, none for the flood.
    assert_eq!(
        flooded.press_keys, PRESS_KEYS_PER_INCIDENT_MAX,
        "press keys"
    );
    assert_eq!(flooded.keys, warm.keys, "the flood added keys");
    // The record stays a few KB, and the flood did not grow the keyspace beyond the digits.
    assert!(
        flooded.incident_bytes < 8_192,
        "{} bytes",
        flooded.incident_bytes
    );
    let growth = flooded.bytes - warm.bytes;
    assert!(
        growth <= FLOOD_GROWTH_BYTES_MAX,
        "the live keyspace grew by {growth} bytes during the flood"
    );
    // etcd's file, compacted and defragmented, does not grow with the flood either (etcd
    // allocates in pages: allow one megabyte of slack).
    if let (Some(warm_db), Some(flooded_db)) = (warm_db, flooded_db) {
        assert!(
            flooded_db - warm_db <= 1 << 20,
            "dbSize {warm_db} -> {flooded_db}"
        );
    } else {
        eprintln!("etcdctl is not installed: dbSize not measured");
    }
}
