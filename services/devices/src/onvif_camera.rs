//! A simulated ONVIF camera on loopback: `centinela_onvif::camera::Camera` (what a Profile S
//! PTZ camera answers) served over HTTP the way field cameras serve it, one SOAP endpoint per
//! service. The demo and `centinela devices` run one per scenario camera that has no real
//! camera of its own; tests drive it with the node's driver and with an independent client.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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
    pub username: String,
    pub password: String,
    /// Where it points when it starts.
    pub home: Pose,
    /// Preset tokens an installer saved, with the poses they frame.
    pub presets: Vec<(String, Pose)>,
}

/// A running simulated camera; stops when dropped.
pub struct OnvifCamera {
    addr: SocketAddr,
    camera: Arc<Mutex<Camera>>,
    task: JoinHandle<()>,
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
        let camera = Arc::new(Mutex::new(camera));
        let soap = post(answer);
        let app = Router::new()
            .route(DEVICE_PATH, soap.clone())
            .route(MEDIA_PATH, soap.clone())
            .route(PTZ_PATH, soap)
            .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
            .with_state(camera.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "simulated ONVIF camera stopped");
            }
        });
        Ok(Self { addr, camera, task })
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
        self.camera
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

async fn answer(State(camera): State<Arc<Mutex<Camera>>>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "the request is not UTF-8").into_response();
    };
    let answer = camera
        .lock()
        .expect("camera lock poisoned")
        .answer(text, now());
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/soap+xml; charset=utf-8"),
    );
    response
}
