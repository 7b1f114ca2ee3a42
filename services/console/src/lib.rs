//! The HTTP face of a node: the operator console, the public map, health and readiness.
//!
//! Every node serves all of it; the console works against any node, because every read comes
//! from the shared store and every action goes through the same `Operator` service the CLI
//! calls over gRPC — here called in-process, with the signed-in operator's id, so the audit
//! trail records console and CLI actions alike.
//!
//! # Endpoints
//! - `/`: the console (live queue, incident detail and actions, map, brigades, cluster).
//!   Without a session: `/login`; in demo mode a visitor is signed in as `demo` at once.
//! - `/login`, `/api/login`, `/api/login/demo`, `/api/logout`, `/api/session`: signing in.
//! - `/api/events`: the live view as server-sent events ([`events`]).
//! - `/api/incidents/{id}[/recommend|/ack|/verify|/classify|/dispatch|/prank|/resolve]`,
//!   `/api/cluster`: reads and operator actions ([`api`]).
//! - `/api/cameras/{id}/still.jpg|live.mjpeg|ptz`, `/api/incidents/{id}/still[s/{sha}.jpg]`:
//!   the cameras' pictures, manual control and saved stills ([`camera_api`], [`pictures`]).
//! - `/api/cameras/{id}/live.ws`: the camera's live H.264 video over a WebSocket, decoded by
//!   the page with WebCodecs ([`video_api`], [`centinela_video`]).
//! - `/api/calls`, `/api/calls/{id}/answer|hold|hangup`: the intercom's calls, rung on the
//!   live stream and answered over WebRTC ([`calls_api`], docs/intercom.md).
//! - `/api/agencies`, `/api/incidents/{id}/handoffs` (GET: list; POST: hand off): hand-offs
//!   to other agencies; `/api/handoff/{agency}/ack`: the agencies' signed acknowledgements,
//!   without a session ([`handoff_api`], docs/handoff.md).
//! - `/public/`: a read-only map of the buttons and whether each works, and
//!   `/public/buttons.geojson`, its feed, for the city to publish: no incident, brigade or
//!   camera data, no login.
//! - `/healthz`: the process is up (liveness). `/readyz`: joined and running its share
//!   (readiness); 503 until then.
//! - `/api/plan-posts?brigades=N&minutes=M`: where to post N brigades, for the map's layer
//!   ([`posts`], docs/plan-posts.md).
//! - `/assets/{file}`: the page's files, embedded in the binary ([`assets`]).
//!
//! # Layout
//! - [`config`]: operator accounts, roles, demo mode, the session secret.
//! - [`auth`]: password checks (argon2id) and signed session cookies.
//! - [`throttle`]: password guesses throttled per account and per source, with lockout.
//! - [`api`]: the JSON API and the one mapping from gRPC codes to HTTP statuses.
//! - [`events`]: server-sent events from the operator watch stream.
//! - [`handoff_api`]: hand-offs from the console, and the agencies' callback.
//! - [`i18n`]: the language of each page (Spanish first), the catalogues, rendering.
//! - [`posts`]: the brigades' posts (`Operator.PlanPosts`) for the map.
//! - [`public`]: the public map's GeoJSON feed, cached, with an `ETag`.
//! - [`wire`]: `centinela.v1` messages as the page's JSON.
//! - [`assets`]: the embedded HTML, CSS and JavaScript.
//! - [`limits`]: every bound and timer target, with its reason.

pub mod api;
pub mod assets;
pub mod auth;
pub mod brigade_app;
pub mod calls_api;
pub mod camera_api;
pub mod config;
pub mod events;
pub mod handoff_api;
pub mod i18n;
pub mod limits;
pub mod pictures;
pub mod posts;
pub mod public;
pub mod reports;
pub mod throttle;
pub mod video_api;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};
use tonic::transport::server::Connected;
use tower::Layer;

use centinela_api::operator::OperatorService;
use centinela_core::button::{Button, ButtonHealth};
use centinela_records::Records;

pub use config::Config;

