//! Hand-offs in the console, and the callback agencies acknowledge them on.
//!
//! - `GET /api/agencies`: the agencies an incident may be handed to (ids, names, kinds).
//! - `GET /api/incidents/{id}/handoffs`: the incident's hand-offs and their delivery state.
//! - `POST /api/incidents/{id}/handoffs` `{"agency": "pnp", "note": "..."}`: hands it off.
//! - `POST /api/handoff/{agency}/ack`: an agency's acknowledgement. No session: the body is
//!   signed with the agency's key (`X-Centinela-Signature: sha256=<hex HMAC-SHA256 of the
//!   body>`, as the messages it receives). At most [`HANDOFF_ACK_BYTES_MAX`] bytes (413
//!   beyond); a missing or wrong signature, or an agency this node does not know, is 401
//!   (the answer does not tell which). The body is JSON:
//!   `{"incident": "<CAP incidents>", "identifier": "<CAP identifier>", "status": "received",
//!   "note": "unit 12 on its way"}`; recorded on the hand-off and in the incident's audit.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tonic::Request;

use centinela_core::ids::{AgencyId, IncidentId};
use centinela_core::limits::AUDIT_DETAIL_LEN_MAX;
use centinela_handoff::signature;
use centinela_proto::v1;
use centinela_proto::v1::operator_server::Operator;

use crate::ConsoleState;
use crate::api::{ApiError, ApiResult, IncidentPath, Signed, json_body, json_ok};
use crate::limits::HANDOFF_ACK_BYTES_MAX;

/// A hand-off as the page's JSON (the CLI's `--json` shape).
pub fn handoff_json(handoff: &v1::Handoff) -> Value {
    let text_or_null = |text: &str| {
        if text.is_empty() {
            Value::Null
        } else {
            Value::from(text)
        }
    };
    json!({
        "incident": handoff.incident_id,
        "agency": handoff.agency_id,
        "cap_id": handoff.cap_id,
        "state": handoff.state,
        "attempts": handoff.attempts,
        "last_error": text_or_null(&handoff.last_error),
        "created": handoff.created,
        "created_at_ms": handoff.created_at_ms,
        "operator": handoff.operator,
        "note": text_or_null(&handoff.note),
        "messages": handoff.messages.iter().map(|m| json!({
            "seq": m.seq,
            "msg_type": m.msg_type,
            "identifier": m.identifier,
            "sent": m.sent,
            "state": m.state,
            "attempts": m.attempts,
            "last_error": text_or_null(&m.last_error),
            "last_status": if m.last_status == 0 { Value::Null } else { m.last_status.into() },
            "delivered_at_ms": if m.delivered_at_ms == 0 { Value::Null } else { m.delivered_at_ms.into() },
        })).collect::<Vec<_>>(),
        "acks": handoff.acks.iter().map(|a| json!({"at_ms": a.at_ms, "detail": a.detail})).collect::<Vec<_>>(),
    })
}

pub async fn agencies(State(state): State<ConsoleState>, Signed(_): Signed) -> ApiResult {
    let reply = state
        .operator
        .list_agencies(Request::new(v1::ListAgenciesRequest {}))
        .await
        .map_err(ApiError::from_status)?;
    let agencies: Vec<Value> = reply
        .get_ref()
        .agencies
        .iter()
        .map(|a| json!({"id": a.id, "name": a.name, "kinds": a.kinds}))
        .collect();
    Ok(json_ok(Value::from(agencies)))
}

pub async fn handoffs(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    IncidentPath(id): IncidentPath,
) -> ApiResult {
    let reply = state
        .operator
        .list_handoffs(Request::new(v1::ListHandoffsRequest { incident_id: id }))
        .await
        .map_err(ApiError::from_status)?;
    let all: Vec<Value> = reply.get_ref().handoffs.iter().map(handoff_json).collect();
    Ok(json_ok(Value::from(all)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoffBody {
    agency: String,
    #[serde(default)]
    note: Option<String>,
}

pub async fn handoff(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    IncidentPath(id): IncidentPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: HandoffBody = json_body(&headers, body).await?;
    let reply = state
        .operator
        .handoff(Request::new(v1::HandoffRequest {
            incident_id: id,
            agency_id: body.agency,
            note: body.note.unwrap_or_default(),
            operator_id: session.operator().to_string(),
        }))
        .await
        .map_err(ApiError::from_status)?;
    Ok(json_ok(handoff_json(reply.get_ref())))
}

#[derive(serde::Deserialize)]
struct AckBody {
    incident: String,
    identifier: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

fn refused() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "missing or wrong X-Centinela-Signature for this agency",
    )
}

pub async fn ack(
    State(state): State<ConsoleState>,
    Path(agency): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    // The size first: a huge body is refused before any work is spent on it (before it is
    // read at all when its declared length says so).
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("an acknowledgement is at most {HANDOFF_ACK_BYTES_MAX} bytes"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > HANDOFF_ACK_BYTES_MAX as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, HANDOFF_ACK_BYTES_MAX)
        .await
        .map_err(|_| too_large())?;
    let setup = state.operator.handoff_setup();
    let agency_id = AgencyId::new(agency).map_err(|_| refused())?;
    let Some(agency) = setup.agencies.get(&agency_id) else {
        return Err(refused());
    };
    let header = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !signature::verify(agency.hmac_key.as_bytes(), &bytes, header) {
        tracing::warn!(agency = %agency_id, bytes = bytes.len(), "hand-off callback refused: bad signature");
        return Err(refused());
    }
    let ack: AckBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?;
    let incident = IncidentId::new(ack.incident)
        .map_err(|e| ApiError::bad_request(format!("incident: {e}")))?;
    let mut detail = format!(
        "{} {}",
        ack.status.as_deref().unwrap_or("acknowledged"),
        ack.identifier
    );
    if let Some(note) = ack.note.as_deref().filter(|n| !n.trim().is_empty()) {
        detail.push_str(": ");
        detail.push_str(note.trim());
    }
    let detail: String = detail
        .chars()
        .filter(|c| !c.is_control())
        .take(AUDIT_DETAIL_LEN_MAX)
        .collect();
    let handoff = state
        .operator
        .record_handoff_ack(&incident, &agency_id, &ack.identifier, &detail)
        .await
        .map_err(ApiError::from_status)?;
    Ok(json_ok(json!({
        "recorded": true,
        "incident": handoff.incident.to_string(),
        "agency": handoff.agency.to_string(),
        "acks": handoff.acks.len(),
    })))
}
