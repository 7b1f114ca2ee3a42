//! One actor per brigade (Serenazgo unit): the bridge between the brigade's terminal and the
//! store. It pushes assignments and cancellations to the terminal, records acknowledgements
//! and status changes (en route, on scene, clear), and keeps the brigade's position current.

use std::sync::Arc;

use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use centinela_core::brigade::{Brigade, BrigadeStatus, IncidentStep, Report, ReportError};
use centinela_core::dispatch::{StraightLine, TravelTime};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, IncidentId};
use centinela_core::time::Timestamp;
use centinela_records as records;

use centinela_telemetry::{metrics, propagation};
use tracing::Instrument;

use crate::device::DeviceChannel;
use crate::dispatcher::Assignment;
use crate::entity::{Delivery, Entity, EntityMsg, Reply, Request};
use crate::error::Error;
use crate::registry::Registry;
use crate::router::Router;
use crate::{Context, limits};

/// What the node tells a brigade terminal.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum TerminalEvent {
    Assigned(Assignment),
    Cancelled {
        incident: IncidentId,
        reason: String,
    },
}

/// What a brigade is asked, from any node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrigadeRequest {
    /// The dispatcher's assignment, for the terminal.
    #[serde(rename = "brigade_assign")]
    Assign { assignment: Assignment },
    /// The brigade was released from `incident`; the terminal drops the job.
    #[serde(rename = "brigade_cancel")]
    Cancel {
        incident: IncidentId,
        reason: String,
    },
    /// The terminal's position report.
    #[serde(rename = "brigade_position")]
    Position { position: Position },
    /// The terminal acknowledges its assignment; answered with the brigade.
    #[serde(rename = "brigade_ack")]
    Ack { incident: IncidentId },
    /// The terminal reports a status (en route, on scene, available, out of service);
    /// answered with the brigade.
    #[serde(rename = "brigade_status")]
    Status {
        status: BrigadeStatus,
        incident: Option<IncidentId>,
    },
}

impl Request for BrigadeRequest {
    type Entity = BrigadeActor;

    fn delivery(&self) -> Delivery {
        match self {
            // Not waited for: the ack timeout replaces a brigade that never hears of it.
            BrigadeRequest::Assign { .. } => Delivery::tell("assignment"),
            BrigadeRequest::Cancel { .. } => Delivery::tell("cancellation"),
            BrigadeRequest::Position { .. } => Delivery::call("position report"),
            BrigadeRequest::Ack { .. } => Delivery::call("assignment ack"),
            BrigadeRequest::Status { .. } => Delivery::call("status update"),
        }
    }
}

/// What a brigade actor tells itself.
pub enum BrigadeMsg {
    /// The terminal's assignment channel, connected to this node or proxied from another.
    Attach {
        events: mpsc::Sender<TerminalEvent>,
        reply: RpcReplyPort<Result<Brigade, Error>>,
    },
    Detached {
        generation: u64,
    },
    /// The terminal has been away for the grace period.
    TerminalGraceOver {
        generation: u64,
    },
}

/// One brigade's actor state.
pub struct BrigadeActor {
    ctx: Arc<Context>,
    id: BrigadeId,
    brigade: Brigade,
    terminal: DeviceChannel<TerminalEvent>,
    /// The incident the terminal was last sent (and not told to drop): keeps the terminal's
    /// view in order when a release and a new assignment race each other.
    job: Option<IncidentId>,
    /// Latest reported position not yet written to the store.
    unsaved_position: Option<Position>,
    position_persisted: Option<Timestamp>,
}

type Myself = ActorRef<EntityMsg<BrigadeActor>>;

impl Entity for BrigadeActor {
    const KIND: &'static str = "brigade";
    type Id = BrigadeId;
    type Record = Brigade;
    type Request = BrigadeRequest;
    type Internal = BrigadeMsg;

    fn registry(router: &Router) -> &Registry<BrigadeId, EntityMsg<Self>> {
        &router.brigades
    }

    async fn start(
        ctx: Arc<Context>,
        brigade: Brigade,
        _myself: &Myself,
    ) -> Result<Self, ActorProcessingErr> {
        Ok(BrigadeActor {
            ctx,
            id: brigade.id.clone(),
            brigade,
            terminal: DeviceChannel::default(),
            job: None,
            unsaved_position: None,
            position_persisted: None,
        })
    }

    async fn request(&mut self, _myself: &Myself, request: BrigadeRequest, reply: Reply) {
        match request {
            BrigadeRequest::Assign { assignment } => {
                self.assign(assignment).await;
                reply.send(Ok(()));
            }
            BrigadeRequest::Cancel { incident, reason } => {
                self.cancel(incident, reason).await;
                reply.send(Ok(()));
            }
            BrigadeRequest::Position { position } => reply.send(self.position(position).await),
            BrigadeRequest::Ack { incident } => reply.send(self.ack(incident).await),
            BrigadeRequest::Status { status, incident } => {
                reply.send(self.status(status, incident).await);
            }
        }
    }