use crate::api::{ApiError, session_of};
use crate::auth::Auth;
use crate::limits::EVENT_STREAMS_MAX;

/// What every handler shares.
#[derive(Clone)]
pub struct ConsoleState {
    pub node_id: String,
    /// The store, for the public map (which needs no operator service).
    pub records: Records,
    /// Whether the node is ready: joined, owning its share, serving.
    pub ready: watch::Receiver<bool>,
    /// The same `Operator` implementation the node serves over gRPC: every console read and
    /// action is one of its calls.
    pub operator: OperatorService,
    /// Sign-in and sessions, from the console [`Config`].
    pub auth: Arc<Auth>,
    /// Permits for live event streams ([`EVENT_STREAMS_MAX`]).
    streams: Arc<Semaphore>,
    /// Live event streams per operator ([`limits::EVENT_STREAMS_PER_OPERATOR`]).
    operator_streams: Arc<centinela_api::Streams>,
    /// The cameras' pictures, fetched by this node.
    pub pictures: Arc<pictures::Pictures>,
    /// Permits for live camera views ([`LIVE_STREAMS_MAX`](limits::LIVE_STREAMS_MAX)).
    pub live_streams: Arc<Semaphore>,
    /// Live camera views per operator
    /// ([`LIVE_STREAMS_PER_OPERATOR_MAX`](limits::LIVE_STREAMS_PER_OPERATOR_MAX)).
    pub live_views: Arc<camera_api::LiveViews>,
    /// `/public/buttons.geojson`, cached and kept current by the node's feed ([`public`]).
    pub public_map: Arc<public::PublicMap>,
    /// The cameras' live video (RTSP), pulled by this node.
    pub video: Arc<centinela_video::Video>,
    /// Permits for live video views ([`VIDEO_VIEWS_MAX`](limits::VIDEO_VIEWS_MAX)).
    pub video_views: Arc<Semaphore>,
    /// The brigade app's edge and services (`/brigada/`), when the node serves it
    /// ([`ConsoleState::with_brigade_app`]).
    pub brigade_app: Option<Arc<brigade_app::BrigadeApp>>,
    /// The intercom's call desk, when the node runs the SIP gateway ([`calls_api`]).
    pub calls: Option<Arc<centinela_intercom::Desk>>,
    /// The calls other nodes anchor, rung here too and answered through them
    /// ([`calls_api`], docs/intercom.md "Calls across nodes").
    pub remote_calls: Option<Arc<centinela_intercom::remote::RemoteCalls>>,
    /// Where this node's gateway records calls (`--record-calls`), for supervisors'
    /// downloads ([`calls_api::recording`]).
    pub recordings: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("console: {0}")]
    Auth(String),
}

impl ConsoleState {
    pub fn new(
        node_id: String,
        records: Records,
        ready: watch::Receiver<bool>,
        operator: OperatorService,
        config: Config,
        cameras: centinela_onvif::credentials::Credentials,
    ) -> Result<Self, Error> {
        if !config.has_operators() {
            tracing::warn!(
                "console: no operators configured (CENTINELA_OPERATORS or CENTINELA_OPERATORS_FILE); nobody can sign in"
            );
        }
        if config.demo {
            tracing::info!(
                "console: demo mode, visitors are signed in as operator 'demo' without a password"
            );
        }
        let public_map = public::PublicMap::new(records.clone(), operator.feed());
        Ok(Self {
            node_id,
            public_map,
            video: centinela_video::Video::new(cameras.clone()),
            video_views: Arc::new(Semaphore::new(limits::VIDEO_VIEWS_MAX)),
            pictures: pictures::Pictures::new(records.clone(), cameras),
            live_streams: Arc::new(Semaphore::new(limits::LIVE_STREAMS_MAX)),
            live_views: Arc::default(),
            records,
            ready,
            operator,
            auth: Arc::new(Auth::new(config).map_err(Error::Auth)?),
            streams: Arc::new(Semaphore::new(EVENT_STREAMS_MAX)),
            operator_streams: centinela_api::Streams::new(Default::default()),
            brigade_app: None,
            calls: None,
            remote_calls: None,
            recordings: None,
        })
    }

