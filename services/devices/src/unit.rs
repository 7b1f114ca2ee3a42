//! A simulated brigade terminal: position reports, the assignment channel, and the drive to
//! the scene and back.

use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio_stream::StreamExt;

use centinela_proto::client::AuthChannel;
use centinela_proto::redirect;
use centinela_proto::v1::assignment_event::Event;
use centinela_proto::v1::unit_gateway_client::UnitGatewayClient;
use centinela_proto::v1::{
    AssignmentAck, LatLon, PositionReport, Resolution, Unit, UnitMode, UnitStatus,
    UnitStatusUpdate, UnitSubscribe,
};

use crate::route::{Route, is_node_failure};
use crate::{SimOptions, geo, sleep_or_stop};

/// How far from its post a unit wanders while patrolling.
const PATROL_RADIUS_M: f64 = 150.0;

/// Urban speeds, in step with the dispatcher's estimates (centinela-core's `Mode`).
fn speed_mps(mode: UnitMode) -> f64 {
    match mode {
        UnitMode::Foot | UnitMode::Unspecified => 1.4,
        UnitMode::Motorcycle => 8.3,
        UnitMode::Car => 6.9,
    }
}

/// What the terminal is doing.
#[derive(Clone, Debug, PartialEq)]
enum Job {
    Patrol,
    /// Assigned: acknowledge once `ack_at` has passed.
    Assigned {
        incident: String,
        target: LatLon,
        ack_at: tokio::time::Instant,
    },
    EnRoute {
        incident: String,
        target: LatLon,
    },
    OnScene {
        incident: String,
        until: tokio::time::Instant,
    },
}

pub struct Terminal {
    id: String,
    mode: UnitMode,
    post: LatLon,
    position: LatLon,
    patrol_target: LatLon,
    job: Job,
    /// The current job's trace context, echoed with every report about it.
    trace: Option<String>,
    /// Where the terminal's calls go: the unit's owner once a node named it.
    route: Route,
    options: SimOptions,
    rng: StdRng,
}

