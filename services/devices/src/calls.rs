//! The simulated buttons' calls: a field intercom calls the call center when it is pressed,
//! so a simulated button calls the node's gateway when a press of its opens an incident
//! (whoever pressed it: the simulator's random presses, `centinela press B01`, the console's
//! test press). It learns of the incidents from the operator API's `Watch` stream, the same
//! one the console shows; the call ([`crate::sip_call`]) talks for [`TALK_TIME`] unless
//! someone hangs up first, and ends when its incident closes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;

use centinela_proto::client::{Failover, is_node_failure};
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::operator_event::Event;
use centinela_proto::v1::{Incident, IncidentState, WatchRequest};

use crate::limits::{CALLED_INCIDENTS_REMEMBERED, FRESH_PRESS, SIM_CALLS_MAX, TALK_TIME};
use crate::sip_call::{self, CallOptions, CallStats};
use crate::{backoff, sleep_or_stop};

/// Where the simulated buttons call, and with which password.
#[derive(Debug, Clone)]
pub struct SipCalls {
    /// The node's gateway (its `--sip`).
    pub gateway: SocketAddr,
    /// Every button's SIP password: the shared device token (the devices file's per-button
    /// passwords are not the simulator's to know). `None`: calls without credentials, which
    /// an open node without a token accepts.
    pub password: Option<String>,
    /// How long a call talks before the button hangs up.
    pub talk: Duration,
}

impl SipCalls {
    pub fn new(gateway: SocketAddr, password: Option<String>) -> Self {
        Self {
            gateway,
            password,
            talk: TALK_TIME,
        }
    }
}

/// A button in a call: the incident it called about, and how to hang it up.
struct Active {
    incident: String,
    stop: watch::Sender<bool>,
}

struct Caller {
    buttons: HashSet<String>,
    sip: SipCalls,
    rng: StdRng,
    active: HashMap<String, Active>,
    /// Incidents already called about, oldest first.
    called: VecDeque<String>,
    tasks: JoinSet<String>,
}

/// Places the buttons' calls until `stop`.
pub async fn run(
    buttons: Vec<String>,
    failover: Failover,
    sip: SipCalls,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut caller = Caller {
        buttons: buttons.into_iter().collect(),
        sip,
        rng: StdRng::seed_from_u64(seed),
        active: HashMap::new(),
        called: VecDeque::new(),
        tasks: JoinSet::new(),
    };
    let mut attempt = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        match caller.watch(&failover, &mut stop).await {
            Ok(()) => break,
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                ) =>
            {
                tracing::warn!(%status, "devices: buttons will not call: watching the incidents needs an operator's credentials");
                break;
            }
            Err(status) => {
                tracing::debug!(%status, "devices: incident watch lost (button calls)");
            }
        }
        attempt += 1;
        if sleep_or_stop(backoff(attempt), &mut stop).await {
            break;
        }
    }
    // Every call hangs up (its BYE is sent) before the simulator stops.
    for active in caller.active.values() {
        let _ = active.stop.send(true);
    }
    while caller.tasks.join_next().await.is_some() {}
}

impl Caller {
    /// One `Watch` stream: `Ok` once stopped.
    async fn watch(
        &mut self,
        failover: &Failover,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), tonic::Status> {
        let (channel, addr) = failover.connect().await?;
        let mut client = OperatorClient::with_interceptor(channel, failover.credentials());
        let opened = client
            .watch(WatchRequest {
                include_closed: false,
                incidents_only: true,
            })
            .await;
        let mut events = match opened {
            Ok(stream) => stream.into_inner(),
            Err(status) => {
                if is_node_failure(&status) {
                    failover.advance_from(&addr);
                }
                return Err(status);
            }
        };
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        if let Some(Event::Incident(incident)) = event.event {
                            self.on_incident(&incident);
                        }
                    }
                    Some(Err(status)) => {
                        if is_node_failure(&status) {
                            failover.advance_from(&addr);
                        }
                        return Err(status);
                    }
                    None => return Err(tonic::Status::unavailable("the watch stream ended")),
                },
                Some(finished) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok(button) = finished {
                        self.active.remove(&button);
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    fn on_incident(&mut self, incident: &Incident) {
        let closed =
            incident.state == IncidentState::Closed as i32 || incident.closed_at_ms.is_some();
        if closed {
            if let Some(active) = self.active.get(&incident.button)
                && active.incident == incident.id
            {
                let _ = active.stop.send(true);
            }
            return;
        }
        let fresh =
            now_ms().saturating_sub(incident.created_at_ms) <= FRESH_PRESS.as_millis() as u64;
        let place = incident.state == IncidentState::New as i32
            && fresh
            && self.buttons.contains(&incident.button)
            && !self.active.contains_key(&incident.button)
            && !self.called.contains(&incident.id);
        if !place {
            return;
        }
        if self.active.len() >= SIM_CALLS_MAX {
            tracing::info!(button = %incident.button, incident = %incident.id, "devices: too many simulated calls at once; this press does not call");
            return;
        }
        self.called.push_back(incident.id.clone());
        if self.called.len() > CALLED_INCIDENTS_REMEMBERED {
            self.called.pop_front();
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        self.active.insert(
            incident.button.clone(),
            Active {
                incident: incident.id.clone(),
                stop: stop_tx,
            },
        );
        let options = CallOptions {
            gateway: self.sip.gateway,
            button: incident.button.clone(),
            password: self.sip.password.clone(),
            talk: self.sip.talk,
            seed: self.rng.random(),
        };
        let incident_id = incident.id.clone();
        self.tasks.spawn(async move {
            let stats = Arc::new(CallStats::default());
            tracing::info!(button = %options.button, incident = %incident_id, gateway = %options.gateway, "devices: button calling the node");
            match sip_call::call(&options, &stats, stop_rx).await {
                Ok(report) => tracing::info!(
                    button = %options.button,
                    incident = %incident_id,
                    ended = ?report.ended,
                    rtp_sent = report.rtp_sent,
                    rtp_received = report.rtp_received,
                    "devices: button call over"
                ),
                Err(e) => tracing::warn!(button = %options.button, incident = %incident_id, error = %e, "devices: button call failed"),
            }
            options.button
        });
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
