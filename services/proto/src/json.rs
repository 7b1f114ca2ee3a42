//! The JSON shapes of `centinela.v1` messages: what `centinela --json` prints
//! (docs/product.md §4 is the contract: add fields freely, never rename or remove one) and what
//! the browser console reads. Enum values are lowercase snake case (`en_route`,
//! `non_lethal_armed`), and the parsers take the same strings back.

use serde_json::{Value, json};

use crate::v1;

/// `INCIDENT_STATE_EN_ROUTE` with prefix `INCIDENT_STATE_` → `en_route`.
fn wire_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

pub fn incident_state(value: i32) -> String {
    let state = v1::IncidentState::try_from(value).unwrap_or_default();
    wire_name(state.as_str_name(), "INCIDENT_STATE_")
}

pub fn resolution(value: i32) -> Option<String> {
    match v1::Resolution::try_from(value).unwrap_or_default() {
        v1::Resolution::Unspecified => None,
        r => Some(wire_name(r.as_str_name(), "RESOLUTION_")),
    }
}

pub fn kind(value: i32) -> String {
    let kind = v1::IncidentKind::try_from(value).unwrap_or_default();
    wire_name(kind.as_str_name(), "INCIDENT_KIND_")
}

pub fn priority(value: i32) -> String {
    let priority = v1::Priority::try_from(value).unwrap_or_default();
    wire_name(priority.as_str_name(), "PRIORITY_")
}

pub fn unit_status(value: i32) -> String {
    let status = v1::UnitStatus::try_from(value).unwrap_or_default();
    wire_name(status.as_str_name(), "UNIT_STATUS_")
}

pub fn unit_mode(value: i32) -> String {
    let mode = v1::UnitMode::try_from(value).unwrap_or_default();
    wire_name(mode.as_str_name(), "UNIT_MODE_")
}

pub fn capability(value: i32) -> String {
    let capability = v1::Capability::try_from(value).unwrap_or_default();
    wire_name(capability.as_str_name(), "CAPABILITY_")
}

pub fn button_status(value: i32) -> String {
    let status = v1::ButtonStatus::try_from(value).unwrap_or_default();
    wire_name(status.as_str_name(), "BUTTON_STATUS_")
}

pub fn camera_state(value: i32) -> String {
    let state = v1::CameraState::try_from(value).unwrap_or_default();
    wire_name(state.as_str_name(), "CAMERA_STATE_")
}

fn lat_lon(position: &Option<v1::LatLon>) -> (Value, Value) {
    match position {
        Some(p) => (json!(p.lat), json!(p.lon)),
        None => (Value::Null, Value::Null),
    }
}

pub fn incident(incident: &v1::Incident) -> Value {
    let (lat, lon) = lat_lon(&incident.position);
    let caller = incident
        .caller
        .as_ref()
        .map(|c| json!({ "name": c.name, "phone": c.phone, "notes": c.notes }));
    json!({
        "id": incident.id,
        "button": incident.button,
        "camera": incident.camera,
        "state": incident_state(incident.state),
        "units": incident.units,
        "resolution": resolution(incident.resolution),
        "kind": kind(incident.kind),
        "priority": priority(incident.priority),
        "lat": lat,
        "lon": lon,
        "press_count": incident.press_count,
        "declined": incident.declined,
        "first_press_at_ms": incident.first_press_at_ms,
        "created_at_ms": incident.created_at_ms,
        "last_press_at_ms": incident.last_press_at_ms,
        "acknowledged_by": incident.acknowledged_by,
        "acknowledged_at_ms": incident.acknowledged_at_ms,
        "closed_at_ms": incident.closed_at_ms,
        // Where the footage is: the camera, from the press to the close, and its stream.
        "recording": json!({
            "camera": incident.camera,
            "from_ms": incident.first_press_at_ms,
            "to_ms": incident.closed_at_ms,
            "stream_uri": incident.stream_uri,
        }),
        "caller": caller,
        "audit": incident.audit.iter().map(|a| json!({
            "at_ms": a.at_ms, "actor": a.actor, "action": a.action, "detail": a.detail,
        })).collect::<Vec<_>>(),
        // How the units that cleared it said they left the scene (the brigade app's clear).
        "unit_outcomes": incident.unit_outcomes.iter().map(|o| json!({
            "unit": o.unit, "resolution": resolution(o.resolution), "note": o.note, "at_ms": o.at_ms,
        })).collect::<Vec<_>>(),
        // A swap recommended after a reclassification (`out` to release, `in` to send).
        "swap": incident.swap.as_ref().map(|s| json!({
            "out": s.out_unit, "in": s.in_unit, "kind": kind(s.kind), "at_ms": s.at_ms,
        })),
        // At a verify-first site: the unit is held until this time or an operator's
        // confirmation (absent otherwise).
        "held_until_ms": incident.held_until_ms,
    })
}

