//! A real etcd for the tests: Debian's `etcd` binary (`apt-get install -y etcd-server`), one
//! member or a cluster of several, on loopback ports that were free a moment ago, each member
//! in its own directory under a temporary one. Every member is killed when the
//! [`EtcdCluster`] drops, also when the test panics; then its log is saved (see
//! [`EtcdCluster::save_logs_in`]) and, when the test failed, its tail printed.
//!
//! [`EtcdCluster::start_tls`] starts it as production runs it: TLS on the client and peer
//! ports with client certificates required (`--client-cert-auth`), a CA of its own, and, once
//! [`EtcdCluster::user`] has made a user, etcd's RBAC on (`auth enable`; etcd maps a client
//! certificate's common name to the user). Feature `pki`.
//!
//! Without the binary a test fails, saying how to install it; under CI (`CI` set) the message
//! says so. `ETCD_BIN` points at another binary.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use centinela_store::{ConnectOptions, ServerStatus, Store};

use crate::wait::{self, Wait};

/// How long a member may take to answer with a leader (well under a second when idle).
pub const STARTUP_DEADLINE: Duration = wait::DEADLINE;
/// Start attempts: a free port we picked can be taken by someone else before etcd binds it.
const START_ATTEMPTS: usize = 3;

/// Debian's `etcd`, or `ETCD_BIN`. Missing: the test fails, saying how to install it.
pub fn etcd_binary() -> PathBuf {
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
        panic!("CI: this test needs the `etcd` binary and it is missing: {how}");
    }
    panic!("this test needs the `etcd` binary (not found on PATH): {how}");
}

/// `n` distinct loopback ports that were free a moment ago (held together, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a local address").port())
        .collect()
}

/// How the kit's own store clients talk to etcd: fail fast, the callers retry.
pub fn store_options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        ..ConnectOptions::default()
    }
}

/// A TLS cluster's CA and certificates (feature `pki`).
#[cfg(feature = "pki")]
struct Secure {
    /// etcd's own CA (production's `CENTINELA_ETCD_CA`), distinct from the nodes' CA.
    pki: crate::pki::Pki,
    /// Every member's server and peer certificate (it names loopback).
    server: centinela_tls::Files,
    /// The `root` user's client certificate: the kit's own calls and `etcdctl`.
    root: centinela_tls::Files,
    /// Whether `auth enable` ran (with the first [`EtcdCluster::user`]).
    auth: std::sync::atomic::AtomicBool,
}

struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// A real etcd of one or more members on loopback, all killed on drop.
pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    binary: PathBuf,
    logs: Option<PathBuf>,
    /// How the kit's own clients connect (with the root certificate over TLS).
    client_options: ConnectOptions,
    #[cfg(feature = "pki")]
    secure: Option<Secure>,
    // Last: removed after the members are dead.
    root: tempfile::TempDir,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            crate::logs::finish(
                &format!("etcd-{}", member.name),
                &member.log(),
                self.logs.as_deref(),
            );
        }
    }
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one answers with a leader.
    pub fn start(n: usize) -> EtcdCluster {
        assert!(n >= 1, "an etcd cluster has at least one member");
        Self::start_with(n, || None)
    }

    fn start_with(n: usize, secure: impl Fn() -> Option<SecureSetup>) -> EtcdCluster {
        let binary = etcd_binary();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&binary, n, secure()) {
                Ok(cluster) => return cluster,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("etcd ({n} members) did not start: {failures:#?}");
    }

    /// Saves every member's log as `dir/etcd-{name}.log` when the cluster drops.
    pub fn save_logs_in(mut self, dir: PathBuf) -> EtcdCluster {
        self.logs = Some(dir);
        self
    }

    fn try_start(
        binary: &Path,
        n: usize,
        secure: Option<SecureSetup>,
    ) -> Result<EtcdCluster, String> {
        let ports = free_ports(2 * n);
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let scheme = if secure.is_some() { "https" } else { "http" };
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("e{i}"),
                client_url: format!("{scheme}://127.0.0.1:{}", ports[2 * i]),
                peer_url: format!("{scheme}://127.0.0.1:{}", ports[2 * i + 1]),
                dir: root.path().join(format!("e{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "centinela-test-{}",
            root.path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            token,
            binary: binary.to_path_buf(),
            logs: None,
            client_options: store_options(),
            #[cfg(feature = "pki")]
            secure: None,
            root,
        };
        #[cfg(feature = "pki")]
        if let Some(secure) = secure {
            cluster.client_options.tls = Some(
                centinela_tls::ClientTls::from_files(&secure.pki.ca(), Some(secure.root.clone()))
                    .map_err(|e| format!("the kit's etcd client TLS: {e}"))?,
            );
            cluster.secure = Some(Secure {
                pki: secure.pki,
                server: secure.server,
                root: secure.root,
                auth: std::sync::atomic::AtomicBool::new(false),
            });
        }
        #[cfg(not(feature = "pki"))]
        let _: Option<SecureSetup> = secure;
        for i in 0..n {
            std::fs::create_dir_all(&cluster.members[i].dir).map_err(|e| e.to_string())?;
            cluster.spawn_member(i, "new")?;
        }
        for i in 0..n {
            cluster.wait_member(i)?;
        }
        Ok(cluster)
    }

    fn spawn_member(&mut self, i: usize, state: &str) -> Result<(), String> {
        let member = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(member.log_path())
            .map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.binary);
        #[cfg(feature = "pki")]
        if let Some(secure) = &self.secure {
            let ca = secure.pki.ca();
            let (cert, key) = (&secure.server.certificate, &secure.server.key);
            command
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(&ca)
                .arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key)
                .arg("--peer-client-cert-auth")
                .arg("--peer-trusted-ca-file")
                .arg(&ca)
                .arg("--peer-cert-file")
                .arg(cert)
                .arg("--peer-key-file")
                .arg(key);
        }
        let child = command
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(member.dir.join("data"))
            .args(["--listen-client-urls", &member.client_url])
            .args(["--advertise-client-urls", &member.client_url])
            .args(["--listen-peer-urls", &member.peer_url])
            .args(["--initial-advertise-peer-urls", &member.peer_url])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            // Our clients PING every 500 ms; stock etcd (5 s) would GOAWAY them (see
            // `ConnectOptions`). Production etcd runs with the same flag.
            .args(["--grpc-keepalive-min-time", "200ms"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Waits until member `i` answers and knows a leader; an error (with its log) when it
    /// exits or is late.
    fn wait_member(&mut self, i: usize) -> Result<(), String> {
        let give_up = std::time::Instant::now() + STARTUP_DEADLINE;
        loop {
            let member = &mut self.members[i];
            if let Some(child) = member.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "etcd {} exited with {status}: {}",
                    member.name,
                    member.log()
                ));
            }
            match self.member_status(i) {
                Ok(status) if status.leader != 0 => return Ok(()),
                result if std::time::Instant::now() > give_up => {
                    let member = &self.members[i];
                    return Err(format!(
                        "etcd {} at {} not ready within {STARTUP_DEADLINE:?} ({result:?}); \
                         log: {}",
                        member.name,
                        member.client_url,
                        member.log()
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Member `i`'s status (its id, the leader it knows, its revision), asked on a thread of
    /// its own so that any code, async or not, may call it.
    pub fn member_status(&self, i: usize) -> Result<ServerStatus, String> {
        let endpoint = self.members[i].client_url.clone();
        let options = self.client_options.clone();
        block_on(async move {
            let store = Store::connect(&[endpoint], options)
                .await
                .map_err(|e| e.to_string())?;
            store.status().await.map_err(|e| e.to_string())
        })
    }

    /// Every member's client URL (dead ones included: clients must cope).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether member `i` runs (it was not killed).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// The index of the member the live members say leads the raft group.
    pub fn leader_index(&self) -> Option<usize> {
        (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .find_map(|i| {
                let status = self.member_status(i).ok()?;
                (status.leader != 0 && status.leader == status.member_id).then_some(i)
            })
    }

    /// SIGKILL member `i` (its data dir stays).
    pub fn kill_member(&mut self, i: usize) {
        let mut child = self.members[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("etcd member {i} is not running"));
        child.kill().expect("kill etcd");
        child.wait().expect("reap etcd");
    }

    /// Starts member `i` again on its data dir (`--initial-cluster-state existing`) and waits
    /// until it has rejoined (answers with a leader).
    pub fn restart_member(&mut self, i: usize) {
        assert!(!self.is_running(i), "etcd member {i} is still running");
        self.spawn_member(i, "existing")
            .unwrap_or_else(|e| panic!("etcd member {i} did not restart: {e}"));
        self.wait_member(i)
            .unwrap_or_else(|e| panic!("etcd member {i} did not rejoin: {e}"));
    }

    /// The revision member `i` has applied.
    pub fn member_revision(&self, i: usize) -> Result<i64, String> {
        self.member_status(i).map(|s| s.revision)
    }

    /// The temporary directory holding every member's data and log.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }
}

/// What [`EtcdCluster::try_start`] is given for a TLS cluster: made once per attempt.
#[cfg(feature = "pki")]
struct SecureSetup {
    pki: crate::pki::Pki,
    server: centinela_tls::Files,
    root: centinela_tls::Files,
}
#[cfg(not(feature = "pki"))]
struct SecureSetup;

#[cfg(feature = "pki")]
impl EtcdCluster {
    /// Starts `n` members serving TLS only, requiring client certificates signed by their own
    /// CA ([`EtcdCluster::ca`]), with TLS between the members too (`--peer-client-cert-auth`).
    /// RBAC is off until the first [`EtcdCluster::user`].
    pub fn start_tls(n: usize) -> EtcdCluster {
        Self::start_with(n, || {
            let pki = crate::pki::Pki::new("centinela-test-etcd-ca");
            let server = pki.leaf(&["etcd.test".to_string()]);
            let root = pki.leaf(&["root".to_string()]);
            Some(SecureSetup { pki, server, root })
        })
    }

    fn secure(&self) -> &Secure {
        self.secure
            .as_ref()
            .expect("a TLS etcd (EtcdCluster::start_tls)")
    }

    /// etcd's CA (PEM): what its clients trust (`CENTINELA_ETCD_CA`).
    pub fn ca(&self) -> PathBuf {
        self.secure().pki.ca()
    }

    /// etcd's CA itself, to sign more certificates (another user's, an unknown one's).
    pub fn pki(&self) -> &crate::pki::Pki {
        &self.secure().pki
    }

    /// Makes user `name` with a role of the same name that may read and write the keys under
    /// `prefix` and nothing else, turns RBAC on (the first time), and returns a client
    /// certificate whose common name is `name`: etcd's `--client-cert-auth` makes whoever
    /// presents it that user.
    pub fn user(&self, name: &str, prefix: &str) -> centinela_tls::Files {
        self.etcdctl(&["role", "add", name]);
        self.etcdctl(&[
            "role",
            "grant-permission",
            "--prefix=true",
            name,
            "readwrite",
            prefix,
        ]);
        self.etcdctl(&["user", "add", name, "--no-password"]);
        self.etcdctl(&["user", "grant-role", name, name]);
        let secure = self.secure();
        if !secure.auth.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // `auth enable` wants a root user; with certificates it needs no password.
            self.etcdctl(&["user", "add", "root", "--no-password"]);
            self.etcdctl(&["role", "add", "root"]);
            self.etcdctl(&["user", "grant-role", "root", "root"]);
            self.etcdctl(&["auth", "enable"]);
        }
        secure.pki.leaf(&[name.to_string()])
    }

    /// Options for a client of this cluster presenting `identity` (a [`EtcdCluster::user`]'s
    /// certificate, or one etcd should refuse), trusting etcd's CA.
    pub fn client_options(&self, identity: Option<centinela_tls::Files>) -> ConnectOptions {
        ConnectOptions {
            tls: Some(
                centinela_tls::ClientTls::from_files(&self.ca(), identity)
                    .expect("a client TLS from the test's own files"),
            ),
            ..store_options()
        }
    }

    /// Runs `etcdctl` as `root` against the live members; panics with its output on failure.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let secure = self.secure();
        let endpoints = (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .map(|i| self.members[i].client_url.clone())
            .collect::<Vec<_>>()
            .join(",");
        let output = Command::new(etcdctl_binary(&self.binary))
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&endpoints)
            .arg("--cacert")
            .arg(secure.pki.ca())
            .arg("--cert")
            .arg(&secure.root.certificate)
            .arg("--key")
            .arg(&secure.root.key)
            .args(["--command-timeout", "20s", "--dial-timeout", "10s"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run etcdctl: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

/// `etcdctl` next to the etcd binary, else on PATH (Debian's `etcd-client`).
#[cfg(feature = "pki")]
fn etcdctl_binary(etcd: &Path) -> PathBuf {
    let beside = etcd.with_file_name("etcdctl");
    if beside.is_file() {
        return beside;
    }
    PathBuf::from("etcdctl")
}

/// Connects to etcd at `endpoints`, retrying until the default deadline (a member may be down
/// or electing).
pub async fn connect(endpoints: &[String]) -> Store {
    Wait::DEFAULT
        .every(Duration::from_millis(50))
        .until(format!("etcd at {endpoints:?} to answer"), || {
            Store::connect(endpoints, store_options())
        })
        .await
}

/// One consistent read of every key under `prefix`, retried until the default deadline.
pub async fn read_prefix(store: &Store, prefix: &str) -> (Vec<centinela_store::Kv>, i64) {
    Wait::DEFAULT
        .every(Duration::from_millis(50))
        .until(format!("a read of {prefix}"), || store.get_prefix(prefix))
        .await
}

/// Runs `future` to completion on a fresh runtime on its own thread, so synchronous code (and
/// code already inside a runtime) can use the async store client.
pub fn block_on<T, F>(future: F) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
