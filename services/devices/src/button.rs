//! Simulated buttons: heartbeats, and random presses unless the simulation is quiet.

use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::watch;

use centinela_proto::client::Failover;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::{ButtonHeartbeat, PressRequest};

use crate::{SimOptions, sleep_or_stop};

pub async fn heartbeats(
    buttons: Vec<String>,
    failover: Failover,
    options: SimOptions,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        for button_id in &buttons {
            let creds = failover.credentials();
            let result = failover
                .call(|channel| {
                    let request = ButtonHeartbeat {
                        button_id: button_id.clone(),
                    };
                    let creds = creds.clone();
                    async move {
                        ButtonGatewayClient::with_interceptor(channel, creds)
                            .heartbeat(request)
                            .await
                    }
                })
                .await;
            if let Err(status) = result {
                tracing::debug!(button = %button_id, %status, "devices: heartbeat failed");
            }
        }
        if sleep_or_stop(options.heartbeat_interval, &mut stop).await {
            return;
        }
    }
}

pub async fn random_presses(
    buttons: Vec<String>,
    failover: Failover,
    options: SimOptions,
    mut rng: StdRng,
    mut stop: watch::Receiver<bool>,
) {
    let run_tag: u32 = rng.random();
    let mut sequence = 0u64;
    loop {
        // Exponential inter-arrival times: presses are a Poisson process over the district.
        let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
        let wait = options.press_interval_mean.mul_f64(-uniform.ln());
        if sleep_or_stop(wait, &mut stop).await {
            return;
        }
        let button_id = buttons[rng.random_range(0..buttons.len())].clone();
        sequence += 1;
        let press_id = format!("sim-{run_tag:08x}-{sequence}");
        let creds = failover.credentials();
        // The same press_id on every retry: the node merges them into one press.
        let result = failover
            .call(|channel| {
                let request = PressRequest {
                    button_id: button_id.clone(),
                    press_id: press_id.clone(),
                };
                let creds = creds.clone();
                async move {
                    ButtonGatewayClient::with_interceptor(channel, creds)
                        .press(request)
                        .await
                }
            })
            .await;
        match result {
            Ok(reply) => {
                let reply = reply.into_inner();
                tracing::info!(
                    button = %button_id,
                    incident = %reply.incident_id,
                    duplicate = reply.duplicate,
                    "devices: button pressed"
                );
            }
            Err(status) => tracing::warn!(button = %button_id, %status, "devices: press failed"),
        }
    }
}
