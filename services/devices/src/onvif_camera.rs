//! A simulated ONVIF camera on loopback: `centinela_onvif::camera::Camera` (what a Profile S
//! PTZ camera answers) served over HTTP the way field cameras serve it, one SOAP endpoint per
//! service, and its picture at [`SNAPSHOT_PATH`]: a JPEG drawn for its pose ([`picture`])
//! behind HTTP Digest authentication ([`auth`]). The demo and `centinela devices` run one per
//! scenario camera that has no real camera of its own; tests drive it with the node's driver
//! and with independent clients.

pub mod auth;
pub mod picture;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use centinela_core::time::Timestamp;
use centinela_onvif::camera::{Camera, Urls};
use centinela_onvif::ptz::Pose;

/// Largest request body a camera reads: its SOAP requests are a few kilobytes.
pub const REQUEST_BYTES_MAX: usize = 64 * 1024;

/// The paths a camera serves, as field cameras name them.
pub const DEVICE_PATH: &str = "/onvif/device_service";
pub const MEDIA_PATH: &str = "/onvif/media_service";
pub const PTZ_PATH: &str = "/onvif/ptz_service";
pub const SNAPSHOT_PATH: &str = "/snapshot.jpg";

/// How to make one camera.
#[derive(Clone, Debug)]
pub struct CameraSpec {
    /// Its name, shown on its picture.
    pub name: String,
    pub username: String,
    pub password: String,
    /// Where it points when it starts.
    pub home: Pose,
    /// Preset tokens an installer saved, with the poses they frame.
    pub presets: Vec<(String, Pose)>,
    /// The pose that frames its button's pole: where the picture draws the pole (and the
    /// caller, see [`OnvifCamera::set_caller`]).
    pub pole: Pose,
}

/// A running simulated camera; stops when dropped.
pub struct OnvifCamera {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// What the camera's handlers share.
struct Shared {
    camera: Mutex<Camera>,
    guard: Mutex<auth::Guard>,
    name: String,
    pole: Pose,
    /// Set by [`OnvifCamera::set_caller`]: 0 follows the camera's moves, 1 absent, 2 present.
    caller: AtomicU8,
    /// When the camera was last sent to its pole (ms since the epoch; 0: never).
    sent_to_pole_ms: AtomicU64,
    frames: AtomicU64,
    challenges: AtomicU64,
}

impl Drop for OnvifCamera {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OnvifCamera {
    /// Serves `spec` on `listener` (bind `127.0.0.1:0` and read the address back).
    pub fn start(listener: TcpListener, spec: CameraSpec) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let urls = Urls {
            device: format!("{base}{DEVICE_PATH}"),
            media: format!("{base}{MEDIA_PATH}"),
            ptz: format!("{base}{PTZ_PATH}"),
            snapshot: format!("{base}{SNAPSHOT_PATH}"),
            stream: format!("rtsp://{addr}/main"),
        };
        let mut camera = Camera::new(&spec.username, &spec.password, urls, spec.home);
        for (token, pose) in spec.presets {
            camera = camera.with_preset(&token, pose);
        }
        let shared = Arc::new(Shared {
            camera: Mutex::new(camera),
            guard: Mutex::new(auth::Guard::new(&spec.username, &spec.password)),
            name: spec.name,
            pole: spec.pole,
            caller: AtomicU8::new(0),
            sent_to_pole_ms: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            challenges: AtomicU64::new(0),
        });
        let soap = post(answer);
        let app = Router::new()
            .route(DEVICE_PATH, soap.clone())
            .route(MEDIA_PATH, soap.clone())
            .route(PTZ_PATH, soap)
            .route(SNAPSHOT_PATH, get(snapshot))
            .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "simulated ONVIF camera stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// Whether someone stands at the camera's button: the picture shows them beside the pole.
    /// Until this is called, a caller appears for [`CALLER_STAYS`] after the camera is sent to
    /// its pole (the node does that when the button is pressed, whoever pressed it).
    pub fn set_caller(&self, present: bool) {
        self.shared
            .caller
            .store(if present { 2 } else { 1 }, Ordering::Relaxed);
    }

