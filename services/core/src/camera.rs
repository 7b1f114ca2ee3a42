//! PTZ cameras: each watches one button and turns to it when the button is pressed.
//!
//! A press aims the camera at the button's stored preset and bookmarks the recording, so the
//! footage of every incident can be found later even if nobody was watching live.

use std::fmt;

use crate::alert::{AlertKind, Alerts, Clearance};
use crate::ids::{ButtonId, CameraId, IncidentId, OperatorId};
use crate::limits::BOOKMARKS_MAX;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("pan {0} degrees is outside [-180, 180]")]
    PanOutOfRange(f64),
    #[error("tilt {0} degrees is outside [-90, 90]")]
    TiltOutOfRange(f64),
    #[error("zoom {0} is outside [1, 40]")]
    ZoomOutOfRange(f64),
    #[error("ONVIF address {0:?} is not an http:// URL with a host")]
    OnvifUrl(String),
    #[error("preset token {0:?} must be 1 to 64 visible characters")]
    PresetToken(String),
    #[error("camera {camera} cannot go from {from} to {to}: {reason}")]
    IllegalTransition {
        camera: CameraId,
        from: CameraState,
        to: CameraState,
        reason: &'static str,
    },
}

/// Pan/tilt/zoom that frames the camera's button. Built only through [`PtzPreset::new`];
/// deserializing validates too.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawPreset")]
pub struct PtzPreset {
    pan_deg: f64,
    tilt_deg: f64,
    zoom: f64,
}

#[derive(serde::Deserialize)]
struct RawPreset {
    pan_deg: f64,
    tilt_deg: f64,
    zoom: f64,
}

impl TryFrom<RawPreset> for PtzPreset {
    type Error = Error;

    fn try_from(raw: RawPreset) -> Result<Self, Error> {
        PtzPreset::new(raw.pan_deg, raw.tilt_deg, raw.zoom)
    }
}

impl PtzPreset {
    /// Optical zoom range of the municipal PTZ models (1x wide to 40x).
    pub const ZOOM_MIN: f64 = 1.0;
    pub const ZOOM_MAX: f64 = 40.0;

    /// The range checks also refuse NaN, since every comparison with NaN is false.
    pub fn new(pan_deg: f64, tilt_deg: f64, zoom: f64) -> Result<Self, Error> {
        if !(-180.0..=180.0).contains(&pan_deg) {
            return Err(Error::PanOutOfRange(pan_deg));
        }
        if !(-90.0..=90.0).contains(&tilt_deg) {
            return Err(Error::TiltOutOfRange(tilt_deg));
        }
        if !(Self::ZOOM_MIN..=Self::ZOOM_MAX).contains(&zoom) {
            return Err(Error::ZoomOutOfRange(zoom));
        }
        Ok(Self {
            pan_deg,
            tilt_deg,
            zoom,
        })
    }

    pub fn pan_deg(&self) -> f64 {
        self.pan_deg
    }

    pub fn tilt_deg(&self) -> f64 {
        self.tilt_deg
    }

    pub fn zoom(&self) -> f64 {
        self.zoom
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Free: patrolling or parked, not held by an incident.
    Idle,
    /// Commanded to the preset; the device has not yet confirmed it arrived.
    Aiming,
    /// The device confirmed it is framing the button.
    OnTarget,
}

impl fmt::Display for CameraState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CameraState::Idle => "idle",
            CameraState::Aiming => "aiming",
            CameraState::OnTarget => "on_target",
        })
    }
}

/// How the node drives a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    /// The device dials in and keeps our `CameraGateway` command stream open.
    Native,
    /// An IP camera the node drives over ONVIF (Profile S) at its device service URL.
    Onvif,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverKind::Native => "native",
            DriverKind::Onvif => "onvif",
        })
    }
}

/// Where an ONVIF camera answers, and the preset that frames its button. Configuration from
/// the scenario; the credentials are the node's own (never in the store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OnvifEndpoint {
    /// The device service: `http://HOST:PORT/onvif/device_service`.
    pub url: String,
    /// A preset token saved on the camera (`GotoPreset`); without one the camera is moved to
    /// the camera's [`PtzPreset`] with `AbsoluteMove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

