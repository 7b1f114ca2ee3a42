//! Press latency on a running node, closed loop: press a button, wait until the operator feed
//! shows the incident with a brigade assigned, mark it a prank (freeing the brigade), repeat.
//! A no-op `Ping` before each press is the same-run baseline of one gRPC round trip.
//!
//! ```text
//! centinela demo --quiet-sim &            # or any node
//! cargo run --release -p centinela-cli --example press_latency -- http://127.0.0.1:7400 200
//! ```
//! Prints one JSON object: press → ack (durable), press → assigned (seen on the operator
//! feed), and the ping baseline, each as p50 / p90 / p99 / max in milliseconds. Not a load
//! test: one press at a time, so it measures the unloaded critical path (`centinela loadgen`
//! is the open-loop load generator).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_stream::StreamExt;

use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::operator_event::Event;
use centinela_proto::v1::{
    ListButtonsRequest, MarkPrankRequest, PingRequest, PressRequest, WatchRequest,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7400".into());
    let presses: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);

    let channel = centinela_proto::client::endpoint(&addr)?.connect().await?;
    let mut operator = OperatorClient::new(channel.clone());
    let mut buttons = ButtonGatewayClient::new(channel);
    let button_ids: Vec<String> = operator
        .list_buttons(ListButtonsRequest {})
        .await?
        .into_inner()
        .buttons
        .into_iter()
        .map(|b| b.id)
        .collect();

    // The feed: incident id -> when it was first seen with a unit.
    let mut feed = operator
        .watch(WatchRequest {
            include_closed: false,
            incidents_only: true,
        })
        .await?
        .into_inner();
    loop {
        match feed.next().await {
            Some(Ok(event)) if matches!(event.event, Some(Event::SnapshotDone(_))) => break,
            Some(Ok(_)) => {}
            other => return Err(format!("feed ended before its snapshot: {other:?}").into()),
        }
    }

    let run = std::process::id();
    let (mut ack_ms, mut assigned_ms, mut ping_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut assigned_at: HashMap<String, Instant> = HashMap::new();
    for n in 0..presses {
        let started = Instant::now();
        operator.ping(PingRequest {}).await?;
        ping_ms.push(ms(started.elapsed()));

        let button = &button_ids[n % button_ids.len()];
        let pressed = Instant::now();
        let reply = buttons
            .press(PressRequest {
                button_id: button.clone(),
                press_id: format!("latency-{run}-{n}"),
            })
            .await?
            .into_inner();
        ack_ms.push(ms(pressed.elapsed()));
        if reply.duplicate {
            return Err(format!(
                "press {n} on {button} merged into an open incident; run on a quiet node"
            )
            .into());
        }
        let deadline = pressed + Duration::from_secs(30);
        while !assigned_at.contains_key(&reply.incident_id) {
            let next = tokio::time::timeout_at(deadline.into(), feed.next()).await;
            match next {
                Ok(Some(Ok(event))) => {
                    if let Some(Event::Incident(incident)) = event.event
                        && !incident.units.is_empty()
                    {
                        assigned_at.entry(incident.id).or_insert_with(Instant::now);
                    }
                }
                Ok(other) => return Err(format!("feed ended: {other:?}").into()),
                Err(_) => {
                    return Err(
                        format!("incident {} not assigned within 30 s", reply.incident_id).into(),
                    );
                }
            }
        }
        assigned_ms.push(ms(assigned_at[&reply.incident_id].duration_since(pressed)));
        operator
            .mark_prank(MarkPrankRequest {
                incident_id: reply.incident_id,
                operator_id: "latency-harness".into(),
            })
            .await?;
    }
    println!(
        "{}",
        serde_json::json!({
            "addr": addr,
            "presses": presses,
            "press_to_ack_ms": summary(&mut ack_ms),
            "press_to_assigned_ms": summary(&mut assigned_ms),
            "baseline_ping_ms": summary(&mut ping_ms),
        })
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(samples: &mut [f64]) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        (samples[index] * 1000.0).round() / 1000.0
    };
    serde_json::json!({ "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0) })
}
