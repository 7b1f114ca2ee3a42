//! The simulated world outside the nodes, each a turmoil client host speaking the real gRPC
//! device and operator APIs: buttons pressing (retrying with a stable press id, failing over
//! between nodes), cameras obeying aim commands, brigade terminals acknowledging assignments
//! and going en route and on scene, and an operator closing incidents so brigades free up.
//! Every random choice comes from the run's seed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::camera_gateway_client::CameraGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::unit_gateway_client::UnitGatewayClient;

use crate::history::{AckedPress, History};
use crate::net;

/// Deadline of one device or operator call (a node may be partitioned: never wait forever).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between attempts of a press, and how long a button keeps retrying one.
const PRESS_RETRY: Duration = Duration::from_millis(300);
const PRESS_GIVE_UP: Duration = Duration::from_secs(20);
/// How long a camera takes from `aiming` to `on_target`.
const CAMERA_SLEW: Duration = Duration::from_millis(200);
/// A terminal: from the acknowledgement to en route, and from en route to on scene.
const TERMINAL_STEP: Duration = Duration::from_millis(400);
/// The operator's polling period.
const OPERATOR_PERIOD: Duration = Duration::from_millis(700);

pub type Shared = Arc<Mutex<History>>;

/// Simulated milliseconds since the run started.
pub fn now_ms() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

async fn sleep_until_ms(ms: u64) {
    let now = now_ms();
    if ms > now {
        tokio::time::sleep(Duration::from_millis(ms - now)).await;
    }
}

/// When the devices act (simulated ms).
#[derive(Clone, Debug)]
pub struct Timeline {
    pub presses_from_ms: u64,
    pub presses_until_ms: u64,
    /// Mean gap between presses.
    pub press_gap_ms: u64,
    pub operator_until_ms: u64,
    pub end_ms: u64,
}

fn record(history: &Shared, text: String) {
    history.lock().unwrap().client_event(now_ms(), text);
}

/// The buttons: presses at random times on random buttons, each retried with its press id
/// until acknowledged (or given up after [`PRESS_GIVE_UP`]).
pub async fn buttons(
    seed: u64,
    nodes: Vec<String>,
    buttons: Vec<String>,
    timeline: Timeline,
    history: Shared,
) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xb077_0b07);
    let channels: Vec<Channel> = nodes.iter().map(|n| net::node_channel(n)).collect();
    sleep_until_ms(timeline.presses_from_ms).await;
    let mut presses = tokio::task::JoinSet::new();
    let mut seq = 0u32;
    while now_ms() < timeline.presses_until_ms {
        let gap = rng.random_range(timeline.press_gap_ms / 2..=timeline.press_gap_ms * 3 / 2);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        seq += 1;
        let button = buttons[rng.random_range(0..buttons.len())].clone();
        let press_id = format!("p{seq:04}");
        let first = rng.random_range(0..channels.len());
        presses.spawn(press(
            channels.clone(),
            first,
            button,
            press_id,
            history.clone(),
        ));
    }
    while presses.join_next().await.is_some() {}
    sleep_until_ms(timeline.end_ms).await;
    Ok(())
}

async fn press(
    channels: Vec<Channel>,
    first: usize,
    button: String,
    press_id: String,
    history: Shared,
) {
    let sent_ms = now_ms();
    history
        .lock()
        .unwrap()
        .sent
        .insert(press_id.clone(), (button.clone(), sent_ms));
    record(&history, format!("press {press_id} of {button} sent"));
    let mut attempt = 0;
    while now_ms() < sent_ms + PRESS_GIVE_UP.as_millis() as u64 {
        let channel = channels[(first + attempt) % channels.len()].clone();
        attempt += 1;
        let request = v1::PressRequest {
            button_id: button.clone(),
            press_id: press_id.clone(),
        };
        let mut client = ButtonGatewayClient::new(channel);
        match tokio::time::timeout(CALL_TIMEOUT, client.press(request)).await {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                let mut history = history.lock().unwrap();
                let acked_ms = now_ms();
                history.client_event(
                    acked_ms,
                    format!(
                        "press {press_id} of {button} acked as {} (duplicate {}, attempt {attempt})",
                        reply.incident_id, reply.duplicate
                    ),
                );
                history.acked.push(AckedPress {
                    button,
                    press_id,
                    incident: reply.incident_id,
                    duplicate: reply.duplicate,
                    sent_ms,
                    acked_ms,
                });
                return;
            }
            Ok(Err(status)) => {
                if status.code() == tonic::Code::NotFound
                    || status.code() == tonic::Code::InvalidArgument
                {
                    record(
                        &history,
                        format!("press {press_id} refused: {:?}", status.code()),
                    );
                    return;
                }
            }
            Err(_) => {}
        }
        tokio::time::sleep(PRESS_RETRY).await;
    }
    record(
        &history,
        format!("press {press_id} of {button} given up after {attempt} attempts"),
    );
}

/// The cameras: each keeps its command channel open (re-opening it on another node when it
/// breaks), reports `aiming` on an aim command and `on_target` once slewed, `idle` on release.
pub async fn cameras(nodes: Vec<String>, cameras: Vec<String>, end_ms: u64) -> turmoil::Result {
    let channels: Vec<Channel> = nodes.iter().map(|n| net::node_channel(n)).collect();
    for (i, camera) in cameras.into_iter().enumerate() {
        tokio::spawn(camera_loop(channels.clone(), i, camera));
    }
    sleep_until_ms(end_ms).await;
    Ok(())
}

