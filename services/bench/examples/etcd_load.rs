//! Raw etcd, measured the way `centinela loadgen` measures presses: the baseline of the cluster
//! benchmarks (scripts/bench-cluster.sh, docs/benchmarks.md).
//!
//! ```sh
//! etcd_load ENDPOINTS open RATE SECONDS      # open loop: latency from each op's scheduled time
//! etcd_load ENDPOINTS closed CONCURRENCY SECONDS   # closed loop: how many txn/s at CONCURRENCY
//! ```
//!
//! ENDPOINTS is a comma-separated list (`http://127.0.0.1:2379,...`). Each op is one write
//! transaction shaped like a press's: create a fresh key if absent (compare `create_revision
//! == 0`) with a 300-byte value, through the same client (`centinela_store::Store`) the nodes
//! use. Prints one JSON object: `ops`, `errors`, `late` (ops not started within 1 s of their
//! schedule: the open loop could not keep up), `ops_per_s`, and `latency_ms` p50/p99/p999/max.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use centinela_store::{Compare, ConnectOptions, Store, Txn, TxnOp};

const VALUE_BYTES: usize = 300;

fn usage() -> ! {
    eprintln!("usage: etcd_load ENDPOINTS (open RATE | closed CONCURRENCY) SECONDS");
    std::process::exit(2);
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    errors: u64,
    late: u64,
}

async fn one_txn(store: &Store, key: String) -> Result<(), centinela_store::Error> {
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone()).equal(0)])
        .and_then([TxnOp::put(key, vec![b'x'; VALUE_BYTES], None)]);
    store.txn(txn).await.map(|_| ())
}

fn percentiles(values: &mut [f64]) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if values.is_empty() {
            return 0.0;
        }
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        (values[rank - 1] * 1000.0).round() / 1000.0
    };
    serde_json::json!({
        "p50": at(0.50), "p99": at(0.99), "p999": at(0.999), "max": at(1.0),
        "count": values.len(),
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        usage();
    }
    let endpoints: Vec<String> = args[0].split(',').map(str::to_owned).collect();
    let amount: f64 = args[2].parse().unwrap_or_else(|_| usage());
    let seconds: f64 = args[3].parse().unwrap_or_else(|_| usage());
    if !(amount > 0.0 && seconds > 0.0) {
        usage();
    }
    let store = Store::connect(&endpoints, ConnectOptions::default())
        .await
        .unwrap_or_else(|e| {
            eprintln!("etcd_load: cannot reach {endpoints:?}: {e}");
            std::process::exit(1);
        });
    let tag = format!(
        "/etcd-load/{}-{}/",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    match args[1].as_str() {
        "open" => {
            let total = (amount * seconds).round().max(1.0) as u64;
            let interval = Duration::from_secs_f64(1.0 / amount);
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..total {
                let scheduled =
                    tokio::time::Instant::from_std(started + interval.mul_f64(n as f64));
                tokio::time::sleep_until(scheduled).await;
                if scheduled.elapsed() > Duration::from_secs(1) {
                    tally.lock().unwrap().late += 1;
                    continue;
                }
                let (store, tally, key) = (store.clone(), tally.clone(), format!("{tag}{n}"));
                tasks.spawn(async move {
                    let result = one_txn(&store, key).await;
                    let ms = scheduled.elapsed().as_secs_f64() * 1000.0;
                    let mut t = tally.lock().unwrap();
                    match result {
                        Ok(()) => t.latencies_ms.push(ms),
                        Err(_) => t.errors += 1,
                    }
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
        "closed" => {
            let until = started + Duration::from_secs_f64(seconds);
            let mut workers = tokio::task::JoinSet::new();
            for worker in 0..(amount as usize).max(1) {
                let (store, tally, tag) = (store.clone(), tally.clone(), tag.clone());
                workers.spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < until {
                        let sent = Instant::now();
                        let result = one_txn(&store, format!("{tag}{worker}-{n}")).await;
                        let ms = sent.elapsed().as_secs_f64() * 1000.0;
                        let mut t = tally.lock().unwrap();
                        match result {
                            Ok(()) => t.latencies_ms.push(ms),
                            Err(_) => t.errors += 1,
                        }
                        n += 1;
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        }
        _ => usage(),
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = store.delete_prefix(&tag).await;
    let mut t = tally.lock().unwrap();
    let ops = t.latencies_ms.len();
    let report = serde_json::json!({
        "mode": args[1],
        "amount": amount,
        "seconds": seconds,
        "ops": ops,
        "errors": t.errors,
        "late": t.late,
        "ops_per_s": (ops as f64 / elapsed * 10.0).round() / 10.0,
        "latency_ms": percentiles(&mut t.latencies_ms),
    });
    println!("{report}");
}
