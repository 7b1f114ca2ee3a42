//! The process harness shared by the end-to-end and cluster tests (`mod common;` in each).
//!
//! Everything here runs real processes: `centinela demo`, `centinela start` nodes, `centinela
//! devices`, and Debian's etcd (one member or a three-member cluster). Rules it keeps:
//!
//! - free loopback ports (port 0 for our binaries, which print the real address in their
//!   banner; held-then-freed ports for etcd, which cannot: `centinela_testkit::etcd`),
//!   temporary directories;
//! - every process is killed when its handle drops, also when the test panics; then its output
//!   is saved under `target/tmp/cluster-logs/<test>/` and, when the test failed, the tail of it
//!   is printed;
//! - conditions are waited on with generous deadlines ([`DEADLINE`], `centinela_testkit::wait`),
//!   never slept-then-asserted;
//! - presses carry a unique `press_id` and are retried with the same id until acknowledged,
//!   and every acknowledged press is recorded, so [`check_invariants`] can verify it in etcd
//!   (with the checks of `centinela_testkit::invariants`, the simulation's too).
//!
//! Process control is synchronous (call it from the test's thread); the press client, the
//! store monitor and the invariant checker are async and run on the test's own runtime
//! ([`runtime`]).
//!
//! A [`Cluster`] runs in one of two [`Transport`]s: plaintext, or TLS on every hop (issue 20:
//! node certificates naming the node ids, mutual TLS between nodes, HTTPS probes, the clients
//! trusting the city CA and presenting a client certificate, etcd requiring client
//! certificates with an RBAC user per node). The harness remembers how to reach each TLS
//! address it started ([`TlsClient`]), so its clients take the same address lists in both.
#![allow(dead_code)] // each test binary uses a part of the harness

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_stream::StreamExt;

use centinela_proto::client::{ClientTls, Credentials, Failover};
use centinela_proto::v1::{self, button_gateway_client::ButtonGatewayClient};
use centinela_store::{ConnectOptions, EventKind, Kv, Store};
use centinela_testkit::invariants::{self, Ack, Fence, Records};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::wait::{self, Wait};

pub use centinela_testkit::etcd::{EtcdCluster, read_prefix};
use centinela_testkit::pki::Pki;
/// Generous: a cold start, an election or a failover on a busy 2-core CI machine (60 s).
pub use centinela_testkit::wait::DEADLINE;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_centinela");

// ---------------------------------------------------------------------------------------------
// Output capture

/// The output of one process, captured line by line.
#[derive(Clone)]
pub struct Log {
    name: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Log {
    fn new(name: &str) -> Log {
        Log {
            name: name.to_string(),
            lines: Arc::default(),
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Lines containing any of `needles` (case-insensitive).
    pub fn grep(&self, needles: &[&str]) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| {
                let lower = line.to_ascii_lowercase();
                needles
                    .iter()
                    .any(|n| lower.contains(&n.to_ascii_lowercase()))
            })
            .collect()
    }

    /// Saves the log under the test's log directory; prints its tail when the test fails.
    fn finish(&self) {
        centinela_testkit::logs::finish(&self.name, &self.text(), Some(&logs_dir()));
    }

    /// Reads `stream` to its end on a thread (so the child never blocks on a full pipe),
    /// keeping every line and sending banner addresses (`  gRPC     http://ADDR`,
    /// `  console  https://ADDR/`) to the returned channel as `(label, scheme, ADDR)`.
    fn capture(&self, stream: impl Read + Send + 'static) -> mpsc::Receiver<Banner> {
        let (tx, rx) = mpsc::channel();
        let sink = self.lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                for label in ["gRPC", "console"] {
                    let Some(rest) = line.trim_start().strip_prefix(label) else {
                        continue;
                    };
                    for scheme in ["http", "https"] {
                        if let Some(addr) = rest.trim().strip_prefix(&format!("{scheme}://")) {
                            let addr = addr.trim_end_matches('/').to_string();
                            let _ = tx.send((label, scheme, addr));
                        }
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        rx
    }
}

/// A banner line's address: `(label, scheme, HOST:PORT)`.
type Banner = (&'static str, &'static str, String);

/// `target/tmp/cluster-logs/<test name>/`: where process logs of this test are saved.
pub fn logs_dir() -> PathBuf {
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => name.replace("::", "-"),
        _ => format!("pid-{}", std::process::id()),
    };
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cluster-logs")
        .join(test)
}

/// A child process, killed (SIGKILL) and reaped on drop, its log saved.
struct Proc {
    child: Child,
    log: Log,
}

impl Proc {
    fn spawn(name: &str, command: &mut Command) -> (Proc, mpsc::Receiver<Banner>) {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let log = Log::new(name);
        let rx = log.capture(child.stderr.take().unwrap());
        (Proc { child, log }, rx)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("the kill command runs");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits for the process to exit, up to `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.finish();
    }
}

/// Waits for the two banner addresses: the gRPC URL (`http://` or `https://`) and the
/// console's `HOST:PORT`. Panics with the log if the process exits or is late.
fn wait_banner(proc: &mut Proc, rx: &mpsc::Receiver<Banner>, what: &str) -> (String, String) {
    let (mut grpc, mut http) = (String::new(), String::new());
    let start = Instant::now();
    while grpc.is_empty() || http.is_empty() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(("gRPC", scheme, addr)) => grpc = format!("{scheme}://{addr}"),
            Ok((_, _, addr)) => http = addr,
            Err(_) => {
                if let Ok(Some(status)) = proc.child.try_wait() {
                    // Give the reader a moment to collect the last lines.
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "{what} exited with {status} before its banner:\n{}",
                        proc.log.text()
                    );
                }
                assert!(
                    start.elapsed() < DEADLINE,
                    "{what} did not print its addresses within {DEADLINE:?}:\n{}",
                    proc.log.text()
                );
            }
        }
    }
    (grpc, http)
}

// ---------------------------------------------------------------------------------------------
// Small utilities

/// The runtime a test drives its async parts with (press clients, store monitor, checks).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A measured figure, printed in a greppable form: `FIGURE name=value`.
pub fn figure(name: &str, value: impl std::fmt::Display) {
    eprintln!("FIGURE {name}={value}");
}

pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// A minimal HTTP/1.1 GET over a socket with short timeouts: `(status code, body)`.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let socket: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    parse_response(&response)
}

/// [`http_get`] over TLS (the console of a node with a certificate), trusting `tls`'s CA and
/// checking that the certificate names `127.0.0.1`.
pub fn https_get(addr: &str, path: &str, tls: &ClientTls) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;
    let connector = tls
        .for_http1()
        .connector(centinela_tls::ServerName::try_from("127.0.0.1").expect("a server name"));
    let uri: http::Uri = format!("http://{addr}")
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let response = centinela_testkit::etcd::block_on(async move {
        let limit = Duration::from_secs(2);
        let late = |_| std::io::Error::from(std::io::ErrorKind::TimedOut);
        let io = tokio::time::timeout(limit, connector.oneshot(uri))
            .await
            .map_err(late)??;
        let mut stream = io.into_inner();
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tokio::time::timeout(limit, stream.read_to_end(&mut response))
            .await
            .map_err(late)??;
        Ok::<_, std::io::Error>(response)
    })?;
    parse_response(&String::from_utf8_lossy(&response))
}

