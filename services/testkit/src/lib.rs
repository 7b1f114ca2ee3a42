//! What Centinela's tests share, written once: a dev-only crate (never shipped) that test
//! targets list under `[dev-dependencies]` (the simulation, a test-only crate itself, under
//! `[dependencies]`).
//!
//! The rules every part keeps, as `tests/README.md` states them for every test: wait on
//! conditions under generous deadlines instead of sleeping; bind port 0 or ports that were free
//! a moment ago; keep files in temporary directories; kill every process a test starts when its
//! handle drops, also when the test panics; and when a real part (etcd, a browser) is missing
//! under CI, fail loudly instead of skipping.
//!
//! Layout:
//! - [`wait`]: poll a condition until it holds (async on tokio's clock, or blocking), or fail.
//! - [`scenario`]: [`scenario::ScenarioBuilder`], test scenarios in the deployment TOML format.
//! - `node` (feature `node`): an in-process node on ports 0 and the embedded store, and clients.
//! - [`etcd`]: Debian's etcd, one member or several, on free loopback ports in a temp dir.
//! - `browser` (feature `browser`): headless Chromium driven over the DevTools protocol.
//! - `rtsp_camera` (feature `rtsp`): GStreamer's RTSP server as a password-protected H.264
//!   camera on a free port, counting the sessions it serves.
//! - `postgres` (feature `postgres`): Debian's PostgreSQL server, a cluster made by `initdb`
//!   in a temp dir on a free loopback port (the archive's tests).
//! - `pki` (feature `pki`): a CA and node, device and client certificates made by the test.
//! - [`process`]: this process's CPU time and resident memory, from `/proc/self`.
//! - `sipp` (feature `sipp`): Debian's sipp as a SIP user agent running a scenario the test
//!   writes (the intercom's tests), and a µ-law WAV for it to play.
//! - [`invariants`]: the safety-invariant checks over store records and acknowledged presses.
//! - [`logs`]: a finished process's log saved, its tail printed when the test failed.

#[cfg(feature = "browser")]
pub mod browser;
pub mod etcd;
pub mod invariants;
pub mod logs;
#[cfg(feature = "node")]
pub mod node;
#[cfg(feature = "pki")]
pub mod pki;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod process;
#[cfg(feature = "rtsp")]
pub mod rtsp_camera;
pub mod scenario;
#[cfg(feature = "sipp")]
pub mod sipp;
pub mod wait;
