//! Simulated PTZ cameras: obey aim and release commands from their command channel.

use tokio::sync::watch;
use tokio_stream::StreamExt;

use centinela_proto::client::AuthChannel;
use centinela_proto::redirect;
use centinela_proto::v1::camera_command::Command;
use centinela_proto::v1::camera_gateway_client::CameraGatewayClient;
use centinela_proto::v1::{CameraState, CameraStatusReport, CameraSubscribe};

use crate::route::{Route, is_node_failure};
use crate::{SimOptions, sleep_or_stop};

pub async fn run(
    camera_id: String,
    mut route: Route,
    options: SimOptions,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let status = match serve_commands(&camera_id, &mut route, &options, &mut stop).await {
            Ok(()) => return,
            Err(status) => status,
        };
        tracing::debug!(camera = %camera_id, %status, "devices: camera channel lost");
        crate::lost::count(&status);
        if route.after(&camera_id, &status) {
            continue;
        }
        let pause = route.pause(&camera_id, &status);
        if sleep_or_stop(pause, &mut stop).await {
            return;
        }
    }
}

/// One command channel, until it breaks or names the owner (Err) or the simulation stops
/// (Ok).
async fn serve_commands(
    camera_id: &str,
    route: &mut Route,
    options: &SimOptions,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), tonic::Status> {
    let failover = route.failover().clone();
    let (channel, addr) = failover.connect().await?;
    let mut client = CameraGatewayClient::with_interceptor(channel, failover.credentials());
    let mut subscribe = tonic::Request::new(CameraSubscribe {
        camera_id: camera_id.to_string(),
    });
    if route.asks() {
        redirect::ask_to_follow(&mut subscribe);
    }
    let mut commands = client
        .commands(subscribe)
        .await
        .inspect_err(|status| {
            if is_node_failure(status) {
                failover.advance_from(&addr);
            }
        })?
        .into_inner();
    route.served();
    loop {
        let command = tokio::select! {
            next = commands.next() => next,
            _ = stop.changed() => return Ok(()),
        };
        let Some(command) = command else {
            failover.advance_from(&addr);
            return Err(tonic::Status::unavailable(
                "command channel closed by the node",
            ));
        };
        let command = command.inspect_err(|status| {
            if is_node_failure(status) {
                failover.advance_from(&addr);
            }
        });
        match command?.command {
            Some(Command::Aim(aim)) => {
                report(
                    &mut client,
                    camera_id,
                    CameraState::Aiming,
                    Some(&aim.incident_id),
                    &aim.traceparent,
                )
                .await?;
                if sleep_or_stop(options.camera_slew, stop).await {
                    return Ok(());
                }
                report(
                    &mut client,
                    camera_id,
                    CameraState::OnTarget,
                    Some(&aim.incident_id),
                    &aim.traceparent,
                )
                .await?;
            }
            Some(Command::Release(_)) => {
                report(&mut client, camera_id, CameraState::Idle, None, &None).await?;
            }
            None => {}
        }
    }
}

async fn report(
    client: &mut CameraGatewayClient<AuthChannel>,
    camera_id: &str,
    state: CameraState,
    incident: Option<&str>,
    trace: &Option<String>,
) -> Result<(), tonic::Status> {
    client
        .report_status(crate::unit::traced(
            CameraStatusReport {
                camera_id: camera_id.to_string(),
                state: state as i32,
                incident_id: incident.map(str::to_string),
            },
            trace,
        ))
        .await?;
    Ok(())
}
