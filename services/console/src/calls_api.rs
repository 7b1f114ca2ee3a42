//! The intercom's calls in the console (docs/intercom.md): a call any node's gateway took
//! rings on every console (`call` events on `/api/events`); one operator answers
//! it with the page's WebRTC offer and talks to the caller; the same operator holds and hangs
//! up. Endpoints (JSON; 404 on a node without `--sip`):
//!
//! - `GET /api/calls`: `{calls: [call...]}`, the calls on this node's desk, then the other
//!   nodes'.
//! - `POST /api/calls/{call_id}/answer` `{sdp}`: the offer, ICE gathering complete (no
//!   trickle); `{sdp, call}`: the answer. 409 `taken` names the operator who has it.
//! - `POST /api/calls/{call_id}/hold` `{held}`: `{call}`; 409 for anyone but the answerer.
//! - `POST /api/calls/{call_id}/hangup` `{}`: `{call}`: the node sends the button a BYE.
//! - `GET /api/incidents/{id}/calls/{call_id}/recording.wav`: the call's recording
//!   (`--record-calls`), supervisors only, from the node that took the call, served only when
//!   the file's SHA-256 is the one in the incident's `call_recorded` audit entry.
//!
//! A call's JSON: `{call_id, incident, button, codec, state, operator, ended_by,
//! ringing_since_ms, node}` with `state` one of `ringing`, `talking`, `held`, `ended`, and
//! `node` the node that anchors its media. A call ringing past the operators' acknowledgement
//! target escalates the page's alarm like an unacknowledged incident.
//!
//! Calls across nodes: the list and the live stream hold every node's calls, and a step on a
//! call another node anchors is forwarded to it (the browser's offer out, its SDP answer
//! back; the browser then connects to that node's bridge). That node decides, so one operator
//! per call holds across nodes. A node that cannot take forwarded steps (an older version)
//! gets 409 `failed_precondition` naming the node whose console must answer it; one that
//! cannot be reached, 503 `unavailable`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use centinela_api::auth::Role;
use centinela_core::ids::IncidentId;
use centinela_intercom::recording::{self, ReadError};
use centinela_intercom::remote::{ForwardError, RemoteCall, Step, StepReply};
use centinela_intercom::{Desk, DeskCall, DeskError, DeskState};
use centinela_proto::v1;
use centinela_proto::v1::operator_server::Operator as _;
use tonic::Request;

use crate::ConsoleState;
use crate::api::{ApiError, ApiResult, Signed, json_body};
use crate::limits::CALL_ID_LEN_MAX;

/// A call as the page reads it.
pub fn call_json(call: &DeskCall) -> Value {
    json!({
        "call_id": call.call_id,
        "incident": call.incident.as_str(),
        "button": call.button.as_str(),
        "codec": call.codec.name(),
        "state": call.state.name(),
        "operator": call.operator,
        "ended_by": call.ended_by,
        "ringing_since_ms": call.ringing_since_ms,
    })
}

/// A call of this node's desk as the page reads it.
fn local_call_json(state: &ConsoleState, call: &DeskCall) -> Value {
    let mut json = call_json(call);
    json["node"] = json!(state.node_id);
    json
}

/// A call another node anchors as the page reads it.
pub fn remote_call_json(remote: &RemoteCall) -> Value {
    let mut json = call_json(&remote.call);
    json["node"] = json!(remote.node);
    json
}

/// Every call the page shows: this node's desk's, then the other nodes'.
pub fn all_calls_json(state: &ConsoleState) -> Vec<Value> {
    let local = state.calls.iter().flat_map(|desk| desk.calls());
    let mut calls: Vec<Value> = local.map(|c| local_call_json(state, &c)).collect();
    if let Some(remote) = &state.remote_calls {
        calls.extend(remote.calls().iter().map(remote_call_json));
    }
    calls
}

fn desk(state: &ConsoleState) -> Result<&Arc<Desk>, ApiError> {
    state.calls.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this node takes no intercom calls (it runs without --sip)",
        )
    })
}

fn call_id(id: String) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > CALL_ID_LEN_MAX || id.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("a call id is 1 to {CALL_ID_LEN_MAX} printable characters"),
        ));
    }
    Ok(id)
}

fn forward_refused(error: ForwardError) -> ApiError {
    match error {
        ForwardError::Desk(error) => refused(error),
        ForwardError::Unsupported(_) => ApiError::new(
            StatusCode::CONFLICT,
            "failed_precondition",
            error.to_string(),
        ),
        ForwardError::Unreachable { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        ),
    }
}

/// `operator`'s step on `id` when this node's desk does not hold it: forwarded to the node
/// that anchors it, if another one does; the desk's own refusal otherwise.
async fn step_elsewhere(
    state: &ConsoleState,
    id: &str,
    operator: &str,
    step: Step,
    local: DeskError,
) -> Result<(StepReply, Value), ApiError> {
    let remote = match (&local, &state.remote_calls) {
        (DeskError::NoSuchCall(_), Some(remote)) if remote.node_of(id).is_some() => remote,
        _ => return Err(refused(local)),
    };
    let before = remote.calls().into_iter().find(|c| c.call.call_id == id);
    let reply = remote
        .step(id, operator, step)
        .await
        .map_err(forward_refused)?;
    let Some(mut after) = before else {
        return Err(refused(local));
    };
    after.call.state = reply.state;
    after.call.operator = reply.operator.clone();
    after.call.ended_by = reply.ended_by.clone();
    Ok((reply, remote_call_json(&after)))
}

