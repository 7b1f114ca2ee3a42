//! The brigade's app (`/brigada/`): a phone web app for Serenazgo officers, served by every node
//! (docs/brigade-app.md).
//!
//! The page signs in with its unit's own token (`Authorization: Bearer TOKEN`, the per-unit
//! token of the devices file that `centinela unit-token` draws), checked by the same
//! [`Edge`] as the gRPC devices; or with an officer's account (user and password, role
//! `officer`, bound to one unit in the operators configuration): `POST /brigada/api/login`
//! checks the password with the console's sign-in (the same argon2id accounts and the same
//! throttle) and sets the same kind of session cookie, which then acts as the officer's unit
//! and nothing else. The shared device token and console accounts are refused.
//! Every action is a call of the same `UnitGateway` implementation the gRPC terminals reach,
//! made in-process with the unit's credentials, so the same checks apply (a unit acts only as
//! itself, per-device rate limits) and the same domain operations run.
//!
//! | method, path                   | what                                               |
//! |--------------------------------|----------------------------------------------------|
//! | `POST /brigada/api/login`      | `{user, password}`: an officer signs in (cookie)   |
//! | `POST /brigada/api/logout`     | the officer signs out (the session is revoked)     |
//! | `GET  /brigada/api/me`         | the unit and its current assignment                |
//! | `GET  /brigada/api/events`     | server-sent events: `state` (unit + assignment), `tick` |
//! | `POST /brigada/api/position`   | `{lat, lon}`: `ReportPosition`                     |
//! | `POST /brigada/api/heartbeat`  | alive without a new position                       |
//! | `POST /brigada/api/ack`        | `{incident, key}`: `Acknowledge`                   |
//! | `POST /brigada/api/status`     | `{status, incident?, outcome?, note?, key}`: `UpdateStatus` |
//!
//! Bodies may name `unit`; it must be the token's own (else 403, as over gRPC). Actions carry
//! an idempotency `key` chosen by the page: a retried key gets the first answer again, not a
//! second application (the page retries until it hears back; see [`Replies`]).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

use centinela_actors::Context;
use centinela_actors::brigade::BrigadeRequest;
use centinela_api::auth::{Caller, Device, Edge};
use centinela_api::devices::Devices;
use centinela_api::operator::{WatchItem, WatchScope};
use centinela_core::ids::{BrigadeId, IncidentId};
use centinela_proto::convert;
use centinela_proto::v1;
use centinela_proto::v1::operator_event::Event as Live;
use centinela_proto::v1::unit_gateway_server::UnitGateway;

use crate::ConsoleState;
use crate::api::{ApiError, ApiResult, json_body, login_refused, signed_session};
use crate::config::Role;
use crate::limits::{
    APP_IDEMPOTENCY_KEY_LEN_MAX, APP_IDEMPOTENCY_TTL, APP_REPLIES_MAX, APP_STREAMS_MAX,
    EVENTS_BUFFER, TICK_INTERVAL,
};
use crate::wire;

/// What the app's handlers share: the devices' edge and service, and the node's actors.
pub struct BrigadeApp {
    edge: Arc<Edge>,
    devices: Devices,
    ctx: Arc<Context>,
    replies: Replies,
    streams: Arc<tokio::sync::Semaphore>,
}

impl BrigadeApp {
    pub fn new(edge: Arc<Edge>, devices: Devices, ctx: Arc<Context>) -> Self {
        Self {
            edge,
            devices,
            ctx,
            replies: Replies::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(APP_STREAMS_MAX)),
        }
    }
}

/// The answers to recent actions by idempotency key, so a page that retries an action it
/// already got through (the answer was lost on a flaky network) gets the same answer, and
/// nothing is applied twice. Bounded by [`APP_REPLIES_MAX`] and [`APP_IDEMPOTENCY_TTL`].
#[derive(Default)]
pub struct Replies {
    inner: Mutex<RepliesInner>,
}

#[derive(Default)]
struct RepliesInner {
    by_key: HashMap<(BrigadeId, String), (Instant, StatusCode, Value)>,
    order: VecDeque<(BrigadeId, String)>,
}