impl OnvifEndpoint {
    /// Longest URL and token taken: a typo'd paste, not a config, beyond these.
    pub const URL_MAX: usize = 512;
    pub const TOKEN_MAX: usize = 64;

    pub fn new(url: &str, preset: Option<&str>) -> Result<Self, Error> {
        let host = url
            .strip_prefix("http://")
            .map(|rest| rest.split('/').next().unwrap_or(""));
        let valid_url = url.len() <= Self::URL_MAX
            && !url.chars().any(|c| c.is_whitespace() || c.is_control())
            && host.is_some_and(|h| !h.is_empty() && !h.starts_with(':'));
        if !valid_url {
            return Err(Error::OnvifUrl(url.to_string()));
        }
        if let Some(token) = preset {
            let visible = token.chars().all(|c| c.is_ascii_graphic());
            if token.is_empty() || token.len() > Self::TOKEN_MAX || !visible {
                return Err(Error::PresetToken(token.to_string()));
            }
        }
        Ok(Self {
            url: url.to_string(),
            preset: preset.map(str::to_string),
        })
    }
}

/// A mark in the recording: footage of `incident` starts at `at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bookmark {
    pub incident: IncidentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Camera {
    pub id: CameraId,
    /// The button on the same pole; the preset frames it.
    pub button: ButtonId,
    pub preset: PtzPreset,
    pub state: CameraState,
    /// When `state` last changed: a camera stuck in `Aiming` is a fault worth showing.
    pub state_since: Timestamp,
    /// Whether the camera's device is connected (set by the camera actor); independent of
    /// `state`. A new camera is offline until its device is first heard from: a camera that
    /// never connected must not look healthy to operators or to the offline-cameras alert.
    pub online: bool,
    /// The incident holding the camera, if any.
    pub target: Option<IncidentId>,
    /// Recent bookmarks, oldest first, at most [`BOOKMARKS_MAX`].
    pub bookmarks: Vec<Bookmark>,
    /// Set when the camera is driven over ONVIF; `None` for a native device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onvif: Option<OnvifEndpoint>,
    /// Why the camera is offline, when the driver knows (`unauthorized: ...`, a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The camera's RTSP stream (ONVIF `GetStreamUri`), for operators' own players.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_uri: Option<String>,
    /// A camera-offline alert waiting for a supervisor, and past clearances ([`crate::alert`]).
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
}

impl Camera {
    pub fn new(id: CameraId, button: ButtonId, preset: PtzPreset, now: Timestamp) -> Self {
        Self {
            id,
            button,
            preset,
            state: CameraState::Idle,
            state_since: now,
            online: false,
            target: None,
            bookmarks: Vec::new(),
            onvif: None,
            fault: None,
            stream_uri: None,
            // Never heard from is offline too, and must not look healthy: the alert is open
            // until the camera is first seen ([`Camera::set_online`]) or a supervisor clears it.
            alerts: {
                let mut alerts = Alerts::default();
                alerts.raise_never_seen(AlertKind::CameraOffline, now);
                alerts
            },
        }
    }

    /// A camera driven over ONVIF at `endpoint`.
    pub fn with_onvif(mut self, endpoint: Option<OnvifEndpoint>) -> Self {
        self.onvif = endpoint;
        self
    }

    pub fn driver(&self) -> DriverKind {
        if self.onvif.is_some() {
            DriverKind::Onvif
        } else {
            DriverKind::Native
        }
    }

    /// The device is connected. A camera seen for the first time ends its never-seen alert (a
    /// fresh deployment does not leave a supervisor one alert per camera to clear); an alert
    /// from a camera that went offline stays until a supervisor clears it.
    pub fn set_online(&mut self) {
        self.online = true;
        self.alerts.seen();
    }

