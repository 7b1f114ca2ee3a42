//! The camera's side of the same messages: what a simulated ONVIF camera answers. The demo and
//! `centinela devices` serve it over HTTP for every scenario camera without a real one; the
//! tests drive it with the node's driver and with an independent ONVIF client.
//!
//! It does what a PTZ camera in the field does with the Profile S subset: answers its clock
//! without credentials and everything else only with a valid UsernameToken (a fresh `Created`,
//! an unused nonce, the right digest), serves one media profile with PTZ, moves to a preset or
//! an absolute position at a finite speed (reporting `MOVING` until it is there), and names a
//! snapshot URI and an RTSP stream URI.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use centinela_core::time::Timestamp;

use crate::Error;
use crate::ptz::Pose;
use crate::request::{DEVICE_NS, MEDIA_NS, PTZ_NS, SCHEMA_NS, SOAP_ENV_NS};
use crate::security::{ClockOffset, UsernameToken};
use crate::xml::{Element, escape, parse};

/// The one media profile's token.
pub const PROFILE: &str = "main";
/// How far `Created` may be from the camera's clock: WS-Security's customary five minutes.
pub const CREATED_SKEW_MAX: Duration = Duration::from_secs(300);
/// Nonces remembered against replay.
pub const NONCES_MAX: usize = 1024;
/// How long a move across the whole range takes (pan -1 to 1): a fast PTZ dome.
pub const FULL_SWING: Duration = Duration::from_secs(2);

/// Where the camera serves its services and media.
#[derive(Clone, Debug)]
pub struct Urls {
    pub device: String,
    pub media: String,
    pub ptz: String,
    pub snapshot: String,
    pub stream: String,
}

/// A move in progress.
#[derive(Clone, Copy, Debug)]
struct Move {
    from: Pose,
    to: Pose,
    started: Timestamp,
}

/// The simulated camera.
#[derive(Debug)]
pub struct Camera {
    username: String,
    password: String,
    urls: Urls,
    /// Preset tokens and the poses they frame.
    presets: BTreeMap<String, Pose>,
    pose: Pose,
    moving: Option<Move>,
    /// The camera's clock against the caller's (a camera with a wrong clock).
    clock: ClockOffset,
    nonces: VecDeque<Vec<u8>>,
}