impl Replies {
    fn get(&self, unit: &BrigadeId, key: &str) -> Option<(StatusCode, Value)> {
        let inner = self.inner.lock().expect("replies poisoned");
        inner
            .by_key
            .get(&(unit.clone(), key.to_string()))
            .filter(|(at, _, _)| at.elapsed() < APP_IDEMPOTENCY_TTL)
            .map(|(_, status, body)| (*status, body.clone()))
    }

    fn put(&self, unit: &BrigadeId, key: &str, status: StatusCode, body: Value) {
        let mut inner = self.inner.lock().expect("replies poisoned");
        let entry = (unit.clone(), key.to_string());
        while inner.order.len() >= APP_REPLIES_MAX {
            if let Some(old) = inner.order.pop_front() {
                inner.by_key.remove(&old);
            }
        }
        if inner
            .by_key
            .insert(entry.clone(), (Instant::now(), status, body))
            .is_none()
        {
            inner.order.push_back(entry);
        }
    }
}

fn app_of(state: &ConsoleState) -> Result<&Arc<BrigadeApp>, ApiError> {
    state.brigade_app.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "unimplemented",
            "this node does not serve the brigade app",
        )
    })
}

/// The unit a request acts for, and the caller to make calls as: the unit of its `Bearer`
/// token, or else of the officer whose session cookie it carries.
async fn signed_unit(
    app: &BrigadeApp,
    state: &ConsoleState,
    headers: &HeaderMap,
) -> Result<(BrigadeId, Caller), ApiError> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return match signed_session(headers, state).await {
            Some(session) => match (&session.account.role, &session.account.unit) {
                (Role::Officer, Some(unit)) => {
                    Ok((unit.clone(), app.edge.unit_caller(unit.clone())))
                }
                _ => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    format!(
                        "{} is a console account: the brigade app signs in with a unit's token or an officer's account",
                        session.operator()
                    ),
                )),
            },
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in with your unit's token (`authorization: Bearer TOKEN`) or your officer's account",
            )),
        };
    }
    let caller = app
        .edge
        .authenticate(headers)
        .await
        .map_err(ApiError::from_status)?;
    match &caller.device {
        Some(Device::Unit(unit)) => Ok((unit.clone(), caller)),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "the brigade app signs in with a unit's own token (`centinela unit-token`)",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in with your unit's token (`authorization: Bearer TOKEN`)",
        )),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: String,
}

/// `POST /brigada/api/login` `{"user", "password"}`: an officer signs in. The console's own
/// password check (argon2id, the same per-account and per-source throttle: 429 with
/// `Retry-After`); a console account's right password is still refused here (403), as an
/// officer's is by the console.
pub async fn login(
    State(state): State<ConsoleState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let app = app_of(&state)?;
    let body: LoginBody = json_body(&headers, body).await?;
    let source = extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let session = match state
        .auth
        .login_from(body.user.trim(), &body.password, source)
        .await
    {
        Ok(session) => session,
        Err(e) => return Ok(login_refused(e, &body.user, source)),
    };
    let Some(unit) = session
        .account
        .unit
        .clone()
        .filter(|_| session.role() == Role::Officer)
    else {
        tracing::warn!(operator = %session.operator(), "brigade app sign-in refused: a console account");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            format!(
                "{} is a console account ({}): the brigade app signs in officers bound to a unit",
                session.operator(),
                session.role()
            ),
        ));
    };
    tracing::info!(officer = %session.operator(), %unit, "brigade app sign-in");
    let mut state_json = unit_state(app, &unit).await?;
    state_json["officer"] = json!({ "id": session.operator(), "name": session.account.name });
    Ok((
        [(header::SET_COOKIE, state.auth.set_cookie(&session))],
        axum::Json(state_json),
    )
        .into_response())
}

fn as_caller<T>(caller: &Caller, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(caller.clone());
    request
}

