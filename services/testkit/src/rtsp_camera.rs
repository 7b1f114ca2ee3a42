//! A password-protected RTSP camera that is not ours: Debian's GStreamer RTSP server
//! streaming a generated H.264 test picture (`rtsp_camera.py`, run with Debian's
//! `/usr/bin/python3` and its `python3-gi`), on a free loopback port, from a temp dir, killed
//! when dropped. It reports the clients and RTSP sessions it serves, so a test can count the
//! upstream sessions a node opens. Its picture carries its capture time in the top rows (the
//! script's docs say how), for a glass-to-glass latency read back by the page.
//!
//! Needs `python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{base,good,ugly}`;
//! without them [`RtspCamera::start`] skips (`None`), and under CI fails loudly.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SCRIPT: &str = include_str!("rtsp_camera.py");

/// The Python with Debian's `gi` (a pyenv or venv `python3` on the PATH lacks it).
const PYTHON: &str = "/usr/bin/python3";

/// What the camera has served, from its report lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Served {
    pub clients_connected: u64,
    pub clients_closed: u64,
    pub sessions: u64,
}

impl Served {
    /// Clients connected now.
    pub fn clients_open(&self) -> u64 {
        self.clients_connected - self.clients_closed
    }
}

/// A running test camera; killed when dropped.
pub struct RtspCamera {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    username: String,
    password: String,
    /// Picture size, pixels; the script's default (640×360) when `None`.
    size: Option<(u32, u32)>,
    served: Arc<Mutex<Served>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl RtspCamera {
    /// Starts a camera accepting `username`/`password` on a free port; `None` (saying why)
    /// when GStreamer's RTSP server is not installed, a panic under CI.
    pub async fn start(username: &str, password: &str) -> Option<Self> {
        Self::start_sized(username, password, None).await
    }

    /// [`RtspCamera::start`] with a picture of `size` (width, height) pixels (30 frames/s,
    /// about 0.1 bit per pixel) instead of 640×360.
    pub async fn start_sized(
        username: &str,
        password: &str,
        size: Option<(u32, u32)>,
    ) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a temp dir for the camera");
        std::fs::write(dir.path().join("rtsp_camera.py"), SCRIPT).expect("the camera script");
        let mut camera = Self {
            child: None,
            dir,
            port: 0,
            username: username.into(),
            password: password.into(),
            size,
            served: Arc::default(),
            log: Arc::default(),
        };
        match camera.spawn(0).await {
            Ok(()) => Some(camera),
            Err(missing) => {
                let how = "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly (scripts/test.sh does)";
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "CI: this test needs GStreamer's RTSP server and it is missing ({missing}): {how}"
                    );
                }
                eprintln!("SKIPPED: no GStreamer RTSP server ({missing}): {how}");
                None
            }
        }
    }

    /// The stream's URI (without credentials, as ONVIF's `GetStreamUri` gives it).
    pub fn uri(&self) -> String {
        format!("rtsp://127.0.0.1:{}/main", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the camera has served so far.
    pub fn served(&self) -> Served {
        self.served.lock().unwrap().clone()
    }

    /// Kills the camera (a camera losing power); its clients are gone with it. `served`
    /// keeps counting across restarts.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let mut served = self.served.lock().unwrap();
            served.clients_closed = served.clients_connected;
        }
    }

    /// Freezes the camera (SIGSTOP): its connections stay open and silent, as a camera or a
    /// link that hangs does. [`RtspCamera::thaw`] resumes it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| c.id())
            .expect("the camera runs");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    /// Starts it again on the same port (a camera coming back).
    pub async fn restart(&mut self) {
        self.kill().await;
        let port = self.port;
        // The port was ours a moment ago; the camera listens with SO_REUSEADDR.
        self.spawn(port)
            .await
            .unwrap_or_else(|e| panic!("the camera did not come back on port {port}: {e}"));
    }

    async fn spawn(&mut self, port: u16) -> Result<(), String> {
        if !std::path::Path::new(PYTHON).exists() {
            return Err(format!("{PYTHON} not found"));
        }
        let mut child = Command::new(PYTHON)
            .arg(self.script())
            .args([&self.username, &self.password, &port.to_string()])
            .args(
                self.size
                    .iter()
                    .flat_map(|(w, h)| [w.to_string(), h.to_string()]),
            )
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{PYTHON}: {e}"))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .map_err(|_| "the camera did not start within 60 s".to_string())?
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| "exited without a word".into());
        let Some(bound) = first.strip_prefix("listening ") else {
            return Err(first);
        };
        self.port = bound.trim().parse().map_err(|_| first.clone())?;
        let served = self.served.clone();
        let log = self.log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                {
                    let mut served = served.lock().unwrap();
                    match line.split_whitespace().next() {
                        Some("client-connected") => served.clients_connected += 1,
                        Some("client-closed") => served.clients_closed += 1,
                        Some("session-new") => served.sessions += 1,
                        _ => {}
                    }
                }
                log.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        Ok(())
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("rtsp_camera.py")
    }

    /// Everything the camera reported, one line each (for a failing test's message).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}
