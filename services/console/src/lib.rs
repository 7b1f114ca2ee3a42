//! The HTTP face of a node.
//!
//! - `/healthz`: the process is up (liveness).
//! - `/readyz`: the node has joined and started the entities it owns (readiness); 503 until then.
//! - `/public/buttons.geojson`: where the buttons are and whether each works, for the city to
//!   publish. No incident, brigade or camera data, and no login.
//! - `/`: the operator console's home. The full console (live queue, map, actions) is its own
//!   piece of work; until it lands this page says so and links what exists.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use centinela_core::button::{Button, ButtonHealth};
use centinela_store::records::Records;

#[derive(Clone)]
pub struct ConsoleState {
    pub node_id: String,
    pub records: Records,
    /// Whether the node is ready: joined, owning its share, serving.
    pub ready: watch::Receiver<bool>,
}

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/public/buttons.geojson", get(public_buttons))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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

async fn public_buttons(State(state): State<ConsoleState>) -> Response {
    match state.records.snapshot::<Button>().await {
        Ok((buttons, _)) => {
            let body = buttons_geojson(&buttons);
            (
                [(header::CONTENT_TYPE, "application/geo+json")],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "public map: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "store unavailable; retry\n",
            )
                .into_response()
        }
    }
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

async fn home(State(state): State<ConsoleState>) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="es"><head><meta charset="utf-8"><title>Centinela — {node}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto">
<h1>Centinela</h1>
<p>Node <code>{node}</code> is running. The browser console for operators is not built yet;
operators use the <code>centinela</code> CLI meanwhile (<code>centinela incidents</code>,
<code>centinela ack</code>, <code>centinela prank</code>, ...).</p>
<ul>
<li><a href="/public/buttons.geojson">Public map of the buttons (GeoJSON)</a></li>
<li><a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></li>
</ul>
</body></html>
"#,
        node = state.node_id
    ))
}
