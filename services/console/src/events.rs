//! `GET /api/events`: the live view as server-sent events, from the same snapshot-then-live
//! stream as `Operator.Watch` ([`OperatorService::watch_items`]).
//!
//! Events, each `data:` one JSON object:
//!
//! | event            | data                                   | page does                     |
//! |------------------|----------------------------------------|-------------------------------|
//! | `hello`          | `{node, server_time_ms}`               | notes the node and clock      |
//! | `snapshot_start` | `{}`                                   | starts a fresh picture        |
//! | `incident`       | an incident (open ones in snapshots)   | upserts; closed leave queue   |
//! | `unit`, `button`, `camera` | the entity                   | upserts                       |
//! | `snapshot_done`  | `{}`                                   | swaps in the fresh picture    |
//! | `tick`           | `{server_time_ms}` every `TICK_INTERVAL` | proves the node is alive   |
//! | `call`           | an intercom call ([`calls_api`](crate::calls_api)), this node's and the other nodes', each on the stream's start and at every change | rings, shows who took it |
//! | `error`          | `{code, message}` then the stream ends | reconnects                    |
//!
//! A stream ends when the node shuts down (its feed closes), when the session expires, or on
//! an error; the page reconnects with backoff. At most [`EVENT_STREAMS_MAX`] run per node
//! (503 past it), and [`EVENT_STREAMS_PER_OPERATOR`] per operator (429 past it).
//!
//! [`OperatorService::watch_items`]: centinela_api::operator::OperatorService::watch_items

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

use centinela_api::operator::{WatchItem, WatchScope};
use centinela_proto::v1;
use centinela_proto::v1::operator_event::Event as Live;
use centinela_proto::v1::operator_server::Operator;

use crate::ConsoleState;
use crate::api::{ApiError, Signed};
use crate::limits;
use crate::limits::{EVENT_STREAMS_MAX, EVENT_STREAMS_PER_OPERATOR, TICK_INTERVAL};
use crate::wire;

pub async fn events(State(state): State<ConsoleState>, Signed(session): Signed) -> Response {
    let Ok(permit) = state.streams.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("this node already serves {EVENT_STREAMS_MAX} consoles; try another node"),
        )
        .into_response();
    };
    // Per operator too: one account's runaway script must not take every console's stream.
    let key = format!("events:operator:{}", session.operator());
    let slots = match state
        .operator_streams
        .admit(&[(key, EVENT_STREAMS_PER_OPERATOR)])
    {
        Ok(slots) => slots,
        Err((key, cap)) => {
            let status = centinela_api::streams::refusal("console_events", &key, cap);
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                status.message().to_string(),
            )
            .into_response();
        }
    };
    let items = state.operator.watch_items(WatchScope::default());
    let (tx, rx) = mpsc::channel(limits::EVENTS_BUFFER);
    let until_expiry =
        Duration::from_millis(session.expires_ms.saturating_sub(crate::auth::now_ms()));
    tokio::spawn(async move {
        pump(state, items, tx, until_expiry).await;
        drop(permit);
        drop(slots);
    });
    let stream = ReceiverStream::new(rx);
    (
        [("x-accel-buffering", "no")],
        Sse::new(tokio_stream::StreamExt::map(
            stream,
            Ok::<Event, Infallible>,
        )),
    )
        .into_response()
}

async fn server_time_ms(state: &ConsoleState) -> u64 {
    match state.operator.ping(Request::new(v1::PingRequest {})).await {
        Ok(reply) => reply.get_ref().server_time_ms,
        Err(_) => 0,
    }
}

fn event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// Moves watch items to the browser until one side ends.
async fn pump(
    state: ConsoleState,
    mut items: mpsc::Receiver<Result<WatchItem, tonic::Status>>,
    tx: mpsc::Sender<Event>,
    until_expiry: Duration,
) {
    let mut calls = state.calls.as_ref().map(|desk| desk.subscribe());
    let mut remote_calls = state.remote_calls.as_ref().map(|remote| remote.subscribe());
    let hello = json!({ "node": state.node_id, "server_time_ms": server_time_ms(&state).await });
    if tx.send(event("hello", &hello)).await.is_err() {
        return;
    }
    if !send_calls(&state, &tx).await {
        return;
    }
    let mut tick = tokio::time::interval(TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    loop {
        let out = tokio::select! {
            item = items.recv() => match item {
                Some(Ok(item)) => item_event(&item),
                Some(Err(status)) => {
                    let error = ApiError::from_status(status);
                    tracing::warn!(code = error.code, message = %error.message, "console stream failed");
                    let _ = tx
                        .send(event("error", &json!({ "code": error.code, "message": error.message })))
                        .await;
                    return;
                }
                // The node's feed closed: it is shutting down; the page reconnects elsewhere.
                None => return,
            },
            call = next_call(&mut remote_calls) => match call {
                Ok(remote) => event("call", &crate::calls_api::remote_call_json(&remote)),
                // Behind: every call again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if !send_calls(&state, &tx).await {
                        return;
                    }
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    remote_calls = None;
                    continue;
                }
            },
            call = next_call(&mut calls) => match call {
                Ok(call) => {
                    let mut json = crate::calls_api::call_json(&call);
                    json["node"] = json!(state.node_id);
                    event("call", &json)
                }
                // Behind: the whole desk again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if !send_calls(&state, &tx).await {
                        return;
                    }
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    calls = None;
                    continue;
                }
            },
            _ = tick.tick() => event("tick", &json!({ "server_time_ms": server_time_ms(&state).await })),
            _ = &mut expiry => {
                let _ = tx
                    .send(event("error", &json!({ "code": "unauthenticated", "message": "session expired" })))
                    .await;
                return;
            }
            _ = tx.closed() => return,
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}

/// Every call, this node's and the other nodes', as `call` events; false when the page is
/// gone.
async fn send_calls(state: &ConsoleState, tx: &mpsc::Sender<Event>) -> bool {
    for call in crate::calls_api::all_calls_json(state) {
        if tx.send(event("call", &call)).await.is_err() {
            return false;
        }
    }
    true
}

/// The next change of a desk (this node's, or the other nodes' calls); never, on a node
/// without calls.
async fn next_call<T: Clone>(
    calls: &mut Option<tokio::sync::broadcast::Receiver<T>>,
) -> Result<T, tokio::sync::broadcast::error::RecvError> {
    match calls {
        Some(calls) => calls.recv().await,
        None => std::future::pending().await,
    }
}

fn item_event(item: &WatchItem) -> Event {
    match item {
        WatchItem::SnapshotStart => event("snapshot_start", &json!({})),
        WatchItem::Event(Live::SnapshotDone(_)) => event("snapshot_done", &json!({})),
        WatchItem::Event(Live::Incident(incident)) => event("incident", &wire::incident(incident)),
        WatchItem::Event(Live::Unit(unit)) => event("unit", &wire::unit(unit)),
        WatchItem::Event(Live::Button(button)) => event("button", &wire::button(button)),
        WatchItem::Event(Live::Camera(camera)) => event("camera", &wire::camera(camera)),
    }
}