    /// Rings the intercom's calls on this desk and answers them ([`calls_api`]).
    pub fn with_calls(mut self, desk: Arc<centinela_intercom::Desk>) -> Self {
        self.calls = Some(desk);
        self
    }

    /// Rings the calls other nodes anchor too, and forwards steps on them ([`calls_api`]).
    pub fn with_remote_calls(
        mut self,
        remote: Arc<centinela_intercom::remote::RemoteCalls>,
    ) -> Self {
        self.remote_calls = Some(remote);
        self
    }

    /// Serves the recordings the gateway keeps in `dir` to supervisors
    /// ([`calls_api::recording`]).
    pub fn with_recordings(mut self, dir: std::path::PathBuf) -> Self {
        self.recordings = Some(dir);
        self
    }

    /// Serves the brigade app (`/brigada/`) with these devices' credentials and service.
    pub fn with_brigade_app(mut self, app: brigade_app::BrigadeApp) -> Self {
        self.brigade_app = Some(Arc::new(app));
        self
    }
}

pub fn router(state: ConsoleState) -> Router {
    let policy = content_security_policy(state.auth.config().display.map_tiles.as_deref());
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/public", get(|| async { Redirect::permanent("/public/") }))
        .route("/public/", get(public_page))
        .route("/public/buttons.geojson", get(public_buttons))
        .route("/assets/{file}", get(assets::asset))
        .route("/assets/i18n/{file}", get(assets::catalogue))
        .route("/assets/vendor/leaflet/{file}", get(assets::leaflet))
        .route(
            "/assets/vendor/leaflet/images/{file}",
            get(assets::leaflet_image),
        )
        .route("/assets/vendor/chartjs/{file}", get(reports::chartjs))
        .route("/reportes", get(reports::page))
        .route("/api/report", get(reports::json_report))
        .route("/api/report.csv", get(reports::csv_report))
        .route("/api/plan-posts", get(posts::plan))
        .route("/api/login", get(api::login_info).post(api::login))
        .route("/api/login/demo", post(api::login_demo))
        .route("/api/logout", post(api::logout))
        .route("/api/session", get(api::session))
        .route("/api/events", get(events::events))
        .route("/api/cluster", get(api::cluster))
        .route("/api/calls", get(calls_api::list))
        .route("/api/calls/{call_id}/answer", post(calls_api::answer))
        .route("/api/calls/{call_id}/hold", post(calls_api::hold))
        .route("/api/calls/{call_id}/hangup", post(calls_api::hang_up))
        .route(
            "/api/incidents/{id}/calls/{call_id}/recording.wav",
            get(calls_api::recording),
        )
        .route("/api/units/{id}/status", post(api::unit_status))
        .route(
            "/api/buttons/{id}/clear-alert",
            post(api::clear_button_alert),
        )
        .route(
            "/api/cameras/{id}/clear-alert",
            post(api::clear_camera_alert),
        )
        .route(
            "/brigada",
            get(|| async { Redirect::permanent("/brigada/") }),
        )
        .route("/brigada/", get(brigade_app::page))
        .route("/brigada/api/me", get(brigade_app::me))
        .route("/brigada/api/login", post(brigade_app::login))
        .route("/brigada/api/logout", post(api::logout))
        .route("/brigada/api/events", get(brigade_app::events))
        .route("/brigada/api/position", post(brigade_app::position))
        .route("/brigada/api/heartbeat", post(brigade_app::heartbeat))
        .route("/brigada/api/ack", post(brigade_app::ack))
        .route("/brigada/api/status", post(brigade_app::status))
        .route("/brigada/{file}", get(brigade_app::file))
        .route("/api/incidents/{id}", get(api::get_incident))
        .route("/api/incidents/{id}/recommend", get(api::recommend))
        .route("/api/incidents/{id}/ack", post(api::acknowledge))
        .route("/api/incidents/{id}/verify", post(api::confirm_verified))
        .route("/api/incidents/{id}/classify", post(api::classify))
        .route("/api/incidents/{id}/dispatch", post(api::dispatch))
        .route("/api/incidents/{id}/prank", post(api::prank))
        .route("/api/incidents/{id}/resolve", post(api::resolve))
        .route("/api/incidents/{id}/still", post(camera_api::save_still))
        .route(
            "/api/incidents/{id}/stills/{file}",
            get(camera_api::saved_still),
        )
        .route("/api/cameras/{id}/still.jpg", get(camera_api::still))
        .route("/api/cameras/{id}/live.mjpeg", get(camera_api::live))
        .route("/api/cameras/{id}/live.ws", get(video_api::live_ws))
        .route("/api/cameras/{id}/ptz", post(camera_api::ptz))
        .route("/api/agencies", get(handoff_api::agencies))
        .route(
            "/api/incidents/{id}/handoffs",
            get(handoff_api::handoffs).post(handoff_api::handoff),
        )
        .route("/api/handoff/{agency}/ack", post(handoff_api::ack))
        .fallback(not_found)
        .layer(axum::middleware::map_response(move |response| {
            let policy = policy.clone();
            async move { security_headers(response, policy) }
        }))
        .layer(axum::middleware::from_fn(no_store))
        .with_state(state)
}