impl Terminal {
    pub fn new(unit: Unit, route: Route, options: SimOptions, rng: StdRng) -> Self {
        let post = unit.position.unwrap_or(LatLon { lat: 0.0, lon: 0.0 });
        // A unit the node already lists as busy picks its job up again from its assignment
        // channel: the node re-sends an unacknowledged assignment on subscribe.
        Self {
            id: unit.id,
            mode: UnitMode::try_from(unit.mode).unwrap_or(UnitMode::Foot),
            post,
            position: post,
            patrol_target: post,
            job: Job::Patrol,
            trace: None,
            route,
            options,
            rng,
        }
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let status = match self.session(&mut stop).await {
                Ok(()) => return,
                Err(status) => status,
            };
            tracing::debug!(unit = %self.id, %status, "devices: unit channel lost");
            crate::lost::count(&status);
            if self.route.after(&self.id, &status) {
                continue;
            }
            let pause = self.route.pause(&self.id, &status);
            if sleep_or_stop(pause, &mut stop).await {
                return;
            }
        }
    }

    /// One connection to a node: the assignment channel plus the movement clock.
    async fn session(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), tonic::Status> {
        let failover = self.route.failover().clone();
        let (channel, addr) = failover.connect().await?;
        let mut client = UnitGatewayClient::with_interceptor(channel, failover.credentials());
        let result = self.serve(&mut client, stop).await;
        if let Err(status) = &result
            && is_node_failure(status)
        {
            failover.advance_from(&addr);
        }
        result
    }

    async fn serve(
        &mut self,
        client: &mut UnitGatewayClient<AuthChannel>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), tonic::Status> {
        let mut subscribe = tonic::Request::new(UnitSubscribe {
            unit_id: self.id.clone(),
        });
        if self.route.asks() {
            redirect::ask_to_follow(&mut subscribe);
        }
        let mut events = client.assignments(subscribe).await?.into_inner();
        self.route.served();
        let mut tick = tokio::time::interval(self.options.position_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    None => return Err(tonic::Status::unavailable("assignment channel closed")),
                    Some(event) => self.on_event(event?.event),
                },
                _ = tick.tick() => self.on_tick(client).await?,
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    fn on_event(&mut self, event: Option<Event>) {
        match event {
            Some(Event::Assignment(assignment)) => {
                let Some(target) = assignment.position else {
                    tracing::warn!(unit = %self.id, "devices: assignment without a position");
                    return;
                };
                tracing::info!(
                    unit = %self.id,
                    incident = %assignment.incident_id,
                    eta_s = assignment.eta_s,
                    "devices: unit assigned"
                );
                self.trace = assignment.traceparent.clone();
                self.job = Job::Assigned {
                    incident: assignment.incident_id,
                    target,
                    ack_at: tokio::time::Instant::now() + self.options.ack_delay,
                };
            }
            Some(Event::Cancellation(cancel))
                if self.current_incident() == Some(cancel.incident_id.as_str()) =>
            {
                tracing::info!(
                    unit = %self.id,
                    incident = %cancel.incident_id,
                    reason = %cancel.reason,
                    "devices: assignment cancelled"
                );
                self.job = Job::Patrol;
            }
            Some(Event::Cancellation(_)) | None => {}
        }
    }

    fn current_incident(&self) -> Option<&str> {
        match &self.job {
            Job::Patrol => None,
            Job::Assigned { incident, .. }
            | Job::EnRoute { incident, .. }
            | Job::OnScene { incident, .. } => Some(incident),
        }
    }

    /// One movement step, the status changes it causes, and a position report.
    async fn on_tick(
        &mut self,
        client: &mut UnitGatewayClient<AuthChannel>,
    ) -> Result<(), tonic::Status> {
        let step_m = speed_mps(self.mode)
            * self.options.position_interval.as_secs_f64()
            * self.options.speedup;
        let now = tokio::time::Instant::now();
        match self.job.clone() {
            Job::Patrol => {
                if geo::distance_m(&self.position, &self.patrol_target) < 1.0 {
                    let east = self.rng.random_range(-PATROL_RADIUS_M..PATROL_RADIUS_M);
                    let north = self.rng.random_range(-PATROL_RADIUS_M..PATROL_RADIUS_M);
                    self.patrol_target = geo::offset(&self.post, east, north);
                }
                // Patrols move at walking pace whatever their mode.
                let patrol_step = step_m.min(1.4 * self.options.position_interval.as_secs_f64());
                self.position = geo::step_towards(&self.position, &self.patrol_target, patrol_step);
            }
            Job::Assigned {
                incident,
                target,
                ack_at,
            } if now >= ack_at => {
                if self.acknowledge(client, &incident).await? {
                    self.update(client, UnitStatus::EnRoute, &incident).await?;
                    self.job = Job::EnRoute { incident, target };
                }
            }
            Job::Assigned { .. } => {}
            Job::EnRoute { incident, target } => {
                self.position = geo::step_towards(&self.position, &target, step_m);
                if geo::distance_m(&self.position, &target) < 1.0 {
                    self.report_position(client).await?;
                    self.update(client, UnitStatus::OnScene, &incident).await?;
                    let dwell = self.options.on_scene_dwell.div_f64(self.options.speedup);
                    self.job = Job::OnScene {
                        incident,
                        until: now + dwell,
                    };
                }
            }
            Job::OnScene { incident, until } if now >= until => {
                self.update(client, UnitStatus::Available, &incident)
                    .await?;
                self.job = Job::Patrol;
            }
            Job::OnScene { .. } => {}
        }
        self.report_position(client).await
    }

    async fn report_position(
        &mut self,
        client: &mut UnitGatewayClient<AuthChannel>,
    ) -> Result<(), tonic::Status> {
        client
            .report_position(PositionReport {
                unit_id: self.id.clone(),
                position: Some(self.position),
            })
            .await?;
        Ok(())
    }

    /// Acknowledges the assignment to `incident`; false when the node refused it (the
    /// incident was closed before the acknowledgement, its cancellation still on the way):
    /// as with a refused status update, the job ends and the session goes on.
    async fn acknowledge(
        &mut self,
        client: &mut UnitGatewayClient<AuthChannel>,
        incident: &str,
    ) -> Result<bool, tonic::Status> {
        let ack = AssignmentAck {
            unit_id: self.id.clone(),
            incident_id: incident.to_string(),
        };
        let result = client.acknowledge(traced(ack, &self.trace)).await;
        self.unless_refused(result, incident, "acknowledgement")
    }

    /// Reports a status change. A refusal (the incident was closed meanwhile, say) ends the
    /// job instead of the session: the node is the source of truth.
    async fn update(
        &mut self,
        client: &mut UnitGatewayClient<AuthChannel>,
        status: UnitStatus,
        incident: &str,
    ) -> Result<(), tonic::Status> {
        let result = client
            .update_status(traced(
                UnitStatusUpdate {
                    unit_id: self.id.clone(),
                    status: status as i32,
                    incident_id: Some(incident.to_string()),
                    // How the simulated officer leaves the scene: handled.
                    outcome: (status == UnitStatus::Available)
                        .then_some(Resolution::Handled as i32),
                    note: None,
                },
                &self.trace,
            ))
            .await;
        self.unless_refused(result, incident, "status update")
            .map(|_| ())
    }

    /// What a call about `incident`'s job came to: true if done; false if the node refused it
    /// (the job ends, the unit goes back to patrol, the session goes on); `Err` for a node
    /// failure, which ends the session.
    fn unless_refused<T>(
        &mut self,
        result: Result<T, tonic::Status>,
        incident: &str,
        call: &str,
    ) -> Result<bool, tonic::Status> {
        match result {
            Ok(_) => Ok(true),
            Err(status) if is_node_failure(&status) => Err(status),
            Err(refused) => {
                tracing::info!(
                    unit = %self.id,
                    incident,
                    call,
                    status = %refused.message(),
                    "devices: refused; back to patrol"
                );
                self.job = Job::Patrol;
                Ok(false)
            }
        }
    }
}

