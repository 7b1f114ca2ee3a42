//! One compare-and-swap transaction on the store, the unit of every state change: read a
//! brigade, change it, write it back guarded by its revision (`Records::update_brigade`), and
//! a raw put as the baseline of the same run. Against the embedded store by default; set
//! `CENTINELA_BENCH_ETCD=http://127.0.0.1:2379` to measure a real etcd the same way.

use criterion::{Criterion, criterion_group, criterion_main};

use centinela_core::brigade::Brigade;
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_store::{ConnectOptions, EmbeddedStore, Store};

fn store_txn(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The embedded store spawns its server tasks where it is created.
    let _context = runtime.enter();
    let _embedded;
    let (store, label) = match std::env::var("CENTINELA_BENCH_ETCD") {
        Ok(url) => (
            runtime
                .block_on(Store::connect(&[url], ConnectOptions::default()))
                .expect("etcd reachable"),
            "etcd",
        ),
        Err(_) => {
            _embedded = EmbeddedStore::new();
            (Store::embedded(&_embedded), "embedded")
        }
    };
    let records = Records::new(store.clone());
    let now = Timestamp::from_millis(1_795_817_112_000);
    runtime
        .block_on(records.seed(&Scenario::lima_centro(), now))
        .unwrap();
    let brigade = centinela_core::ids::BrigadeId::new("U01").unwrap();
    let mut group = c.benchmark_group(format!("store_{label}"));
    group.bench_function("put", |b| {
        b.to_async(&runtime)
            .iter(|| store.put("/centinela-bench/key", b"value".to_vec(), None))
    });
    group.bench_function("cas_update", |b| {
        b.to_async(&runtime).iter(|| {
            records.update::<Brigade>(brigade.as_str(), |b| {
                b.acked = !b.acked;
                Ok(())
            })
        })
    });
    group.finish();
}

criterion_group!(benches, store_txn);
criterion_main!(benches);