    async fn internal(&mut self, myself: &Myself, message: BrigadeMsg) {
        match message {
            BrigadeMsg::Attach { events, reply } => {
                let _ = reply.send(self.attach(myself, events).await);
            }
            BrigadeMsg::Detached { generation } => {
                if self.terminal.detach(generation) {
                    tracing::warn!(brigade = %self.id, "terminal disconnected");
                    myself.send_after(limits::TERMINAL_GRACE, move || {
                        EntityMsg::Internal(BrigadeMsg::TerminalGraceOver { generation })
                    });
                }
            }
            BrigadeMsg::TerminalGraceOver { generation } => self.grace_over(generation).await,
        }
    }
}

impl BrigadeActor {
    /// Re-reads the brigade from the store (the dispatcher and operators change it too).
    async fn refresh(&mut self) {
        match self.ctx.records.brigade(&self.id).await {
            Ok(Some(brigade)) => self.brigade = brigade,
            Ok(None) => tracing::error!(brigade = %self.id, "brigade vanished from the store"),
            Err(e) => tracing::warn!(brigade = %self.id, error = %e, "brigade refresh failed"),
        }
    }

    async fn assign(&mut self, mut assignment: Assignment) {
        let span = tracing::info_span!(
            "brigade.notify",
            brigade = %self.id,
            incident = %assignment.incident
        );
        // The terminal sends this back with its ack: the ack joins the press's trace.
        assignment.trace = span.in_scope(propagation::traceparent);
        self.assign_traced(assignment).instrument(span).await;
    }

    async fn assign_traced(&mut self, assignment: Assignment) {
        self.refresh().await;
        tracing::info!(brigade = %self.id, incident = %assignment.incident, eta_s = assignment.eta.as_secs(), "assignment to terminal");
        // The release of the previous job commits before this assignment, but its
        // cancellation travels on another path and may come later: send it first.
        if let Some(previous) = self.job.take()
            && previous != assignment.incident
        {
            self.push(TerminalEvent::Cancelled {
                incident: previous,
                reason: format!("released; reassigned to {}", assignment.incident),
            });
        }
        self.job = Some(assignment.incident.clone());
        self.push(TerminalEvent::Assigned(assignment));
    }

    async fn cancel(&mut self, incident: IncidentId, reason: String) {
        self.refresh().await;
        if self.job.as_ref().is_some_and(|job| *job != incident) {
            return; // already superseded (and cancelled) by a newer assignment
        }
        self.job = None;
        self.push(TerminalEvent::Cancelled { incident, reason });
    }

    fn push(&mut self, event: TerminalEvent) {
        // Not lost when undelivered: the store holds the job, re-sent when the terminal
        // reconnects.
        if let Err(reason) = self.terminal.send(event) {
            tracing::warn!(brigade = %self.id, reason, "terminal event not delivered now");
        }
    }

    async fn attach(
        &mut self,
        myself: &Myself,
        events: mpsc::Sender<TerminalEvent>,
    ) -> Result<Brigade, Error> {
        // One live assignment stream per unit: a second subscriber would silently take the
        // jobs from the real terminal. A terminal reconnecting after a network drop is not
        // locked out by its own dead stream for long: HTTP/2 keep-alive closes the dead
        // connection within seconds (its stream's receiver is then dropped: not live), and
        // the terminal retries (docs/security.md, "Connections and streams").
        if self.terminal.is_live() {
            tracing::warn!(brigade = %self.id, "second terminal stream refused: the unit already has a live one");
            return Err(Error::Busy(format!(
                "unit {} already has a live terminal stream; close it first (a dropped connection is noticed within seconds)",
                self.id
            )));
        }
        self.terminal.attach(events, myself, |generation| {
            EntityMsg::Internal(BrigadeMsg::Detached { generation })
        });
        self.refresh().await;
        let now = self.ctx.clock.now();
        if self.brigade.status == BrigadeStatus::Offline {
            self.brigade = self
                .ctx
                .records
                .update_brigade(&self.id, |b| Ok(b.come_online(now)?))
                .await?;
        }
        // A terminal that (re)connects while its brigade is on a job gets the job again.
        if let Some(incident_id) = self.brigade.incident.clone()
            && let Some(incident) = self.ctx.records.incident(&incident_id).await?
            && incident.is_open()
        {
            // A fresh estimate from where the brigade is now.
            let eta = StraightLine::default().eta(
                &self.brigade.position,
                &incident.position,
                self.brigade.mode,
            );
            self.job = Some(incident.id.clone());
            self.push(TerminalEvent::Assigned(Assignment::new(&incident, eta)));
        }
        Ok(self.brigade.clone())
    }