/// An answer: the HTTP status and the SOAP envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Camera {
    pub fn new(username: &str, password: &str, urls: Urls, home: Pose) -> Self {
        Self {
            username: username.to_string(),
            password: password.to_string(),
            urls,
            presets: BTreeMap::new(),
            pose: home,
            moving: None,
            clock: ClockOffset::default(),
            nonces: VecDeque::new(),
        }
    }

    /// A preset an installer saved.
    pub fn with_preset(mut self, token: &str, pose: Pose) -> Self {
        self.presets.insert(token.to_string(), pose);
        self
    }

    /// Makes the camera's clock run `offset` from the real one.
    /// Answers `GetStreamUri` with `uri` from now on (a test camera streaming elsewhere), or,
    /// with `None`, refuses it as a camera whose RTSP service is disabled does.
    pub fn set_stream_uri(&mut self, uri: Option<&str>) {
        self.urls.stream = uri.unwrap_or_default().to_string();
    }

    pub fn with_clock(mut self, offset: ClockOffset) -> Self {
        self.clock = offset;
        self
    }

    /// Where it points at `now` (a move in progress advances with time).
    pub fn pose(&mut self, now: Timestamp) -> Pose {
        self.advance(now);
        self.pose
    }

    /// Where it is headed (where it is, when it is not moving).
    pub fn destination(&self) -> Pose {
        self.moving.map_or(self.pose, |m| m.to)
    }

    /// Whether it is moving at `now`.
    pub fn is_moving(&mut self, now: Timestamp) -> bool {
        self.advance(now);
        self.moving.is_some()
    }

    /// Starts a move to `to` (operators' manual controls go through here too).
    pub fn move_to(&mut self, to: Pose, now: Timestamp) {
        self.advance(now);
        self.moving = Some(Move {
            from: self.pose,
            to: to.clamped(),
            started: now,
        });
        self.advance(now);
    }

    fn advance(&mut self, now: Timestamp) {
        let Some(m) = self.moving else { return };
        let distance = (m.to.pan - m.from.pan)
            .abs()
            .max((m.to.tilt - m.from.tilt).abs())
            .max((m.to.zoom - m.from.zoom).abs() * 2.0);
        let needed = FULL_SWING.as_secs_f64() * distance / 2.0;
        let elapsed = now.saturating_duration_since(m.started).as_secs_f64();
        if elapsed >= needed {
            self.pose = m.to;
            self.moving = None;
            return;
        }
        let f = elapsed / needed;
        self.pose = Pose {
            pan: m.from.pan + (m.to.pan - m.from.pan) * f,
            tilt: m.from.tilt + (m.to.tilt - m.from.tilt) * f,
            zoom: m.from.zoom + (m.to.zoom - m.from.zoom) * f,
        };
    }

    /// Answers one request envelope received at `now` (the caller's clock).
    pub fn answer(&mut self, envelope: &str, now: Timestamp) -> Answer {
        match self.dispatch(envelope, now) {
            Ok(body) => Answer {
                status: 200,
                body: envelope_of(&body),
            },
            Err((status, code, reason)) => Answer {
                status,
                body: fault(code, &reason),
            },
        }
    }

    fn dispatch(
        &mut self,
        text: &str,
        now: Timestamp,
    ) -> Result<String, (u16, &'static str, String)> {
        let sender = |code: &'static str, reason: String| (400u16, code, reason);
        let envelope = parse(text).map_err(|e| sender("ter:InvalidArgVal", e.to_string()))?;
        let request = envelope
            .child("Body")
            .and_then(|b| b.children.first())
            .ok_or_else(|| sender("ter:InvalidArgVal", "no request in the body".into()))?
            .clone();
        let camera_now = self.clock.camera_time(now);
        if request.name != "GetSystemDateAndTime" {
            self.authenticate(&envelope, camera_now)
                .map_err(|reason| sender("ter:NotAuthorized", reason))?;
        }
        let token = |name: &str| request.text_at(&[name]).unwrap_or_default().to_string();
        let profile_ok = |request: &Element| request.text_at(&["ProfileToken"]) == Some(PROFILE);
        match request.name.as_str() {
            "GetSystemDateAndTime" => Ok(date_and_time(camera_now)),
            "GetCapabilities" => Ok(format!(
                concat!(
                    r#"<tds:GetCapabilitiesResponse><tds:Capabilities>"#,
                    "<tt:Device><tt:XAddr>{}</tt:XAddr></tt:Device>",
                    "<tt:Media><tt:XAddr>{}</tt:XAddr></tt:Media>",
                    "<tt:PTZ><tt:XAddr>{}</tt:XAddr></tt:PTZ>",
                    "</tds:Capabilities></tds:GetCapabilitiesResponse>"
                ),
                escape(&self.urls.device),
                escape(&self.urls.media),
                escape(&self.urls.ptz)
            )),
            "GetServices" => Ok(format!(
                concat!(
                    "<tds:GetServicesResponse>",
                    "<tds:Service><tds:Namespace>{}</tds:Namespace><tds:XAddr>{}</tds:XAddr>",
                    "<tds:Version><tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tds:Version></tds:Service>",
                    "<tds:Service><tds:Namespace>{}</tds:Namespace><tds:XAddr>{}</tds:XAddr>",
                    "<tds:Version><tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tds:Version></tds:Service>",
                    "<tds:Service><tds:Namespace>{}</tds:Namespace><tds:XAddr>{}</tds:XAddr>",
                    "<tds:Version><tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tds:Version></tds:Service>",
                    "</tds:GetServicesResponse>"
                ),
                DEVICE_NS,
                escape(&self.urls.device),
                MEDIA_NS,
                escape(&self.urls.media),
                PTZ_NS,
                escape(&self.urls.ptz)
            )),
            "GetProfiles" => Ok(format!(
                concat!(
                    r#"<trt:GetProfilesResponse><trt:Profiles token="{profile}" fixed="true">"#,
                    "<tt:Name>Main stream</tt:Name>",
                    r#"<tt:PTZConfiguration token="ptz0"><tt:Name>PTZ</tt:Name><tt:NodeToken>ptz-node</tt:NodeToken></tt:PTZConfiguration>"#,
                    "</trt:Profiles></trt:GetProfilesResponse>"
                ),
                profile = PROFILE
            )),
            "GetSnapshotUri" | "GetStreamUri" if !profile_ok(&request) => Err(sender(
                "ter:NoProfile",
                format!("no profile {:?}", token("ProfileToken")),
            )),
            "GetSnapshotUri" => Ok(media_uri("GetSnapshotUri", &self.urls.snapshot)),
            "GetStreamUri" if self.urls.stream.is_empty() => Err((
                400,
                "ter:ActionNotSupported",
                "this camera streams no video (RTSP disabled)".to_string(),
            )),
            "GetStreamUri" => Ok(media_uri("GetStreamUri", &self.urls.stream)),
            "GotoPreset" | "AbsoluteMove" | "GetStatus" if !profile_ok(&request) => Err(sender(
                "ter:NoProfile",
                format!("no profile {:?}", token("ProfileToken")),
            )),
            "GotoPreset" => {
                let preset = token("PresetToken");
                let pose = *self
                    .presets
                    .get(&preset)
                    .ok_or_else(|| sender("ter:NoToken", format!("no preset {preset:?}")))?;
                self.move_to(pose, now);
                Ok("<tptz:GotoPresetResponse/>".to_string())
            }
            "AbsoluteMove" => {
                let pose = requested_pose(&request, self.pose)
                    .map_err(|reason| sender("ter:InvalidArgVal", reason))?;
                self.move_to(pose, now);
                Ok("<tptz:AbsoluteMoveResponse/>".to_string())
            }
            "GetStatus" => {
                let moving = self.is_moving(now);
                let pose = self.pose;
                let status = if moving { "MOVING" } else { "IDLE" };
                Ok(format!(
                    concat!(
                        "<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>",
                        r#"<tt:PanTilt x="{pan}" y="{tilt}" space="{pt}"/>"#,
                        r#"<tt:Zoom x="{zoom}" space="{z}"/>"#,
                        "</tt:Position><tt:MoveStatus><tt:PanTilt>{status}</tt:PanTilt>",
                        "<tt:Zoom>{status}</tt:Zoom></tt:MoveStatus>",
                        "<tt:UtcTime>{time}</tt:UtcTime></tptz:PTZStatus></tptz:GetStatusResponse>"
                    ),
                    pan = pose.pan,
                    tilt = pose.tilt,
                    zoom = pose.zoom,
                    pt = crate::ptz::PAN_TILT_GENERIC_SPACE,
                    z = crate::ptz::ZOOM_GENERIC_SPACE,
                    status = status,
                    time = crate::security::xsd_date_time(camera_now),
                ))
            }
            other => Err((
                400,
                "ter:ActionNotSupported",
                format!("{other} is not supported by this camera"),
            )),
        }
    }

    /// Checks the request's UsernameToken: the user, the digest, a `Created` within
    /// [`CREATED_SKEW_MAX`] of the camera's clock, and a nonce not seen before.
    fn authenticate(&mut self, envelope: &Element, camera_now: Timestamp) -> Result<(), String> {
        let token = UsernameToken::from_envelope(envelope)
            .ok_or_else(|| "no WS-Security UsernameToken".to_string())?;
        if token.username != self.username || !token.proves(&self.password) {
            return Err("wrong user name or password".into());
        }
        let created = parse_xsd_date_time(&token.created)
            .ok_or_else(|| format!("unreadable Created {:?}", token.created))?;
        let skew = created
            .saturating_duration_since(camera_now)
            .max(camera_now.saturating_duration_since(created));
        if skew > CREATED_SKEW_MAX {
            return Err(format!(
                "Created {} is {} s from the camera's clock",
                token.created,
                skew.as_secs()
            ));
        }
        if self.nonces.contains(&token.nonce) {
            return Err("nonce already used".into());
        }
        if self.nonces.len() >= NONCES_MAX {
            self.nonces.pop_front();
        }
        self.nonces.push_back(token.nonce);
        Ok(())
    }
}

