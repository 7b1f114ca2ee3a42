//! Simulated ONVIF cameras in a process of their own, for benchmarks that measure a node's CPU
//! without the cameras' (each snapshot is a JPEG drawn for the camera's pose, ~4 ms of CPU).
//!
//! ```sh
//! CENTINELA_ONVIF_USER=u CENTINELA_ONVIF_PASSWORD=p \
//!   cargo run --release -p centinela-devices --example camera_farm -- SCENARIO.toml
//! ```
//!
//! For every button camera of the scenario whose `onvif` URL is
//! `http://127.0.0.1:PORT/onvif/device_service`, starts an [`OnvifCamera`] bound to that
//! address, accepting the account in `CENTINELA_ONVIF_USER` / `CENTINELA_ONVIF_PASSWORD`
//! (the one the node signs in with), pointing at home (pan 0, tilt 0, zoom 0) and framing the
//! button at the scenario's preset (and under its preset token, when it names one), exactly as
//! `centinela demo` starts its own. Prints one JSON line when every camera listens, then runs
//! until killed. Used by `scripts/bench-cameras.sh`.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use centinela_core::scenario::Scenario;
use centinela_devices::onvif_camera::{CameraSpec, DEVICE_PATH, OnvifCamera};
use centinela_onvif::ptz::Pose;

const HOME: Pose = Pose {
    pan: 0.0,
    tilt: 0.0,
    zoom: 0.0,
};

/// `127.0.0.1:PORT` of `http://127.0.0.1:PORT/onvif/device_service`.
fn loopback_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/')?;
    if format!("/{path}") != DEVICE_PATH {
        return None;
    }
    let addr: SocketAddr = authority.parse().ok()?;
    (addr.ip().is_loopback() && addr.port() != 0).then_some(addr)
}

fn fail(message: String) -> ! {
    eprintln!("camera_farm: {message}");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let Some(path) = std::env::args().nth(1) else {
        fail("usage: camera_farm SCENARIO.toml (with CENTINELA_ONVIF_USER and CENTINELA_ONVIF_PASSWORD set)".into());
    };
    let (Ok(username), Ok(password)) = (
        std::env::var("CENTINELA_ONVIF_USER"),
        std::env::var("CENTINELA_ONVIF_PASSWORD"),
    ) else {
        fail("set CENTINELA_ONVIF_USER and CENTINELA_ONVIF_PASSWORD".into());
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    let scenario = Scenario::from_toml(&text).unwrap_or_else(|e| fail(format!("{path}: {e}")));

    let mut cameras = Vec::new();
    for button in &scenario.buttons {
        let Some(addr) = button.camera.onvif.as_deref().and_then(loopback_addr) else {
            continue;
        };
        let preset = button
            .preset()
            .unwrap_or_else(|e| fail(format!("{path}: {e}")));
        let pole = Pose::from_preset(&preset);
        let spec = CameraSpec {
            name: button.camera.id.to_string(),
            username: username.clone(),
            password: password.clone(),
            home: HOME,
            presets: button
                .camera
                .preset
                .iter()
                .map(|token| (token.clone(), pole))
                .collect(),
            pole,
        };
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| fail(format!("camera {}: bind {addr}: {e}", button.camera.id)));
        let camera = OnvifCamera::start(listener, spec)
            .unwrap_or_else(|e| fail(format!("camera {}: {e}", button.camera.id)));
        cameras.push(camera);
    }
    println!(
        "{{\"camera_farm\":\"ready\",\"cameras\":{},\"pid\":{}}}",
        cameras.len(),
        std::process::id()
    );
    std::future::pending::<()>().await;
}
