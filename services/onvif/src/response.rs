//! What the camera answered: SOAP faults, and the few fields each request needs.

use centinela_core::time::{CivilTime, Timestamp};

use crate::Error;
use crate::ptz::Pose;
use crate::xml::{Element, parse};

/// The body's first element of a SOAP answer, or the fault the camera sent instead.
pub fn body(text: &str) -> Result<Element, Error> {
    let envelope = parse(text)?;
    if envelope.name != "Envelope" {
        return Err(Error::Unexpected(format!(
            "a <{}> where a SOAP envelope belongs",
            envelope.name
        )));
    }
    let body = envelope
        .child("Body")
        .ok_or_else(|| Error::Unexpected("a SOAP envelope without a body".into()))?;
    let first = body
        .children
        .first()
        .ok_or_else(|| Error::Unexpected("an empty SOAP body".into()))?;
    if first.name == "Fault" {
        return Err(fault(first));
    }
    Ok(first.clone())
}

/// A SOAP 1.2 fault (code and subcode, reason), or a 1.1 one (faultcode, faultstring).
fn fault(fault: &Element) -> Error {
    let code = fault
        .find("Subcode")
        .and_then(|s| s.text_at(&["Value"]))
        .or_else(|| fault.text_at(&["Code", "Value"]))
        .or_else(|| fault.text_at(&["faultcode"]))
        .unwrap_or("unknown");
    let reason = fault
        .find("Reason")
        .and_then(|r| r.find("Text"))
        .map(|t| t.text.as_str())
        .or_else(|| fault.text_at(&["faultstring"]))
        .unwrap_or("");
    Error::Fault {
        code: code.to_string(),
        reason: reason.to_string(),
    }
}

fn expect<'a>(response: &'a Element, operation: &str) -> Result<&'a Element, Error> {
    let name = format!("{operation}Response");
    if response.name == name {
        Ok(response)
    } else {
        Err(Error::Unexpected(format!(
            "a <{}> where <{name}> belongs",
            response.name
        )))
    }
}

fn missing(what: &str) -> Error {
    Error::Unexpected(format!("no {what} in the answer"))
}

/// The camera's clock, in UTC.
pub fn system_date_and_time(response: &Element) -> Result<Timestamp, Error> {
    let utc = expect(response, "GetSystemDateAndTime")?
        .find("UTCDateTime")
        .ok_or_else(|| missing("UTCDateTime"))?;
    let number = |path: &[&str]| -> Result<i64, Error> {
        utc.text_at(path)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| missing(&path.join("/")))
    };
    let civil = CivilTime {
        year: number(&["Date", "Year"])?,
        month: number(&["Date", "Month"])? as u32,
        day: number(&["Date", "Day"])? as u32,
        hour: number(&["Time", "Hour"])? as u32,
        minute: number(&["Time", "Minute"])? as u32,
        second: number(&["Time", "Second"])? as u32,
    };
    civil
        .to_timestamp()
        .ok_or_else(|| Error::Unexpected(format!("an impossible date and time {civil:?}")))
}

/// Where a camera's media and PTZ services are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub media: Option<String>,
    pub ptz: Option<String>,
}

/// From `GetCapabilities`.
pub fn capabilities(response: &Element) -> Result<Endpoints, Error> {
    let capabilities = expect(response, "GetCapabilities")?
        .child("Capabilities")
        .ok_or_else(|| missing("Capabilities"))?;
    Ok(Endpoints {
        media: capabilities.text_at(&["Media", "XAddr"]).map(str::to_owned),
        ptz: capabilities.text_at(&["PTZ", "XAddr"]).map(str::to_owned),
    })
}

/// From `GetServices`.
pub fn services(response: &Element) -> Result<Endpoints, Error> {
    let mut endpoints = Endpoints::default();
    for service in expect(response, "GetServices")?.children_named("Service") {
        let (Some(namespace), Some(address)) =
            (service.text_at(&["Namespace"]), service.text_at(&["XAddr"]))
        else {
            continue;
        };
        match namespace {
            crate::request::MEDIA_NS => endpoints.media = Some(address.to_string()),
            crate::request::PTZ_NS => endpoints.ptz = Some(address.to_string()),
            _ => {}
        }
    }
    Ok(endpoints)
}

/// A media profile: a stream configuration, with PTZ when it has a PTZ configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub token: String,
    pub name: String,
    pub ptz: bool,
}

/// From `GetProfiles`.
pub fn profiles(response: &Element) -> Result<Vec<Profile>, Error> {
    let profiles: Vec<Profile> = expect(response, "GetProfiles")?
        .children_named("Profiles")
        .filter_map(|p| {
            Some(Profile {
                token: p.attribute("token")?.to_string(),
                name: p.text_at(&["Name"]).unwrap_or_default().to_string(),
                ptz: p.child("PTZConfiguration").is_some(),
            })
        })
        .collect();
    if profiles.is_empty() {
        return Err(missing("media profile"));
    }
    Ok(profiles)
}

/// The URI of `GetSnapshotUri` or `GetStreamUri`.
pub fn media_uri(response: &Element, operation: &str) -> Result<String, Error> {
    expect(response, operation)?
        .text_at(&["MediaUri", "Uri"])
        .filter(|uri| !uri.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| missing("MediaUri/Uri"))
}

/// Where the camera points and whether it is still moving.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PtzStatus {
    /// Its position, when it reports one in the generic spaces.
    pub pose: Option<Pose>,
    /// A move in progress (pan/tilt or zoom `MOVING`).
    pub moving: bool,
}