/// `(status code, body)` of a whole HTTP/1.1 response.
fn parse_response(response: &str) -> std::io::Result<(u16, String)> {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((code, body.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Credentials (docs/security.md)
//
// `centinela start` enforces credentials: every cluster node these tests start shares a cluster
// secret, the shared device token and one operator account, and every client of a cluster
// (the CLI, `centinela devices`, the in-process pressers) presents them. The demo stays
// credential-free: `Demo`'s commands run with none.

/// The shared device token of the test clusters.
pub const TEST_DEVICE_TOKEN: &str = "centinela-test-device-token";
/// The cluster secret of the test clusters.
pub const TEST_CLUSTER_SECRET: &str = "centinela-test-cluster-secret-0123456789";
/// The operator account of the test clusters (a supervisor), and its password.
pub const TEST_OPERATOR: &str = "cli";
pub const TEST_PASSWORD: &str = "cluster-test-password";
/// `TEST_PASSWORD`'s argon2id hash, with weak parameters so debug builds check it quickly.
pub const TEST_PASSWORD_HASH: &str = "$argon2id$v=19$m=1024,t=1,p=1$Y2VudGluZWxhLXRlc3Rz$mN+QVYUd29B41cBTGyVzSaqJUpE1GEFKg8CcfB5CkV0";

/// What a `centinela start` node of the tests is configured with.
pub fn node_credentials_env() -> Vec<(&'static str, String)> {
    vec![
        ("CENTINELA_DEVICE_TOKEN", TEST_DEVICE_TOKEN.to_string()),
        ("CENTINELA_CLUSTER_SECRET", TEST_CLUSTER_SECRET.to_string()),
        (
            "CENTINELA_OPERATORS",
            format!("{TEST_OPERATOR}:supervisor:{TEST_PASSWORD_HASH}"),
        ),
    ]
}

/// What a client of the test clusters presents.
pub fn client_credentials_env() -> Vec<(&'static str, String)> {
    vec![
        ("CENTINELA_DEVICE_TOKEN", TEST_DEVICE_TOKEN.to_string()),
        ("CENTINELA_OPERATOR", TEST_OPERATOR.to_string()),
        ("CENTINELA_PASSWORD", TEST_PASSWORD.to_string()),
    ]
}

/// What an in-process device client of the test clusters presents.
fn credentials() -> Credentials {
    Credentials::new(Some(TEST_DEVICE_TOKEN)).expect("a valid test device token")
}

/// What an in-process operator client of the test clusters presents.
fn operator_credentials() -> Credentials {
    Credentials::default()
        .with_operator(TEST_OPERATOR, Some(TEST_PASSWORD))
        .expect("valid test operator credentials")
}

// ---------------------------------------------------------------------------------------------
// Transport: plaintext, or TLS on every hop (docs/security.md, "Transport security" and "etcd")

/// How a [`Cluster`] of the tests speaks, on every hop: client to node, node to node, node to
/// etcd, the test's own checks to etcd and to the probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// Certificates made by the test ([`ClusterTls`]); etcd requires client certificates and
    /// has RBAC on.
    Tls,
}

/// What a client of a TLS address trusts and presents: the city CA and the test's client
/// certificate (which names no node and no device: the clients still present tokens and
/// passwords, docs/security.md).
#[derive(Clone)]
pub struct TlsClient {
    pub ca: PathBuf,
    pub identity: centinela_tls::Files,
    pub tls: ClientTls,
}

impl TlsClient {
    /// The `CENTINELA_TLS_*` variables of a client process (the CLI, `centinela devices`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CENTINELA_TLS_CA", self.ca.display().to_string()),
            (
                "CENTINELA_TLS_CLIENT_CERT",
                self.identity.certificate.display().to_string(),
            ),
            (
                "CENTINELA_TLS_CLIENT_KEY",
                self.identity.key.display().to_string(),
            ),
        ]
    }
}

/// The TLS nodes the harness started, by gRPC URL (`https://127.0.0.1:PORT`): how its
/// clients ([`cli`], [`Presser`], [`wait_leader`], [`Devices`]) reach them. A port is not
/// reused while its node runs, so an address names one node of one test at a time.
static NODE_TLS: Mutex<BTreeMap<String, TlsClient>> = Mutex::new(BTreeMap::new());
/// The TLS etcd endpoints the harness started, with the options (CA, a client certificate)
/// its store clients use: [`connect_store`], [`StoreMonitor`], the checks.
static ETCD_TLS: Mutex<BTreeMap<String, ConnectOptions>> = Mutex::new(BTreeMap::new());

/// How to reach the nodes at `addrs`: `None` for plaintext ones. Panics on an `https://`
/// address the harness did not start (it would have no CA to trust).
pub fn node_tls(addrs: &[String]) -> Option<TlsClient> {
    let addr = addrs.iter().find(|a| a.starts_with("https://"))?;
    let known = NODE_TLS.lock().unwrap().get(addr).cloned();
    Some(known.unwrap_or_else(|| panic!("{addr}: a TLS node the harness did not start")))
}

/// How the harness's store clients connect to `endpoints` (TLS ones with the `root` user).
fn etcd_options(endpoints: &[String]) -> ConnectOptions {
    endpoints
        .iter()
        .find_map(|e| ETCD_TLS.lock().unwrap().get(e).cloned())
        .unwrap_or_else(centinela_testkit::etcd::store_options)
}

/// Connects to etcd at `endpoints` (over TLS if the harness started it so), retrying until the
/// default deadline (a member may be down or electing).
pub async fn connect_store(endpoints: &[String]) -> Store {
    let options = etcd_options(endpoints);
    Wait::DEFAULT
        .every(Duration::from_millis(50))
        .until(format!("etcd at {endpoints:?} to answer"), || {
            Store::connect(endpoints, options.clone())
        })
        .await
}

/// The certificates of a cluster on TLS, made by the test (rcgen, `centinela_testkit::pki`):
/// the city CA, which signs each node's certificate (naming its node id) and the client
/// certificate of the test's clients; and, on etcd's own CA, a user per node whose role reads
/// and writes the cluster's prefix only.
pub struct ClusterTls {
    pki: Pki,
    pub client: TlsClient,
}

/// The keys the nodes keep in etcd: each node's etcd user may touch these only.
pub const CLUSTER_PREFIX: &str = "/centinela/";

impl ClusterTls {
    pub fn new() -> ClusterTls {
        let pki = Pki::new("centinela test city CA");
        let identity = pki.client("cluster-test");
        let tls = ClientTls::from_files(&pki.ca(), Some(identity.clone()))
            .expect("a client TLS from the test's own files");
        let client = TlsClient {
            ca: pki.ca(),
            identity,
            tls,
        };
        ClusterTls { pki, client }
    }

