//! What one node's router sends another: the bodies of the `Peer` gRPC service.
//!
//! A request is for an entity the receiving node owns, or for its dispatcher; it travels as
//! JSON, like the domain records in the store. The receiver executes it locally
//! ([`Router::deliver`](crate::Router::deliver)) or refuses with `UNAVAILABLE` when it does not
//! own the entity (its view of the member set differs from the sender's for a moment); the
//! sender re-reads the member set and retries. No request is forwarded twice, so views that
//! disagree cannot make a message loop.
//!
//! # The format is an API
//! During a rolling upgrade two versions run side by side (docs/operations.md), so these
//! bodies stay compatible with the previous version: add fields, never rename or reinterpret
//! one. An entity request is its kind's request enum as serde writes it (externally tagged:
//! `{"camera_aim": {...}}`) with the entity's id added under the kind's name:
//! `{"camera_aim": {"camera": "C01", "incident": "B01-261127-220512"}}`. The receiver finds the
//! kind by that field, so a request names no other kind's field. The tests below pin every
//! request as the previous version wrote it.
//!
//! A reply a previous version cannot read is sent only to a sender that says it reads it: each
//! peer message carries the [`REVISION`] its sender reads (a proto3 field an older node leaves
//! unset, so 0, and ignores when it receives it). Revision 1 added [`Response::Health`], a
//! heartbeat's answer without the button's record; an older sender gets the record
//! ([`Response::Button`]) as before.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use centinela_core::brigade::Brigade;
use centinela_core::button::{Button, ButtonHealth};
use centinela_core::camera::Camera;
use centinela_core::dispatch::Candidate;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId};
use centinela_core::incident::Incident;
use centinela_records::PressOutcome;

use crate::brigade::{BrigadeActor, BrigadeRequest};
use crate::button::{ButtonActor, ButtonRequest};
use crate::camera::{CameraActor, CameraRequest};
use crate::dispatcher::DispatchRequest;
use crate::entity::{Entity, Request};

/// The revision of this format this node reads; sent with every peer message.
pub const REVISION: u32 = HEALTH_REVISION;
/// The first revision that reads [`Response::Health`]; a sender below it (a node from before
/// revisions, sending 0) gets [`Response::Button`] for a heartbeat.
pub const HEALTH_REVISION: u32 = 1;

/// A request that crossed from another node, decoded.
#[derive(Clone, Debug)]
pub enum Envelope {
    Button(ButtonId, ButtonRequest),
    Camera(CameraId, CameraRequest),
    Brigade(BrigadeId, BrigadeRequest),
    Dispatcher(DispatcherRequest),
}

/// What the leader's dispatcher is asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispatcherRequest {
    /// An operator's dispatch order.
    Dispatch(DispatchRequest),
    /// The ranked candidates for an incident.
    Recommend { incident: IncidentId, limit: usize },
}

impl DispatcherRequest {
    pub fn name(&self) -> &'static str {
        match self {
            DispatcherRequest::Dispatch(_) => "dispatch",
            DispatcherRequest::Recommend { .. } => "recommend",
        }
    }
}

impl Envelope {
    /// The request's body, as [`entity_request`] or [`dispatcher_request`] writes it.
    pub fn body(&self) -> Vec<u8> {
        match self {
            Envelope::Button(id, request) => entity_request(id, request),
            Envelope::Camera(id, request) => entity_request(id, request),
            Envelope::Brigade(id, request) => entity_request(id, request),
            Envelope::Dispatcher(request) => dispatcher_request(request),
        }
    }

    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Envelope::Button(_, request) => request.delivery().name,
            Envelope::Camera(_, request) => request.delivery().name,
            Envelope::Brigade(_, request) => request.delivery().name,
            Envelope::Dispatcher(request) => request.name(),
        }
    }
}

/// Every reply a request can get.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Done,
    Press(Box<PressOutcome>),
    Button(Button),
    Camera(Camera),
    Brigade(Brigade),
    Incident(Box<Incident>),
    Candidates(Vec<(Candidate, Brigade)>),
    /// A heartbeat absorbed by the owner's liveness table: the button's health, no record.
    /// Only to a sender at [`HEALTH_REVISION`] or later.
    Health(ButtonHealth),
}

impl From<()> for Response {
    fn from((): ()) -> Self {
        Response::Done
    }
}

impl From<PressOutcome> for Response {
    fn from(outcome: PressOutcome) -> Self {
        Response::Press(Box::new(outcome))
    }
}

impl From<Button> for Response {
    fn from(button: Button) -> Self {
        Response::Button(button)
    }
}

impl From<Camera> for Response {
    fn from(camera: Camera) -> Self {
        Response::Camera(camera)
    }
}

impl From<Brigade> for Response {
    fn from(brigade: Brigade) -> Self {
        Response::Brigade(brigade)
    }
}

impl From<Incident> for Response {
    fn from(incident: Incident) -> Self {
        Response::Incident(Box::new(incident))
    }
}

impl From<Vec<(Candidate, Brigade)>> for Response {
    fn from(candidates: Vec<(Candidate, Brigade)>) -> Self {
        Response::Candidates(candidates)
    }
}