/// Serves `router` on the connections of `incoming` (a node's bounded listener,
/// `centinela_api::conn`) over HTTP/1.1 until `shutdown` resolves, then lets every connection
/// finish its request and waits for them. Unlike `axum::serve`: a request's headers must
/// arrive within `header_read_timeout`, and a connection's buffer is bounded
/// ([`limits::HTTP1_BUFFER_BYTES_MAX`]).
pub async fn serve<I, IO>(
    incoming: I,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    I: Stream<Item = std::io::Result<IO>> + Send,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: centinela_tls::RemoteAddr,
{
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(limits::HTTP1_BUFFER_BYTES_MAX);
    // Every connection holds a receiver; once shutdown is signalled they finish their
    // in-flight request and close, and the sender's `closed` tells when all have.
    let (signal, connections) = watch::channel(());
    {
        let mut incoming = std::pin::pin!(incoming);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let io = tokio::select! {
                () = &mut shutdown => break,
                io = incoming.next() => match io {
                    Some(Ok(io)) => io,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "HTTP accept failed");
                        continue;
                    }
                    None => break,
                },
            };
            let builder = builder.clone();
            // Each request carries the peer's address: sign-in throttling counts guesses per
            // source ([`throttle`]).
            let peer = centinela_tls::RemoteAddr::remote_addr(&io.connect_info())
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            let service =
                TowerToHyperService::new(axum::Extension(ConnectInfo(peer)).layer(router.clone()));
            let mut stop = connections.clone();
            tokio::spawn(async move {
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                let mut connection = std::pin::pin!(connection);
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "HTTP connection ended");
                        }
                        return;
                    }
                    _ = stop.changed() => {}
                }
                connection.as_mut().graceful_shutdown();
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
            });
        }
        // The listener closes here: no new connection is accepted while the others drain.
    }
    let _ = signal.send(());
    drop(connections);
    signal.closed().await;
}

/// `router` with `Strict-Transport-Security` on every answer: for a node serving the console
/// over TLS (`CENTINELA_TLS_CERT`), so a browser that reached it once never again tries
/// plaintext (a network attacker would otherwise strip TLS from a typed address). Over
/// plaintext the header means nothing to browsers, so it is only added with TLS.
pub fn with_hsts(router: Router) -> Router {
    router.layer(axum::middleware::map_response(
        |mut response: Response| async move {
            response.headers_mut().insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(limits::HSTS),
            );
            response
        },
    ))
}

