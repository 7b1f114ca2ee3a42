//! `centinela loadgen`: open-loop load on a node or cluster.
//!
//! Presses are *scheduled* at a fixed rate, whatever happens to earlier ones, and every latency
//! is measured from the scheduled time, not from when a busy client got round to sending: a
//! stall shows up in the numbers instead of silently slowing the load (no coordinated
//! omission). Each press has a unique press id and is retried with the same id (failing over
//! across `--addr`) until acknowledged or its deadline passes; one never acknowledged is `lost`.
//!
//! The generator is also an operator: it follows `Operator.Watch` (incidents only: at a
//! city's size the devices' snapshot alone would delay what it measures), notes when each incident
//! first holds a brigade (press → assigned), and then closes it, so brigades free up and the
//! next presses open new incidents. A no-op `Operator.Ping`, interleaved at a steady rate
//! through the same client path, is the same-run baseline (`baseline_rtt_ms`).
//!
//! Output: a progress line on stderr each second; at the end one JSON object on stdout with
//! `sent`, `acked`, `lost`, `press_to_ack_ms`, `press_to_assigned_ms`, `baseline_rtt_ms` (each
//! with p50 / p99 / p999 / max) and the counts behind them.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_stream::StreamExt;

use centinela_proto::client::{AuthChannel, Failover};
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::operator_event::Event;
use centinela_proto::v1::{self, ListButtonsRequest, PingRequest, PressRequest, WatchRequest};

/// A press not acknowledged this long after its scheduled time is counted lost.
const PRESS_DEADLINE: Duration = Duration::from_secs(10);
/// One attempt of a press; retried (with the same press id) until the deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// After the last press, how long to wait for outstanding assignments.
const DRAIN: Duration = Duration::from_secs(10);
/// Baseline pings per second, interleaved with the load.
const PINGS_PER_S: u64 = 20;
/// Presses in flight at most; beyond it the node is not keeping up and new presses count lost
/// rather than exhausting this process.
const IN_FLIGHT_MAX: usize = 20_000;

#[derive(Args)]
pub struct LoadgenArgs {
    /// Presses per second, spread over the buttons.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// How the generator closes an incident once it is assigned.
    #[arg(long, value_enum, default_value = "handled")]
    close: CloseAs,
}

#[derive(Clone, Copy, ValueEnum)]
enum CloseAs {
    /// Resolve as handled.
    Handled,
    /// Mark as a prank.
    Prank,
    /// Leave open (brigades stay busy: measures queueing).
    None,
}

/// What happened to presses, shared by the tasks.
#[derive(Default)]
struct Tally {
    sent: u64,
    acked: u64,
    lost: u64,
    duplicates: u64,
    in_flight: usize,
    ack_ms: Vec<f64>,
    assigned_ms: Vec<f64>,
    ping_ms: Vec<f64>,
    /// Acknowledged presses whose incident had no brigade yet: (scheduled, acked) by incident.
    waiting: HashMap<String, Vec<(Instant, Instant)>>,
    /// When each incident was first seen holding a brigade.
    assigned_at: HashMap<String, Instant>,
}

