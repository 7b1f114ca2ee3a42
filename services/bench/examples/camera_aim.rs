//! Press → camera `on_target` against ONVIF cameras (docs/benchmarks.md, "Cameras";
//! scripts/bench-cameras.sh), with the cameras' own mechanical move time as the same-run
//! baseline.
//!
//! ```sh
//! camera_aim GRPC_URL [PRESSES]        # e.g. http://127.0.0.1:7400 30
//! ```
//!
//! Closed loop, one press at a time, rotating over the node's ONVIF cameras. For each press:
//! close any open incident of the button (`Operator.MarkPrank`); steer the camera away
//! (`Operator.SteerCamera` to pan 0°, tilt 0°, zoom 1×) and wait until it must have stopped
//! (its mechanical time from the button's pose, plus a margin); press (`ButtonGateway.Press`,
//! a fresh press id); poll `Operator.ListCameras` every [`POLL`] until the camera is
//! `ON_TARGET` for that incident. The latency runs from sending the press to the poll that
//! sees it. Then the incident is marked a prank (its brigade freed).
//!
//! The baseline is the time the camera needs for that move, computed as the simulated camera
//! computes it (`centinela_onvif::camera::Camera::advance`): the largest of the pan and tilt
//! distances and twice the zoom distance, in ONVIF's generic spaces, times
//! `FULL_SWING` / 2. The node learns that a move ended by polling `GetStatus` every
//! `ONVIF_STATUS_POLL` (200 ms), so the overhead (latency − mechanical) includes up to one poll
//! interval of detection delay by design. Prints one JSON line: p50 / p95 / max of latency,
//! mechanical time, overhead, and latency ÷ mechanical.

use std::time::{Duration, Instant};

use centinela_core::camera::PtzPreset;
use centinela_onvif::camera::FULL_SWING;
use centinela_onvif::ptz::Pose;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::{self, CameraState};
use serde_json::json;

/// How often the camera's state is read while waiting for `ON_TARGET`.
const POLL: Duration = Duration::from_millis(5);
/// Added to the computed time of a steer-away before pressing.
const STEER_MARGIN: Duration = Duration::from_millis(400);
/// Longest wait for one camera to reach its button.
const DEADLINE: Duration = Duration::from_secs(20);
/// Where each camera is steered before its press: pan 0°, tilt 0°, zoom 1×.
const AWAY: (f64, f64, f64) = (0.0, 0.0, 1.0);

