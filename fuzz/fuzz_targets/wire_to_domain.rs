//! Any bytes a client can send, decoded as each centinela.v1 request and converted to domain
//! values the way the node's handlers do: never a panic, and whatever is accepted holds the
//! domain's invariants (ids valid and round-tripping, positions finite and in range).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, OperatorId, PressId};
use centinela_core::limits::ID_LEN_MAX;
use centinela_proto::convert::{self, id, optional_id};
use centinela_proto::v1;

fn check_id<T>(field: &'static str, value: &str)
where
    T: TryFrom<String, Error = centinela_core::ids::Error> + AsRef<str>,
{
    if let Ok(parsed) = id::<T>(field, value) {
        let text = parsed.as_ref();
        assert_eq!(text, value);
        assert!(!text.is_empty() && text.len() <= ID_LEN_MAX);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
        );
    }
}

fn check_position(value: Option<&v1::LatLon>) {
    if let Ok(position) = convert::position("position", value) {
        assert!(position.lat().is_finite() && (-90.0..=90.0).contains(&position.lat()));
        assert!(position.lon().is_finite() && (-180.0..=180.0).contains(&position.lon()));
        // Back to the wire and in again: the same position.
        let wire = convert::lat_lon(&position);
        assert_eq!(
            convert::position("position", Some(&wire)).ok(),
            Some(position)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 10 {
        0 => {
            if let Ok(m) = v1::PressRequest::decode(bytes) {
                check_id::<ButtonId>("button_id", &m.button_id);
                check_id::<PressId>("press_id", &m.press_id);
            }
        }
        1 => {
            if let Ok(m) = v1::PositionReport::decode(bytes) {
                check_id::<BrigadeId>("unit_id", &m.unit_id);
                check_position(m.position.as_ref());
            }
        }
        2 => {
            if let Ok(m) = v1::UnitStatusUpdate::decode(bytes) {
                check_id::<BrigadeId>("unit_id", &m.unit_id);
                let _ = convert::unit_status(m.status);
                let _ = optional_id::<IncidentId>("incident_id", m.incident_id.as_deref());
            }
        }
        3 => {
            if let Ok(m) = v1::CameraStatusReport::decode(bytes) {
                check_id::<CameraId>("camera_id", &m.camera_id);
                let _ = convert::camera_state(m.state);
                let _ = optional_id::<IncidentId>("incident_id", m.incident_id.as_deref());
            }
        }
        4 => {
            if let Ok(m) = v1::ClassifyRequest::decode(bytes) {
                check_id::<IncidentId>("incident_id", &m.incident_id);
                check_id::<OperatorId>("operator_id", &m.operator_id);
                let _ = convert::incident_kind(m.kind);
                let _ = convert::priority(m.priority);
                if let Some(caller) = convert::caller(m.caller.as_ref()) {
                    let _ = caller.validate();
                }
            }
        }
        5 => {
            if let Ok(m) = v1::DispatchRequest::decode(bytes) {
                check_id::<IncidentId>("incident_id", &m.incident_id);
                let _ = optional_id::<BrigadeId>("unit_id", m.unit_id.as_deref());
            }
        }
        6 => {
            if let Ok(m) = v1::ResolveRequest::decode(bytes) {
                check_id::<IncidentId>("incident_id", &m.incident_id);
                let _ = convert::resolution(m.resolution);
            }
        }
        7 => {
            if let Ok(m) = v1::AssignmentAck::decode(bytes) {
                check_id::<BrigadeId>("unit_id", &m.unit_id);
                check_id::<IncidentId>("incident_id", &m.incident_id);
            }
        }
        8 => {
            if let Ok(m) = v1::TamperReport::decode(bytes) {
                check_id::<ButtonId>("button_id", &m.button_id);
            }
        }
        _ => {
            // A raw position, bit for bit: NaNs, infinities, subnormals, out-of-range values.
            if bytes.len() >= 16 {
                let lat = f64::from_le_bytes(bytes[..8].try_into().unwrap());
                let lon = f64::from_le_bytes(bytes[8..16].try_into().unwrap());
                check_position(Some(&v1::LatLon { lat, lon }));
            }
        }
    }
});