impl Tally {
    fn assigned(&mut self, scheduled: Instant, acked: Instant, assigned: Instant) {
        // Assigned can't precede durable: a press that joined an already assigned incident
        // counts from its own acknowledgement.
        let at = assigned.max(acked);
        self.assigned_ms.push(ms(at.duration_since(scheduled)));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the load and returns the report (the caller prints it).
pub async fn run(args: LoadgenArgs, failover: Failover) -> Result<Value, String> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 100_000.0) {
        return Err(format!("--rate must be in (0, 100000], got {}", args.rate));
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        return Err(format!(
            "--duration must be in (0, 86400] seconds, got {}",
            args.duration
        ));
    }
    let creds = failover.credentials();
    let buttons: Vec<String> = crate::client::for_lists(&failover)
        .call(|channel| {
            let creds = creds.clone();
            async move {
                OperatorClient::with_interceptor(channel, creds)
                    .max_decoding_message_size(crate::client::LIST_REPLY_BYTES_MAX)
                    .list_buttons(ListButtonsRequest {})
                    .await
                    .map(|r| r.into_inner().buttons)
            }
        })
        .await
        .map_err(|s| format!("cannot list buttons: {}", s.message()))?
        .into_iter()
        .map(|b| b.id)
        .collect();
    if buttons.is_empty() {
        return Err("the cluster lists no buttons".into());
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(follow_assignments(
        failover.clone(),
        tally.clone(),
        args.close,
        stop_rx.clone(),
    ));
    let pinger = tokio::spawn(ping_baseline(
        failover.clone(),
        tally.clone(),
        stop_rx.clone(),
    ));

    let run_tag = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let total = (args.rate * args.duration).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let mut last_progress = start;
    let mut presses = tokio::task::JoinSet::new();
    for n in 0..total {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled).await;
        {
            let mut t = tally.lock().expect("tally lock");
            t.sent += 1;
            if t.in_flight >= IN_FLIGHT_MAX {
                t.lost += 1;
                continue;
            }
            t.in_flight += 1;
        }
        let button = buttons[(n as usize) % buttons.len()].clone();
        let press_id = format!("lg-{run_tag:x}-{n}");
        presses.spawn(press(
            failover.clone(),
            tally.clone(),
            button,
            press_id,
            scheduled,
        ));
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            progress(&tally, start.elapsed(), args.duration);
        }
        while presses.try_join_next().is_some() {}
    }
    while presses.join_next().await.is_some() {}
    // Let outstanding assignments arrive.
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until && !tally.lock().expect("tally lock").waiting.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let _ = watcher.await;
    let _ = pinger.await;
    progress(&tally, start.elapsed(), args.duration);
    let _ = writeln!(std::io::stderr());

    let mut t = tally.lock().expect("tally lock");
    let unassigned: usize = t.waiting.values().map(Vec::len).sum();
    Ok(json!({
        "rate": args.rate,
        "duration_s": args.duration,
        "sent": t.sent,
        "acked": t.acked,
        "lost": t.lost,
        "duplicates": t.duplicates,
        "unassigned": unassigned,
        "press_to_ack_ms": percentiles(&mut t.ack_ms),
        "press_to_assigned_ms": percentiles(&mut t.assigned_ms),
        "baseline_rtt_ms": percentiles(&mut t.ping_ms),
    }))
}