/// `2010-09-16T07:50:45Z` (and with fractional seconds) as a timestamp.
pub fn parse_xsd_date_time(text: &str) -> Option<Timestamp> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(str::parse::<i64>);
    let mut time = time.split(':');
    let civil = centinela_core::time::CivilTime {
        year: date.next()?.ok()?,
        month: date.next()?.ok()? as u32,
        day: date.next()?.ok()? as u32,
        hour: time.next()?.parse().ok()?,
        minute: time.next()?.parse().ok()?,
        second: time.next()?.split('.').next()?.parse().ok()?,
    };
    civil.to_timestamp()
}

fn requested_pose(request: &Element, current: Pose) -> Result<Pose, String> {
    let position = request
        .child("Position")
        .ok_or_else(|| "AbsoluteMove without a Position".to_string())?;
    let number = |element: Option<&Element>, attribute: &str| -> Result<Option<f64>, String> {
        match element.and_then(|e| e.attribute(attribute)) {
            None => Ok(None),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Some)
                .ok_or_else(|| format!("{attribute}={text:?} is not a number")),
        }
    };
    let pan_tilt = position.child("PanTilt");
    let zoom = position.child("Zoom");
    Ok(Pose {
        pan: number(pan_tilt, "x")?.unwrap_or(current.pan),
        tilt: number(pan_tilt, "y")?.unwrap_or(current.tilt),
        zoom: number(zoom, "x")?.unwrap_or(current.zoom),
    })
}

