//! The simulated ONVIF cameras of a run: one [`OnvifCamera`] per scenario camera that has no
//! real camera, on loopback.
//!
//! - The demo starts them before its node ([`OnvifFleet::for_scenario`]) and points the
//!   scenario at them, so every demo camera is driven over ONVIF.
//! - Their cameras name no RTSP stream (they draw stills); a test with a real RTSP server sets
//!   one with [`OnvifCamera::set_stream_uri`].
//! - `centinela devices` serves the cameras a node lists at loopback ONVIF URLs
//!   ([`OnvifFleet::serve_listed`]): a cluster test's scenario names the ports, the simulator
//!   answers there. A port something already answers on is left to it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use centinela_core::camera::OnvifEndpoint;
use centinela_core::scenario::Scenario;
use centinela_onvif::credentials::{Credentials, Login};
use centinela_onvif::ptz::Pose;
use centinela_proto::v1;

use crate::onvif_camera::{CameraSpec, DEVICE_PATH, OnvifCamera};

/// Where a simulated camera points when it starts: straight ahead, wide.
const HOME: Pose = Pose {
    pan: 0.0,
    tilt: 0.0,
    zoom: 0.0,
};

/// Running simulated cameras by camera id; they stop when this is dropped.
#[derive(Default)]
pub struct OnvifFleet {
    cameras: BTreeMap<String, OnvifCamera>,
}

impl OnvifFleet {
    /// Starts a camera on `127.0.0.1:0` for every camera of `scenario` without an `onvif` URL
    /// and sets that URL in the scenario. Each accepts `credentials`' login for it, else
    /// `fallback`.
    pub async fn for_scenario(
        scenario: &mut Scenario,
        credentials: &Credentials,
        fallback: &Login,
    ) -> std::io::Result<Self> {
        let mut fleet = Self::default();
        for button in &mut scenario.buttons {
            if button.camera.onvif.is_some() {
                continue;
            }
            let login = credentials.login(&button.camera.id).unwrap_or(fallback);
            let pole = button
                .preset()
                .map(|p| Pose::from_preset(&p))
                .unwrap_or(HOME);
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let name = button.camera.id.to_string();
            let camera = OnvifCamera::start(listener, spec(name, login, pole, None))?;
            // Stills only: naming an RTSP stream nobody serves would send the console's live
            // video after it (the demo needs nothing installed; docs/cameras.md).
            camera.set_stream_uri(None);
            button.camera.onvif = Some(camera.device_url());
            fleet.cameras.insert(button.camera.id.to_string(), camera);
        }
        Ok(fleet)
    }

    /// Serves every listed ONVIF camera whose URL is on loopback and not answered yet; other
    /// URLs are real cameras (or someone else's simulation) and left alone.
    pub async fn serve_listed(cameras: &[v1::Camera], credentials: &Credentials) -> Self {
        let mut fleet = Self::default();
        for camera in cameras {
            let Some(url) = camera.onvif_url.as_deref() else {
                continue;
            };
            let Some(addr) = loopback_addr(url) else {
                continue;
            };
            let Ok(id) = centinela_core::ids::CameraId::new(&camera.id) else {
                continue;
            };
            let Some(login) = credentials.login(&id) else {
                tracing::warn!(camera = %camera.id, "devices: no ONVIF credentials for the simulated camera; set CENTINELA_ONVIF_USER and CENTINELA_ONVIF_PASSWORD");
                continue;
            };
            let pole = camera
                .preset
                .as_ref()
                .and_then(|p| {
                    centinela_core::camera::PtzPreset::new(p.pan_deg, p.tilt_deg, p.zoom).ok()
                })
                .map(|p| Pose::from_preset(&p))
                .unwrap_or(HOME);
            let listener = match TcpListener::bind(addr).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::info!(camera = %camera.id, %addr, error = %e, "devices: something already answers there; not simulating this camera");
                    continue;
                }
            };
            let token = camera.onvif_preset.as_deref();
            match OnvifCamera::start(listener, spec(camera.id.clone(), login, pole, token)) {
                Ok(sim) => {
                    sim.set_stream_uri(None);
                    fleet.cameras.insert(camera.id.clone(), sim);
                }
                Err(e) => {
                    tracing::warn!(camera = %camera.id, error = %e, "devices: simulated camera not started")
                }
            }
        }
        fleet
    }

    /// Stops one camera (it stops answering, as a camera losing power does).
    pub fn stop(&mut self, camera: &str) -> bool {
        self.cameras.remove(camera).is_some()
    }

    pub fn get(&self, camera: &str) -> Option<&OnvifCamera> {
        self.cameras.get(camera)
    }

    pub fn len(&self) -> usize {
        self.cameras.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty()
    }
}

fn spec(name: String, login: &Login, pole: Pose, token: Option<&str>) -> CameraSpec {
    CameraSpec {
        name,
        pole,
        username: login.username.clone(),
        password: login.password.clone(),
        home: HOME,
        presets: token
            .map(|t| vec![(t.to_string(), pole)])
            .unwrap_or_default(),
    }
}

/// The socket address of an `http://127.x.y.z:PORT/onvif/device_service` URL.
fn loopback_addr(url: &str) -> Option<SocketAddr> {
    OnvifEndpoint::new(url, None).ok()?;
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if format!("/{path}") != DEVICE_PATH {
        return None;
    }
    let addr: SocketAddr = authority.parse().ok()?;
    (addr.ip().is_loopback() && addr.port() != 0).then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_device_urls_are_simulated() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:8001/onvif/device_service"),
            Some("127.0.0.1:8001".parse().unwrap())
        );
        assert_eq!(
            loopback_addr("http://10.0.0.1:80/onvif/device_service"),
            None
        );
        assert_eq!(loopback_addr("http://127.0.0.1/onvif/device_service"), None);
        assert_eq!(loopback_addr("http://127.0.0.1:8001/other"), None);
    }
}
