//! A real PostgreSQL for the tests: Debian's server (`apt-get install -y postgresql`, whose
//! binaries live in `/usr/lib/postgresql/<version>/bin`), a cluster made by `initdb` in a
//! temporary directory, listening on a loopback port that was free a moment ago, its unix
//! socket in the same directory. The server is stopped (fast shutdown) when the [`Postgres`]
//! drops, also when the test panics; its log's tail is printed when the test failed.
//!
//! PostgreSQL refuses to run as root: as root, the cluster is made and run as the `postgres`
//! user the Debian package creates (through `setpriv`). Without the binaries a test fails,
//! saying how to install them; under CI (`CI` set) the message says so. `POSTGRES_BIN_DIR`
//! points at another directory of binaries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::etcd::free_ports;
use crate::wait;

/// Start attempts: a free port we picked can be taken by someone else before the server binds.
const START_ATTEMPTS: usize = 3;

/// The directory holding `initdb`, `postgres` and `pg_isready`.
pub fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let how = "install it with `apt-get install -y postgresql` (Debian's PostgreSQL 15), or \
               point POSTGRES_BIN_DIR at a directory holding initdb and postgres";
    if std::env::var_os("CI").is_some() {
        panic!("CI: this test needs PostgreSQL's server binaries and they are missing: {how}");
    }
    panic!("this test needs PostgreSQL's server binaries (none in /usr/lib/postgresql): {how}");
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server on loopback, stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    port: u16,
    as_root: bool,
    child: Option<Child>,
    // Last: removed after the server is stopped.
    root: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server();
        crate::logs::finish("postgres", &self.log(), None);
    }
}

impl Postgres {
    /// Makes a cluster and starts it; returns once it accepts connections.
    pub fn start() -> Postgres {
        let bin = postgres_bin_dir();
        let as_root = running_as_root();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&bin, as_root) {
                Ok(server) => return server,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("PostgreSQL did not start: {failures:#?}");
    }

    fn try_start(bin: &Path, as_root: bool) -> Result<Postgres, String> {
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut server = Postgres {
            bin: bin.to_path_buf(),
            port: free_ports(1)[0],
            as_root,
            child: None,
            root,
        };
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.root.path())
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err(format!("chown to the postgres user failed: {status}"));
            }
        }
        let output = server
            .command("initdb")
            .arg("-D")
            .arg(server.data_dir())
            .args(["-U", "centinela", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale", "C"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "initdb failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        server.spawn()?;
        Ok(server)
    }

    /// A command running binary `name` as the user that owns the cluster.
    fn command(&self, name: &str) -> Command {
        let binary = self.bin.join(name);
        if self.as_root {
            // setpriv execs in place (no parent in between), so the child is the server
            // itself and signals reach it.
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--init-groups",
                    "--",
                ])
                .arg(binary);
            command
        } else {
            Command::new(binary)
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("postgres.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.root.path().display()
            ))
            // A test database: durability across a machine crash is not what is tested.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .arg("-c")
            .arg(format!("log_directory={}", self.root.path().display()))
            .args([
                "-c",
                "logging_collector=on",
                "-c",
                "log_filename=postgres.log",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run postgres: {e}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let give_up = std::time::Instant::now() + wait::DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("postgres exited with {status}: {}", self.log()));
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "centinela",
                ])
                .args(["-d", "postgres", "-q"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return Ok(());
            }
            if std::time::Instant::now() > give_up {
                return Err(format!(
                    "postgres on port {} not ready within {:?}: {}",
                    self.port,
                    wait::DEADLINE,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop_server(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Fast shutdown (SIGINT): the server ends its sessions and exits cleanly, so it can
        // start again on the same directory.
        let signalled = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !signalled {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// The URL of database `postgres` as user `centinela` (trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://centinela@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (its data stays): an archive that is down.
    pub fn stop(&mut self) {
        assert!(self.child.is_some(), "postgres is not running");
        self.stop_server();
    }

    /// Starts the server again on the same data and port, and waits until it is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "postgres is still running");
        self.spawn()
            .unwrap_or_else(|e| panic!("postgres did not restart: {e}"));
    }

    /// The temporary directory holding the cluster and its log.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }
}