fn date_and_time(at: Timestamp) -> String {
    let t = at.civil_utc();
    format!(
        concat!(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>",
            "<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>",
            "<tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute>",
            "<tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year>",
            "<tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:UTCDateTime>",
            "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        ),
        t.hour, t.minute, t.second, t.year, t.month, t.day
    )
}

fn media_uri(operation: &str, uri: &str) -> String {
    format!(
        concat!(
            "<trt:{op}Response><trt:MediaUri><tt:Uri>{uri}</tt:Uri>",
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>",
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>",
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{op}Response>"
        ),
        op = operation,
        uri = escape(uri)
    )
}

fn envelope_of(body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="{env}" xmlns:tt="{tt}" xmlns:tds="{tds}" "#,
            r#"xmlns:trt="{trt}" xmlns:tptz="{tptz}" xmlns:ter="http://www.onvif.org/ver10/error">"#,
            "<SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
        ),
        env = SOAP_ENV_NS,
        tt = SCHEMA_NS,
        tds = DEVICE_NS,
        trt = MEDIA_NS,
        tptz = PTZ_NS,
        body = body
    )
}

fn fault(subcode: &str, reason: &str) -> String {
    envelope_of(&format!(
        concat!(
            "<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Sender</SOAP-ENV:Value>",
            "<SOAP-ENV:Subcode><SOAP-ENV:Value>{}</SOAP-ENV:Value></SOAP-ENV:Subcode>",
            "</SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang=\"en\">{}</SOAP-ENV:Text>",
            "</SOAP-ENV:Reason></SOAP-ENV:Fault>"
        ),
        subcode,
        escape(reason)
    ))
}