    /// The device is no longer connected: a camera that was online raises a camera-offline
    /// alert (a new camera has one from the start, [`Camera::new`]).
    pub fn set_offline(&mut self, now: Timestamp) {
        if self.online {
            self.alerts.raise(AlertKind::CameraOffline, now);
        }
        self.online = false;
    }

    /// A supervisor cleared the camera's open alert as `by`; `None` when none is open.
    pub fn clear_alert(&mut self, by: &OperatorId, now: Timestamp) -> Option<Clearance> {
        self.alerts.clear(by, now)
    }

    /// Aims at the button for `incident`, from any state (a new incident takes the camera over),
    /// and returns the incident's bookmark. Each incident is bookmarked once: repeated presses
    /// re-aim but keep the first mark, which is where the footage starts.
    pub fn aim(&mut self, incident: IncidentId, now: Timestamp) -> Bookmark {
        self.state = CameraState::Aiming;
        self.state_since = now;
        self.target = Some(incident.clone());
        if let Some(existing) = self.bookmarks.iter().find(|b| b.incident == incident) {
            return existing.clone();
        }
        if self.bookmarks.len() >= BOOKMARKS_MAX {
            self.bookmarks.remove(0);
        }
        let bookmark = Bookmark { incident, at: now };
        self.bookmarks.push(bookmark.clone());
        debug_assert!(self.bookmarks.len() <= BOOKMARKS_MAX);
        bookmark
    }

    /// The device confirmed it reached the preset. Only meaningful while aiming: a confirmation
    /// arriving after a release is stale and refused.
    pub fn on_target(&mut self, now: Timestamp) -> Result<(), Error> {
        if self.state != CameraState::Aiming {
            let reason = match self.state {
                CameraState::Idle => "the camera was not asked to aim",
                _ => "the camera is already on target",
            };
            return Err(Error::IllegalTransition {
                camera: self.id.clone(),
                from: self.state,
                to: CameraState::OnTarget,
                reason,
            });
        }
        self.state = CameraState::OnTarget;
        self.state_since = now;
        Ok(())
    }

