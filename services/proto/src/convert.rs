//! Domain values to wire messages, and wire input to validated domain values.
//!
//! Outbound conversions cannot fail. Inbound ones check everything a client could get wrong
//! (empty or malformed ids, NaN or out-of-range coordinates, unknown enum values) and name the
//! offending field in a [`Error`], which the API maps to `INVALID_ARGUMENT`.

use centinela_core::alert::{Alert, Clearance};
use centinela_core::brigade::{Brigade, BrigadeStatus, Capability, Mode};
use centinela_core::button::{Button, ButtonHealth};
use centinela_core::camera::{Camera, CameraState, PtzPreset};
use centinela_core::geo::Position;
use centinela_core::ids;
use centinela_core::incident::{
    Actor, CallerDetails, Incident, IncidentKind, IncidentState, Priority, Resolution,
};
use centinela_core::time::Timestamp;

use crate::v1;

/// A wire field that does not hold a valid value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Error {
    pub field: &'static str,
    pub reason: String,
}

impl Error {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

// ---- inbound ----------------------------------------------------------------------------

/// Parses an id field, naming the field when it is not a valid id.
pub fn id<T>(field: &'static str, value: &str) -> Result<T, Error>
where
    T: TryFrom<String, Error = ids::Error>,
{
    T::try_from(value.to_string()).map_err(|e| Error::new(field, e.to_string()))
}

/// An optional id field: absent is `None`, present must be valid.
pub fn optional_id<T>(field: &'static str, value: Option<&str>) -> Result<Option<T>, Error>
where
    T: TryFrom<String, Error = ids::Error>,
{
    value.map(|v| id(field, v)).transpose()
}

pub fn position(field: &'static str, value: Option<&v1::LatLon>) -> Result<Position, Error> {
    let value = value.ok_or_else(|| Error::new(field, "missing"))?;
    Position::new(value.lat, value.lon).map_err(|e| Error::new(field, e.to_string()))
}

pub fn incident_kind(value: i32) -> Result<IncidentKind, Error> {
    let kind = v1::IncidentKind::try_from(value)
        .map_err(|_| Error::new("kind", format!("unknown incident kind {value}")))?;
    Ok(match kind {
        v1::IncidentKind::Unspecified => {
            return Err(Error::new("kind", "an incident kind is required"));
        }
        v1::IncidentKind::Unclassified => IncidentKind::Unclassified,
        v1::IncidentKind::Robbery => IncidentKind::Robbery,
        v1::IncidentKind::Assault => IncidentKind::Assault,
        v1::IncidentKind::PurseSnatching => IncidentKind::PurseSnatching,
        v1::IncidentKind::VehicleTheft => IncidentKind::VehicleTheft,
        v1::IncidentKind::Medical => IncidentKind::Medical,
        v1::IncidentKind::Other => IncidentKind::Other,
    })
}

/// `None` for UNSPECIFIED: "use the default".
pub fn priority(value: i32) -> Result<Option<Priority>, Error> {
    let priority = v1::Priority::try_from(value)
        .map_err(|_| Error::new("priority", format!("unknown priority {value}")))?;
    Ok(match priority {
        v1::Priority::Unspecified => None,
        v1::Priority::Low => Some(Priority::Low),
        v1::Priority::Medium => Some(Priority::Medium),
        v1::Priority::High => Some(Priority::High),
        v1::Priority::Critical => Some(Priority::Critical),
    })
}

pub fn resolution(value: i32) -> Result<Resolution, Error> {
    let resolution = v1::Resolution::try_from(value)
        .map_err(|_| Error::new("resolution", format!("unknown resolution {value}")))?;
    Ok(match resolution {
        v1::Resolution::Unspecified => {
            return Err(Error::new("resolution", "a resolution is required"));
        }
        v1::Resolution::Handled => Resolution::Handled,
        v1::Resolution::Prank => Resolution::Prank,
        v1::Resolution::FalseAlarm => Resolution::FalseAlarm,
        v1::Resolution::Cancelled => Resolution::Cancelled,
    })
}

pub fn unit_status(value: i32) -> Result<BrigadeStatus, Error> {
    let status = v1::UnitStatus::try_from(value)
        .map_err(|_| Error::new("status", format!("unknown unit status {value}")))?;
    Ok(match status {
        v1::UnitStatus::Unspecified => return Err(Error::new("status", "a status is required")),
        v1::UnitStatus::Available => BrigadeStatus::Available,
        v1::UnitStatus::Dispatched => BrigadeStatus::Dispatched,
        v1::UnitStatus::EnRoute => BrigadeStatus::EnRoute,
        v1::UnitStatus::OnScene => BrigadeStatus::OnScene,
        v1::UnitStatus::OutOfService => BrigadeStatus::OutOfService,
        v1::UnitStatus::Offline => BrigadeStatus::Offline,
    })
}

pub fn camera_state(value: i32) -> Result<CameraState, Error> {
    let state = v1::CameraState::try_from(value)
        .map_err(|_| Error::new("state", format!("unknown camera state {value}")))?;
    Ok(match state {
        v1::CameraState::Unspecified => return Err(Error::new("state", "a state is required")),
        v1::CameraState::Idle => CameraState::Idle,
        v1::CameraState::Aiming => CameraState::Aiming,
        v1::CameraState::OnTarget => CameraState::OnTarget,
    })
}

pub fn caller(value: Option<&v1::CallerDetails>) -> Option<CallerDetails> {
    value.map(|c| CallerDetails {
        name: c.name.clone(),
        phone: c.phone.clone(),
        notes: c.notes.clone(),
    })
}

// ---- outbound ---------------------------------------------------------------------------

fn millis(at: Timestamp) -> u64 {
    at.as_millis()
}

pub fn lat_lon(position: &Position) -> v1::LatLon {
    v1::LatLon {
        lat: position.lat(),
        lon: position.lon(),
    }
}

pub fn incident_state_to_wire(state: IncidentState) -> v1::IncidentState {
    match state {
        IncidentState::New => v1::IncidentState::New,
        IncidentState::Acknowledged => v1::IncidentState::Acknowledged,
        IncidentState::Dispatched => v1::IncidentState::Dispatched,
        IncidentState::EnRoute => v1::IncidentState::EnRoute,
        IncidentState::OnScene => v1::IncidentState::OnScene,
        IncidentState::Closed => v1::IncidentState::Closed,
    }
}

pub fn resolution_to_wire(resolution: Option<Resolution>) -> v1::Resolution {
    match resolution {
        None => v1::Resolution::Unspecified,
        Some(Resolution::Handled) => v1::Resolution::Handled,
        Some(Resolution::Prank) => v1::Resolution::Prank,
        Some(Resolution::FalseAlarm) => v1::Resolution::FalseAlarm,
        Some(Resolution::Cancelled) => v1::Resolution::Cancelled,
    }
}

pub fn kind_to_wire(kind: IncidentKind) -> v1::IncidentKind {
    match kind {
        IncidentKind::Unclassified => v1::IncidentKind::Unclassified,
        IncidentKind::Robbery => v1::IncidentKind::Robbery,
        IncidentKind::Assault => v1::IncidentKind::Assault,
        IncidentKind::PurseSnatching => v1::IncidentKind::PurseSnatching,
        IncidentKind::VehicleTheft => v1::IncidentKind::VehicleTheft,
        IncidentKind::Medical => v1::IncidentKind::Medical,
        IncidentKind::Other => v1::IncidentKind::Other,
    }
}

pub fn priority_to_wire(priority: Priority) -> v1::Priority {
    match priority {
        Priority::Low => v1::Priority::Low,
        Priority::Medium => v1::Priority::Medium,
        Priority::High => v1::Priority::High,
        Priority::Critical => v1::Priority::Critical,
    }
}

pub fn unit_status_to_wire(status: BrigadeStatus) -> v1::UnitStatus {
    match status {
        BrigadeStatus::Available => v1::UnitStatus::Available,
        BrigadeStatus::Dispatched => v1::UnitStatus::Dispatched,
        BrigadeStatus::EnRoute => v1::UnitStatus::EnRoute,
        BrigadeStatus::OnScene => v1::UnitStatus::OnScene,
        BrigadeStatus::OutOfService => v1::UnitStatus::OutOfService,
        BrigadeStatus::Offline => v1::UnitStatus::Offline,
    }
}

pub fn mode_to_wire(mode: Mode) -> v1::UnitMode {
    match mode {
        Mode::Foot => v1::UnitMode::Foot,
        Mode::Motorcycle => v1::UnitMode::Motorcycle,
        Mode::Car => v1::UnitMode::Car,
    }
}

pub fn capability_to_wire(capability: Capability) -> v1::Capability {
    match capability {
        Capability::NonLethalArmed => v1::Capability::NonLethalArmed,
        Capability::FirstAid => v1::Capability::FirstAid,
    }
}

pub fn camera_state_to_wire(state: CameraState) -> v1::CameraState {
    match state {
        CameraState::Idle => v1::CameraState::Idle,
        CameraState::Aiming => v1::CameraState::Aiming,
        CameraState::OnTarget => v1::CameraState::OnTarget,
    }
}

pub fn button_health_to_wire(health: ButtonHealth) -> v1::ButtonStatus {
    match health {
        ButtonHealth::Online => v1::ButtonStatus::Online,
        ButtonHealth::Offline => v1::ButtonStatus::Offline,
        ButtonHealth::Tampered => v1::ButtonStatus::Tampered,
    }
}

/// `operator:ana`, `dispatcher:term=7`: compact and greppable in the audit trail; the same
/// tag the audit chain hashes.
pub fn actor_to_wire(actor: &Actor) -> String {
    actor.tag()
}

pub fn preset_to_wire(preset: &PtzPreset) -> v1::PtzPreset {
    v1::PtzPreset {
        pan_deg: preset.pan_deg(),
        tilt_deg: preset.tilt_deg(),
        zoom: preset.zoom(),
    }
}

pub fn incident_to_wire(incident: &Incident) -> v1::Incident {
    v1::Incident {
        id: incident.id.to_string(),
        button: incident.button.to_string(),
        camera: incident.camera.to_string(),
        position: Some(lat_lon(&incident.position)),
        kind: kind_to_wire(incident.kind) as i32,
        priority: priority_to_wire(incident.priority) as i32,
        state: incident_state_to_wire(incident.state) as i32,
        resolution: resolution_to_wire(incident.resolution) as i32,
        units: incident.units.iter().map(ToString::to_string).collect(),
        declined: incident.declined.iter().map(ToString::to_string).collect(),
        press_count: incident.press_count,
        first_press_at_ms: millis(incident.first_press_at),
        last_press_at_ms: millis(incident.last_press_at),
        created_at_ms: millis(incident.created_at),
        acknowledged_by: incident.acknowledged.as_ref().map(|(op, _)| op.to_string()),
        acknowledged_at_ms: incident.acknowledged.as_ref().map(|(_, at)| millis(*at)),
        caller: incident.caller.as_ref().map(|c| v1::CallerDetails {
            name: c.name.clone(),
            phone: c.phone.clone(),
            notes: c.notes.clone(),
        }),
        closed_at_ms: incident.closed_at.map(millis),
        audit: incident
            .audit
            .iter()
            .map(|entry| v1::AuditEntry {
                at_ms: millis(entry.at),
                actor: actor_to_wire(&entry.actor),
                action: entry.action.to_string(),
                detail: entry.detail.clone(),
                hash: entry.hash.clone(),
            })
            .collect(),
        stream_uri: incident.stream_uri.clone(),
        unit_outcomes: incident
            .unit_outcomes
            .iter()
            .map(|outcome| v1::UnitOutcome {
                unit: outcome.unit.to_string(),
                resolution: resolution_to_wire(Some(outcome.resolution)) as i32,
                note: outcome.note.clone(),
                at_ms: millis(outcome.at),
            })
            .collect(),
        swap: incident.swap.as_ref().map(|swap| v1::SwapAdvice {
            out_unit: swap.out.to_string(),
            in_unit: swap.into.to_string(),
            kind: kind_to_wire(swap.kind) as i32,
            at_ms: millis(swap.at),
        }),
        held_until_ms: incident.held_until.map(millis),
    }
}

pub fn brigade_to_wire(brigade: &Brigade) -> v1::Unit {
    v1::Unit {
        id: brigade.id.to_string(),
        callsign: brigade.callsign.clone(),
        mode: mode_to_wire(brigade.mode) as i32,
        capabilities: brigade
            .capabilities
            .iter()
            .map(|c| capability_to_wire(c) as i32)
            .collect(),
        status: unit_status_to_wire(brigade.status) as i32,
        incident: brigade.incident.as_ref().map(ToString::to_string),
        position: Some(lat_lon(&brigade.position)),
        status_since_ms: millis(brigade.status_since),
        acked: brigade.acked,
        cooldown_until_ms: brigade.cooldown_until.map(millis),
        radio_by: brigade.radio.as_ref().map(|r| r.operator.to_string()),
        radio_at_ms: brigade.radio.as_ref().map(|r| millis(r.at)),
    }
}

pub fn button_to_wire(button: &Button) -> v1::Button {
    v1::Button {
        id: button.id.to_string(),
        name: button.name.clone(),
        position: Some(lat_lon(&button.position)),
        camera: button.camera.to_string(),
        status: button_health_to_wire(button.health) as i32,
        last_heartbeat_ms: button.last_heartbeat.map(millis),
        alert: button.alerts.open.as_ref().map(alert_to_wire),
        clearances: button
            .alerts
            .cleared
            .iter()
            .map(clearance_to_wire)
            .collect(),
    }
}

pub fn alert_to_wire(alert: &Alert) -> v1::DeviceAlert {
    v1::DeviceAlert {
        kind: alert.kind.to_string(),
        since_ms: millis(alert.since),
    }
}

pub fn clearance_to_wire(clearance: &Clearance) -> v1::AlertClearance {
    v1::AlertClearance {
        kind: clearance.kind.to_string(),
        raised_at_ms: millis(clearance.raised_at),
        cleared_at_ms: millis(clearance.cleared_at),
        cleared_by: clearance.cleared_by.to_string(),
    }
}

pub fn camera_to_wire(camera: &Camera) -> v1::Camera {
    v1::Camera {
        id: camera.id.to_string(),
        button: camera.button.to_string(),
        state: camera_state_to_wire(camera.state) as i32,
        online: camera.online,
        target_incident: camera.target.as_ref().map(ToString::to_string),
        preset: Some(preset_to_wire(&camera.preset)),
        bookmarks: camera
            .bookmarks
            .iter()
            .map(|b| v1::Bookmark {
                incident: b.incident.to_string(),
                at_ms: millis(b.at),
            })
            .collect(),
        driver: camera.driver().to_string(),
        fault: camera.fault.clone(),
        onvif_url: camera.onvif.as_ref().map(|e| e.url.clone()),
        stream_uri: camera.stream_uri.clone(),
        onvif_preset: camera.onvif.as_ref().and_then(|e| e.preset.clone()),
        alert: camera.alerts.open.as_ref().map(alert_to_wire),
        clearances: camera
            .alerts
            .cleared
            .iter()
            .map(clearance_to_wire)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centinela_core::ids::ButtonId;

    #[test]
    fn ids_name_the_field() {
        let err = id::<ButtonId>("button_id", "").unwrap_err();
        assert_eq!(err.field, "button_id");
        assert!(id::<ButtonId>("button_id", "B01").is_ok());
        assert!(id::<ButtonId>("button_id", "B 01").is_err());
    }

    #[test]
    fn positions_refuse_nan_and_missing() {
        assert!(position("position", None).is_err());
        let nan = v1::LatLon {
            lat: f64::NAN,
            lon: 0.0,
        };
        assert!(position("position", Some(&nan)).is_err());
        let far = v1::LatLon {
            lat: 91.0,
            lon: 0.0,
        };
        assert!(position("position", Some(&far)).is_err());
    }

    #[test]
    fn enums_refuse_unspecified_and_unknown() {
        assert!(incident_kind(0).is_err());
        assert!(incident_kind(99).is_err());
        assert_eq!(incident_kind(2).unwrap(), IncidentKind::Robbery);
        assert_eq!(priority(0).unwrap(), None);
        assert!(resolution(0).is_err());
        assert!(unit_status(42).is_err());
        assert!(camera_state(0).is_err());
    }
}
