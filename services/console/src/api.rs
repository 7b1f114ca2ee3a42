//! The console's JSON API: sign-in, and every operator action, each a call of the same
//! `Operator` service implementation the CLI reaches over gRPC, made in-process with the
//! signed-in operator's id (so the audit trail names them exactly as it names a CLI user).
//!
//! | method, path                              | Operator call                      |
//! |-------------------------------------------|------------------------------------|
//! | `GET  /api/incidents/{id}`                | `GetIncident`                      |
//! | `GET  /api/incidents/{id}/recommend`      | `Recommend`                        |
//! | `POST /api/incidents/{id}/ack`            | `Acknowledge`                      |
//! | `POST /api/incidents/{id}/verify`         | `ConfirmVerified` (verify-first sites) |
//! | `POST /api/incidents/{id}/classify`       | `Classify` (kind, priority, caller)|
//! | `POST /api/incidents/{id}/dispatch`       | `Dispatch` (unit?, replace, swap_out?) |
//! | `POST /api/incidents/{id}/prank`          | `MarkPrank`                        |
//! | `POST /api/incidents/{id}/resolve`        | `Resolve` (resolution)             |
//! | `GET  /api/cluster`                       | `ClusterStatus`                    |
//! | `GET  /api/plan-posts`                    | `PlanPosts` ([`crate::posts`])     |
//! | `POST /api/units/{id}/status`             | `SetUnitStatus` (radio: status, lat?, lon?) |
//! | `POST /api/buttons/{id}/clear-alert`      | `ClearAlert` (supervisors)         |
//! | `POST /api/cameras/{id}/clear-alert`      | `ClearAlert` (supervisors)         |
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}` with the HTTP status of the gRPC
//! code ([`ApiError::from_status`]): bad input 400, unknown id 404, refused transition or
//! contention 409, node or store unavailable 503. POSTs must be `application/json` (a form on
//! another site cannot send that, and the session cookie is `SameSite=Strict` as well).

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tonic::{Code, Request, Status};

use centinela_api::auth::{Caller, OperatorIdentity};
use centinela_core::ids::OperatorId;
use centinela_core::limits::{ACK_TIMEOUT, CALLER_FIELD_LEN_MAX};
use centinela_proto::v1;
use centinela_proto::v1::operator_server::Operator;

use crate::ConsoleState;
use crate::auth::{Auth, LoginError, Session, now_ms};
use crate::limits::{
    ON_SCENE_TARGET, OPERATOR_ACK_TARGET, RECOMMEND_LIMIT_MAX, REQUEST_BYTES_MAX,
    STREAM_SILENCE_MAX,
};
use crate::wire;

/// An error answer: HTTP status, a stable snake_case code, a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in first (your session is missing or expired)",
        )
    }

    /// The one mapping from the Operator service's gRPC codes to HTTP.
    pub fn from_status(status: Status) -> Self {
        let (http, code) = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                (StatusCode::BAD_REQUEST, "invalid_argument")
            }
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Code::FailedPrecondition => (StatusCode::CONFLICT, "failed_precondition"),
            Code::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
            Code::Aborted => (StatusCode::CONFLICT, "aborted"),
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Code::DeadlineExceeded => (StatusCode::SERVICE_UNAVAILABLE, "deadline_exceeded"),
            Code::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, "cancelled"),
            Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "unimplemented"),
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        Self::new(http, code, status.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, axum::Json(body)).into_response()
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// The signed-in operator of a request; 401 without a valid session cookie.
pub struct Signed(pub Session);

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let session = signed_session(&parts.headers, state)
            .await
            .ok_or_else(ApiError::unauthenticated)?;
        // An officer's session opens the brigade app only: never the console or its API.
        if !session.role().is_console() {
            return Err(officer_refused(&session));
        }
        Ok(Signed(session))
    }
}

/// The `{id}` of an `/api/incidents/{id}/...` path; a malformed path is a JSON 400 like any
/// other bad input (the id itself is validated by the Operator service).
pub struct IncidentPath(pub String);

impl FromRequestParts<ConsoleState> for IncidentPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IncidentPath(id))
            .map_err(|e| ApiError::bad_request(format!("bad incident path: {e}")))
    }
}

/// The request's session, as [`session_of`], and not signed out on any node: the store's
/// revocations are looked up at most every [`REVOCATION_RECHECK`](crate::limits::REVOCATION_RECHECK)
/// per session. If the store cannot answer, the session is let in (the node can do little
/// without its store anyway) and the failure logged.
pub async fn signed_session(headers: &HeaderMap, state: &ConsoleState) -> Option<Session> {
    for value in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
    {
        let Some((session, id)) = state.auth.session_with_id(value) else {
            continue;
        };
        if !state.auth.store_check_due(id) {
            return Some(session);
        }
        match state.records.session_revoked(&id.hex()).await {
            Ok(true) => state.auth.remember_revoked(id, session.expires_ms),
            Ok(false) => {
                state.auth.store_checked(id);
                return Some(session);
            }
            Err(e) => {
                tracing::warn!(error = %e, "console: cannot check session revocations in the store");
                return Some(session);
            }
        }
    }
    None
}

/// The session a request carries, by this node's knowledge alone (no store read).
pub fn session_of(headers: &HeaderMap, auth: &Auth) -> Option<Session> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| auth.session(value))
}

/// Reads a JSON body of at most [`REQUEST_BYTES_MAX`]; an empty body is `{}`.
pub(crate) async fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ));
    }
    let bytes = axum::body::to_bytes(body, REQUEST_BYTES_MAX)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {REQUEST_BYTES_MAX} bytes"),
            )
        })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

pub(crate) fn json_ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn with_cookie(cookie: String, value: Value) -> Response {
    ([(header::SET_COOKIE, cookie)], axum::Json(value)).into_response()
}

/// What the page knows about its operator and the targets its timers are colored against.
pub fn session_json(session: &Session, state: &ConsoleState) -> Value {
    json!({
        "operator": session.operator(),
        "name": session.account.name,
        "role": session.role().as_str(),
        "expires_ms": session.expires_ms,
        "demo": state.auth.config().demo,
        "node": state.node_id,
        "targets": {
            "operator_ack_s": OPERATOR_ACK_TARGET.as_secs(),
            "unit_ack_s": ACK_TIMEOUT.as_secs(),
            "on_scene_s": ON_SCENE_TARGET.as_secs(),
        },
        "stream_silence_max_s": STREAM_SILENCE_MAX.as_secs(),
    })
}

// ---- sign-in -------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    operator: String,
    password: String,
}

/// `GET /api/login`: what the login page shows (no session needed, no secrets).
pub async fn login_info(State(state): State<ConsoleState>) -> Response {
    json_ok(json!({
        "node": state.node_id,
        "demo": state.auth.config().demo,
        "operators_configured": state.auth.config().has_operators(),
    }))
}

/// `POST /api/login` `{"operator", "password"}`. Guesses are throttled per account and per
/// source ([`crate::throttle`]): a refused attempt is 429 with `Retry-After`, and no password
/// is checked.
pub async fn login(
    State(state): State<ConsoleState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: LoginBody = json_body(&headers, body).await?;
    // The peer's address (`serve` records it); a proxy in front would make every operator
    // one source: see docs/security.md.
    let source = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    match state
        .auth
        .login_from(body.operator.trim(), &body.password, source)
        .await
    {
        // The password was right, but an officer's account is for the brigade app only.
        Ok(session) if !session.role().is_console() => {
            tracing::warn!(operator = %session.operator(), "console sign-in refused: an officer's account");
            Err(officer_refused(&session))
        }
        Ok(session) => {
            tracing::info!(operator = %session.operator(), role = session.role().as_str(), "console sign-in");
            let cookie = state.auth.set_cookie(&session);
            Ok(with_cookie(cookie, session_json(&session, &state)))
        }
        Err(e) => Ok(login_refused(e, &body.operator, source)),
    }
}

/// The console refuses an officer's session or sign-in: 403, pointing at the brigade app.
pub(crate) fn officer_refused(session: &Session) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_denied",
        format!(
            "{} is an officer's account: it signs in to the brigade app (/brigada/), not the console",
            session.operator()
        ),
    )
}

/// The answer to a failed sign-in (the console's and the brigade app's): 401 for a wrong
/// password, 429 with `Retry-After` while throttled, 400 for malformed fields.
pub(crate) fn login_refused(error: LoginError, operator: &str, source: Option<IpAddr>) -> Response {
    let who = operator.chars().take(64).collect::<String>();
    match error {
        LoginError::Refused => {
            tracing::warn!(operator = ?who, "sign-in refused");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                LoginError::Refused.to_string(),
            )
            .into_response()
        }
        e @ LoginError::Throttled { retry_after } => {
            tracing::warn!(operator = ?who, source = ?source, "sign-in throttled");
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                e.to_string(),
            )
            .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            response
        }
        e @ LoginError::Malformed => ApiError::bad_request(e.to_string()).into_response(),
        e @ LoginError::Internal(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}

/// `POST /api/login/demo`: signs in as the demo operator; 404 outside demo mode.
pub async fn login_demo(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let _: Value = json_body(&headers, body).await?;
    let session = state
        .auth
        .demo_session()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "not a demo node"))?;
    let cookie = state.auth.set_cookie(&session);
    Ok(with_cookie(cookie, session_json(&session, &state)))
}

/// `POST /api/logout`: clears the cookie and revokes the session it carried on every node
/// (this one at once, the others through the store within
/// [`REVOCATION_RECHECK`](crate::limits::REVOCATION_RECHECK)), so a copy of the cookie taken
/// before is refused afterwards.
pub async fn logout(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    for value in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
    {
        let Some((session, id)) = state.auth.revoke(value) else {
            continue;
        };
        let remaining = Duration::from_millis(session.expires_ms.saturating_sub(now_ms()));
        match state.records.revoke_session(&id.hex(), remaining).await {
            Ok(()) => {
                tracing::info!(operator = %session.operator(), "console sign-out: session revoked");
            }
            Err(e) => {
                tracing::error!(operator = %session.operator(), error = %e, "console sign-out: revoked on this node only, the store refused the revocation");
            }
        }
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, Auth::clear_cookie())],
    )
        .into_response()
}

/// `GET /api/session`: who is signed in (401 when nobody).
pub async fn session(State(state): State<ConsoleState>, Signed(session): Signed) -> Response {
    json_ok(session_json(&session, &state))
}

// ---- reads ---------------------------------------------------------------------------------

pub async fn get_incident(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    IncidentPath(id): IncidentPath,
) -> ApiResult {
    let incident = state
        .operator
        .get_incident(Request::new(v1::GetIncidentRequest { incident_id: id }))
        .await
        .map_err(ApiError::from_status)?;
    Ok(json_ok(wire::incident(incident.get_ref())))
}

#[derive(serde::Deserialize)]
pub struct RecommendQuery {
    limit: Option<u32>,
}

pub async fn recommend(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    IncidentPath(id): IncidentPath,
    query: Result<Query<RecommendQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let limit = query.limit.unwrap_or(5).clamp(1, RECOMMEND_LIMIT_MAX);
    let reply = state
        .operator
        .recommend(Request::new(v1::RecommendRequest {
            incident_id: id,
            limit,
        }))
        .await
        .map_err(ApiError::from_status)?;
    let candidates: Vec<Value> = reply
        .get_ref()
        .candidates
        .iter()
        .map(wire::candidate)
        .collect();
    Ok(json_ok(json!({ "candidates": candidates })))
}

pub async fn cluster(State(state): State<ConsoleState>, Signed(_): Signed) -> ApiResult {
    let reply = state
        .operator
        .cluster_status(Request::new(v1::ClusterStatusRequest {}))
        .await
        .map_err(ApiError::from_status)?;
    Ok(json_ok(wire::cluster(reply.get_ref())))
}

// ---- actions -------------------------------------------------------------------------------

fn incident_reply(result: Result<tonic::Response<v1::Incident>, Status>) -> ApiResult {
    let incident = result.map_err(ApiError::from_status)?;
    Ok(json_ok(wire::incident(incident.get_ref())))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

pub async fn acknowledge(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    IncidentPath(id): IncidentPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Empty {} = json_body(&headers, body).await?;
    let result = state
        .operator
        .acknowledge(Request::new(v1::AcknowledgeRequest {
            incident_id: id,
            operator_id: session.operator().to_string(),
        }))
        .await;
    incident_reply(result)
}

/// At a verify-first site: the operator saw the scene on camera; the held brigade is sent.
pub async fn confirm_verified(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    IncidentPath(id): IncidentPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Empty {} = json_body(&headers, body).await?;
    let result = state
        .operator
        .confirm_verified(Request::new(v1::ConfirmVerifiedRequest {
            incident_id: id,
            operator_id: session.operator().to_string(),
        }))
        .await;
    incident_reply(result)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyBody {
    kind: String,
    /// Absent or empty: the kind's default priority.
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    caller: Option<CallerBody>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CallerBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    notes: Option<String>,
}

/// A caller field as typed: trimmed, empty means not given, at most the domain's limit.
fn caller_field(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    if value.len() > CALLER_FIELD_LEN_MAX {
        return Err(ApiError::bad_request(format!(
            "caller {field} has {} bytes, at most {CALLER_FIELD_LEN_MAX}",
            value.len()
        )));
    }
    Ok(Some(value))
}

const KINDS: &str =
    "robbery, assault, purse_snatching, vehicle_theft, medical, other, unclassified";

pub async fn classify(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    IncidentPath(id): IncidentPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: ClassifyBody = json_body(&headers, body).await?;
    let kind = wire::parse_kind(&body.kind).ok_or_else(|| {
        ApiError::bad_request(format!("kind {:?} is not one of: {KINDS}", body.kind))
    })?;
    let priority = match body.priority.as_deref().map(str::trim) {
        None | Some("") => v1::Priority::Unspecified,
        Some(p) => wire::parse_priority(p).ok_or_else(|| {
            ApiError::bad_request(format!(
                "priority {p:?} is not one of: low, medium, high, critical"
            ))
        })?,
    };
    let caller = match body.caller {
        None => None,
        Some(c) => {
            let caller = v1::CallerDetails {
                name: caller_field("name", c.name)?,
                phone: caller_field("phone", c.phone)?,
                notes: caller_field("notes", c.notes)?,
            };
            let empty = caller.name.is_none() && caller.phone.is_none() && caller.notes.is_none();
            (!empty).then_some(caller)
        }
    };
    let result = state
        .operator
        .classify(Request::new(v1::ClassifyRequest {
            incident_id: id,
            operator_id: session.operator().to_string(),
            kind: kind as i32,
            priority: priority as i32,
            caller,
        }))
        .await;
    incident_reply(result)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchBody {
    /// Absent or null: the best candidate.
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    replace: bool,
    /// Swap: release only this unit and send `unit` instead (the incident's recommended swap).
    #[serde(default)]
    swap_out: Option<String>,
}

pub async fn dispatch(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    IncidentPath(id): IncidentPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: DispatchBody = json_body(&headers, body).await?;
    let result = state
        .operator
        .dispatch(Request::new(v1::DispatchRequest {
            incident_id: id,
            operator_id: session.operator().to_string(),
            unit_id: body.unit.filter(|u| !u.trim().is_empty()),
            replace: body.replace,
            swap_out: body.swap_out.filter(|u| !u.trim().is_empty()),
        }))
        .await;
    incident_reply(result)
}

pub async fn prank(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    IncidentPath(id): IncidentPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Empty {} = json_body(&headers, body).await?;
    let result = state
        .operator
        .mark_prank(Request::new(v1::MarkPrankRequest {
            incident_id: id,
            operator_id: session.operator().to_string(),
        }))
        .await;
    incident_reply(result)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitStatusBody {
    status: String,
    lat: Option<f64>,
    lon: Option<f64>,
}

/// Radio fallback: the operator sets a unit's status (and position) from a radio call.
pub async fn unit_status(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(unit): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: UnitStatusBody = json_body(&headers, body).await?;
    let status = match body.status.as_str() {
        "available" => v1::UnitStatus::Available,
        "out_of_service" => v1::UnitStatus::OutOfService,
        "offline" => v1::UnitStatus::Offline,
        other => {
            return Err(ApiError::bad_request(format!(
                "status {other:?} is not one of: available, out_of_service, offline"
            )));
        }
    };
    let position = match (body.lat, body.lon) {
        (Some(lat), Some(lon)) => Some(v1::LatLon { lat, lon }),
        (None, None) => None,
        _ => return Err(ApiError::bad_request("give both lat and lon, or neither")),
    };
    let unit = state
        .operator
        .set_unit_status(Request::new(v1::SetUnitStatusRequest {
            unit_id: unit,
            operator_id: session.operator().to_string(),
            status: status as i32,
            position,
        }))
        .await
        .map_err(ApiError::from_status)?
        .into_inner();
    Ok(axum::Json(wire::unit(&unit)).into_response())
}

/// A supervisor clears a button's open alert (a tamper alert after inspection returns the
/// button to service).
pub async fn clear_button_alert(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(button): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Empty {} = json_body(&headers, body).await?;
    clear_alert(
        &state,
        &session,
        v1::clear_alert_request::Device::ButtonId(button),
    )
    .await
}

/// A supervisor clears a camera's open alert.
pub async fn clear_camera_alert(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(camera): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Empty {} = json_body(&headers, body).await?;
    clear_alert(
        &state,
        &session,
        v1::clear_alert_request::Device::CameraId(camera),
    )
    .await
}

/// The role is checked by `Operator.ClearAlert` itself, with the session's identity: the same
/// check, and the same message, as for a gRPC caller (an operator gets 403).
async fn clear_alert(
    state: &ConsoleState,
    session: &Session,
    device: v1::clear_alert_request::Device,
) -> ApiResult {
    let id = OperatorId::new(session.operator())
        .map_err(|e| ApiError::bad_request(format!("operator: {e}")))?;
    let mut request = Request::new(v1::ClearAlertRequest {
        device: Some(device),
        operator_id: session.operator().to_string(),
        note: String::new(),
        kind: String::new(),
    });
    request
        .extensions_mut()
        .insert(Caller::signed_in(OperatorIdentity {
            id,
            role: session.role(),
        }));
    let reply = state
        .operator
        .clear_alert(request)
        .await
        .map_err(ApiError::from_status)?
        .into_inner();
    Ok(axum::Json(json!({
        "clearance": reply.clearance.as_ref().map(wire::clearance),
        "button": reply.button.as_ref().map(wire::button),
        "camera": reply.camera.as_ref().map(wire::camera),
    }))
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    resolution: String,
}

pub async fn resolve(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    IncidentPath(id): IncidentPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: ResolveBody = json_body(&headers, body).await?;
    let resolution = wire::parse_resolution(&body.resolution).ok_or_else(|| {
        ApiError::bad_request(format!(
            "resolution {:?} is not one of: handled, false_alarm, cancelled, prank",
            body.resolution
        ))
    })?;
    if resolution == v1::Resolution::Cancelled && !session.role().may_cancel() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "only a supervisor may cancel an incident",
        ));
    }
    let result = state
        .operator
        .resolve(Request::new(v1::ResolveRequest {
            incident_id: id,
            operator_id: session.operator().to_string(),
            resolution: resolution as i32,
        }))
        .await;
    incident_reply(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http() {
        let cases = [
            (Status::invalid_argument("x"), StatusCode::BAD_REQUEST),
            (Status::not_found("x"), StatusCode::NOT_FOUND),
            (Status::failed_precondition("x"), StatusCode::CONFLICT),
            (Status::aborted("x"), StatusCode::CONFLICT),
            (Status::unavailable("x"), StatusCode::SERVICE_UNAVAILABLE),
            (
                Status::deadline_exceeded("x"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (Status::internal("x"), StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (status, http) in cases {
            let code = status.code();
            assert_eq!(ApiError::from_status(status).status, http, "{code:?}");
        }
        let error = ApiError::from_status(Status::failed_precondition("already acknowledged"));
        assert_eq!(error.code, "failed_precondition");
        assert_eq!(error.message, "already acknowledged");
    }

    #[test]
    fn caller_fields_are_trimmed_and_bounded() {
        assert_eq!(caller_field("name", Some("  ".into())).unwrap(), None);
        assert_eq!(
            caller_field("name", Some(" Rosa ".into()))
                .unwrap()
                .as_deref(),
            Some("Rosa")
        );
        let long = "x".repeat(CALLER_FIELD_LEN_MAX + 1);
        assert_eq!(
            caller_field("notes", Some(long)).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