    /// Frees the camera (incident closed, or an operator took manual control). Bookmarks stay.
    pub fn release(&mut self, now: Timestamp) {
        if self.state != CameraState::Idle {
            self.state_since = now;
        }
        self.state = CameraState::Idle;
        self.target = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn inc(s: &str) -> IncidentId {
        IncidentId::new(s).unwrap()
    }

    fn camera() -> Camera {
        Camera::new(
            CameraId::new("CAM-1").unwrap(),
            ButtonId::new("BTN-1").unwrap(),
            PtzPreset::new(10.0, -20.0, 3.0).unwrap(),
            t(0),
        )
    }

    #[test]
    fn preset_ranges() {
        assert!(PtzPreset::new(-180.0, -90.0, 1.0).is_ok());
        assert!(PtzPreset::new(180.0, 90.0, 40.0).is_ok());
        assert_eq!(
            PtzPreset::new(181.0, 0.0, 1.0).unwrap_err(),
            Error::PanOutOfRange(181.0)
        );
        assert_eq!(
            PtzPreset::new(0.0, -91.0, 1.0).unwrap_err().to_string(),
            "tilt -91 degrees is outside [-90, 90]"
        );
        assert!(PtzPreset::new(0.0, 0.0, 0.5).is_err());
        assert!(PtzPreset::new(0.0, 0.0, 41.0).is_err());
        assert!(PtzPreset::new(f64::NAN, 0.0, 1.0).is_err());
        let err = serde_json::from_str::<PtzPreset>(r#"{"pan_deg":0,"tilt_deg":0,"zoom":0}"#);
        assert!(err.is_err());
    }

    #[test]
    fn aim_then_on_target_then_release() {
        let mut c = camera();
        let b = c.aim(inc("I-1"), t(10));
        assert_eq!(
            b,
            Bookmark {
                incident: inc("I-1"),
                at: t(10)
            }
        );
        assert_eq!(c.state, CameraState::Aiming);
        assert_eq!(c.target, Some(inc("I-1")));
        c.on_target(t(20)).unwrap();
        assert_eq!(c.state, CameraState::OnTarget);
        assert_eq!(c.state_since, t(20));
        c.release(t(30));
        assert_eq!(c.state, CameraState::Idle);
        assert_eq!(c.target, None);
        assert_eq!(c.bookmarks.len(), 1);
    }

    #[test]
    fn aiming_again_for_the_same_incident_keeps_one_bookmark() {
        let mut c = camera();
        c.aim(inc("I-1"), t(10));
        c.on_target(t(11)).unwrap();
        let again = c.aim(inc("I-1"), t(50));
        assert_eq!(again.at, t(10));
        assert_eq!(c.state, CameraState::Aiming);
        assert_eq!(c.bookmarks.len(), 1);
        // A different incident takes the camera over and gets its own mark.
        c.aim(inc("I-2"), t(60));
        assert_eq!(c.target, Some(inc("I-2")));
        assert_eq!(c.bookmarks.len(), 2);
    }

    #[test]
    fn on_target_only_from_aiming() {
        let mut c = camera();
        let err = c.on_target(t(1)).unwrap_err();
        assert!(matches!(
            err,
            Error::IllegalTransition {
                from: CameraState::Idle,
                reason: "the camera was not asked to aim",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "camera CAM-1 cannot go from idle to on_target: the camera was not asked to aim"
        );
        c.aim(inc("I-1"), t(2));
        c.on_target(t(3)).unwrap();
        let err = c.on_target(t(4)).unwrap_err();
        assert!(matches!(
            err,
            Error::IllegalTransition {
                from: CameraState::OnTarget,
                reason: "the camera is already on target",
                ..
            }
        ));
    }

    #[test]
    fn bookmarks_are_bounded_oldest_first_out() {
        let mut c = camera();
        for i in 0..(BOOKMARKS_MAX + 5) {
            c.aim(inc(&format!("I-{i}")), t(i as u64));
        }
        assert_eq!(c.bookmarks.len(), BOOKMARKS_MAX);
        assert_eq!(c.bookmarks[0].incident, inc("I-5"));
        assert_eq!(
            c.bookmarks.last().unwrap().incident,
            inc(&format!("I-{}", BOOKMARKS_MAX + 4))
        );
    }

    #[test]
    fn onvif_endpoints_are_checked() {
        let e = OnvifEndpoint::new("http://10.0.0.5/onvif/device_service", Some("1")).unwrap();
        assert_eq!(e.preset.as_deref(), Some("1"));
        assert!(OnvifEndpoint::new("http://127.0.0.1:8000/onvif/device_service", None).is_ok());
        for bad in [
            "",
            "ftp://x/",
            "http://",
            "http:///x",
            "http://:80/x",
            "http://a b/",
        ] {
            assert_eq!(
                OnvifEndpoint::new(bad, None).unwrap_err(),
                Error::OnvifUrl(bad.to_string()),
                "{bad}"
            );
        }
        assert!(OnvifEndpoint::new("http://h/", Some("")).is_err());
        assert!(OnvifEndpoint::new("http://h/", Some("a b")).is_err());
        assert!(OnvifEndpoint::new("http://h/", Some(&"x".repeat(65))).is_err());
    }

    #[test]
    fn a_native_camera_serializes_as_before() {
        // Records written before cameras had drivers read back, and a native camera's record is
        // byte-for-byte what it was (rolling upgrades, the simulation's history hashes).
        let c = camera();
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("onvif") && !json.contains("fault"), "{json}");
        let back: Camera = serde_json::from_str(&json).unwrap();
        assert_eq!(back.driver(), DriverKind::Native);
        let onvif = camera().with_onvif(Some(OnvifEndpoint::new("http://h/", None).unwrap()));
        assert_eq!(onvif.driver(), DriverKind::Onvif);
    }

    #[test]
    fn state_serializes_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&CameraState::OnTarget).unwrap(),
            "\"on_target\""
        );
    }
}