pub fn unit(unit: &v1::Unit) -> Value {
    let (lat, lon) = lat_lon(&unit.position);
    json!({
        "id": unit.id,
        "callsign": unit.callsign,
        "status": unit_status(unit.status),
        "incident": unit.incident,
        "lat": lat,
        "lon": lon,
        "mode": unit_mode(unit.mode),
        "capabilities": unit.capabilities.iter().map(|c| capability(*c)).collect::<Vec<_>>(),
        "acked": unit.acked,
        "status_since_ms": unit.status_since_ms,
        "cooldown_until_ms": unit.cooldown_until_ms,
        "radio_by": unit.radio_by,
        "radio_at_ms": unit.radio_at_ms,
    })
}

pub fn button(button: &v1::Button) -> Value {
    let (lat, lon) = lat_lon(&button.position);
    json!({
        "id": button.id,
        "name": button.name,
        "lat": lat,
        "lon": lon,
        "camera": button.camera,
        "status": button_status(button.status),
        "last_heartbeat_ms": button.last_heartbeat_ms,
        "alert": button.alert.as_ref().map(alert),
        "clearances": button.clearances.iter().map(clearance).collect::<Vec<_>>(),
    })
}

pub fn alert(alert: &v1::DeviceAlert) -> Value {
    json!({ "kind": alert.kind, "since_ms": alert.since_ms })
}

pub fn clearance(clearance: &v1::AlertClearance) -> Value {
    json!({
        "kind": clearance.kind,
        "raised_at_ms": clearance.raised_at_ms,
        "cleared_at_ms": clearance.cleared_at_ms,
        "cleared_by": clearance.cleared_by,
    })
}

pub fn camera(camera: &v1::Camera) -> Value {
    json!({
        "id": camera.id,
        "button": camera.button,
        "state": camera_state(camera.state),
        "online": camera.online,
        "driver": camera.driver,
        "fault": camera.fault,
        "onvif_url": camera.onvif_url,
        "stream_uri": camera.stream_uri,
        "preset": camera.preset.as_ref().map(|p| json!({
            "pan_deg": p.pan_deg, "tilt_deg": p.tilt_deg, "zoom": p.zoom,
        })),
        "target_incident": camera.target_incident,
        "bookmarks": camera.bookmarks.iter().map(|b| json!({
            "incident": b.incident, "at_ms": b.at_ms,
        })).collect::<Vec<_>>(),
        "alert": camera.alert.as_ref().map(alert),
        "clearances": camera.clearances.iter().map(clearance).collect::<Vec<_>>(),
    })
}

pub fn cluster(status: &v1::ClusterStatusReply) -> Value {
    json!({
        "members": status.members.iter().map(|m| json!({
            "id": m.id, "site": m.site, "grpc_addr": m.grpc_addr,
        })).collect::<Vec<_>>(),
        "leader": if status.leader.is_empty() { Value::Null } else { json!(status.leader) },
        "term": status.term,
        "store": status.store,
        "store_revision": status.store_revision,
    })
}

pub fn candidate(candidate: &v1::Candidate) -> Value {
    json!({
        "unit": candidate.unit_id,
        "eta_s": candidate.eta_s,
        "preferred": candidate.preferred,
        "mode": candidate.unit.as_ref().map(|u| unit_mode(u.mode)),
        "detail": candidate.unit.as_ref().map(unit),
    })
}

/// `en_route` → `INCIDENT_STATE_EN_ROUTE`, for `from_str_name`.
fn upper(value: &str, prefix: &str) -> String {
    format!("{prefix}{}", value.to_ascii_uppercase())
}

/// An incident kind an operator chose: `robbery`, `purse_snatching`, ...
pub fn parse_kind(value: &str) -> Option<v1::IncidentKind> {
    v1::IncidentKind::from_str_name(&upper(value, "INCIDENT_KIND_"))
        .filter(|k| *k != v1::IncidentKind::Unspecified)
}

pub fn parse_priority(value: &str) -> Option<v1::Priority> {
    v1::Priority::from_str_name(&upper(value, "PRIORITY_"))
        .filter(|p| *p != v1::Priority::Unspecified)
}

pub fn parse_resolution(value: &str) -> Option<v1::Resolution> {
    v1::Resolution::from_str_name(&upper(value, "RESOLUTION_"))
        .filter(|r| *r != v1::Resolution::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_strings_are_the_contract() {
        assert_eq!(
            incident_state(v1::IncidentState::EnRoute as i32),
            "en_route"
        );
        assert_eq!(
            unit_status(v1::UnitStatus::OutOfService as i32),
            "out_of_service"
        );
        assert_eq!(camera_state(v1::CameraState::OnTarget as i32), "on_target");
        assert_eq!(
            resolution(v1::Resolution::FalseAlarm as i32).as_deref(),
            Some("false_alarm")
        );
        assert_eq!(resolution(0), None);
        assert_eq!(
            capability(v1::Capability::NonLethalArmed as i32),
            "non_lethal_armed"
        );
    }

    #[test]
    fn parsers_take_the_same_strings_back() {
        assert_eq!(
            parse_kind("purse_snatching"),
            Some(v1::IncidentKind::PurseSnatching)
        );
        assert_eq!(parse_kind("unspecified"), None);
        assert_eq!(parse_priority("critical"), Some(v1::Priority::Critical));
        assert_eq!(
            parse_resolution("false_alarm"),
            Some(v1::Resolution::FalseAlarm)
        );
        assert_eq!(parse_resolution("bogus"), None);
    }
}
