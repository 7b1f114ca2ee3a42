//! The store contract (`tests/contract`) against a real etcd: Debian's `etcd` binary
//! (`apt-get install -y etcd-server`), one fresh single-member etcd per case on free loopback
//! ports and a temporary data dir, killed when the case ends, pass or panic.
//!
//! Real etcd is the reference for the embedded store. This suite never skips: without the binary
//! it fails, saying how to install it. `ETCD_BIN` overrides the binary's path.

#[macro_use]
mod contract;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use centinela_store::{ConnectOptions, Store};
use tokio::time::Instant;

/// How long a fresh etcd may take to answer (it takes well under a second on one core).
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// Start attempts: a free port we picked can be taken by someone else before etcd binds it.
const START_ATTEMPTS: usize = 3;

/// A running etcd, killed (and its data dir removed) on drop.
struct Etcd {
    child: Child,
    endpoint: String,
    data: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        return PathBuf::from(path);
    }
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")]);
    for directory in candidates {
        let candidate = directory.join("etcd");
        if candidate.is_file() {
            return candidate;
        }
    }
    let how = "install it with `apt-get install -y etcd-server` (Debian's etcd 3.4), \
               or point ETCD_BIN at an etcd binary";
    if std::env::var_os("CI").is_some() {
        panic!("CI: the etcd contract suite needs the `etcd` binary and it is missing: {how}");
    }
    panic!("the etcd contract suite needs the `etcd` binary (not found on PATH): {how}");
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

impl Etcd {
    async fn start() -> (Etcd, Store) {
        let binary = etcd_binary();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&binary).await {
                Ok(started) => return started,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("etcd did not start: {failures:#?}");
    }

    async fn try_start(binary: &PathBuf) -> Result<(Etcd, Store), String> {
        // Both listeners are held together so the two ports differ, then freed for etcd.
        let (client_port, peer_port) = {
            let client = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let peer_port = free_port();
            (
                client.local_addr().map_err(|e| e.to_string())?.port(),
                peer_port,
            )
        };
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log_path = data.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(binary)
            .args(["--name", "contract"])
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("contract={peer_url}")])
            // Our clients PING every 500 ms; stock etcd (5 s) would GOAWAY them (see
            // `ConnectOptions`). Production etcd runs with the same flag.
            .args(["--grpc-keepalive-min-time", "200ms"])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut etcd = Etcd {
            child,
            endpoint: client_url,
            data,
        };

        let options = ConnectOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            ..ConnectOptions::default()
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("etcd exited with {status}: {log}"));
            }
            match Store::connect(std::slice::from_ref(&etcd.endpoint), options.clone()).await {
                Ok(store) => {
                    let store = store.with_request_timeout(Duration::from_secs(5));
                    return Ok((etcd, store));
                }
                Err(error) if started.elapsed() > STARTUP_DEADLINE => {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    return Err(format!(
                        "etcd at {} did not answer within {STARTUP_DEADLINE:?} ({error}); \
                         data {:?}; log: {log}",
                        etcd.endpoint,
                        etcd.data.path()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

macro_rules! etcd_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                // Declared first, dropped last: etcd outlives the case's tasks and is killed
                // even when the case panics.
                let (_etcd, store) = Etcd::start().await;
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
    let (etcd, _) = Etcd::start().await;
    // Nothing listens on a port we just freed (someone could take it, but would not speak
    // etcd's API to us: the call would fail and move on all the same).
    let dead = format!("127.0.0.1:{}", free_port());
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    };
    let store = Store::connect(&[dead, etcd.endpoint.clone()], options)
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
