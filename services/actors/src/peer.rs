//! What one node's router sends another: the messages of the `Peer` gRPC service.
//!
//! A [`Request`] is an actor message for an entity (or the dispatcher) the receiving node owns;
//! it travels as JSON in a `PeerMessage` body, like the domain records in the store. The
//! receiver executes it locally ([`Router::deliver_local`](crate::Router::deliver_local)) or
//! refuses with `UNAVAILABLE` when it does not own the entity (its view of the member set
//! differs from the sender's for a moment); the sender re-reads the member set and retries. No
//! request is forwarded twice, so views that disagree cannot make a message loop.

use serde::{Deserialize, Serialize};

use centinela_core::brigade::{Brigade, BrigadeStatus};
use centinela_core::button::Button;
use centinela_core::camera::{Camera, CameraState};
use centinela_core::dispatch::Candidate;
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, PressId};
use centinela_core::incident::Incident;
use centinela_records::PressOutcome;

use crate::dispatcher::{Assignment, DispatchRequest};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Press {
        button: ButtonId,
        press_id: PressId,
    },
    ButtonHeartbeat {
        button: ButtonId,
    },
    ButtonTamper {
        button: ButtonId,
        detail: String,
    },
    CameraAim {
        camera: CameraId,
        incident: IncidentId,
    },
    CameraRelease {
        camera: CameraId,
        incident: IncidentId,
    },
    CameraReport {
        camera: CameraId,
        state: CameraState,
        incident: Option<IncidentId>,
    },
    BrigadeAssign {
        brigade: BrigadeId,
        assignment: Assignment,
    },
    BrigadeCancel {
        brigade: BrigadeId,
        incident: IncidentId,
        reason: String,
    },
    BrigadePosition {
        brigade: BrigadeId,
        position: Position,
    },
    BrigadeAck {
        brigade: BrigadeId,
        incident: IncidentId,
    },
    BrigadeStatus {
        brigade: BrigadeId,
        status: BrigadeStatus,
        incident: Option<IncidentId>,
    },
    Dispatch(DispatchRequest),
    Recommend {
        incident: IncidentId,
        limit: usize,
    },
}

/// Who a request is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An entity: its kind (`button`, `camera`, `brigade`) and id.
    Entity(&'static str, String),
    /// The dispatcher, on the leader.
    Dispatcher,
}

impl Request {
    pub fn target(&self) -> Target {
        let entity = |kind, id: &dyn std::fmt::Display| Target::Entity(kind, id.to_string());
        match self {
            Request::Press { button, .. }
            | Request::ButtonHeartbeat { button }
            | Request::ButtonTamper { button, .. } => entity("button", button),
            Request::CameraAim { camera, .. }
            | Request::CameraRelease { camera, .. }
            | Request::CameraReport { camera, .. } => entity("camera", camera),
            Request::BrigadeAssign { brigade, .. }
            | Request::BrigadeCancel { brigade, .. }
            | Request::BrigadePosition { brigade, .. }
            | Request::BrigadeAck { brigade, .. }
            | Request::BrigadeStatus { brigade, .. } => entity("brigade", brigade),
            Request::Dispatch(_) | Request::Recommend { .. } => Target::Dispatcher,
        }
    }

    /// A short name for logs and timeouts.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Press { .. } => "press",
            Request::ButtonHeartbeat { .. } => "heartbeat",
            Request::ButtonTamper { .. } => "tamper report",
            Request::CameraAim { .. } => "camera aim",
            Request::CameraRelease { .. } => "camera release",
            Request::CameraReport { .. } => "camera report",
            Request::BrigadeAssign { .. } => "assignment",
            Request::BrigadeCancel { .. } => "cancellation",
            Request::BrigadePosition { .. } => "position report",
            Request::BrigadeAck { .. } => "assignment ack",
            Request::BrigadeStatus { .. } => "status update",
            Request::Dispatch(_) => "dispatch",
            Request::Recommend { .. } => "recommend",
        }
    }
}

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
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("peer messages always serialize")
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed peer message: {e}"))
}