/// From `GetStatus`.
pub fn ptz_status(response: &Element) -> Result<PtzStatus, Error> {
    let status = expect(response, "GetStatus")?
        .child("PTZStatus")
        .ok_or_else(|| missing("PTZStatus"))?;
    let number = |e: Option<&Element>, attribute: &str| {
        e.and_then(|e| e.attribute(attribute))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let position = status.child("Position");
    let pan_tilt = position.and_then(|p| p.child("PanTilt"));
    let zoom = position.and_then(|p| p.child("Zoom"));
    let pose = match (
        number(pan_tilt, "x"),
        number(pan_tilt, "y"),
        number(zoom, "x"),
    ) {
        (Some(pan), Some(tilt), zoom) => Some(Pose {
            pan,
            tilt,
            zoom: zoom.unwrap_or(0.0),
        }),
        _ => None,
    };
    let moving = status.child("MoveStatus").is_some_and(|m| {
        m.children
            .iter()
            .any(|axis| axis.text.eq_ignore_ascii_case("MOVING"))
            || m.text.eq_ignore_ascii_case("MOVING")
    });
    Ok(PtzStatus { pose, moving })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(body: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl"><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"#
        )
    }

    #[test]
    fn faults_of_both_soap_versions_are_errors_with_their_reason() {
        let v12 = envelope(
            r#"<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Sender</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:NotAuthorized</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">Sender not Authorized</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>"#,
        );
        assert_eq!(
            body(&v12),
            Err(Error::Fault {
                code: "ter:NotAuthorized".into(),
                reason: "Sender not Authorized".into()
            })
        );
        let v11 = envelope(
            "<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>bad</faultstring></SOAP-ENV:Fault>",
        );
        assert_eq!(
            body(&v11),
            Err(Error::Fault {
                code: "SOAP-ENV:Client".into(),
                reason: "bad".into()
            })
        );
        assert!(matches!(
            body("<html>nope</html>"),
            Err(Error::Unexpected(_))
        ));
        assert!(matches!(body("garbage <"), Err(Error::Xml(_))));
        assert!(matches!(body(&envelope("")), Err(Error::Unexpected(_))));
    }

    #[test]
    fn answers_are_read_by_local_name() {
        let time = body(&envelope(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:UTCDateTime><tt:Time><tt:Hour>7</tt:Hour><tt:Minute>50</tt:Minute><tt:Second>45</tt:Second></tt:Time><tt:Date><tt:Year>2010</tt:Year><tt:Month>9</tt:Month><tt:Day>16</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
        ))
        .unwrap();
        assert_eq!(
            system_date_and_time(&time).unwrap(),
            Timestamp::from_millis(1_284_623_445_000)
        );

        let caps = body(&envelope(
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>http://cam/onvif/media</tt:XAddr></tt:Media><tt:PTZ><tt:XAddr>http://cam/onvif/ptz</tt:XAddr></tt:PTZ></tds:Capabilities></tds:GetCapabilitiesResponse>",
        ))
        .unwrap();
        assert_eq!(
            capabilities(&caps).unwrap(),
            Endpoints {
                media: Some("http://cam/onvif/media".into()),
                ptz: Some("http://cam/onvif/ptz".into())
            }
        );

        let services_answer = body(&envelope(
            r#"<tds:GetServicesResponse><tds:Service><tds:Namespace>http://www.onvif.org/ver10/media/wsdl</tds:Namespace><tds:XAddr>http://cam/media</tds:XAddr></tds:Service><tds:Service><tds:Namespace>http://www.onvif.org/ver20/ptz/wsdl</tds:Namespace><tds:XAddr>http://cam/ptz</tds:XAddr></tds:Service></tds:GetServicesResponse>"#,
        ))
        .unwrap();
        assert_eq!(
            services(&services_answer).unwrap(),
            Endpoints {
                media: Some("http://cam/media".into()),
                ptz: Some("http://cam/ptz".into())
            }
        );

        let profiles_answer = body(&envelope(
            r#"<trt:GetProfilesResponse><trt:Profiles token="main" fixed="true"><tt:Name>Main</tt:Name><tt:PTZConfiguration token="ptz0"/></trt:Profiles><trt:Profiles token="sub"><tt:Name>Sub</tt:Name></trt:Profiles></trt:GetProfilesResponse>"#,
        ))
        .unwrap();
        let listed = profiles(&profiles_answer).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed[0].ptz && !listed[1].ptz);
        assert_eq!(listed[0].token, "main");

        let uri = body(&envelope(
            "<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>http://cam/snap.jpg?a=1&amp;b=2</tt:Uri></trt:MediaUri></trt:GetSnapshotUriResponse>",
        ))
        .unwrap();
        assert_eq!(
            media_uri(&uri, "GetSnapshotUri").unwrap(),
            "http://cam/snap.jpg?a=1&b=2"
        );
        assert!(media_uri(&uri, "GetStreamUri").is_err(), "the wrong answer");

        let status = body(&envelope(
            r#"<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position><tt:PanTilt x="0.25" y="-0.5" space="x"/><tt:Zoom x="0.1"/></tt:Position><tt:MoveStatus><tt:PanTilt>IDLE</tt:PanTilt><tt:Zoom>MOVING</tt:Zoom></tt:MoveStatus></tptz:PTZStatus></tptz:GetStatusResponse>"#,
        ))
        .unwrap();
        let read = ptz_status(&status).unwrap();
        assert!(read.moving);
        assert_eq!(
            read.pose,
            Some(Pose {
                pan: 0.25,
                tilt: -0.5,
                zoom: 0.1
            })
        );
    }
}
