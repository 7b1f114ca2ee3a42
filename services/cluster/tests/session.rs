//! The session's lease on a real etcd while the node's runtime cannot run a task: every worker
//! thread blocked for several TTLs, the extreme of an attach storm or a wave of work that does
//! not yield. On the shared runtime the keep-alive waits behind it and the lease expires (the
//! cause of the lease losses in docs/benchmarks.md, "Scale on three nodes with devices
//! attached"); from its own thread ([`KeepAlive::Dedicated`]) the same lease stays alive.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use centinela_cluster::{KeepAlive, Session};
use centinela_store::Store;
use centinela_testkit::etcd::{EtcdCluster, store_options};
use centinela_testkit::wait;

/// Worker threads of the node's runtime in these tests (the machine's 2 cores).
const WORKERS: usize = 2;
/// A longer TTL than a node's 2 s, so that a refresh on a busy machine has ample slack: the
/// dedicated keep-alive must not fail for the machine's sake, only for the runtime's.
const TTL: Duration = Duration::from_secs(5);
/// How long every worker is blocked: three TTLs, so a keep-alive that needs the runtime
/// certainly misses the lease's expiry.
const BLOCKED: Duration = Duration::from_secs(15);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Blocks every worker thread of the current runtime at once for [`BLOCKED`]: each blocker
/// waits at a barrier for the others before sleeping, so they hold distinct workers.
async fn block_every_worker() {
    let barrier = Arc::new(Barrier::new(WORKERS));
    let blockers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait();
                std::thread::sleep(BLOCKED);
            })
        })
        .collect();
    for blocker in blockers {
        blocker.await.expect("a blocker ends");
    }
}

/// Starts a session on `etcd` the way `keep_alive` says, blocks the runtime, and returns
/// whether etcd still has the session's first lease right after, and whether the session
/// reported a change of lease (a loss) meanwhile.
async fn block_during_session(etcd: &EtcdCluster, keep_alive: KeepAlive) -> (bool, bool) {
    let store = Store::connect(&etcd.endpoints(), store_options())
        .await
        .expect("connect to etcd");
    let session = Session::start_with(store.clone(), TTL, keep_alive)
        .await
        .expect("a session");
    let first = session.current().expect("a first lease");
    let mut lease = session.lease();
    lease.borrow_and_update();

    block_every_worker().await;

    let reported_lost = lease.has_changed().expect("the session is running");
    // What etcd says, with a fresh connection (the test's own could have been idle too long).
    let fresh = Store::connect(&etcd.endpoints(), store_options())
        .await
        .expect("connect to etcd");
    let alive = wait::until("etcd to answer about the first lease", || async {
        fresh.lease_ttl(first).await.map(|ttl| ttl.is_some())
    })
    .await;
    session.close().await;
    (alive, reported_lost)
}

#[test]
fn a_dedicated_keep_alive_keeps_the_lease_while_every_worker_is_blocked() {
    let etcd = EtcdCluster::start(1);
    let keep_alive = KeepAlive::Dedicated {
        endpoints: etcd.endpoints(),
        options: store_options(),
    };
    let (alive, reported_lost) = runtime().block_on(block_during_session(&etcd, keep_alive));
    assert!(alive, "etcd let the session's first lease expire");
    assert!(!reported_lost, "the session reported its lease lost");
}

/// The cause, pinned: the same storm on the shared runtime costs the lease. If this ever stops
/// failing the lease, the test above no longer shows anything.
#[test]
fn a_shared_keep_alive_loses_the_lease_while_every_worker_is_blocked() {
    let etcd = EtcdCluster::start(1);
    let (alive, _) = runtime().block_on(block_during_session(&etcd, KeepAlive::Shared));
    assert!(
        !alive,
        "the lease survived a runtime blocked for three TTLs"
    );
}
