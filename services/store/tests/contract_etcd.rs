//! The store contract (`tests/contract`) against a real etcd: Debian's `etcd` binary
//! (`apt-get install -y etcd-server`), one fresh single-member etcd per case on free loopback
//! ports and a temporary data dir, killed when the case ends, pass or panic
//! (`centinela_testkit::etcd`).
//!
//! Real etcd is the reference for the embedded store. This suite never skips: without the binary
//! it fails, saying how to install it. `ETCD_BIN` overrides the binary's path.

#[macro_use]
mod contract;

use std::time::Duration;

use centinela_store::{ConnectOptions, Store};
use centinela_testkit::etcd::{EtcdCluster, free_ports};

/// A fresh single-member etcd (killed, its data dir removed, on drop) and a client of it.
async fn start_etcd() -> (EtcdCluster, Store) {
    let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        ..ConnectOptions::default()
    };
    let store = Store::connect(&etcd.endpoints(), options)
        .await
        .unwrap_or_else(|e| panic!("connect to the etcd that answered: {e}"))
        .with_request_timeout(Duration::from_secs(5));
    (etcd, store)
}

macro_rules! etcd_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                // Declared first, dropped last: etcd outlives the case's tasks and is killed
                // even when the case panics.
                let (_etcd, store) = start_etcd().await;
                contract::$case(store, "/contract/".to_owned()).await;
            }
        )*
    };
}

for_each_case!(etcd_cases);

/// A handle given a dead endpoint first moves to the next one: unary calls (a call that could
/// not connect is retried on the next member at once), watches and lease keep-alives all work.
#[tokio::test]
async fn a_dead_first_endpoint_is_passed_over() {
    let (etcd, _) = start_etcd().await;
    // Nothing listens on a port we just freed (someone could take it, but would not speak
    // etcd's API to us: the call would fail and move on all the same).
    let dead = format!("127.0.0.1:{}", free_ports(1)[0]);
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    };
    let store = Store::connect(&[dead, etcd.endpoints()[0].clone()], options)
        .await
        .expect("connect passes over the dead endpoint");
    assert_eq!(store.member_count(), 2);

    store.put("/failover/a", "1", None).await.expect("put");
    let mut watch = store
        .watch_prefix("/failover/", None)
        .await
        .expect("watch opens on the live member");
    store.put("/failover/b", "2", None).await.expect("put");
    let event = tokio::time::timeout(
        Duration::from_secs(10),
        futures::StreamExt::next(&mut watch),
    )
    .await
    .expect("the watch delivers within 10 s")
    .expect("the watch is open")
    .expect("an event");
    assert_eq!(event.kv.key, "/failover/b");

    let lease = store
        .grant_lease(Duration::from_secs(2))
        .await
        .expect("grant");
    let keeper = store.keep_alive(lease).await.expect("keep-alive");
    // Three TTLs: the lease lives only if the keep-alive stream works.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        keeper.is_alive(),
        "the lease was kept alive through the live member"
    );
    assert!(store.lease_ttl(lease).await.expect("ttl").is_some());
}