/// The unit named in a body must be the token's own: checked by the domain's own rule
/// ([`Caller::act_as_unit`]), so the refusal is the gRPC one.
fn acting_unit(caller: &Caller, mine: &BrigadeId, named: Option<&str>) -> Result<String, ApiError> {
    let Some(named) = named.filter(|n| !n.is_empty()) else {
        return Ok(mine.to_string());
    };
    let unit =
        BrigadeId::new(named).map_err(|e| ApiError::bad_request(format!("unit {named:?}: {e}")))?;
    caller.act_as_unit(&unit).map_err(ApiError::from_status)?;
    Ok(unit.to_string())
}

/// The unit as the page shows it, with its assignment: the incident and its button's name.
async fn unit_state(app: &BrigadeApp, unit: &BrigadeId) -> Result<Value, ApiError> {
    let records = &app.ctx.records;
    let unavailable = |e: centinela_records::Error| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    };
    let brigade = records
        .brigade(unit)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no unit {unit}"),
            )
        })?;
    let mut assignment = Value::Null;
    if let Some(incident_id) = &brigade.incident
        && let Some(incident) = records.incident(incident_id).await.map_err(unavailable)?
    {
        let place = records
            .button(&incident.button)
            .await
            .map_err(unavailable)?
            .map(|b| b.name);
        let mut json = wire::incident(&convert::incident_to_wire(&incident));
        // What an officer needs, not the incident's whole record.
        if let Some(fields) = json.as_object_mut() {
            for internal in ["audit", "recording", "declined", "camera"] {
                fields.remove(internal);
            }
        }
        json["place"] = json!(place);
        assignment = json;
    }
    Ok(json!({
        "unit": wire::unit(&convert::brigade_to_wire(&brigade)),
        "assignment": assignment,
    }))
}

