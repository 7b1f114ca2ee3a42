//! Simulated buttons: heartbeats, and random presses unless the simulation is quiet.

use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use std::sync::Arc;

use centinela_proto::client::Failover;
use centinela_proto::redirect;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::{ButtonHeartbeat, PressRequest};

use crate::limits::REDIRECTS_IN_A_ROW_MAX;
use crate::route::{Owners, is_node_failure};
use crate::{SimOptions, limits, sleep_or_stop};

/// Heartbeats every button once per [`SimOptions::heartbeat_interval`] (from the start of one
/// round to the next, as each real button keeps its own period), up to
/// [`limits::HEARTBEATS_IN_FLIGHT`] at once, and logs each round: how many were sent, how many
/// failed, how many were sent on to their owner, and how long the round took (what the scale
/// benchmark reads heartbeats/s from). Each button follows owner redirects, as the streams do
/// (docs/devices.md): once a node names its owner, its heartbeats go there directly.
pub async fn heartbeats(
    buttons: Vec<String>,
    failover: Failover,
    owners: Owners,
    options: SimOptions,
    mut stop: watch::Receiver<bool>,
) {
    // Where each button's next heartbeat goes: the owner's address once a node named it.
    let mut owner_of: Vec<Option<Arc<str>>> = vec![None; buttons.len()];
    let mut round = 0u64;
    loop {
        let started = Instant::now();
        let mut calls = JoinSet::new();
        let (mut sent, mut failed, mut redirected) = (0usize, 0usize, 0usize);
        let mut next = buttons.iter().enumerate();
        loop {
            while calls.len() < limits::HEARTBEATS_IN_FLIGHT {
                let Some((index, button_id)) = next.next() else {
                    break;
                };
                let beat = heartbeat(
                    failover.clone(),
                    owners.clone(),
                    owner_of[index].clone(),
                    button_id.clone(),
                );
                calls.spawn(async move { (index, beat.await) });
            }
            let done = tokio::select! {
                done = calls.join_next() => done,
                _ = stop.changed() => return,
            };
            match done {
                Some(Ok((index, beat))) => {
                    if beat.redirected {
                        redirected += 1;
                    }
                    if beat.taken {
                        sent += 1;
                    } else {
                        failed += 1;
                    }
                    owner_of[index] = beat.owner;
                }
                Some(Err(_)) => failed += 1,
                None => break,
            }
        }
        round += 1;
        tracing::info!(
            round,
            sent,
            failed,
            redirected,
            took_ms = started.elapsed().as_millis() as u64,
            "devices: heartbeat round"
        );
        let rest = options.heartbeat_interval.saturating_sub(started.elapsed());
        if sleep_or_stop(rest, &mut stop).await {
            return;
        }
    }
}

/// How one heartbeat went.
#[derive(Debug)]
struct Beat {
    /// A node took it.
    taken: bool,
    /// A node named the button's owner on the way.
    redirected: bool,
    /// Where the button's next heartbeat goes: its owner's address, or home (`None`).
    owner: Option<Arc<str>>,
}

/// One heartbeat: to the button's owner when a node named it before, else home, asking to be
/// sent to the owner; a redirect is followed at once. An owner that cannot be reached from
/// here is not asked for again for a while ([`Owners::mark_unreachable`]): the heartbeat goes
/// home without asking, and the node there forwards it. A node's answer is the last word;
/// a node failure moves on, at most [`REDIRECTS_IN_A_ROW_MAX`] + 1 tries in all.
async fn heartbeat(
    home: Failover,
    owners: Owners,
    mut owner: Option<Arc<str>>,
    button_id: String,
) -> Beat {
    let mut asks = true;
    let mut redirected = false;
    let mut last = None;
    for _ in 0..=REDIRECTS_IN_A_ROW_MAX {
        let at = owner.as_deref().map(|url| owners.unary(url));
        let status = match beat(at.as_ref().unwrap_or(&home), &button_id, asks).await {
            Ok(()) => {
                return Beat {
                    taken: true,
                    redirected,
                    owner,
                };
            }
            Err(status) => status,
        };
        if let Some(named) = redirect::owner_of(&status) {
            redirected = true;
            let url = named.url_like(home.current_addr());
            if owners.is_unreachable(&url) {
                owner = None;
                asks = false;
            } else {
                owner = Some(url.into());
            }
        } else if let Some(url) = owner
            .take_if(|_| is_node_failure(&status) || status.code() == tonic::Code::Unimplemented)
        {
            // The owner named is not reached at its address from here (or is gone): home,
            // and forwarded there for a while.
            owners.mark_unreachable(&url);
            asks = false;
        } else if !is_node_failure(&status) {
            // A node's answer (unknown button, wrong token, busy): the last word.
            tracing::debug!(button = %button_id, %status, "devices: heartbeat refused");
            return Beat {
                taken: false,
                redirected,
                owner,
            };
        }
        last = Some(status);
    }
    if let Some(status) = last {
        tracing::debug!(button = %button_id, %status, "devices: heartbeat failed");
    }
    Beat {
        taken: false,
        redirected,
        owner,
    }
}

/// One heartbeat call at `failover`'s node, asking to be sent to the owner when `asks`; a
/// node failure moves `failover` on to its next address.
async fn beat(failover: &Failover, button_id: &str, asks: bool) -> Result<(), tonic::Status> {
    let (channel, addr) = failover.connect().await?;
    let mut request = tonic::Request::new(ButtonHeartbeat {
        button_id: button_id.to_string(),
    });
    if asks {
        redirect::ask_to_follow(&mut request);
    }
    let result = ButtonGatewayClient::with_interceptor(channel, failover.credentials())
        .heartbeat(request)
        .await;
    if let Err(status) = &result
        && is_node_failure(status)
    {
        failover.advance_from(&addr);
    }
    result.map(|_| ())
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