    /// What node `id` is started with: its certificate (naming `<id>.node.centinela` and
    /// loopback) and the city CA; etcd's CA and the client certificate of etcd user
    /// `centinela-<id>`, limited to [`CLUSTER_PREFIX`].
    pub fn node_env(&self, id: &str, etcd: &EtcdCluster) -> Vec<(&'static str, String)> {
        let own = self.pki.node(id);
        let user = etcd.user(&format!("centinela-{id}"), CLUSTER_PREFIX);
        let path = |p: &std::path::Path| p.display().to_string();
        vec![
            ("CENTINELA_TLS_CERT", path(&own.certificate)),
            ("CENTINELA_TLS_KEY", path(&own.key)),
            ("CENTINELA_TLS_CA", path(&self.pki.ca())),
            ("CENTINELA_ETCD_CA", path(&etcd.ca())),
            ("CENTINELA_ETCD_CERT", path(&user.certificate)),
            ("CENTINELA_ETCD_KEY", path(&user.key)),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// The demo (one node, embedded store)

/// A `centinela demo` process, killed when dropped (also when the test fails).
pub struct Demo {
    proc: Proc,
    pub grpc: String,
    pub http: String,
}

impl Demo {
    /// Starts a demo on free ports (port 0) and reads the real addresses from its banner.
    pub fn start(extra: &[&str]) -> Demo {
        Demo::start_with_env(extra, &[])
    }

    /// [`Demo::start`] with environment variables set for the demo process.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Demo {
        let (mut proc, rx) = Proc::spawn(
            "demo",
            Command::new(BIN)
                .args([
                    "demo",
                    "--quiet-sim",
                    "--grpc",
                    "127.0.0.1:0",
                    "--http",
                    "127.0.0.1:0",
                ])
                .args(extra)
                .envs(env.iter().copied())
                .env("RUST_LOG", "info"),
        );
        let (grpc, http) = wait_banner(&mut proc, &rx, "the demo");
        Demo { proc, grpc, http }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn log(&self) -> &Log {
        &self.proc.log
    }

    /// Sends SIGTERM and waits for the exit; panics after [`DEADLINE`].
    pub fn sigterm_and_wait(&mut self) -> ExitStatus {
        self.proc.signal("TERM");
        self.proc
            .wait_exit(DEADLINE)
            .expect("the demo did not stop after SIGTERM")
    }

    /// A client command against the demo, with no credentials (as a newcomer runs it).
    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(std::slice::from_ref(&self.grpc), args, false)
    }

    /// Runs a `--json` command that must succeed, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        json_of(&self.cli(&with_json(args)), args)
    }

    /// Polls a `--json` command until `accept` returns a value (or the deadline passes).
    pub fn wait_json<T>(
        &self,
        args: &[&str],
        what: &str,
        mut accept: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        Wait::DEFAULT
            .every(Duration::from_millis(50))
            .until_blocking(what, || {
                let value = self.json(args);
                accept(&value).ok_or(value)
            })
    }
}

/// Runs the `centinela` client with `--addr` set to `addrs` (cluster nodes), presenting the
/// test clusters' credentials.
pub fn cli(addrs: &[String], args: &[&str]) -> Output {
    run_cli(addrs, args, true)
}

fn run_cli(addrs: &[String], args: &[&str], credentials: bool) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).args(["--addr", &addrs.join(",")]);
    if credentials {
        command.envs(client_credentials_env());
    }
    if let Some(tls) = node_tls(addrs) {
        command.envs(tls.env());
    }
    command.output().expect("the centinela binary runs")
}

fn with_json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    args.push("--json");
    args
}

/// Runs a client command with `--json` that must succeed, and parses its stdout.
pub fn cli_json(addrs: &[String], args: &[&str]) -> Value {
    json_of(&cli(addrs, &with_json(args)), args)
}

fn json_of(out: &Output, args: &[&str]) -> Value {
    let args = with_json(args);
    assert!(
        out.status.success(),
        "`centinela {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

// ---------------------------------------------------------------------------------------------
// etcd

/// A real etcd of `members` members on free loopback ports (`centinela_testkit::etcd`), its
/// logs saved with the test's (and their tails printed when it fails).
pub fn start_etcd(members: usize) -> EtcdCluster {
    EtcdCluster::start(members).save_logs_in(logs_dir())
}

/// [`start_etcd`] as production runs it: TLS on client and peer ports, client certificates
/// required (`EtcdCluster::start_tls`), RBAC on. The harness's store clients (the monitor, the
/// checks) reach it as a user of their own, limited to [`CLUSTER_PREFIX`] like the nodes.
pub fn start_etcd_tls(members: usize) -> EtcdCluster {
    let etcd = EtcdCluster::start_tls(members).save_logs_in(logs_dir());
    let checker = etcd.user("centinela-test-checks", CLUSTER_PREFIX);
    let options = etcd.client_options(Some(checker));
    let mut known = ETCD_TLS.lock().unwrap();
    for endpoint in etcd.endpoints() {
        known.insert(endpoint, options.clone());
    }
    etcd
}

// ---------------------------------------------------------------------------------------------
// Nodes and devices

/// A `centinela start` cluster node. Killed on drop; its log is saved (and dumped on failure).
pub struct Node {
    pub id: String,
    pub site: String,
    pub grpc: String,
    pub http: String,
    proc: Proc,
    banner: Option<mpsc::Receiver<Banner>>,
    /// Killed or stopped by the test: no longer polled as a live member.
    gone: bool,
    /// How the harness reaches the node when it serves TLS ([`Node::trusting`]).
    client: Option<TlsClient>,
}

impl Node {
    /// Starts a node on free ports and waits until it is ready (`/readyz` 200).
    pub fn start(id: &str, site: &str, etcd: &[String]) -> Node {
        Self::start_with(id, site, etcd, &[])
    }

    /// [`Node::start`] with extra arguments (`--scenario FILE`, ...).
    pub fn start_with(id: &str, site: &str, etcd: &[String], extra: &[&str]) -> Node {
        let mut node = Self::spawn(id, site, etcd, extra);
        node.wait_started();
        node.wait_ready();
        node
    }

    /// Starts the process without waiting: call [`Node::wait_started`] (several nodes can
    /// start side by side).
    pub fn spawn(id: &str, site: &str, etcd: &[String], extra: &[&str]) -> Node {
        Self::spawn_env(id, site, etcd, extra, &[])
    }

    /// [`Node::spawn`] with extra environment variables (OTEL_*, say).
    pub fn spawn_env(
        id: &str,
        site: &str,
        etcd: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let (proc, rx) = Proc::spawn(
            id,
            Command::new(BIN)
                .args(["start", "--node-id", id, "--site", site])
                .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
                .args(["--etcd", &etcd.join(",")])
                .args(extra)
                .env(
                    "RUST_LOG",
                    std::env::var("CLUSTER_RUST_LOG").unwrap_or("info".into()),
                )
                // Readable logs when a test dumps them.
                .env("CENTINELA_LOG_FORMAT", "pretty")
                .envs(node_credentials_env())
                .envs(env.iter().copied()),
        );
        Node {
            id: id.to_string(),
            site: site.to_string(),
            grpc: String::new(),
            http: String::new(),
            proc,
            banner: Some(rx),
            gone: false,
            client: None,
        }
    }

    /// The harness's clients reach this node (started with a certificate) with `client`:
    /// the probes here, and [`cli`], [`Presser`], [`wait_leader`] by its address.
    pub fn trusting(mut self, client: TlsClient) -> Node {
        self.client = Some(client);
        self
    }

    /// Waits for the banner and records the node's addresses.
    pub fn wait_started(&mut self) {
        if let Some(rx) = self.banner.take() {
            let what = format!("node {}", self.id);
            let (grpc, http) = wait_banner(&mut self.proc, &rx, &what);
            if let Some(client) = &self.client {
                assert!(
                    grpc.starts_with("https://"),
                    "node {} was given certificates but serves {grpc}",
                    self.id
                );
                NODE_TLS
                    .lock()
                    .unwrap()
                    .insert(grpc.clone(), client.clone());
            }
            self.grpc = grpc;
            self.http = http;
        }
    }

    /// The intercom gateway's address (a node started with `--sip`), from its banner's
    /// `SIP      sip:centinela@ADDR` line: with `--sip 127.0.0.1:0` the node picks the port.
    pub fn sip_addr(&self) -> std::net::SocketAddr {
        wait::until_blocking(
            format!("node {}'s SIP address in its banner", self.id),
            || {
                let lines = self.log().grep(&["sip:centinela@"]);
                let line = lines.iter().find(|l| l.trim_start().starts_with("SIP"))?;
                let addr = line.split("sip:centinela@").nth(1)?.split(' ').next()?;
                addr.parse::<std::net::SocketAddr>().ok()
            },
        )
    }

    /// `GET path` on the node's HTTP port: over TLS when it serves TLS.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        match &self.client {
            Some(client) => https_get(&self.http, path, &client.tls),
            None => http_get(&self.http, path),
        }
    }

    /// Waits until `/readyz` answers 200 (joined and running its share).
    pub fn wait_ready(&mut self) {
        wait::until_blocking(format!("node {} to be ready", self.id), || {
            if let Ok((200, _)) = self.get("/readyz") {
                return true;
            }
            if !self.proc.running() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("node {} exited before it was ready", self.id);
            }
            false
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn log(&self) -> &Log {
        &self.proc.log
    }

    /// Whether the test still counts this node as a live member.
    pub fn is_live(&self) -> bool {
        !self.gone
    }

    pub fn running(&mut self) -> bool {
        self.proc.running()
    }

    /// `kill -9`: gone at once, lease left to expire.
    pub fn kill9(&mut self) {
        self.proc.child.kill().unwrap();
        self.proc.child.wait().unwrap();
        self.gone = true;
    }

    /// SIGSTOP: the process freezes (its sockets stay open, nothing answers).
    pub fn sigstop(&mut self) {
        self.proc.signal("STOP");
        self.gone = true;
    }

    /// SIGCONT after [`Node::sigstop`].
    pub fn sigcont(&mut self) {
        self.proc.signal("CONT");
        self.gone = false;
    }

    /// SIGTERM and wait for the exit (panics after [`DEADLINE`]); returns the exit status.
    pub fn sigterm_and_wait(&mut self) -> ExitStatus {
        self.proc.signal("TERM");
        self.gone = true;
        let status = self.proc.wait_exit(DEADLINE);
        status.unwrap_or_else(|| panic!("node {} did not exit after SIGTERM", self.id))
    }

    /// SIGTERM without waiting; see [`Node::wait_exit`].
    pub fn sigterm(&mut self) {
        self.proc.signal("TERM");
        self.gone = true;
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout)
    }
}

/// `centinela devices --quiet-sim` against the given nodes (failover between them).
pub struct Devices {
    proc: Proc,
}

impl Devices {
    pub fn start(addrs: &[String]) -> Devices {
        Self::start_with(addrs, &[])
    }

    pub fn start_with(addrs: &[String], extra: &[&str]) -> Devices {
        let (proc, _) = Proc::spawn(
            "devices",
            Command::new(BIN)
                .args(["devices", "--quiet-sim", "--addr", &addrs.join(",")])
                .args(extra)
                .env(
                    "RUST_LOG",
                    std::env::var("DEVICES_RUST_LOG").unwrap_or("info".into()),
                )
                .envs(client_credentials_env())
                .envs(node_tls(addrs).map(|tls| tls.env()).unwrap_or_default()),
        );
        Devices { proc }
    }

    pub fn log(&self) -> &Log {
        &self.proc.log
    }

    pub fn running(&mut self) -> bool {
        self.proc.running()
    }
}

// ---------------------------------------------------------------------------------------------
// A scenario with plenty of buttons and brigades

/// A scenario file written for the test: buttons `P01..`, cameras `Q01..`, brigades `U01..`
/// on a grid around Lima's Plaza Mayor, as many brigades as asked (so fresh presses always
/// find an available one).
pub struct ScenarioFile {
    pub path: PathBuf,
    pub buttons: Vec<String>,
    pub brigades: Vec<String>,
    _dir: tempfile::TempDir,
}

impl ScenarioFile {
    pub fn write(buttons: usize, brigades: usize) -> ScenarioFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.toml");
        let scenario = Self::builder(buttons, brigades);
        scenario.write(&path);
        ScenarioFile {
            path,
            buttons: (1..=buttons).map(|i| format!("P{i:02}")).collect(),
            brigades: (1..=brigades).map(|i| format!("U{i:02}")).collect(),
            _dir: dir,
        }
    }

    /// Buttons on a grid of 8 columns 0.004° apart from (-12.040, -77.045), brigades on one
    /// from (-12.041, -77.044); coordinates to 5 decimals, as the file always had them.
    fn builder(buttons: usize, brigades: usize) -> ScenarioBuilder {
        let at = |row: usize, column: usize, lat: f64, lon: f64| {
            let five = |x: f64| (x * 1e5).round() / 1e5;
            (
                five(lat - row as f64 * 0.004),
                five(lon + column as f64 * 0.004),
            )
        };
        let buttons = (0..buttons).map(|i| {
            let id = format!("P{:02}", i + 1);
            let (lat, lon) = at(i / 8, i % 8, -12.040, -77.045);
            Button::new(&id, lat, lon)
                .name(format!("corner {id}"))
                .camera(format!("Q{:02}", i + 1))
                .zoom(3.0)
        });
        let brigades = (0..brigades).map(|i| {
            let id = format!("U{:02}", i + 1);
            let (lat, lon) = at(i / 8, i % 8, -12.041, -77.044);
            let mode = ["foot", "motorcycle", "car"][i % 3];
            let capabilities: &[&str] = if i % 4 == 0 {
                &["non_lethal_armed"]
            } else {
                &[]
            };
            Brigade::new(&id, mode, lat, lon)
                .callsign(format!("brigade {id}"))
                .capabilities(capabilities)
        });
        ScenarioBuilder::new("cluster-test")
            .notes("generated by the cluster tests")
            .buttons(buttons)
            .brigades(brigades)
    }
}

