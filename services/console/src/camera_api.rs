//! The cameras in the console: pictures, manual control and stills for the incident.
//!
//! - `GET /api/cameras/{id}/still.jpg`: one JPEG, current or the last one the camera sent
//!   (`X-Frame-Age-Ms` says how old); 409 for a native camera, 503 before any picture.
//! - `GET /api/cameras/{id}/live.mjpeg`: `multipart/x-mixed-replace` JPEG frames at
//!   [`PICTURE_INTERVAL`](crate::limits::PICTURE_INTERVAL), what an `<img>` shows as video.
//! - `POST /api/cameras/{id}/ptz`: `{"pan_deg", "tilt_deg", "zoom"}`, or `{}` back to the button.
//! - `POST /api/incidents/{id}/still`: saves the incident camera's current picture to the
//!   incident (its SHA-256 in the audit chain); answers `{"sha256", "incident"}`.
//! - `GET /api/incidents/{id}/stills/{sha256}.jpg`: a saved still.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use centinela_proto::v1::operator_server::Operator;
use futures::StreamExt;
use serde_json::json;
use tokio_stream::wrappers::WatchStream;
use tonic::Request;

use centinela_core::ids::IncidentId;
use centinela_proto::v1;
use centinela_records::stills::is_sha256_hex;

use crate::ConsoleState;
use crate::api::{ApiError, ApiResult, IncidentPath, Signed, json_body};
use crate::limits::{LIVE_STREAMS_PER_OPERATOR_MAX, STILL_WAIT};
use crate::pictures::{Frame, PictureError};
use crate::wire;

const BOUNDARY: &str = "centinela-frame";

impl From<PictureError> for ApiError {
    fn from(e: PictureError) -> Self {
        let (status, code) = match &e {
            PictureError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            PictureError::Native(_) => (StatusCode::CONFLICT, "failed_precondition"),
            PictureError::Unavailable { .. } | PictureError::Store(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn jpeg_response(frame: &Frame) -> Response {
    let mut response = (StatusCode::OK, frame.jpeg.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(age) = HeaderValue::from_str(&frame.age().as_millis().to_string()) {
        headers.insert("x-frame-age-ms", age);
    }
    response
}

pub async fn still(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    Path(camera): Path<String>,
) -> ApiResult {
    let frame = state.pictures.still(&camera, STILL_WAIT).await?;
    Ok(jpeg_response(&frame))
}

/// `GET /api/cameras/{id}/live.mjpeg`: at most [`LIVE_STREAMS_PER_OPERATOR_MAX`] views per
/// operator (429, so one operator or a script with their cookie cannot take every slot), and
/// [`LIVE_STREAMS_MAX`](crate::limits::LIVE_STREAMS_MAX) on the node (503).
pub async fn live(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(camera): Path<String>,
) -> ApiResult {
    let mine = state.live_views.take(session.operator()).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "resource_exhausted",
            format!(
                "you already have {LIVE_STREAMS_PER_OPERATOR_MAX} live camera views open on this node; close one first"
            ),
        )
    })?;
    let permit = state
        .live_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "too many live camera views on this node; close some or use another node",
            )
        })?;
    let frames = state.pictures.watch(&camera).await?;
    let parts = WatchStream::new(frames).filter_map(move |frame| {
        let _held = (&permit, &mine);
        async move {
            let frame = frame?;
            let mut part = format!(
                "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                frame.jpeg.len()
            )
            .into_bytes();
            part.extend_from_slice(&frame.jpeg);
            part.extend_from_slice(b"\r\n");
            Some(Ok::<_, Infallible>(Bytes::from(part)))
        }
    });
    let mut response = Body::from_stream(parts).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("multipart/x-mixed-replace; boundary={BOUNDARY}"))
            .expect("a valid header"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Live views held per operator on this node ([`LIVE_STREAMS_PER_OPERATOR_MAX`]).
#[derive(Default)]
pub struct LiveViews {
    held: Mutex<HashMap<String, usize>>,
}

/// One operator's live view: gives its slot back when the stream ends.
pub struct LiveView {
    views: Arc<LiveViews>,
    operator: String,
}

impl LiveViews {
    /// A view for `operator`, unless they hold [`LIVE_STREAMS_PER_OPERATOR_MAX`] already.
    pub fn take(self: &Arc<Self>, operator: &str) -> Option<LiveView> {
        let mut held = self.held.lock().expect("live views poisoned");
        let count = held.entry(operator.to_string()).or_insert(0);
        if *count >= LIVE_STREAMS_PER_OPERATOR_MAX {
            return None;
        }
        *count += 1;
        Some(LiveView {
            views: self.clone(),
            operator: operator.to_string(),
        })
    }

    /// How many views `operator` holds.
    pub fn held(&self, operator: &str) -> usize {
        self.held
            .lock()
            .expect("live views poisoned")
            .get(operator)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        let mut held = self.views.held.lock().expect("live views poisoned");
        if let Some(count) = held.get_mut(&self.operator) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.operator);
            }
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PtzBody {
    pan_deg: Option<f64>,
    tilt_deg: Option<f64>,
    zoom: Option<f64>,
}

pub async fn ptz(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    Path(camera): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: PtzBody = json_body(&headers, body).await?;
    let to = match (body.pan_deg, body.tilt_deg, body.zoom) {
        (None, None, None) => None,
        (Some(pan_deg), Some(tilt_deg), Some(zoom)) => Some(v1::PtzPreset {
            pan_deg,
            tilt_deg,
            zoom,
        }),
        _ => {
            return Err(ApiError::bad_request(
                "send pan_deg, tilt_deg and zoom together, or none of them (back to the button)",
            ));
        }
    };
    let camera = state
        .operator
        .steer_camera(Request::new(v1::SteerCameraRequest {
            camera_id: camera,
            to,
        }))
        .await
        .map_err(ApiError::from_status)?
        .into_inner();
    Ok(axum::Json(wire::camera(&camera)).into_response())
}

pub async fn save_still(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    IncidentPath(id): IncidentPath,
) -> ApiResult {
    let incident = state
        .operator
        .get_incident(Request::new(v1::GetIncidentRequest {
            incident_id: id.clone(),
        }))
        .await
        .map_err(ApiError::from_status)?
        .into_inner();
    let frame = state.pictures.still(&incident.camera, STILL_WAIT).await?;
    if frame.age() > Duration::from_secs(10) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "camera {} has sent no picture for {} s; nothing current to save",
                incident.camera,
                frame.age().as_secs()
            ),
        ));
    }
    let reply = state
        .operator
        .save_still(Request::new(v1::SaveStillRequest {
            incident_id: id,
            operator_id: session.operator().to_string(),
            jpeg: frame.jpeg.to_vec(),
        }))
        .await
        .map_err(ApiError::from_status)?
        .into_inner();
    let incident = reply.incident.as_ref().map(wire::incident);
    Ok(axum::Json(json!({ "sha256": reply.sha256, "incident": incident })).into_response())
}

pub async fn saved_still(
    State(state): State<ConsoleState>,
    Signed(_): Signed,
    Path((incident, file)): Path<(String, String)>,
) -> ApiResult {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such still");
    let incident = IncidentId::new(&incident).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let sha = file.strip_suffix(".jpg").ok_or_else(not_found)?;
    if !is_sha256_hex(sha) {
        return Err(not_found());
    }
    let jpeg = state
        .records
        .still(&incident, sha)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?
        .ok_or_else(not_found)?;
    let mut response = (StatusCode::OK, jpeg).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    // Content-addressed: it never changes.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(response)
}