/// `GET /brigada/api/me`: sign-in check, and the current truth.
pub async fn me(State(state): State<ConsoleState>, headers: HeaderMap) -> ApiResult {
    let app = app_of(&state)?;
    let (unit, _) = signed_unit(app, &state, &headers).await?;
    Ok(axum::Json(unit_state(app, &unit).await?).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionBody {
    lat: f64,
    lon: f64,
    #[serde(default)]
    unit: Option<String>,
    /// The fix's accuracy in metres, as the Geolocation API gives it (logged only).
    #[serde(default)]
    accuracy: Option<f64>,
}

/// `POST /brigada/api/position`.
pub async fn position(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let app = app_of(&state)?;
    let (mine, caller) = signed_unit(app, &state, &headers).await?;
    let body: PositionBody = json_body(&headers, body).await?;
    let unit_id = acting_unit(&caller, &mine, body.unit.as_deref())?;
    let _ = body.accuracy;
    app.devices
        .report_position(as_caller(
            &caller,
            v1::PositionReport {
                unit_id,
                position: Some(v1::LatLon {
                    lat: body.lat,
                    lon: body.lon,
                }),
            },
        ))
        .await
        .map_err(ApiError::from_status)?;
    Ok(axum::Json(json!({ "ok": true })).into_response())
}

/// `POST /brigada/api/heartbeat`: the app is open but has no new position.
pub async fn heartbeat(State(state): State<ConsoleState>, headers: HeaderMap) -> ApiResult {
    let app = app_of(&state)?;
    let (unit, caller) = signed_unit(app, &state, &headers).await?;
    caller.act_as_unit(&unit).map_err(ApiError::from_status)?;
    app.ctx
        .router
        .call::<_, ()>(&unit, BrigadeRequest::Heartbeat)
        .await
        .map_err(|e| ApiError::from_status(centinela_api::status::from_actor(e)))?;
    Ok(axum::Json(json!({ "ok": true })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    incident: String,
    key: String,
    #[serde(default)]
    unit: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
    #[serde(default)]
    incident: Option<String>,
    key: String,
    #[serde(default)]
    unit: Option<String>,
    /// How the officer cleared the scene, in the operators' vocabulary (`handled`, `prank`,
    /// `false_alarm`, `cancelled`): kept on the incident as the unit's report; the incident's
    /// resolution stays the operator's.
    #[serde(default)]
    outcome: Option<String>,
    /// What the officer adds to the outcome.
    #[serde(default)]
    note: Option<String>,
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty()
        || key.len() > APP_IDEMPOTENCY_KEY_LEN_MAX
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(format!(
            "key must be 1 to {APP_IDEMPOTENCY_KEY_LEN_MAX} printable characters"
        )));
    }
    Ok(())
}

/// Runs `action` once per idempotency key: a repeat gets the first answer (success or refusal)
/// with `replayed: true`, so the page can drop it from its queue.
async fn once<F>(app: &BrigadeApp, unit: &BrigadeId, key: &str, action: F) -> ApiResult
where
    F: std::future::Future<Output = Result<(), ApiError>>,
{
    check_key(key)?;
    if let Some((status, mut body)) = app.replies.get(unit, key) {
        body["replayed"] = json!(true);
        return Ok((status, axum::Json(body)).into_response());
    }
    let (status, body) = match action.await {
        Ok(()) => (StatusCode::OK, unit_state(app, unit).await?),
        // A refusal is the domain's answer (a duplicate, an out-of-order step): remembered too,
        // with the current truth for the page to show.
        Err(e) if e.status == StatusCode::CONFLICT || e.status == StatusCode::BAD_REQUEST => {
            let mut truth = unit_state(app, unit).await?;
            truth["error"] = json!({ "code": e.code, "message": e.message });
            (e.status, truth)
        }
        // Not an answer (unavailable, rate limited): the page retries with the same key.
        Err(e) => return Err(e),
    };
    app.replies.put(unit, key, status, body.clone());
    Ok((status, axum::Json(body)).into_response())
}

/// `POST /brigada/api/ack`.
pub async fn ack(State(state): State<ConsoleState>, headers: HeaderMap, body: Body) -> ApiResult {
    let app = app_of(&state)?;
    let (mine, caller) = signed_unit(app, &state, &headers).await?;
    let body: AckBody = json_body(&headers, body).await?;
    let unit_id = acting_unit(&caller, &mine, body.unit.as_deref())?;
    once(app, &mine, &body.key, async {
        app.devices
            .acknowledge(as_caller(
                &caller,
                v1::AssignmentAck {
                    unit_id,
                    incident_id: body.incident.clone(),
                },
            ))
            .await
            .map(|_| ())
            .map_err(ApiError::from_status)
    })
    .await
}

/// `POST /brigada/api/status`: `en_route`, `on_scene`, `available` (with the incident: clear;
/// without: back in service) or `out_of_service`.
pub async fn status(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let app = app_of(&state)?;
    let (mine, caller) = signed_unit(app, &state, &headers).await?;
    let body: StatusBody = json_body(&headers, body).await?;
    let unit_id = acting_unit(&caller, &mine, body.unit.as_deref())?;
    let status = match body.status.as_str() {
        "en_route" => v1::UnitStatus::EnRoute,
        "on_scene" => v1::UnitStatus::OnScene,
        "available" => v1::UnitStatus::Available,
        "out_of_service" => v1::UnitStatus::OutOfService,
        other => {
            return Err(ApiError::bad_request(format!(
                "status {other:?} is not one of: en_route, on_scene, available, out_of_service"
            )));
        }
    };
    let incident = match body.incident.as_deref().filter(|i| !i.is_empty()) {
        Some(id) => Some(
            IncidentId::new(id)
                .map_err(|e| ApiError::bad_request(format!("incident {id:?}: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    let outcome = match body.outcome.as_deref().filter(|o| !o.is_empty()) {
        Some(outcome) => Some(wire::parse_resolution(outcome).ok_or_else(|| {
            ApiError::bad_request(format!(
                "outcome {outcome:?} is not one of: handled, prank, false_alarm, cancelled"
            ))
        })? as i32),
        None => None,
    };
    let note = body.note.filter(|n| !n.trim().is_empty());
    once(app, &mine, &body.key, async {
        app.devices
            .update_status(as_caller(
                &caller,
                v1::UnitStatusUpdate {
                    unit_id,
                    status: status as i32,
                    incident_id: incident,
                    outcome,
                    note,
                },
            ))
            .await
            .map(|_| ())
            .map_err(ApiError::from_status)
    })
    .await
}

/// `GET /brigada/api/events`: `state` whenever the unit or its incident changes (and once at
/// the start), `tick` every [`TICK_INTERVAL`]. The page reads it with `fetch` (an
/// `EventSource` cannot send the token) and reconnects by itself.
pub async fn events(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let app = match app_of(&state) {
        Ok(app) => app.clone(),
        Err(e) => return e.into_response(),
    };
    let unit = match signed_unit(&app, &state, &headers).await {
        Ok((unit, _)) => unit,
        Err(e) => return e.into_response(),
    };
    let Ok(permit) = app.streams.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("this node already serves {APP_STREAMS_MAX} brigade apps; try another node"),
        )
        .into_response();
    };
    let items = state.operator.watch_items(WatchScope::default());
    let (tx, rx) = mpsc::channel(EVENTS_BUFFER);
    tokio::spawn(async move {
        pump(&app, unit, items, tx).await;
        drop(permit);
    });
    (
        [("x-accel-buffering", "no"), ("cache-control", "no-store")],
        Sse::new(tokio_stream::StreamExt::map(
            ReceiverStream::new(rx),
            Ok::<Event, Infallible>,
        )),
    )
        .into_response()
}

async fn pump(
    app: &BrigadeApp,
    unit: BrigadeId,
    mut items: mpsc::Receiver<Result<WatchItem, tonic::Status>>,
    tx: mpsc::Sender<Event>,
) {
    let state_event = |value: &Value| Event::default().event("state").data(value.to_string());
    let mut incident: Option<String> = None;
    let mut tick = tokio::time::interval(TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = tokio::select! {
            item = items.recv() => match item {
                Some(Ok(WatchItem::Event(Live::Unit(u)))) if u.id == unit.as_str() => {
                    incident = u.incident.clone();
                    true
                }
                Some(Ok(WatchItem::Event(Live::Incident(i)))) => incident.as_deref() == Some(i.id.as_str()),
                Some(Ok(WatchItem::Event(Live::SnapshotDone(_)))) => true,
                Some(Ok(_)) => false,
                Some(Err(_)) | None => return,
            },
            _ = tick.tick() => {
                let tick = Event::default().event("tick").data(json!({}).to_string());
                if tx.send(tick).await.is_err() {
                    return;
                }
                false
            }
            _ = tx.closed() => return,
        };
        if !changed {
            continue;
        }
        match unit_state(app, &unit).await {
            Ok(value) => {
                if tx.send(state_event(&value)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(%unit, error = %e.message, "brigade app state not read"),
        }
    }
}

// ---- the page's files -----------------------------------------------------------------------

const APP_HTML: &str = include_str!("../assets/brigada/index.html");

/// Name, content type, bytes of every file under `/brigada/`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/brigada/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/brigada/app.css"),
    ),
    (
        "manifest.webmanifest",
        "application/manifest+json",
        include_str!("../assets/brigada/manifest.webmanifest"),
    ),
    (
        "sw.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/brigada/sw.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../assets/brigada/icon.svg"),
    ),
];

/// `?lang=es|en` on the app's page.
#[derive(serde::Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

/// `GET /brigada/`: rendered like the console's pages, with the city's time zone and the
/// map's tile settings (the app draws its map with the console's `map.js`).
pub async fn page(
    State(state): State<ConsoleState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    // In the officer's language: `?lang=` (remembered), their earlier choice, the phone's
    // `Accept-Language`, else Spanish.
    let (lang, cookies) =
        crate::i18n::negotiate(&headers, query.lang.as_deref(), crate::i18n::Page::Public);
    crate::i18n::page(APP_HTML, lang, &state.auth.config().display, cookies)
}

/// `GET /brigada/{file}`. Revalidated on every load, like the console's.
pub async fn file(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