// ---------------------------------------------------------------------------------------------
// A whole cluster: etcd, nodes, devices

/// etcd + nodes + `centinela devices`, all on one scenario. Dropped devices first, then
/// nodes, then etcd.
pub struct Cluster {
    pub devices: Option<Devices>,
    pub nodes: Vec<Node>,
    pub etcd: EtcdCluster,
    pub scenario: ScenarioFile,
}

impl Cluster {
    /// Starts `etcd_members` etcd members, then the nodes (`(id, site)`, side by side) on
    /// `scenario`, waits until every node is ready, then starts the simulated devices.
    pub fn start(etcd_members: usize, nodes: &[(&str, &str)], scenario: ScenarioFile) -> Cluster {
        Self::start_over(Transport::Plain, etcd_members, nodes, scenario)
    }

    /// [`Cluster::start`] speaking `transport` on every hop.
    pub fn start_over(
        transport: Transport,
        etcd_members: usize,
        nodes: &[(&str, &str)],
        scenario: ScenarioFile,
    ) -> Cluster {
        let started = Instant::now();
        let (etcd, tls) = match transport {
            Transport::Plain => (start_etcd(etcd_members), None),
            Transport::Tls => (start_etcd_tls(etcd_members), Some(ClusterTls::new())),
        };
        let etcd_ready = started.elapsed();
        let endpoints = etcd.endpoints();
        let path = scenario.path.to_str().unwrap().to_string();
        // Every etcd user first: a change to etcd's auth store while a node talks to it
        // fails the node's request in flight ("revision of auth store is old").
        let envs: Vec<Vec<(&str, String)>> = nodes
            .iter()
            .map(|(id, _)| match &tls {
                None => Vec::new(),
                Some(tls) => tls.node_env(id, &etcd),
            })
            .collect();
        let mut spawned: Vec<Node> = nodes
            .iter()
            .zip(&envs)
            .map(|((id, site), env)| {
                let extra = ["--scenario", path.as_str()];
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let node = Node::spawn_env(id, site, &endpoints, &extra, &env);
                match &tls {
                    None => node,
                    Some(tls) => node.trusting(tls.client.clone()),
                }
            })
            .collect();
        for node in &mut spawned {
            node.wait_started();
        }
        for node in &mut spawned {
            node.wait_ready();
        }
        let nodes_ready = started.elapsed();
        let addrs: Vec<String> = spawned.iter().map(|n| n.grpc.clone()).collect();
        let devices = Devices::start(&addrs);
        let cluster = Cluster {
            devices: Some(devices),
            nodes: spawned,
            etcd,
            scenario,
        };
        cluster.wait_devices_online();
        eprintln!(
            "cluster up ({transport:?}): etcd ({etcd_members}) in {etcd_ready:?}, {} nodes ready \
             at {nodes_ready:?}, devices online at {:?}",
            cluster.nodes.len(),
            started.elapsed()
        );
        cluster
    }