impl Response {
    /// Which reply this is, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Done => "done",
            Response::Press(_) => "press",
            Response::Button(_) => "button",
            Response::Camera(_) => "camera",
            Response::Brigade(_) => "brigade",
            Response::Incident(_) => "incident",
            Response::Candidates(_) => "candidates",
            Response::Health(_) => "health",
        }
    }
}

/// A reply's value, when the reply is of this type.
pub trait FromResponse: Sized {
    fn from_response(response: Response) -> Option<Self>;
}

macro_rules! from_response {
    ($type:ty, $pattern:pat => $value:expr) => {
        impl FromResponse for $type {
            fn from_response(response: Response) -> Option<Self> {
                match response {
                    $pattern => Some($value),
                    _ => None,
                }
            }
        }
    };
}

from_response!((), Response::Done => ());
from_response!(PressOutcome, Response::Press(outcome) => *outcome);
from_response!(Button, Response::Button(button) => button);

/// A heartbeat's answer: absorbed by the liveness table, or from the button's actor (and
/// from a node of the previous version, which always answers with the button).
impl FromResponse for ButtonHealth {
    fn from_response(response: Response) -> Option<Self> {
        match response {
            Response::Health(health) => Some(health),
            Response::Button(button) => Some(button.health),
            _ => None,
        }
    }
}
from_response!(Camera, Response::Camera(camera) => camera);
from_response!(Brigade, Response::Brigade(brigade) => brigade);
from_response!(Incident, Response::Incident(incident) => *incident);
from_response!(Vec<(Candidate, Brigade)>, Response::Candidates(candidates) => candidates);

/// The body of a request for entity `id` (see the module docs for its shape).
pub fn entity_request<R: Request>(id: &<R::Entity as Entity>::Id, request: &R) -> Vec<u8> {
    let mut value = serde_json::to_value(request).expect("requests always serialize");
    if let Some(fields) = value
        .as_object_mut()
        .and_then(|tagged| tagged.values_mut().next())
        .and_then(Value::as_object_mut)
    {
        fields.insert(
            R::Entity::KIND.to_string(),
            Value::String(id.as_ref().to_string()),
        );
    }
    encode(&value)
}

/// The body of a request for the dispatcher.
pub fn dispatcher_request(request: &DispatcherRequest) -> Vec<u8> {
    encode(request)
}

/// Decodes a request body.
pub fn decode_request(bytes: &[u8]) -> Result<Envelope, String> {
    let value: Value = decode(bytes)?;
    let fields = value
        .as_object()
        .filter(|tagged| tagged.len() == 1)
        .and_then(|tagged| tagged.values().next())
        .and_then(Value::as_object);
    let id_of = |kind: &str| fields.and_then(|f| f.get(kind)).and_then(Value::as_str);
    if let Some(id) = id_of(ButtonActor::KIND) {
        return entity::<ButtonActor>(id, value.clone()).map(|(id, r)| Envelope::Button(id, r));
    }
    if let Some(id) = id_of(CameraActor::KIND) {
        return entity::<CameraActor>(id, value.clone()).map(|(id, r)| Envelope::Camera(id, r));
    }
    if let Some(id) = id_of(BrigadeActor::KIND) {
        return entity::<BrigadeActor>(id, value.clone()).map(|(id, r)| Envelope::Brigade(id, r));
    }
    serde_json::from_value(value)
        .map(Envelope::Dispatcher)
        .map_err(|e| format!("malformed peer message: {e}"))
}