fn refused(error: DeskError) -> ApiError {
    let (status, code) = match &error {
        DeskError::NoSuchCall(_) => (StatusCode::NOT_FOUND, "not_found"),
        DeskError::Taken(_) => (StatusCode::CONFLICT, "taken"),
        DeskError::NotAnswered => (StatusCode::CONFLICT, "failed_precondition"),
        DeskError::BadOffer(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
        DeskError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    ApiError::new(status, code, error.to_string())
}

pub async fn list(State(state): State<ConsoleState>, Signed(_session): Signed) -> ApiResult {
    desk(&state)?;
    let calls = all_calls_json(&state);
    Ok(axum::Json(json!({ "calls": calls })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    sdp: String,
}

pub async fn answer(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let id = call_id(id)?;
    let AnswerBody { sdp } = json_body(&headers, body).await?;
    let desk = desk(&state)?;
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let ip = centinela_intercom::remote::local_ip_toward(peer).await;
    let answered = desk.answer(&id, session.operator(), &sdp, ip).await;
    match answered {
        Ok(answer) => {
            let call = desk.calls().into_iter().find(|c| c.call_id == id);
            let call = call.map(|c| local_call_json(&state, &c));
            Ok(axum::Json(json!({ "sdp": answer, "call": call })).into_response())
        }
        Err(local) => {
            let step = Step::Answer { sdp, browser: peer };
            let (reply, call) =
                step_elsewhere(&state, &id, session.operator(), step, local).await?;
            let sdp = reply.sdp.unwrap_or_default();
            Ok(axum::Json(json!({ "sdp": sdp, "call": call })).into_response())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    held: bool,
}

pub async fn hold(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let id = call_id(id)?;
    let HoldBody { held } = json_body(&headers, body).await?;
    let call = match desk(&state)?.hold(&id, session.operator(), held) {
        Ok(call) => local_call_json(&state, &call),
        Err(local) => {
            let step = Step::Hold(held);
            step_elsewhere(&state, &id, session.operator(), step, local)
                .await?
                .1
        }
    };
    Ok(axum::Json(json!({ "call": call })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

pub async fn hang_up(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let id = call_id(id)?;
    let Empty {} = json_body(&headers, body).await?;
    let call = match desk(&state)?.hang_up(&id, session.operator()) {
        Ok(call) => local_call_json(&state, &call),
        Err(local) => {
            let (_, mut call) =
                step_elsewhere(&state, &id, session.operator(), Step::HangUp, local).await?;
            call["state"] = json!(DeskState::Ended.name());
            call
        }
    };
    Ok(axum::Json(json!({ "call": call })).into_response())
}

/// A call's recording, for a supervisor: the incident's audit trail names the file's
/// SHA-256 (`call_recorded`), and a file that does not match it is refused (500
/// `data_loss`: altered or damaged on disk), never served.
pub async fn recording(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path((incident, call)): Path<(String, String)>,
) -> ApiResult {
    if session.role() < Role::Supervisor {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "only a supervisor may listen to call recordings",
        ));
    }
    let dir = state.recordings.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this node records no calls (it runs without --record-calls)",
        )
    })?;
    let call = call_id(call)?;
    let incident_id = IncidentId::new(incident.clone())
        .map_err(|e| ApiError::bad_request(format!("incident id {incident:?}: {e}")))?;
    let found = state
        .operator
        .get_incident(Request::new(v1::GetIncidentRequest {
            incident_id: incident.clone(),
        }))
        .await
        .map_err(ApiError::from_status)?
        .into_inner();
    let sha256 = found
        .audit
        .iter()
        .filter(|entry| entry.action == "call_recorded")
        .find_map(|entry| recording::sha256_in_detail(&entry.detail, &call))
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("incident {incident}'s audit trail names no recording of call {call}"),
            )
        })?;
    let path = recording::path(&dir, &incident_id, &call);
    let read = tokio::task::spawn_blocking(move || recording::read_verified(&path, &sha256))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let wav = read.map_err(|e| {
        tracing::warn!(%incident, %call, error = %e, "console: a call recording refused");
        match e {
            ReadError::Missing(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{e} (a recording is kept by the node that took the call)"),
            ),
            ReadError::TooLarge(_) | ReadError::Mismatch => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "data_loss",
                e.to_string(),
            ),
        }
    })?;
    tracing::info!(%incident, %call, supervisor = %session.operator(), bytes = wav.len(), "console: a call recording downloaded");
    let headers = [
        (axum::http::header::CONTENT_TYPE, "audio/wav".to_string()),
        (axum::http::header::CACHE_CONTROL, "no-store".to_string()),
        (
            axum::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{incident}-call.wav\""),
        ),
    ];
    Ok((headers, wav).into_response())
}