    async fn grace_over(&mut self, generation: u64) {
        if self.terminal.is_attached() || generation != self.terminal.generation() {
            return; // it came back
        }
        self.refresh().await;
        if self.brigade.status != BrigadeStatus::Available {
            return; // a busy brigade is the ack timeout's business
        }
        let now = self.ctx.clock.now();
        match self
            .ctx
            .records
            .update_brigade(&self.id, |b| Ok(b.go_offline(now)?))
            .await
        {
            Ok(brigade) => {
                tracing::warn!(brigade = %self.id, "terminal gone: brigade offline");
                self.brigade = brigade;
            }
            Err(e) => tracing::warn!(brigade = %self.id, error = %e, "offline not recorded"),
        }
    }

    async fn position(&mut self, position: Position) -> Result<(), Error> {
        let now = self.ctx.clock.now();
        self.unsaved_position = Some(position);
        let due = self.position_persisted.is_none_or(|at| {
            now.saturating_duration_since(at) >= limits::POSITION_PERSIST_INTERVAL
        });
        if due {
            self.save_position(now).await?;
        }
        Ok(())
    }

    async fn save_position(&mut self, now: Timestamp) -> Result<(), Error> {
        let Some(position) = self.unsaved_position.take() else {
            return Ok(());
        };
        self.brigade = self
            .ctx
            .records
            .update_brigade(&self.id, |b| {
                b.move_to(position);
                Ok(())
            })
            .await?;
        self.position_persisted = Some(now);
        Ok(())
    }

    async fn ack(&mut self, incident: IncidentId) -> Result<Brigade, Error> {
        let now = self.ctx.clock.now();
        let brigade_id = self.id.clone();
        let span = tracing::info_span!("brigade.ack", brigade = %self.id, %incident);
        let update = self
            .ctx
            .records
            .update_incident_with(
                &incident,
                std::slice::from_ref(&self.id),
                None,
                |inc, bs| {
                    let b = &mut bs[0];
                    b.acknowledge(&inc.id, now)?;
                    inc.unit_acknowledged(&brigade_id, now)?;
                    Ok(())
                },
            )
            .instrument(span)
            .await?;
        metrics::instruments().press_to_brigade_ack.record(
            now.saturating_duration_since(update.incident.first_press_at)
                .as_secs_f64()
                * 1000.0,
            &[],
        );
        self.brigade = update
            .brigades
            .into_iter()
            .next()
            .expect("one brigade in, one out");
        tracing::info!(brigade = %self.id, %incident, "assignment acknowledged");
        Ok(self.brigade.clone())
    }

    async fn status(
        &mut self,
        status: BrigadeStatus,
        incident: Option<IncidentId>,
    ) -> Result<Brigade, Error> {
        let now = self.ctx.clock.now();
        // A status change carries the latest position with it.
        if self.unsaved_position.is_some() {
            self.save_position(now).await?;
        }
        self.refresh().await;
        let report = self
            .brigade
            .interpret_report(status, incident.as_ref())
            .map_err(|e| match e {
                ReportError::NotReportable { .. } => records::Error::Invalid(e.to_string()),
                _ => records::Error::Refused(e.to_string()),
            })?;
        let brigade = match report {
            Report::Unchanged => return Ok(self.brigade.clone()),
            Report::OnIncident(step, incident) => {
                let id = self.id.clone();
                let update = self
                    .ctx
                    .records
                    .update_incident_with(
                        &incident,
                        std::slice::from_ref(&self.id),
                        None,
                        |inc, bs| {
                            bs[0].step(step, now)?;
                            match step {
                                IncidentStep::EnRoute => inc.unit_en_route(&id, now)?,
                                IncidentStep::OnScene => inc.unit_on_scene(&id, now)?,
                                IncidentStep::Clear => inc.unit_cleared(&id, now)?,
                            }
                            Ok(())
                        },
                    )
                    .await?;
                if step == IncidentStep::OnScene {
                    metrics::instruments().press_to_on_scene.record(
                        now.saturating_duration_since(update.incident.first_press_at)
                            .as_secs_f64()
                            * 1000.0,
                        &[],
                    );
                }
                update
                    .brigades
                    .into_iter()
                    .next()
                    .expect("one brigade in, one out")
            }
            Report::Unit(change) => {
                self.ctx
                    .records
                    .update_brigade(&self.id, |b| Ok(b.change(change, now)?))
                    .await?
            }
        };
        if brigade.incident.is_none() {
            self.job = None;
        }
        tracing::info!(brigade = %self.id, status = %brigade.status, "brigade status");
        self.brigade = brigade;
        Ok(self.brigade.clone())
    }
}