    /// Waits until the simulator has discovered the devices and every camera is online.
    /// (Whether terminals receive assignments is shown by a first press going en route.)
    pub fn wait_devices_online(&self) {
        let devices = self.devices.as_ref().expect("devices");
        wait::until_blocking("the device simulator to start", || {
            (!devices.log().grep(&["simulating terminals"]).is_empty()).then_some(())
        });
        let addrs = self.live_addrs();
        wait::until_blocking("every camera's device to connect", || {
            let cameras = cli_json(&addrs, &["cameras"]);
            let cameras = cameras.as_array()?;
            (!cameras.is_empty() && cameras.iter().all(|c| c["online"] == true)).then_some(())
        });
    }

    /// Waits until every live node answers `/readyz` with 200 (joined, running its share).
    pub fn wait_live_nodes_ready(&mut self) {
        for node in self.nodes.iter_mut().filter(|n| n.is_live()) {
            node.wait_ready();
        }
    }

    /// Every node's gRPC address (dead ones included).
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.grpc.clone()).collect()
    }

    /// The gRPC addresses of the nodes the test has not killed or stopped.
    pub fn live_addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_live())
            .map(|n| n.grpc.clone())
            .collect()
    }

    pub fn index_of(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: &str) -> &mut Node {
        let i = self.index_of(id);
        &mut self.nodes[i]
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.etcd.endpoints()
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster status over gRPC

type OperatorClient = v1::operator_client::OperatorClient<centinela_proto::client::AuthChannel>;

async fn operator_client(addr: &str) -> Result<OperatorClient, tonic::Status> {
    let tls = node_tls(std::slice::from_ref(&addr.to_string()));
    let endpoint = centinela_proto::client::endpoint(&centinela_tls::plain_uri(addr))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(1));
    let connected = match tls {
        None => endpoint.connect().await,
        Some(tls) => {
            let name = centinela_tls::server_name_of(addr)
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            endpoint
                .connect_with_connector(tls.tls.connector(name))
                .await
        }
    };
    let channel = connected.map_err(|e| tonic::Status::unavailable(format!("{addr}: {e}")))?;
    Ok(v1::operator_client::OperatorClient::with_interceptor(
        channel,
        operator_credentials(),
    ))
}

async fn status_with(client: &mut OperatorClient) -> Result<v1::ClusterStatusReply, tonic::Status> {
    let call = client.cluster_status(v1::ClusterStatusRequest {});
    match tokio::time::timeout(Duration::from_millis(1500), call).await {
        Ok(reply) => reply.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer")),
    }
}

/// One node's `ClusterStatus`, with a short deadline (a stopped node must not hang the test).
pub async fn cluster_status(addr: &str) -> Result<v1::ClusterStatusReply, tonic::Status> {
    let connect = tokio::time::timeout(Duration::from_millis(1500), operator_client(addr));
    let mut client = connect.await.unwrap_or_else(|_| {
        Err(tonic::Status::deadline_exceeded(format!(
            "{addr}: no answer"
        )))
    })?;
    status_with(&mut client).await
}

/// Who leads, as one node reported it, and when the test saw it.
#[derive(Clone, Debug)]
pub struct LeaderSeen {
    pub leader: String,
    pub term: i64,
    /// The node that reported it.
    pub by: String,
    pub at: Instant,
    pub status: v1::ClusterStatusReply,
}

/// Polls `ClusterStatus` on every address in `addrs` side by side (every `every`) until one
/// reports a status `accept` likes; returns the first such report.
pub async fn wait_leader(
    addrs: &[String],
    every: Duration,
    what: &str,
    accept: impl Fn(&v1::ClusterStatusReply) -> bool + Send + Sync + Clone + 'static,
) -> LeaderSeen {
    let mut polls = tokio::task::JoinSet::new();
    for addr in addrs {
        let addr = addr.clone();
        let accept = accept.clone();
        polls.spawn(async move {
            // One connection per node, re-dialed after a failure: polls cost a round trip.
            let mut client = None;
            loop {
                if client.is_none() {
                    let connect =
                        tokio::time::timeout(Duration::from_millis(1500), operator_client(&addr));
                    client = connect.await.ok().and_then(Result::ok);
                }
                let reply = match client.as_mut() {
                    Some(c) => status_with(c).await,
                    None => Err(tonic::Status::unavailable("not connected")),
                };
                if reply.is_err() {
                    client = None;
                }
                if let Ok(status) = reply
                    && accept(&status)
                {
                    return LeaderSeen {
                        leader: status.leader.clone(),
                        term: status.term,
                        by: addr,
                        at: Instant::now(),
                        status,
                    };
                }
                tokio::time::sleep(every).await;
            }
        });
    }
    let first = tokio::time::timeout(DEADLINE, polls.join_next()).await;
    polls.abort_all();
    match first {
        Ok(Some(Ok(seen))) => seen,
        Ok(other) => panic!("polling for {what} failed: {other:?}"),
        Err(_) => {
            let mut last = Vec::new();
            for addr in addrs {
                last.push(format!("{addr}: {:?}", cluster_status(addr).await));
            }
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}; last statuses:\n{}",
                last.join("\n")
            )
        }
    }
}