/// What the node's side makes of an answer of this camera: used by the tests of both sides.
pub fn read(answer: &Answer) -> Result<Element, Error> {
    crate::response::body(&answer.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;
    use crate::response;

    const T0: Timestamp = Timestamp::from_millis(1_795_817_112_000);

    fn camera() -> Camera {
        let urls = Urls {
            device: "http://127.0.0.1:1/onvif/device_service".into(),
            media: "http://127.0.0.1:1/onvif/media_service".into(),
            ptz: "http://127.0.0.1:1/onvif/ptz_service".into(),
            snapshot: "http://127.0.0.1:1/snapshot.jpg".into(),
            stream: "rtsp://127.0.0.1:2/main".into(),
        };
        let home = Pose {
            pan: 0.0,
            tilt: 0.0,
            zoom: 0.0,
        };
        Camera::new("admin", "s3cret", urls, home).with_preset(
            "pole",
            Pose {
                pan: 0.5,
                tilt: -0.2,
                zoom: 0.3,
            },
        )
    }

    fn signed(request: &Request, password: &str, nonce: u8, created: Timestamp) -> String {
        let token = UsernameToken::new("admin", password, &[nonce; 16], created);
        request.envelope(Some(&token))
    }

    #[test]
    fn the_clock_needs_no_credentials_and_the_rest_does() {
        let mut cam = camera().with_clock(ClockOffset(-3_600_000));
        let time = read(&cam.answer(&Request::GetSystemDateAndTime.envelope(None), T0)).unwrap();
        let camera_time = response::system_date_and_time(&time).unwrap();
        assert_eq!(camera_time.as_millis(), T0.as_millis() - 3_600_000);

        let unsigned = cam.answer(&Request::GetProfiles.envelope(None), T0);
        assert_eq!(unsigned.status, 400);
        assert!(
            matches!(read(&unsigned), Err(Error::Fault { code, .. }) if code == "ter:NotAuthorized")
        );

        // Created in our time, an hour off the camera's clock: refused.
        let ours = cam.answer(&signed(&Request::GetProfiles, "s3cret", 1, T0), T0);
        assert!(read(&ours).is_err());
        // Created in the camera's time, as the driver writes it after reading the clock.
        let offset = ClockOffset::between(camera_time, T0);
        let theirs = signed(&Request::GetProfiles, "s3cret", 2, offset.camera_time(T0));
        let profiles = response::profiles(&read(&cam.answer(&theirs, T0)).unwrap()).unwrap();
        assert_eq!(profiles[0].token, PROFILE);
        // The same nonce again, and a wrong password: refused.
        assert!(read(&cam.answer(&theirs, T0)).is_err(), "replayed");
        let wrong = signed(&Request::GetProfiles, "guess", 3, offset.camera_time(T0));
        let refused = read(&cam.answer(&wrong, T0)).unwrap_err();
        assert_eq!(
            refused,
            Error::Fault {
                code: "ter:NotAuthorized".into(),
                reason: "wrong user name or password".into()
            }
        );
    }

    #[test]
    fn a_preset_move_reports_moving_until_it_arrives() {
        let mut cam = camera();
        let mut nonce = 0u8;
        let mut ask = |cam: &mut Camera, request: Request, at: Timestamp| {
            nonce += 1;
            read(&cam.answer(&signed(&request, "s3cret", nonce, at), at))
        };
        let endpoints =
            response::capabilities(&ask(&mut cam, Request::GetCapabilities, T0).unwrap()).unwrap();
        assert!(endpoints.ptz.unwrap().ends_with("/ptz_service"));
        let goto = Request::GotoPreset {
            profile: PROFILE.into(),
            preset: "pole".into(),
        };
        ask(&mut cam, goto, T0).unwrap();
        let status = Request::GetStatus {
            profile: PROFILE.into(),
        };
        let midway = response::ptz_status(
            &ask(
                &mut cam,
                status.clone(),
                T0.saturating_add(Duration::from_millis(200)),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(midway.moving);
        let there = T0.saturating_add(FULL_SWING);
        let arrived = response::ptz_status(&ask(&mut cam, status.clone(), there).unwrap()).unwrap();
        assert!(!arrived.moving);
        assert!(arrived.pose.unwrap().near(
            &Pose {
                pan: 0.5,
                tilt: -0.2,
                zoom: 0.3
            },
            1e-9
        ));

        let absolute = Request::AbsoluteMove {
            profile: PROFILE.into(),
            pose: Pose {
                pan: -0.5,
                tilt: 0.0,
                zoom: 1.0,
            },
        };
        ask(&mut cam, absolute, there).unwrap();
        let later = there.saturating_add(FULL_SWING);
        let done = response::ptz_status(&ask(&mut cam, status, later).unwrap()).unwrap();
        assert!(done.pose.unwrap().near(
            &Pose {
                pan: -0.5,
                tilt: 0.0,
                zoom: 1.0
            },
            1e-9
        ));

        let unknown = Request::GotoPreset {
            profile: PROFILE.into(),
            preset: "nope".into(),
        };
        assert!(
            matches!(ask(&mut cam, unknown, later), Err(Error::Fault { code, .. }) if code == "ter:NoToken")
        );
        let no_profile = Request::GetSnapshotUri {
            profile: "other".into(),
        };
        assert!(
            matches!(ask(&mut cam, no_profile, later), Err(Error::Fault { code, .. }) if code == "ter:NoProfile")
        );
        let snapshot = Request::GetSnapshotUri {
            profile: PROFILE.into(),
        };
        let uri = response::media_uri(&ask(&mut cam, snapshot, later).unwrap(), "GetSnapshotUri")
            .unwrap();
        assert_eq!(uri, "http://127.0.0.1:1/snapshot.jpg");
    }

    #[test]
    fn garbage_gets_a_fault_not_a_panic() {
        let mut cam = camera();
        for bad in ["", "<<<", "<s:Envelope/>", "<Envelope><Body/></Envelope>"] {
            let answer = cam.answer(bad, T0);
            assert_eq!(answer.status, 400, "{bad:?}");
            assert!(read(&answer).is_err());
        }
    }
}