async fn press(
    failover: Failover,
    tally: Arc<Mutex<Tally>>,
    button: String,
    press_id: String,
    scheduled: Instant,
) {
    let deadline = scheduled + PRESS_DEADLINE;
    let creds = failover.credentials().device_only();
    let reply = loop {
        let attempt = failover.call(|channel| {
            let request = PressRequest {
                button_id: button.clone(),
                press_id: press_id.clone(),
            };
            let creds = creds.clone();
            async move {
                ButtonGatewayClient::with_interceptor(channel, creds)
                    .press(request)
                    .await
                    .map(|r| r.into_inner())
            }
        });
        match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
            Ok(Ok(reply)) => break Some(reply),
            Ok(Err(status)) if !centinela_proto::client::is_node_failure(&status) => {
                tracing::warn!(%button, %status, "press refused");
                break None;
            }
            _ if Instant::now() >= deadline => break None,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let acked = Instant::now();
    let mut t = tally.lock().expect("tally lock");
    t.in_flight -= 1;
    let Some(reply) = reply else {
        t.lost += 1;
        return;
    };
    t.acked += 1;
    if reply.duplicate {
        t.duplicates += 1;
    }
    t.ack_ms.push(ms(acked.duration_since(scheduled)));
    match t.assigned_at.get(&reply.incident_id).copied() {
        Some(assigned) => t.assigned(scheduled, acked, assigned),
        None => t
            .waiting
            .entry(reply.incident_id)
            .or_default()
            .push((scheduled, acked)),
    }
}

/// Follows the operator feed (reopening it on another node if it breaks): records the first
/// time each incident holds a brigade and closes it.
async fn follow_assignments(
    failover: Failover,
    tally: Arc<Mutex<Tally>>,
    close: CloseAs,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Signed in (a node that enforces credentials): act as that operator, whose id an
    // `operator_id` must not contradict; on an open node: as "loadgen".
    let operator_id = if failover.credentials().has_operator() {
        ""
    } else {
        "loadgen"
    };
    loop {
        let opened = async {
            let (channel, addr) = failover.connect().await?;
            let mut client = OperatorClient::with_interceptor(channel, failover.credentials());
            let stream = client
                .watch(WatchRequest {
                    include_closed: false,
                    incidents_only: true,
                })
                .await?
                .into_inner();
            Ok::<_, tonic::Status>((client, stream, addr))
        };
        let (client, mut stream, addr) = tokio::select! {
            opened = opened => match opened {
                Ok(opened) => opened,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                _ = stop.changed() => return,
            };
            let Some(Ok(event)) = event else {
                failover.advance_from(&addr);
                break;
            };
            if let Some(Event::Incident(incident)) = event.event
                && !incident.units.is_empty()
                && incident.state != v1::IncidentState::Closed as i32
            {
                first_assignment(&tally, &client, incident.id, close, operator_id);
            }
        }
    }
}

fn first_assignment(
    tally: &Arc<Mutex<Tally>>,
    client: &OperatorClient<AuthChannel>,
    incident: String,
    close: CloseAs,
    operator_id: &str,
) {
    let now = Instant::now();
    {
        let mut t = tally.lock().expect("tally lock");
        if t.assigned_at.contains_key(&incident) {
            return;
        }
        t.assigned_at.insert(incident.clone(), now);
        for (scheduled, acked) in t.waiting.remove(&incident).unwrap_or_default() {
            t.assigned(scheduled, acked, now);
        }
    }
    let mut client = client.clone();
    let operator_id = operator_id.to_string();
    tokio::spawn(async move {
        let result = match close {
            CloseAs::None => return,
            CloseAs::Prank => client
                .mark_prank(v1::MarkPrankRequest {
                    incident_id: incident,
                    operator_id,
                })
                .await
                .map(|_| ()),
            CloseAs::Handled => client
                .resolve(v1::ResolveRequest {
                    incident_id: incident,
                    operator_id,
                    resolution: v1::Resolution::Handled as i32,
                })
                .await
                .map(|_| ()),
        };
        if let Err(status) = result
            && status.code() != tonic::Code::FailedPrecondition
        {
            tracing::debug!(%status, "closing an incident failed");
        }
    });
}

async fn ping_baseline(
    failover: Failover,
    tally: Arc<Mutex<Tally>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / PINGS_PER_S));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let creds = failover.credentials();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let sent = Instant::now();
        let result = failover
            .call(|channel| {
                let creds = creds.clone();
                async move {
                    OperatorClient::with_interceptor(channel, creds)
                        .ping(PingRequest {})
                        .await
                }
            })
            .await;
        if result.is_ok() {
            tally
                .lock()
                .expect("tally lock")
                .ping_ms
                .push(ms(sent.elapsed()));
        }
    }
}

fn progress(tally: &Arc<Mutex<Tally>>, elapsed: Duration, duration: f64) {
    let t = tally.lock().expect("tally lock");
    let done = (elapsed.as_secs_f64() / duration).min(1.0);
    let width = 30;
    let filled = (done * width as f64) as usize;
    // Progress is a courtesy: a closed stderr does not stop the load.
    let _ = write!(
        std::io::stderr(),
        "\r[{}{}] {:>5.1}s  sent {}  acked {}  lost {}  in flight {}  assigned {}   ",
        "=".repeat(filled),
        " ".repeat(width - filled),
        elapsed.as_secs_f64(),
        t.sent,
        t.acked,
        t.lost,
        t.in_flight,
        t.assigned_ms.len()
    );
}

/// p50 / p99 / p999 / max (nearest rank), and the sample count.
fn percentiles(samples: &mut [f64]) -> Value {
    if samples.is_empty() {
        return json!({ "count": 0 });
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = ((samples.len() as f64) * q).ceil().max(1.0) as usize;
        let value = samples[rank.min(samples.len()) - 1];
        (value * 1000.0).round() / 1000.0
    };
    json!({
        "count": samples.len(),
        "p50": at(0.50),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": at(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<f64> = (1..=1000).map(f64::from).collect();
        let p = percentiles(&mut samples);
        assert_eq!(p["p50"], 500.0);
        assert_eq!(p["p99"], 990.0);
        assert_eq!(p["p999"], 999.0);
        assert_eq!(p["max"], 1000.0);
        assert_eq!(percentiles(&mut [])["count"], 0);
    }
}