/// The Content-Security-Policy of every answer: nothing but the node itself may supply
/// scripts, styles or connections, and no other site may frame the console (clickjacking an
/// operator into closing an incident). Images may also come from the street map's tile server
/// (`CENTINELA_MAP_TILES`), and only from it; a `{s}` subdomain placeholder becomes `*`.
pub fn content_security_policy(map_tiles: Option<&str>) -> HeaderValue {
    let tiles = map_tiles
        .and_then(config::tile_origin)
        .map(|origin| format!(" {}", origin.replace("{s}", "*")))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; img-src 'self' data: blob:{tiles}; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    // The origin's characters were checked when the setting was read (`tile_origin`).
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
    })
}

fn security_headers(mut response: Response, policy: HeaderValue) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// `Cache-Control: no-store` on every `/api` answer (callers' personal data, incidents,
/// pictures, sessions) and on any answer that sets a cookie or shows the console to a
/// signed-in operator: no browser or proxy cache keeps them for the next user of the machine.
async fn no_store(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    let personal = path.starts_with("/api/") || path.starts_with("/brigada/api/") || path == "/";
    let mut response = next.run(request).await;
    if personal || response.headers().contains_key(header::SET_COOKIE) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no endpoint {}", uri.path()),
        )
        .into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

/// `/`: the console for a signed-in operator; a demo visitor is signed in on the spot;
/// anyone else goes to `/login`.
async fn home(
    State(state): State<ConsoleState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let display = &state.auth.config().display;
    if let Some(session) = session_of(&headers, &state.auth) {
        // An officer's session is for the brigade app, never the console.
        if !session.role().is_console() {
            return Redirect::to("/brigada/").into_response();
        }
        let page = i18n::Page::Console {
            operator: session.operator(),
        };
        let (lang, cookies) = i18n::negotiate(&headers, query.lang.as_deref(), page);
        return i18n::page(assets::CONSOLE_HTML, lang, display, cookies);
    }
    match state.auth.demo_session() {
        Some(session) => {
            let page = i18n::Page::Console {
                operator: session.operator(),
            };
            let (lang, mut cookies) = i18n::negotiate(&headers, query.lang.as_deref(), page);
            cookies.push(state.auth.set_cookie(&session));
            i18n::page(assets::CONSOLE_HTML, lang, display, cookies)
        }
        None => {
            // Not signed in: on to the login page, in the language asked for.
            let (_, cookies) = i18n::negotiate(&headers, query.lang.as_deref(), i18n::Page::Login);
            let mut response = Redirect::to("/login").into_response();
            for cookie in cookies {
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
    }
}

/// `?lang=es|en` on a page.
#[derive(serde::Deserialize)]
pub(crate) struct LangQuery {
    pub(crate) lang: Option<String>,
}

async fn login_page(
    State(state): State<ConsoleState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (lang, cookies) = i18n::negotiate(&headers, query.lang.as_deref(), i18n::Page::Login);
    i18n::page(
        assets::LOGIN_HTML,
        lang,
        &state.auth.config().display,
        cookies,
    )
}

/// `/public/`: in the reader's language (`Accept-Language` counts here).
async fn public_page(
    State(state): State<ConsoleState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (lang, cookies) = i18n::negotiate(&headers, query.lang.as_deref(), i18n::Page::Public);
    i18n::page(
        assets::PUBLIC_HTML,
        lang,
        &state.auth.config().display,
        cookies,
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ConsoleState>) -> Response {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn public_buttons(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    state.public_map.reply(&headers).await
}

/// A GeoJSON FeatureCollection of the buttons: id, name, and whether it works. Coordinates in
/// GeoJSON order (longitude first).
pub fn buttons_geojson(buttons: &[Button]) -> serde_json::Value {
    let features: Vec<serde_json::Value> = buttons
        .iter()
        .map(|b| {
            json!({
                "type": "Feature",
                "id": b.id.as_str(),
                "geometry": {
                    "type": "Point",
                    "coordinates": [b.position.lon(), b.position.lat()],
                },
                "properties": {
                    "id": b.id.as_str(),
                    "name": b.name,
                    "working": b.health == ButtonHealth::Online,
                },
            })
        })
        .collect();
    json!({ "type": "FeatureCollection", "features": features })
}