/// How long the simulated camera takes from `from` to `to` (as `Camera::advance` computes it).
fn mechanical(from: Pose, to: Pose) -> Duration {
    let distance = (to.pan - from.pan)
        .abs()
        .max((to.tilt - from.tilt).abs())
        .max((to.zoom - from.zoom).abs() * 2.0);
    Duration::from_secs_f64(FULL_SWING.as_secs_f64() * distance / 2.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 / p95 / max by nearest rank, rounded.
fn summary(values: &[f64], places: i32) -> serde_json::Value {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let round = |x: f64| (x * 10f64.powi(places)).round() / 10f64.powi(places);
    json!({ "p50": round(rank(0.50)), "p95": round(rank(0.95)), "max": round(v[v.len() - 1]) })
}

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7400".into());
    let presses: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(30);

    let channel = centinela_proto::client::endpoint(&addr)?.connect().await?;
    let mut operator = OperatorClient::new(channel.clone());
    let mut buttons = ButtonGatewayClient::new(channel);

    // Every ONVIF camera online (the node connects to each one at start).
    let started = Instant::now();
    let cameras = loop {
        let cameras: Vec<v1::Camera> = operator
            .list_cameras(v1::ListCamerasRequest {})
            .await?
            .into_inner()
            .cameras
            .into_iter()
            .filter(|c| c.driver == "onvif")
            .collect();
        if !cameras.is_empty() && cameras.iter().all(|c| c.online) {
            break cameras;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "ONVIF cameras not all online after 30 s: {:?}",
                cameras
                    .iter()
                    .map(|c| (&c.id, c.online, &c.fault))
                    .collect::<Vec<_>>()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let away_preset = PtzPreset::new(AWAY.0, AWAY.1, AWAY.2)?;
    let away = Pose::from_preset(&away_preset);

    let run = std::process::id();
    let (mut latency, mut mech, mut overhead, mut ratio) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in 0..presses {
        let camera = &cameras[n % cameras.len()];
        let p = camera.preset.ok_or("a camera without its preset")?;
        let pole = Pose::from_preset(&PtzPreset::new(p.pan_deg, p.tilt_deg, p.zoom)?);

        // No open incident on the button: the press must open a new one.
        let open = operator
            .list_incidents(v1::ListIncidentsRequest {
                include_closed: false,
            })
            .await?
            .into_inner()
            .incidents;
        for incident in open.iter().filter(|i| i.button == camera.button) {
            close(&mut operator, &incident.id).await?;
        }

        // Steer away, and wait until it must have stopped (it was at its button, or home).
        operator
            .steer_camera(v1::SteerCameraRequest {
                camera_id: camera.id.clone(),
                to: Some(v1::PtzPreset {
                    pan_deg: AWAY.0,
                    tilt_deg: AWAY.1,
                    zoom: AWAY.2,
                }),
            })
            .await?;
        tokio::time::sleep(mechanical(pole, away) + STEER_MARGIN).await;

        let pressed = Instant::now();
        let reply = buttons
            .press(v1::PressRequest {
                button_id: camera.button.clone(),
                press_id: format!("camera-aim-{run}-{n}"),
            })
            .await?
            .into_inner();
        if reply.duplicate {
            return Err(format!(
                "press {n} on {} merged into an open incident",
                camera.button
            )
            .into());
        }
        loop {
            let reached = operator
                .list_cameras(v1::ListCamerasRequest {})
                .await?
                .into_inner()
                .cameras
                .into_iter()
                .any(|c| {
                    c.id == camera.id
                        && c.state == CameraState::OnTarget as i32
                        && c.target_incident.as_deref() == Some(reply.incident_id.as_str())
                });
            if reached {
                break;
            }
            if pressed.elapsed() > DEADLINE {
                return Err(
                    format!("camera {} not on target after {DEADLINE:?}", camera.id).into(),
                );
            }
            tokio::time::sleep(POLL).await;
        }
        let took = pressed.elapsed();
        let needed = mechanical(away, pole);
        latency.push(ms(took));
        mech.push(ms(needed));
        overhead.push(ms(took) - ms(needed));
        ratio.push(took.as_secs_f64() / needed.as_secs_f64().max(1e-3));
        if std::env::var_os("CAMERA_AIM_VERBOSE").is_some() {
            eprintln!(
                "{}",
                json!({ "press": n, "camera": camera.id, "latency_ms": ms(took), "mechanical_ms": ms(needed) })
            );
        }
        close(&mut operator, &reply.incident_id).await?;
    }

    println!(
        "{}",
        json!({
            "bench": "camera_aim",
            "presses": presses,
            "cameras": cameras.len(),
            "poll_ms": ms(POLL),
            "latency_ms": summary(&latency, 1),
            "mechanical_ms": summary(&mech, 1),
            "overhead_ms": summary(&overhead, 1),
            "latency_over_mechanical": summary(&ratio, 2),
        })
    );
    Ok(())
}

/// Marks an incident a prank (closing it and freeing its brigade); an already closed one is
/// fine.
async fn close(
    operator: &mut OperatorClient<tonic::transport::Channel>,
    incident: &str,
) -> Result<(), Error> {
    match operator
        .mark_prank(v1::MarkPrankRequest {
            incident_id: incident.to_string(),
            operator_id: "bench".into(),
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(()),
        Err(status) => Err(status.into()),
    }
}
