//! The requests, as SOAP 1.2 envelopes with an optional WS-Security header.
//!
//! Which service answers which request: the device service (the URL a scenario names) answers
//! the `Get*` of the device and tells where the media and PTZ services are
//! (`GetCapabilities`/`GetServices`); cameras often serve all three at one URL, but not always.

use crate::ptz::{PAN_TILT_GENERIC_SPACE, Pose, ZOOM_GENERIC_SPACE};
use crate::security::UsernameToken;
use crate::xml::escape;

pub const SOAP_ENV_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const MEDIA_NS: &str = "http://www.onvif.org/ver10/media/wsdl";
pub const PTZ_NS: &str = "http://www.onvif.org/ver20/ptz/wsdl";
pub const SCHEMA_NS: &str = "http://www.onvif.org/ver10/schema";

/// The ONVIF service a request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Device,
    Media,
    Ptz,
}

impl Service {
    pub fn namespace(self) -> &'static str {
        match self {
            Service::Device => DEVICE_NS,
            Service::Media => MEDIA_NS,
            Service::Ptz => PTZ_NS,
        }
    }
}

/// What the node asks a camera.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The camera's clock (answered without credentials), to write `Created` in its time.
    GetSystemDateAndTime,
    /// Where the media and PTZ services are (ONVIF 1.x; every Profile S camera).
    GetCapabilities,
    /// The same, as ONVIF 2.x lists it (namespace → address).
    GetServices,
    GetProfiles,
    GetSnapshotUri {
        profile: String,
    },
    /// The RTSP URI of a profile (RTP over RTSP, unicast).
    GetStreamUri {
        profile: String,
    },
    GotoPreset {
        profile: String,
        preset: String,
    },
    AbsoluteMove {
        profile: String,
        pose: Pose,
    },
    GetStatus {
        profile: String,
    },
}

impl Request {
    /// The operation's name (the body's element and the SOAP action's last part).
    pub fn operation(&self) -> &'static str {
        match self {
            Request::GetSystemDateAndTime => "GetSystemDateAndTime",
            Request::GetCapabilities => "GetCapabilities",
            Request::GetServices => "GetServices",
            Request::GetProfiles => "GetProfiles",
            Request::GetSnapshotUri { .. } => "GetSnapshotUri",
            Request::GetStreamUri { .. } => "GetStreamUri",
            Request::GotoPreset { .. } => "GotoPreset",
            Request::AbsoluteMove { .. } => "AbsoluteMove",
            Request::GetStatus { .. } => "GetStatus",
        }
    }

    pub fn service(&self) -> Service {
        match self {
            Request::GetSystemDateAndTime | Request::GetCapabilities | Request::GetServices => {
                Service::Device
            }
            Request::GetProfiles
            | Request::GetSnapshotUri { .. }
            | Request::GetStreamUri { .. } => Service::Media,
            Request::GotoPreset { .. }
            | Request::AbsoluteMove { .. }
            | Request::GetStatus { .. } => Service::Ptz,
        }
    }

    /// The SOAP action (the `action` parameter of the HTTP `Content-Type`).
    pub fn action(&self) -> String {
        format!("{}/{}", self.service().namespace(), self.operation())
    }

    /// The HTTP `Content-Type` of the request (SOAP 1.2 carries its action there).
    pub fn content_type(&self) -> String {
        format!(
            r#"application/soap+xml; charset=utf-8; action="{}""#,
            self.action()
        )
    }

    /// The body element.
    pub fn body(&self) -> String {
        let ns = self.service().namespace();
        let op = self.operation();
        let token = |name: &str, value: &str| format!("<{name}>{}</{name}>", escape(value));
        let inner = match self {
            Request::GetSystemDateAndTime | Request::GetProfiles => String::new(),
            Request::GetCapabilities => "<Category>All</Category>".to_string(),
            Request::GetServices => "<IncludeCapability>false</IncludeCapability>".to_string(),
            Request::GetSnapshotUri { profile } | Request::GetStatus { profile } => {
                token("ProfileToken", profile)
            }
            Request::GetStreamUri { profile } => format!(
                concat!(
                    r#"<StreamSetup><Stream xmlns="{schema}">RTP-Unicast</Stream>"#,
                    r#"<Transport xmlns="{schema}"><Protocol>RTSP</Protocol></Transport>"#,
                    "</StreamSetup>{profile}"
                ),
                schema = SCHEMA_NS,
                profile = token("ProfileToken", profile)
            ),
            Request::GotoPreset { profile, preset } => {
                format!(
                    "{}{}",
                    token("ProfileToken", profile),
                    token("PresetToken", preset)
                )
            }
            Request::AbsoluteMove { profile, pose } => {
                let pose = pose.clamped();
                format!(
                    concat!(
                        "{profile}<Position>",
                        r#"<PanTilt xmlns="{schema}" x="{pan}" y="{tilt}" space="{pt_space}"/>"#,
                        r#"<Zoom xmlns="{schema}" x="{zoom}" space="{zoom_space}"/>"#,
                        "</Position>"
                    ),
                    profile = token("ProfileToken", profile),
                    schema = SCHEMA_NS,
                    pan = pose.pan,
                    tilt = pose.tilt,
                    zoom = pose.zoom,
                    pt_space = PAN_TILT_GENERIC_SPACE,
                    zoom_space = ZOOM_GENERIC_SPACE,
                )
            }
        };
        format!(r#"<{op} xmlns="{ns}">{inner}</{op}>"#)
    }

    /// The whole SOAP envelope, with `token` in its header when given.
    pub fn envelope(&self, token: Option<&UsernameToken>) -> String {
        let header = token.map(UsernameToken::header).unwrap_or_default();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_ENV_NS}"><s:Header>{header}</s:Header><s:Body>{}</s:Body></s:Envelope>"#,
            self.body()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn envelopes_are_well_formed_and_name_their_operation() {
        let requests = [
            Request::GetSystemDateAndTime,
            Request::GetCapabilities,
            Request::GetServices,
            Request::GetProfiles,
            Request::GetSnapshotUri {
                profile: "p<1>".into(),
            },
            Request::GetStreamUri {
                profile: "p1".into(),
            },
            Request::GotoPreset {
                profile: "p1".into(),
                preset: "pole".into(),
            },
            Request::AbsoluteMove {
                profile: "p1".into(),
                pose: Pose {
                    pan: 0.25,
                    tilt: -0.5,
                    zoom: 2.0,
                },
            },
            Request::GetStatus {
                profile: "p1".into(),
            },
        ];
        for request in requests {
            let doc = parse(&request.envelope(None)).unwrap();
            let body = doc.child("Body").unwrap();
            let op = &body.children[0];
            assert_eq!(op.name, request.operation());
            assert!(request.action().ends_with(request.operation()));
            if let Request::GetSnapshotUri { .. } = request {
                assert_eq!(op.text_at(&["ProfileToken"]), Some("p<1>"), "escaped");
            }
            if let Request::AbsoluteMove { .. } = request {
                let pan_tilt = op.find("PanTilt").unwrap();
                assert_eq!(pan_tilt.attribute("x"), Some("0.25"));
                assert_eq!(pan_tilt.attribute("y"), Some("-0.5"));
                assert_eq!(
                    op.find("Zoom").unwrap().attribute("x"),
                    Some("1"),
                    "clamped"
                );
            }
        }
    }
}