fn entity<E: Entity>(id: &str, value: Value) -> Result<(E::Id, E::Request), String> {
    let id = E::Id::try_from(id.to_string()).map_err(|e| format!("malformed peer message: {e}"))?;
    let request =
        serde_json::from_value(value).map_err(|e| format!("malformed peer message: {e}"))?;
    Ok((id, request))
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("peer messages always serialize")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed peer message: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use centinela_core::brigade::BrigadeStatus;
    use centinela_core::camera::CameraState;
    use centinela_core::geo::Position;
    use centinela_core::ids::{OperatorId, PressId};
    use centinela_core::incident::{IncidentKind, Priority};

    use super::*;
    use crate::dispatcher::Assignment;

    fn incident() -> IncidentId {
        IncidentId::new("B01-261127-220512").unwrap()
    }

    /// Every request, and its body as the previous version wrote it (`peer::Request`, one
    /// enum for all kinds): the new encoding reads the same, and the old bodies decode to the
    /// same requests. Keys are compared as JSON, not as bytes (their order never mattered).
    fn pinned() -> Vec<(Envelope, &'static str)> {
        let button = || ButtonId::new("B01").unwrap();
        let camera = || CameraId::new("C01").unwrap();
        let brigade = || BrigadeId::new("U01").unwrap();
        let position = Position::new(-12.0464, -77.0428).unwrap();
        let assignment = Assignment {
            incident: incident(),
            button: button(),
            position,
            kind: IncidentKind::Robbery,
            priority: Priority::High,
            eta: Duration::from_secs(90),
            trace: None,
        };
        vec![
            (
                Envelope::Button(
                    button(),
                    ButtonRequest::Press {
                        press_id: PressId::new("p-1").unwrap(),
                    },
                ),
                r#"{"press":{"button":"B01","press_id":"p-1"}}"#,
            ),
            (
                Envelope::Button(button(), ButtonRequest::Heartbeat {}),
                r#"{"button_heartbeat":{"button":"B01"}}"#,
            ),
            (
                Envelope::Button(
                    button(),
                    ButtonRequest::Tamper {
                        detail: "door open".into(),
                    },
                ),
                r#"{"button_tamper":{"button":"B01","detail":"door open"}}"#,
            ),
            (
                Envelope::Camera(
                    camera(),
                    CameraRequest::Aim {
                        incident: incident(),
                        recorded: None,
                    },
                ),
                r#"{"camera_aim":{"camera":"C01","incident":"B01-261127-220512"}}"#,
            ),
            (
                Envelope::Camera(
                    camera(),
                    CameraRequest::Release {
                        incident: incident(),
                        recorded: None,
                    },
                ),
                r#"{"camera_release":{"camera":"C01","incident":"B01-261127-220512"}}"#,
            ),
            (
                Envelope::Camera(
                    camera(),
                    CameraRequest::Report {
                        state: CameraState::OnTarget,
                        incident: None,
                    },
                ),
                r#"{"camera_report":{"camera":"C01","state":"on_target","incident":null}}"#,
            ),
            (
                Envelope::Brigade(
                    brigade(),
                    BrigadeRequest::Assign {
                        assignment: assignment.clone(),
                        recorded: None,
                    },
                ),
                r#"{"brigade_assign":{"brigade":"U01","assignment":{"incident":"B01-261127-220512","button":"B01","position":{"lat":-12.0464,"lon":-77.0428},"kind":"robbery","priority":"high","eta":{"secs":90,"nanos":0},"trace":null}}}"#,
            ),
            (
                Envelope::Brigade(
                    brigade(),
                    BrigadeRequest::Cancel {
                        incident: incident(),
                        reason: "prank".into(),
                        recorded: None,
                    },
                ),
                r#"{"brigade_cancel":{"brigade":"U01","incident":"B01-261127-220512","reason":"prank"}}"#,
            ),
            (
                Envelope::Brigade(brigade(), BrigadeRequest::Position { position }),
                r#"{"brigade_position":{"brigade":"U01","position":{"lat":-12.0464,"lon":-77.0428}}}"#,
            ),
            (
                Envelope::Brigade(
                    brigade(),
                    BrigadeRequest::Ack {
                        incident: incident(),
                    },
                ),
                r#"{"brigade_ack":{"brigade":"U01","incident":"B01-261127-220512"}}"#,
            ),
            (
                Envelope::Brigade(
                    brigade(),
                    BrigadeRequest::Status {
                        status: BrigadeStatus::EnRoute,
                        incident: Some(incident()),
                        outcome: None,
                    },
                ),
                r#"{"brigade_status":{"brigade":"U01","status":"en_route","incident":"B01-261127-220512"}}"#,
            ),
            (
                Envelope::Dispatcher(DispatcherRequest::Dispatch(DispatchRequest {
                    incident: incident(),
                    operator: OperatorId::new("ana").unwrap(),
                    unit: None,
                    replace: false,
                    swap_out: None,
                })),
                r#"{"dispatch":{"incident":"B01-261127-220512","operator":"ana","unit":null,"replace":false}}"#,
            ),
            (
                Envelope::Dispatcher(DispatcherRequest::Recommend {
                    incident: incident(),
                    limit: 5,
                }),
                r#"{"recommend":{"incident":"B01-261127-220512","limit":5}}"#,
            ),
        ]
    }

    #[test]
    fn requests_keep_the_previous_versions_wire_format() {
        for (envelope, old) in pinned() {
            let old_json: Value = serde_json::from_str(old).unwrap();
            let new_json: Value = serde_json::from_slice(&envelope.body()).unwrap();
            assert_eq!(new_json, old_json, "{} encodes as before", envelope.name());
            let decoded = decode_request(old.as_bytes()).unwrap();
            assert_eq!(
                format!("{decoded:?}"),
                format!("{envelope:?}"),
                "the previous version's {} decodes",
                envelope.name()
            );
        }
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        for bad in [
            "",
            "[]",
            r#"{"press":{"button":"B 01","press_id":"p"}}"#,
            r#"{"press":{"button":"B01"}}"#,
            r#"{"camera_aim":{"button":"B01","incident":"x"}}"#,
            r#"{"nothing":{}}"#,
        ] {
            let error = decode_request(bad.as_bytes()).unwrap_err();
            assert!(
                error.starts_with("malformed peer message"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn responses_keep_the_previous_versions_wire_format() {
        assert_eq!(encode(&Response::Done), br#""done""#);
        let done: Response = decode(br#""done""#).unwrap();
        assert!(<()>::from_response(done).is_some());
    }
}
