//! Live video over a WebSocket on the console's own server: `GET /api/cameras/{id}/live.ws`.
//!
//! Same origin and same sign-in as every `/api/cameras` route (the session cookie; an
//! `Origin` that is not this server is refused, so another site cannot open a view). The node
//! pulls the camera's RTSP stream ([`centinela_video`]: one session per camera, shared) and
//! forwards the H.264 access units without transcoding. Messages, server to browser:
//!
//! - text `{"type":"status","state":"connecting|playing|reconnecting|refused","reason":..}`,
//!   first, and whenever the stream's state changes;
//! - text `{"type":"config","codec":"avc1.PPCCLL","description":BASE64 avcC,"width","height"}`
//!   before the first frame and when the camera changes its parameters: a WebCodecs
//!   `VideoDecoderConfig`;
//! - binary frames: flags (bit 0 key frame), presentation time µs, the node's receive time
//!   ms, the access unit ([`centinela_video::wire`]).
//!
//! A camera without a stream URI is refused with 409 (its picture stays `live.mjpeg`).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use centinela_core::ids::CameraId;
use centinela_video::{Event, Viewer};

use crate::ConsoleState;
use crate::api::{ApiError, ApiResult, Signed};
use crate::limits::{VIDEO_INBOUND_BYTES_MAX, VIDEO_KEEPALIVE, VIDEO_SEND_TIMEOUT};

pub async fn live_ws(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    Path(camera): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> ApiResult {
    same_origin(&headers)?;
    let permit = state.video_views.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many live video views on this node; close some or use another node",
        )
    })?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("camera {camera} not found"),
        )
    };
    let id = CameraId::new(&camera).map_err(|_| not_found())?;
    let record = state
        .records
        .camera(&id)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?
        .ok_or_else(not_found)?;
    let Some(uri) = record.stream_uri else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "failed_precondition",
            format!(
                "camera {id} has no video stream (its ONVIF GetStreamUri gave none); its picture is /api/cameras/{id}/live.mjpeg"
            ),
        ));
    };
    let viewer = state.video.watch(&id, &uri).map_err(|e| match e {
        centinela_video::Error::Busy(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
        centinela_video::Error::Uri { .. } => {
            ApiError::new(StatusCode::CONFLICT, "failed_precondition", e.to_string())
        }
    })?;
    Ok(upgrade
        .max_message_size(VIDEO_INBOUND_BYTES_MAX)
        .on_upgrade(move |socket| forward(socket, viewer, permit))
        .into_response())
}

/// A browser may open a view only from a page this server gave it: an `Origin` naming another
/// host is refused (the session cookie is `SameSite=Strict` as well).
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser (browsers always send Origin on WebSocket handshakes).
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    if host.is_some() && origin_host == host {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_denied",
        "live video opens only from the console this node serves (Origin does not match Host)",
    ))
}

/// Sends the viewer's events until either side goes away.
async fn forward(mut socket: WebSocket, mut viewer: Viewer, _permit: OwnedSemaphorePermit) {
    let mut keepalive = tokio::time::interval(VIDEO_KEEPALIVE);
    keepalive.reset();
    loop {
        let message = tokio::select! {
            event = viewer.next() => match event {
                Some(Event::Status(status)) => Message::Text(status.message().into()),
                Some(Event::Config(parameters)) => Message::Text(parameters.message().into()),
                Some(Event::Frame(frame)) => {
                    keepalive.reset();
                    Message::Binary(frame.message())
                }
                None => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // Nothing is expected from the browser but pongs and the close.
                Some(Ok(_)) => continue,
            },
            _ = keepalive.tick() => Message::Ping(Bytes::new()),
        };
        match tokio::time::timeout(VIDEO_SEND_TIMEOUT, socket.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}