    /// The RTSP stream its `GetStreamUri` names from now on: a real RTSP server, when a test
    /// needs live video; `None`: no stream (`GetStreamUri` refused). The simulated camera
    /// draws stills only: the `rtsp://` URI it names when started is not answered.
    pub fn set_stream_uri(&self, uri: Option<&str>) {
        self.shared
            .camera
            .lock()
            .expect("camera lock poisoned")
            .set_stream_uri(uri);
    }

    /// Snapshots served so far.
    pub fn frames_served(&self) -> u64 {
        self.shared.frames.load(Ordering::Relaxed)
    }

    /// Digest challenges (HTTP 401 answers) sent so far on the snapshot URI.
    pub fn challenges_sent(&self) -> u64 {
        self.shared.challenges.load(Ordering::Relaxed)
    }

    /// `http://ADDR/snapshot.jpg`, as `GetSnapshotUri` names it.
    pub fn snapshot_url(&self) -> String {
        format!("http://{}{SNAPSHOT_PATH}", self.addr)
    }

    /// `http://ADDR/onvif/device_service`: what a scenario's `onvif` field names.
    pub fn device_url(&self) -> String {
        format!("http://{}{DEVICE_PATH}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it points now.
    pub fn pose(&self) -> Pose {
        self.shared
            .camera
            .lock()
            .expect("camera lock poisoned")
            .pose(now())
    }
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Timestamp::from_millis(millis)
}

/// How long the simulated caller waits at the pole after the camera is sent there.
pub const CALLER_STAYS: std::time::Duration = std::time::Duration::from_secs(180);

/// Whether the picture at `now` shows a caller at the pole.
fn caller_present(shared: &Shared, now: Timestamp) -> bool {
    match shared.caller.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let sent = shared.sent_to_pole_ms.load(Ordering::Relaxed);
            sent != 0 && now.as_millis().saturating_sub(sent) < CALLER_STAYS.as_millis() as u64
        }
    }
}

async fn answer(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "the request is not UTF-8").into_response();
    };
    let now = now();
    let (answer, destination) = {
        let mut camera = shared.camera.lock().expect("camera lock poisoned");
        let answer = camera.answer(text, now);
        (answer, camera.destination())
    };
    let moved = text.contains("GotoPreset") || text.contains("AbsoluteMove");
    if answer.status == 200 && moved && destination.near(&shared.pole, 0.02) {
        shared
            .sent_to_pole_ms
            .store(now.as_millis().max(1), Ordering::Relaxed);
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/soap+xml; charset=utf-8"),
    );
    response
}

/// `GET /snapshot.jpg`: the picture now, to a request with a valid Digest answer; otherwise
/// a 401 with fresh challenges.
async fn snapshot(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let target = uri.path_and_query().map_or(SNAPSHOT_PATH, |p| p.as_str());
    let authorizations = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let verdict = shared.guard.lock().expect("guard lock poisoned").check(
        method.as_str(),
        target,
        authorizations,
        Instant::now(),
    );
    if let auth::Verdict::Challenge { stale } = verdict {
        let challenges = shared
            .guard
            .lock()
            .expect("guard lock poisoned")
            .challenge(stale, Instant::now());
        shared.challenges.fetch_add(1, Ordering::Relaxed);
        let mut response = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        let headers = response.headers_mut();
        for challenge in challenges {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.append(header::WWW_AUTHENTICATE, value);
            }
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response;
    }
    let frame = shared.frames.fetch_add(1, Ordering::Relaxed) + 1;
    let view = picture::View {
        pose: shared
            .camera
            .lock()
            .expect("camera lock poisoned")
            .pose(now()),
        pole: shared.pole,
        caller: caller_present(&shared, now()),
        at: now(),
        frame,
        label: shared.name.clone(),
    };
    // A few milliseconds of CPU: off the threads that serve the sockets.
    let Ok(jpeg) = tokio::task::spawn_blocking(move || picture::render(&view)).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = (StatusCode::OK, jpeg).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