/// A request carrying the job's `traceparent`, so the node joins it to the press's trace.
pub(crate) fn traced<T>(message: T, trace: &Option<String>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = trace.as_deref().and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert("traceparent", value);
    }
    request
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use rand::SeedableRng;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;
    use tonic::{Request, Response, Status};

    use centinela_proto::client::{Credentials, Failover};
    use centinela_proto::v1::unit_gateway_server::{UnitGateway, UnitGatewayServer};
    use centinela_proto::v1::{
        Assignment, AssignmentAckReply, AssignmentEvent, PositionReply, UnitStatusReply,
    };

    use super::*;
    use crate::route::Owners;

    /// The sending side of a subscriber's assignment stream.
    type Events = mpsc::Sender<Result<AssignmentEvent, Status>>;

    /// A unit gateway that assigns every subscriber incident I-1 and refuses its
    /// acknowledgement, as a node does when the incident was closed first: what a terminal
    /// makes of that is the test. Counts what it is sent.
    #[derive(Clone, Default)]
    struct ClosedFirst {
        subscribes: Arc<AtomicUsize>,
        acks: Arc<AtomicUsize>,
        positions: Arc<AtomicUsize>,
        /// Positions reported after the first refused acknowledgement.
        positions_after_ack: Arc<AtomicUsize>,
        /// The open streams' senders, kept so the streams stay open.
        streams: Arc<std::sync::Mutex<Vec<Events>>>,
    }

    #[tonic::async_trait]
    impl UnitGateway for ClosedFirst {
        async fn report_position(
            &self,
            _: Request<PositionReport>,
        ) -> Result<Response<PositionReply>, Status> {
            self.positions.fetch_add(1, Ordering::SeqCst);
            if self.acks.load(Ordering::SeqCst) > 0 {
                self.positions_after_ack.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Response::new(PositionReply::default()))
        }

        type AssignmentsStream = ReceiverStream<Result<AssignmentEvent, Status>>;

        async fn assignments(
            &self,
            _: Request<UnitSubscribe>,
        ) -> Result<Response<Self::AssignmentsStream>, Status> {
            self.subscribes.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = mpsc::channel(4);
            let assignment = Assignment {
                incident_id: "I-1".into(),
                position: Some(LatLon {
                    lat: -12.05,
                    lon: -77.03,
                }),
                ..Default::default()
            };
            tx.send(Ok(AssignmentEvent {
                event: Some(Event::Assignment(assignment)),
            }))
            .await
            .expect("the stream's receiver is here");
            self.streams.lock().unwrap().push(tx);
            Ok(Response::new(ReceiverStream::new(rx)))
        }

        async fn acknowledge(
            &self,
            _: Request<AssignmentAck>,
        ) -> Result<Response<AssignmentAckReply>, Status> {
            self.acks.fetch_add(1, Ordering::SeqCst);
            Err(Status::failed_precondition(
                "brigade U01 is not assigned to incident I-1 (it is available)",
            ))
        }

        async fn update_status(
            &self,
            _: Request<UnitStatusUpdate>,
        ) -> Result<Response<UnitStatusReply>, Status> {
            Err(Status::failed_precondition("no status change expected"))
        }
    }

    /// A terminal whose acknowledgement is refused goes back to patrol on the same channel:
    /// it neither hangs up nor subscribes again (at a city's size, thousands of terminals
    /// reconnecting at once, each redirected to its owner, stalled the nodes).
    #[tokio::test]
    async fn a_refused_acknowledgement_keeps_the_channel() {
        let gateway = ClosedFirst::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(UnitGatewayServer::new(gateway.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let home = Failover::new(
            vec![format!("http://{addr}")],
            Credentials::new(None).unwrap(),
        );
        let route = Route::new(home.clone(), Owners::new(&home));
        let options = SimOptions {
            ack_delay: Duration::from_millis(20),
            position_interval: Duration::from_millis(20),
            ..SimOptions::default()
        };
        let unit = Unit {
            id: "U01".into(),
            position: Some(LatLon {
                lat: -12.046,
                lon: -77.030,
            }),
            ..Default::default()
        };
        let terminal = Terminal::new(unit, route, options, StdRng::seed_from_u64(1));
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(terminal.run(stopped));

        // Generous: a busy machine may run the 20 ms ticks late, never early.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while gateway.positions_after_ack.load(Ordering::SeqCst) < 10 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the terminal went on reporting after its refused acknowledgement"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(gateway.acks.load(Ordering::SeqCst), 1, "acknowledged once");
        assert_eq!(
            gateway.subscribes.load(Ordering::SeqCst),
            1,
            "the assignment channel was kept"
        );
        stop.send(true).unwrap();
        running.await.unwrap();
        server.abort();
    }
}
