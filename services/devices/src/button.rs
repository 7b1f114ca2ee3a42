//! Simulated buttons: heartbeats, and random presses unless the simulation is quiet.

use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use centinela_proto::client::Failover;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::{ButtonHeartbeat, PressRequest};

use crate::{SimOptions, limits, sleep_or_stop};

/// Heartbeats every button once per [`SimOptions::heartbeat_interval`] (from the start of one
/// round to the next, as each real button keeps its own period), up to
/// [`limits::HEARTBEATS_IN_FLIGHT`] at once, and logs each round: how many were sent, how many
/// failed and how long the round took (what the scale benchmark reads heartbeats/s from).
pub async fn heartbeats(
    buttons: Vec<String>,
    failover: Failover,
    options: SimOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut round = 0u64;
    loop {
        let started = Instant::now();
        let mut calls = JoinSet::new();
        let (mut sent, mut failed) = (0usize, 0usize);
        let mut next = buttons.iter();
        loop {
            while calls.len() < limits::HEARTBEATS_IN_FLIGHT {
                let Some(button_id) = next.next() else { break };
                calls.spawn(heartbeat(failover.clone(), button_id.clone()));
            }
            let done = tokio::select! {
                done = calls.join_next() => done,
                _ = stop.changed() => return,
            };
            match done {
                Some(Ok(true)) => sent += 1,
                Some(_) => failed += 1,
                None => break,
            }
        }
        round += 1;
        tracing::info!(
            round,
            sent,
            failed,
            took_ms = started.elapsed().as_millis() as u64,
            "devices: heartbeat round"
        );
        let rest = options.heartbeat_interval.saturating_sub(started.elapsed());
        if sleep_or_stop(rest, &mut stop).await {
            return;
        }
    }
}

/// One heartbeat; whether the node took it.
async fn heartbeat(failover: Failover, button_id: String) -> bool {
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
    if let Err(status) = &result {
        tracing::debug!(button = %button_id, %status, "devices: heartbeat failed");
    }
    result.is_ok()
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