/// Any leader at all, as seen by any of `addrs`.
pub async fn wait_any_leader(addrs: &[String]) -> LeaderSeen {
    wait_leader(addrs, Duration::from_millis(20), "a leader", |s| {
        !s.leader.is_empty() && s.term > 0
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The press client

/// A press the cluster acknowledged.
#[derive(Clone, Debug)]
pub struct AckedPress {
    pub press_id: String,
    pub button: String,
    pub incident: String,
    pub duplicate: bool,
    /// When the first attempt was sent, and when the acknowledgement came back.
    pub sent_at: Instant,
    pub acked_at: Instant,
    pub attempts: u32,
    /// The node address that acknowledged it.
    pub via: String,
}

impl AckedPress {
    /// What the invariant checks need of it.
    pub fn ack(&self) -> Ack<'_> {
        Ack {
            button: &self.button,
            press_id: &self.press_id,
            incident: &self.incident,
        }
    }
}

/// A press that was not acknowledged before its deadline.
#[derive(Clone, Debug)]
pub struct LostPress {
    pub press_id: String,
    pub button: String,
    pub sent_at: Instant,
    pub attempts: u32,
    pub last_error: String,
}

#[derive(Default)]
struct PressRecord {
    acked: Vec<AckedPress>,
    lost: Vec<LostPress>,
    /// Failed attempts by gRPC code (and the last message of each code).
    errors: BTreeMap<String, (u64, String)>,
}

/// Presses buttons like a device: each press has a unique `press_id` and is retried with the
/// same id until the cluster acknowledges it or its deadline passes. Clones (and
/// [`Presser::via`] views) share one record of every acknowledged press.
#[derive(Clone)]
pub struct Presser {
    failover: Failover,
    prefix: String,
    next: Arc<AtomicU64>,
    record: Arc<Mutex<PressRecord>>,
    deadline: Duration,
}

impl Presser {
    /// A press client over `addrs` (failover, 2 s per attempt); press ids `{prefix}-{n}`.
    pub fn new(addrs: &[String], prefix: &str) -> Presser {
        Presser {
            failover: Self::failover(addrs),
            prefix: prefix.to_string(),
            next: Arc::default(),
            record: Arc::default(),
            deadline: DEADLINE,
        }
    }

    fn failover(addrs: &[String]) -> Failover {
        Self::failover_within(addrs, Duration::from_secs(2))
    }

    /// A failover client over `addrs` (TLS to TLS nodes), `timeout` per attempt.
    fn failover_within(addrs: &[String], timeout: Duration) -> Failover {
        let failover = Failover::new(addrs.to_vec(), credentials()).with_call_timeout(timeout);
        match node_tls(addrs) {
            Some(tls) => failover.with_tls(tls.tls),
            None => failover,
        }
    }

    /// The same client (ids, record) sending through `addrs` only.
    pub fn via(&self, addrs: &[String]) -> Presser {
        Presser {
            failover: Self::failover(addrs),
            ..self.clone()
        }
    }

    /// How long one press keeps being retried.
    pub fn with_deadline(mut self, deadline: Duration) -> Presser {
        self.deadline = deadline;
        self
    }

    /// How long one attempt may take (2 s by default). Longer than the node's own bounds
    /// (`PRESS_CALL_TIMEOUT`, the store's request timeout) to hear the node's own refusal
    /// instead of giving up first.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Presser {
        self.failover = Self::failover_within(self.failover.addrs(), timeout);
        self
    }

    /// Presses `button` with a fresh press id, retrying until acknowledged or the deadline.
    pub async fn press(&self, button: &str) -> Result<AckedPress, LostPress> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let press_id = format!("{}-{n:05}", self.prefix);
        self.press_as(button, press_id).await
    }

    /// Presses `button` with a given press id (a device retrying a press it sent before,
    /// e.g. one a partitioned node refused), retrying until acknowledged or the deadline.
    pub async fn press_as(&self, button: &str, press_id: String) -> Result<AckedPress, LostPress> {
        let sent_at = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let request = v1::PressRequest {
                button_id: button.to_string(),
                press_id: press_id.clone(),
            };
            let creds = self.failover.credentials();
            let result = self
                .failover
                .call(|channel| {
                    let mut client = ButtonGatewayClient::with_interceptor(channel, creds.clone());
                    let request = request.clone();
                    async move { client.press(request).await.map(tonic::Response::into_inner) }
                })
                .await;
            match result {
                Ok(reply) => {
                    let acked = AckedPress {
                        press_id,
                        button: button.to_string(),
                        incident: reply.incident_id,
                        duplicate: reply.duplicate,
                        sent_at,
                        acked_at: Instant::now(),
                        attempts,
                        via: self.failover.current_addr().to_string(),
                    };
                    self.record.lock().unwrap().acked.push(acked.clone());
                    return Ok(acked);
                }
                Err(status) => {
                    let last_error = format!("{:?}: {}", status.code(), status.message());
                    {
                        let mut record = self.record.lock().unwrap();
                        let entry = record
                            .errors
                            .entry(format!("{:?}", status.code()))
                            .or_default();
                        entry.0 += 1;
                        entry.1 = status.message().to_string();
                    }
                    if sent_at.elapsed() > self.deadline {
                        let lost = LostPress {
                            press_id,
                            button: button.to_string(),
                            sent_at,
                            attempts,
                            last_error,
                        };
                        self.record.lock().unwrap().lost.push(lost.clone());
                        return Err(lost);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Every press acknowledged so far (by this client and its views).
    pub fn acked(&self) -> Vec<AckedPress> {
        self.record.lock().unwrap().acked.clone()
    }

    pub fn lost(&self) -> Vec<LostPress> {
        self.record.lock().unwrap().lost.clone()
    }

    /// Failed attempts by gRPC code, e.g. `Unavailable x3 (last: ...)`.
    pub fn error_summary(&self) -> String {
        let record = self.record.lock().unwrap();
        if record.errors.is_empty() {
            return "no failed attempts".into();
        }
        record
            .errors
            .iter()
            .map(|(code, (n, last))| format!("{code} x{n} (last: {last})"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What a steady stream of presses did.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub sent: usize,
    pub acked: Vec<AckedPress>,
    pub lost: Vec<LostPress>,
}

impl LoadReport {
    /// The largest press-to-acknowledgement time.
    pub fn max_ack(&self) -> Duration {
        self.acked
            .iter()
            .map(|a| a.acked_at - a.sent_at)
            .max()
            .unwrap_or_default()
    }

    /// The `q` quantile (0..=1) of press-to-acknowledgement times.
    pub fn ack_quantile(&self, q: f64) -> Duration {
        let mut times: Vec<Duration> = self.acked.iter().map(|a| a.acked_at - a.sent_at).collect();
        if times.is_empty() {
            return Duration::ZERO;
        }
        times.sort();
        let index = ((times.len() - 1) as f64 * q).round() as usize;
        times[index]
    }
}

/// A steady open-loop stream of presses running in the background; see [`PressLoad::start`].
pub struct PressLoad {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<LoadReport>,
}

impl PressLoad {
    /// Presses `buttons` in turn (cycling), `rate` presses a second, each in its own task
    /// (open loop: a slow press does not delay the next), until `max` presses were sent or
    /// [`PressLoad::finish`] is called.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        presser: &Presser,
        buttons: &[String],
        rate: f64,
        max: usize,
    ) -> PressLoad {
        assert!(!buttons.is_empty() && rate > 0.0);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let presser = presser.clone();
        let buttons = buttons.to_vec();
        let period = Duration::from_secs_f64(1.0 / rate);
        let task = rt.spawn(async move {
            let mut presses = tokio::task::JoinSet::new();
            let start = tokio::time::Instant::now();
            let mut sent = 0;
            while sent < max && !*stopped.borrow() {
                let button = buttons[sent % buttons.len()].clone();
                let presser = presser.clone();
                presses.spawn(async move { presser.press(&button).await });
                sent += 1;
                let next = start + period * sent as u32;
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = stopped.changed() => {}
                }
            }
            let mut report = LoadReport {
                sent,
                ..LoadReport::default()
            };
            while let Some(result) = presses.join_next().await {
                match result.expect("a press task panicked") {
                    Ok(acked) => report.acked.push(acked),
                    Err(lost) => report.lost.push(lost),
                }
            }
            report
        });
        PressLoad { stop, task }
    }

    /// Stops sending, waits for the presses in flight (each up to its deadline), reports.
    pub fn finish(self, rt: &tokio::runtime::Runtime) -> LoadReport {
        let _ = self.stop.send(true);
        rt.block_on(self.task).expect("the press load panicked")
    }

    /// Waits until `max` presses were sent and answered (without stopping early).
    pub fn join(self, rt: &tokio::runtime::Runtime) -> LoadReport {
        let report = rt.block_on(self.task).expect("the press load panicked");
        drop(self.stop);
        report
    }
}

// ---------------------------------------------------------------------------------------------
// Following the store: assignment times, and "no brigade in two open incidents" at every revision

const INCIDENTS: &str = "/centinela/incidents/";

/// What the monitor saw of one incident.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When the incident's key first appeared (or when the monitor started, if it existed).
    pub first_seen: Instant,
    /// When it first had a unit attached, which unit, and the dispatcher term that assigned it
    /// (from its audit trail; `None` when an operator did).
    pub first_assigned: Option<Instant>,
    pub first_unit: Option<String>,
    pub first_term: Option<i64>,
    /// When its state first reached `en_route` or beyond: a unit's terminal got the assignment,
    /// acknowledged it and set off.
    pub first_en_route: Option<Instant>,
    pub state: String,
    pub units: Vec<String>,
    /// Units that did not acknowledge in time.
    pub declined: Vec<String>,
    /// Audit entries already looked at (`invariants::audit_len`).
    audit_len: usize,
}

/// Incident states from `en_route` on.
const EN_ROUTE_OR_LATER: [&str; 3] = ["en_route", "on_scene", "closed"];

#[derive(Default)]
struct MonitorState {
    incidents: BTreeMap<String, Seen>,
    /// Every incident as of the last applied event.
    current: BTreeMap<String, Value>,
    /// The revision whose events are being applied (checked once complete).
    pending: i64,
    pending_checked: bool,
    revisions_checked: u64,
    /// Dispatcher terms assigning only move forward.
    fence: Fence,
    /// Assignments by term, in the order they were committed.
    assignments_by_term: BTreeMap<i64, u64>,
    violations: Vec<String>,
    watch_errors: Vec<String>,
}

impl MonitorState {
    fn violation(&mut self, what: String) {
        if self.violations.len() < 50 {
            self.violations.push(what);
        }
    }

    /// Applies one committed version of an incident. `snapshot`: it comes from a read of the
    /// whole prefix (the start, or after a compaction), not from the watch: its audit trail
    /// holds assignments committed at unknown earlier revisions, so they raise the highest
    /// term seen but cannot be checked against it (a snapshot is applied in key order).
    fn apply_put(&mut self, kv: &Kv, now: Instant, snapshot: bool) {
        let Ok(value) = serde_json::from_slice::<Value>(&kv.value) else {
            self.violation(format!(
                "{} holds invalid JSON at revision {}",
                kv.key, kv.mod_revision
            ));
            return;
        };
        let id = kv.key.trim_start_matches(INCIDENTS).to_string();
        let state = value["state"].as_str().unwrap_or("?").to_string();
        let units = invariants::units_of(&value);
        let seen = self.incidents.entry(id.clone()).or_insert_with(|| Seen {
            first_seen: now,
            first_assigned: None,
            first_unit: None,
            first_term: None,
            first_en_route: None,
            state: state.clone(),
            units: Vec::new(),
            declined: Vec::new(),
            audit_len: 0,
        });
        // Fencing, from the audit trail: the dispatcher's assignments since the last version.
        let terms: Vec<i64> = invariants::new_assignments(&value, seen.audit_len)
            .into_iter()
            .flatten()
            .collect();
        seen.audit_len = seen.audit_len.max(invariants::audit_len(&value));
        if seen.first_assigned.is_none() && !units.is_empty() {
            seen.first_assigned = Some(now);
            seen.first_unit = units.first().cloned();
            seen.first_term = terms.first().copied();
        }
        if seen.first_en_route.is_none() && EN_ROUTE_OR_LATER.contains(&state.as_str()) {
            seen.first_en_route = Some(now);
        }
        seen.state = state;
        seen.units = units;
        seen.declined = value["declined"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for term in terms {
            *self.assignments_by_term.entry(term).or_default() += 1;
            if snapshot {
                self.fence.seen(term, kv.mod_revision);
            } else if let Some(violation) = self.fence.assigned(&id, term, kv.mod_revision) {
                self.violation(violation);
            }
        }
        self.current.insert(id, value);
    }

    /// The invariant at a revision boundary: no brigade in two open incidents.
    fn check(&mut self, revision: i64) {
        self.revisions_checked += 1;
        for double in invariants::brigades_in_two_open_incidents(&self.current) {
            self.violation(format!("at revision {revision} {double}"));
        }
    }
}

/// Follows `/centinela/incidents/` in etcd from the test's side: records when each incident
/// appeared and was first assigned (the test's clock), and checks at every revision that no
/// brigade is attached to two open incidents. Stops when dropped.
pub struct StoreMonitor {
    state: Arc<Mutex<MonitorState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StoreMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StoreMonitor {
    pub async fn start(endpoints: &[String]) -> StoreMonitor {
        let store = connect_store(endpoints).await;
        let (kvs, revision) = read_prefix(&store, INCIDENTS).await;
        let mut state = MonitorState::default();
        let now = Instant::now();
        for kv in &kvs {
            state.apply_put(kv, now, true);
        }
        state.check(revision);
        let state = Arc::new(Mutex::new(state));
        let task = tokio::spawn(Self::follow(store, state.clone(), revision + 1));
        StoreMonitor { state, task }
    }

    async fn follow(store: Store, state: Arc<Mutex<MonitorState>>, mut from: i64) {
        loop {
            match store.watch_prefix(INCIDENTS, Some(from)).await {
                Ok(mut events) => loop {
                    // The events of one revision arrive together; a quiet moment after one
                    // means its revision is complete and can be checked.
                    let next = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
                    let Ok(next) = next else {
                        let mut state = state.lock().unwrap();
                        if state.pending != 0 && !state.pending_checked {
                            let done = state.pending;
                            state.check(done);
                            state.pending_checked = true;
                        }
                        continue;
                    };
                    let Some(event) = next else { break };
                    {
                        match event {
                            Ok(event) => {
                                let now = Instant::now();
                                let mut state = state.lock().unwrap();
                                if state.pending != 0
                                    && event.revision != state.pending
                                    && !state.pending_checked
                                {
                                    let done = state.pending;
                                    state.check(done);
                                }
                                if event.revision != state.pending {
                                    state.pending_checked = false;
                                }
                                state.pending = event.revision;
                                match event.kind {
                                    EventKind::Put => state.apply_put(&event.kv, now, false),
                                    EventKind::Delete => {
                                        let id = event.kv.key.trim_start_matches(INCIDENTS);
                                        state.current.remove(id);
                                    }
                                }
                                // Resuming re-reads this revision: applying it twice is harmless.
                                from = event.revision;
                            }
                            Err(error) => {
                                state.lock().unwrap().watch_errors.push(error.to_string());
                                if let centinela_store::Error::Compacted { .. } = error {
                                    let (kvs, revision) = read_prefix(&store, INCIDENTS).await;
                                    let mut state = state.lock().unwrap();
                                    let now = Instant::now();
                                    state.current.clear();
                                    for kv in &kvs {
                                        state.apply_put(kv, now, true);
                                    }
                                    state.pending = 0;
                                    state.check(revision);
                                    from = revision + 1;
                                }
                                break;
                            }
                        }
                    }
                },
                Err(error) => state.lock().unwrap().watch_errors.push(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn seen(&self, incident: &str) -> Option<Seen> {
        self.state.lock().unwrap().incidents.get(incident).cloned()
    }

    /// Every violation seen so far ("two open incidents", "a stale term assigned").
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    pub fn revisions_checked(&self) -> u64 {
        self.state.lock().unwrap().revisions_checked
    }

    pub fn watch_errors(&self) -> Vec<String> {
        self.state.lock().unwrap().watch_errors.clone()
    }

    /// The earliest first assignment among incidents that appeared after `after`:
    /// `(incident, when assigned)`.
    pub fn first_assignment_of_incidents_after(&self, after: Instant) -> Option<(String, Instant)> {
        self.state
            .lock()
            .unwrap()
            .incidents
            .iter()
            .filter(|(_, seen)| seen.first_seen > after)
            .filter_map(|(id, seen)| seen.first_assigned.map(|at| (id.clone(), at)))
            .min_by_key(|(_, at)| *at)
    }

    /// Waits until every incident in `incidents` has had a unit; returns the latest first
    /// assignment time.
    pub async fn wait_assigned(&self, incidents: &BTreeSet<String>, deadline: Duration) -> Instant {
        let patience = Wait::up_to(deadline).every(Duration::from_millis(10));
        self.wait_all(incidents, patience, "to be assigned", |seen| {
            seen.first_assigned
        })
        .await
    }

    /// Waits until every incident in `incidents` reached `en_route` (its unit's terminal got
    /// the assignment and acknowledged it); returns the latest such time.
    pub async fn wait_en_route(&self, incidents: &BTreeSet<String>, deadline: Duration) -> Instant {
        let patience = Wait::up_to(deadline).every(Duration::from_millis(20));
        self.wait_all(
            incidents,
            patience,
            "to have a unit en route (terminal acknowledged)",
            |seen| seen.first_en_route,
        )
        .await
    }

    /// Waits until `when` gives a time for every incident in `incidents`; the latest one.
    async fn wait_all(
        &self,
        incidents: &BTreeSet<String>,
        patience: Wait,
        what: &str,
        when: impl Fn(&Seen) -> Option<Instant>,
    ) -> Instant {
        let start = Instant::now();
        let what = format!("{} incident(s) {what}", incidents.len());
        patience
            .until(what, || async {
                let state = self.state.lock().unwrap();
                let pending: Vec<(&String, Option<&Seen>)> = incidents
                    .iter()
                    .map(|id| (id, state.incidents.get(id)))
                    .filter(|(_, seen)| seen.and_then(&when).is_none())
                    .collect();
                if pending.is_empty() {
                    let latest = incidents
                        .iter()
                        .filter_map(|id| when(state.incidents.get(id)?))
                        .max();
                    Ok(latest.unwrap_or(start))
                } else {
                    Err(format!("{} pending: {pending:#?}", pending.len()))
                }
            })
            .await
    }

    /// Incidents whose first unit(s) did not acknowledge in time: `(incident, declined units)`.
    pub fn declined(&self) -> Vec<(String, Vec<String>)> {
        self.state
            .lock()
            .unwrap()
            .incidents
            .iter()
            .filter(|(_, seen)| !seen.declined.is_empty())
            .map(|(id, seen)| (id.clone(), seen.declined.clone()))
            .collect()
    }

    /// How many assignments each dispatcher term made (from the audit trails seen).
    pub fn assignments_by_term(&self) -> BTreeMap<i64, u64> {
        self.state.lock().unwrap().assignments_by_term.clone()
    }

    /// Panics if the monitor ever saw a brigade in two open incidents.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "the store showed a brigade in two open incidents, or a stale term assigning:\n{}",
            violations.join("\n")
        );
    }
}

/// The distinct incidents of some acknowledged presses.
pub fn incidents_of(presses: &[AckedPress]) -> BTreeSet<String> {
    presses.iter().map(|p| p.incident.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// The invariants, checked from etcd itself

/// Reads everything under `/centinela/` in one consistent read and checks docs/product.md
/// §3.1's safety invariants (`centinela_testkit::invariants`) against it and against the
/// presses the cluster acknowledged:
///
/// - every acknowledged press has its `presses/{button}/{press_id}` key, naming the incident
///   the press was acknowledged with, and that incident exists and belongs to the button;
/// - at most one incident per press id (retries of a press all got the same incident);
/// - no brigade is attached to two open incidents;
/// - every brigade whose record names an incident is in that open incident's `units`, and every
///   unit of an open incident names that incident back;
/// - every closed incident has a resolution and a closing entry in its audit trail.
///
/// Returns the violations (empty when all hold).
pub async fn invariant_violations(endpoints: &[String], acked: &[AckedPress]) -> Vec<String> {
    let store = connect_store(endpoints).await;
    let (kvs, revision) = read_prefix(&store, invariants::ROOT).await;
    let (records, mut violations) =
        Records::read(kvs.iter().map(|kv| (kv.key.as_str(), kv.value.as_slice())));
    violations.extend(invariants::acked_presses(
        &records,
        acked.iter().map(AckedPress::ack),
    ));
    violations.extend(invariants::brigades_in_two_open_incidents(
        &records.incidents,
    ));
    violations.extend(invariants::brigades_and_incidents_agree(&records));
    violations.extend(invariants::closed_incidents_complete(&records.incidents));
    eprintln!(
        "invariants checked at etcd revision {revision}: {} acknowledged presses, {} press keys, \
         {} incidents ({} open), {} brigades: {} violation(s)",
        acked.len(),
        records.presses.len(),
        records.incidents.len(),
        records
            .incidents
            .values()
            .filter(|i| invariants::is_open(i))
            .count(),
        records.brigades.len(),
        violations.len()
    );
    violations
}

/// The incidents among `incidents` whose camera is not on target for them, after waiting up
/// to `window` for all to be (docs/product.md §3.2: a pressed button's camera is aimed within
/// a bounded time).
pub async fn cameras_not_on_target(
    endpoints: &[String],
    incidents: &BTreeSet<String>,
    window: Duration,
) -> Vec<String> {
    let store = connect_store(endpoints).await;
    let on_target = Wait::up_to(window)
        .every(Duration::from_millis(100))
        .try_until(|| async { cameras_pending(&store, incidents).await.is_empty() })
        .await;
    match on_target {
        Ok(()) => Vec::new(),
        Err(_) => cameras_pending(&store, incidents).await,
    }
}

/// The incidents among `incidents` whose camera is not on target for them, now.
async fn cameras_pending(store: &Store, incidents: &BTreeSet<String>) -> Vec<String> {
    let (kvs, _) = read_prefix(store, invariants::ROOT).await;
    let records: BTreeMap<&str, Value> = kvs
        .iter()
        .filter_map(|kv| Some((kv.key.as_str(), serde_json::from_slice(&kv.value).ok()?)))
        .collect();
    let mut pending = Vec::new();
    for id in incidents {
        let incident = records.get(format!("/centinela/incidents/{id}").as_str());
        let camera_id = incident.and_then(|i| i["camera"].as_str()).unwrap_or("?");
        let camera = records.get(format!("/centinela/cameras/{camera_id}").as_str());
        let on_target =
            camera.is_some_and(|c| c["state"] == "on_target" && c["target"] == id.as_str());
        if !on_target {
            pending.push(format!(
                "{id}: camera {camera_id} {}",
                camera.map_or("missing".to_string(), |c| format!(
                    "state {} target {} online {}",
                    c["state"], c["target"], c["online"]
                ))
            ));
        }
    }
    pending
}

/// Waits until the camera of every incident in `incidents` is on target for it. Panics after
/// `deadline` with the cameras that are not.
pub async fn wait_cameras_on_target(
    endpoints: &[String],
    incidents: &BTreeSet<String>,
    deadline: Duration,
) {
    let pending = cameras_not_on_target(endpoints, incidents, deadline).await;
    assert!(
        pending.is_empty(),
        "after {deadline:?}, {} camera(s) are not on target for their incident:\n{}",
        pending.len(),
        pending.join("\n")
    );
}

/// [`invariant_violations`], panicking with the list when any invariant fails.
pub async fn check_invariants(endpoints: &[String], acked: &[AckedPress]) {
    let violations = invariant_violations(endpoints, acked).await;
    assert!(
        violations.is_empty(),
        "{} invariant violation(s) in etcd:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Any process (the rehearsal runs etcd and nodes inside network namespaces)

/// Any child process under the harness's rules: its stderr captured line by line, killed
/// (SIGKILL) and reaped on drop, its log saved (and its tail printed when the test failed).
pub struct Process {
    proc: Proc,
}

impl Process {
    /// Spawns `command` (stdin and stdout null, stderr captured) as `name` in the logs.
    pub fn spawn(name: &str, command: &mut Command) -> Process {
        let (proc, _banner) = Proc::spawn(name, command);
        Process { proc }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn log(&self) -> &Log {
        &self.proc.log
    }

    pub fn running(&mut self) -> bool {
        self.proc.running()
    }

    /// `kill -SIGNAL` (e.g. "TERM", "STOP", "CONT").
    pub fn signal(&self, signal: &str) {
        self.proc.signal(signal)
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout)
    }
}