async fn camera_loop(channels: Vec<Channel>, first: usize, camera: String) {
    let mut attempt = first;
    loop {
        let channel = channels[attempt % channels.len()].clone();
        attempt += 1;
        let mut client = CameraGatewayClient::new(channel);
        let subscribe = client.commands(v1::CameraSubscribe {
            camera_id: camera.clone(),
        });
        if let Ok(Ok(stream)) = tokio::time::timeout(CALL_TIMEOUT, subscribe).await {
            let mut stream = stream.into_inner();
            while let Some(Ok(command)) = stream.next().await {
                let report = |state: v1::CameraState, incident: Option<String>| {
                    let mut client = client.clone();
                    let camera = camera.clone();
                    async move {
                        let call = client.report_status(v1::CameraStatusReport {
                            camera_id: camera,
                            state: state as i32,
                            incident_id: incident,
                        });
                        let _ = tokio::time::timeout(CALL_TIMEOUT, call).await;
                    }
                };
                match command.command {
                    Some(v1::camera_command::Command::Aim(aim)) => {
                        report(v1::CameraState::Aiming, Some(aim.incident_id.clone())).await;
                        tokio::time::sleep(CAMERA_SLEW).await;
                        report(v1::CameraState::OnTarget, Some(aim.incident_id)).await;
                    }
                    Some(v1::camera_command::Command::Release(_)) => {
                        report(v1::CameraState::Idle, None).await;
                    }
                    None => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The brigade terminals: each keeps its assignment channel open, acknowledges an assignment,
/// then reports en route and on scene.
pub async fn terminals(
    nodes: Vec<String>,
    units: Vec<String>,
    end_ms: u64,
    history: Shared,
) -> turmoil::Result {
    let channels: Vec<Channel> = nodes.iter().map(|n| net::node_channel(n)).collect();
    for (i, unit) in units.into_iter().enumerate() {
        tokio::spawn(terminal_loop(channels.clone(), i, unit, history.clone()));
    }
    sleep_until_ms(end_ms).await;
    Ok(())
}

async fn terminal_loop(channels: Vec<Channel>, first: usize, unit: String, history: Shared) {
    let mut attempt = first;
    loop {
        let channel = channels[attempt % channels.len()].clone();
        attempt += 1;
        let mut client = UnitGatewayClient::new(channel);
        let subscribe = client.assignments(v1::UnitSubscribe {
            unit_id: unit.clone(),
        });
        if let Ok(Ok(stream)) = tokio::time::timeout(CALL_TIMEOUT, subscribe).await {
            let mut stream = stream.into_inner();
            while let Some(Ok(event)) = stream.next().await {
                let Some(v1::assignment_event::Event::Assignment(assignment)) = event.event else {
                    continue;
                };
                let incident = assignment.incident_id;
                let ack = client.acknowledge(v1::AssignmentAck {
                    unit_id: unit.clone(),
                    incident_id: incident.clone(),
                });
                let acked = matches!(tokio::time::timeout(CALL_TIMEOUT, ack).await, Ok(Ok(_)));
                record(
                    &history,
                    format!("unit {unit} got {incident}, ack ok {acked}"),
                );
                if !acked {
                    continue;
                }
                for status in [v1::UnitStatus::EnRoute, v1::UnitStatus::OnScene] {
                    tokio::time::sleep(TERMINAL_STEP).await;
                    let update = client.update_status(v1::UnitStatusUpdate {
                        unit_id: unit.clone(),
                        status: status as i32,
                        incident_id: Some(incident.clone()),
                        outcome: None,
                        note: None,
                    });
                    let _ = tokio::time::timeout(CALL_TIMEOUT, update).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The operator: now and then lists the open incidents and closes the ones a unit is on scene
/// for (some as pranks), which frees their brigades for the next incidents.
pub async fn operator(
    seed: u64,
    nodes: Vec<String>,
    timeline: Timeline,
    history: Shared,
) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0be7_a70e);
    let channels: Vec<Channel> = nodes.iter().map(|n| net::node_channel(n)).collect();
    let mut attempt = 0;
    while now_ms() < timeline.operator_until_ms {
        tokio::time::sleep(OPERATOR_PERIOD).await;
        let mut client = OperatorClient::new(channels[attempt % channels.len()].clone());
        attempt += 1;
        let list = client.list_incidents(v1::ListIncidentsRequest {
            include_closed: false,
        });
        let Ok(Ok(list)) = tokio::time::timeout(CALL_TIMEOUT, list).await else {
            continue;
        };
        let mut incidents = list.into_inner().incidents;
        incidents.sort_by(|a, b| a.id.cmp(&b.id));
        for incident in incidents {
            if incident.state != v1::IncidentState::OnScene as i32 {
                continue;
            }
            let prank = rng.random_bool(0.2);
            let closed = if prank {
                let call = client.mark_prank(v1::MarkPrankRequest {
                    incident_id: incident.id.clone(),
                    operator_id: "sim-operator".into(),
                });
                tokio::time::timeout(CALL_TIMEOUT, call).await
            } else {
                let call = client.resolve(v1::ResolveRequest {
                    incident_id: incident.id.clone(),
                    operator_id: "sim-operator".into(),
                    resolution: v1::Resolution::Handled as i32,
                });
                tokio::time::timeout(CALL_TIMEOUT, call).await
            };
            let outcome = match closed {
                Ok(Ok(_)) => "ok".to_string(),
                Ok(Err(status)) => format!("{:?}", status.code()),
                Err(_) => "timeout".to_string(),
            };
            record(
                &history,
                format!("operator closes {} (prank {prank}): {outcome}", incident.id),
            );
        }
    }
    sleep_until_ms(timeline.end_ms).await;
    Ok(())
}
