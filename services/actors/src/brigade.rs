//! One actor per brigade (Serenazgo unit): the bridge between the brigade's terminal and the
//! store. It pushes assignments and cancellations to the terminal, records acknowledgements
//! and status changes (en route, on scene, clear), and keeps the brigade's position current.
//!
//! It also decides whether the unit is live (docs/brigade-app.md, "Availability"): a unit is
//! live while its terminal's stream is open, or for
//! [`UNIT_REPORT_SILENCE_MAX`](crate::limits::UNIT_REPORT_SILENCE_MAX) after its last report
//! (a position, a heartbeat, an acknowledgement or a status: what the brigade app sends over
//! HTTP). An available unit that is not live is recorded `offline`, so the dispatcher never
//! offers it a job; one that is heard from again comes back online. Position reports that no
//! vehicle could make are refused.

use std::sync::Arc;

use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use centinela_core::brigade::{
    Brigade, BrigadeStatus, IncidentStep, RadioError, Report, ReportError, check_move,
};
use centinela_core::dispatch::{StraightLine, TravelTime};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, IncidentId, OperatorId};
use centinela_core::incident::Clearance;
use centinela_core::time::Timestamp;
use centinela_records as records;

use centinela_telemetry::{metrics, propagation};
use tracing::Instrument;

use crate::device::DeviceChannel;
use crate::dispatcher::Assignment;
use crate::entity::{Delivery, Entity, EntityMsg, Reply, Request};
use crate::error::Error;
use crate::group_commit::Moved;
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
    Assign {
        assignment: Assignment,
        /// The brigade as the assignment's transaction recorded it: the actor takes it
        /// instead of reading the brigade again. Absent from older senders.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorded: Option<Box<Brigade>>,
    },
    /// The brigade was released from `incident`; the terminal drops the job.
    #[serde(rename = "brigade_cancel")]
    Cancel {
        incident: IncidentId,
        reason: String,
        /// The brigade as the releasing transaction recorded it (closing an incident, a
        /// replacement, an ack timeout): the actor takes it instead of reading the brigade
        /// again. Absent from older senders.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorded: Option<Box<Brigade>>,
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
        /// With a clear: how the unit left the scene (the brigade app's outcome and note).
        /// Absent from older senders' bodies: a clear without an outcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Clearance>,
    },
    /// The terminal or app is alive but has no new position (no GPS fix, standing still);
    /// answered with the brigade.
    #[serde(rename = "brigade_heartbeat")]
    Heartbeat,
    /// An operator sets the unit's status (and position) by hand from a radio call; answered
    /// with the brigade.
    #[serde(rename = "brigade_radio")]
    Radio {
        status: BrigadeStatus,
        position: Option<Position>,
        operator: OperatorId,
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
            BrigadeRequest::Heartbeat => Delivery::call("heartbeat"),
            BrigadeRequest::Radio { .. } => Delivery::call("radio report"),
        }
    }
}

/// What a brigade actor tells itself.
pub enum BrigadeMsg {
    /// The terminal's assignment channel, connected to this node or proxied from another.
    Attach {
        events: mpsc::Sender<Box<TerminalEvent>>,
        reply: RpcReplyPort<Result<Brigade, Error>>,
    },
    Detached {
        generation: u64,
    },
    /// The terminal has been away for the grace period.
    TerminalGraceOver {
        generation: u64,
    },
    /// Time to see whether a unit with no open stream is still reporting.
    SilenceCheck,
}

/// One brigade's actor state.
pub struct BrigadeActor {
    ctx: Arc<Context>,
    id: BrigadeId,
    brigade: Brigade,
    terminal: DeviceChannel<Box<TerminalEvent>>,
    /// The incident the terminal was last sent (and not told to drop): keeps the terminal's
    /// view in order when a release and a new assignment race each other.
    job: Option<IncidentId>,
    /// Latest reported position not yet written to the store.
    unsaved_position: Option<Position>,
    position_persisted: Option<Timestamp>,
    /// When the unit last reported anything: keeps a unit without an open stream (the
    /// brigade app over HTTP) live for `UNIT_REPORT_SILENCE_MAX`.
    last_report: Option<Timestamp>,
    /// The last accepted position and when: the next one must be reachable from it.
    last_fix: Option<(Position, Timestamp)>,
    /// Whether a [`BrigadeMsg::SilenceCheck`] is already scheduled (at most one is).
    silence_check_pending: bool,
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
        myself: &Myself,
    ) -> Result<Self, ActorProcessingErr> {
        // A unit recorded available whose terminal does not (re)connect to this actor within
        // the grace period (this node just started, or took the unit over) is offline.
        if brigade.status == BrigadeStatus::Available {
            myself.send_after(limits::TERMINAL_GRACE, || {
                EntityMsg::Internal(BrigadeMsg::TerminalGraceOver { generation: 0 })
            });
        }
        Ok(BrigadeActor {
            ctx,
            id: brigade.id.clone(),
            brigade,
            terminal: DeviceChannel::default(),
            job: None,
            unsaved_position: None,
            position_persisted: None,
            last_report: None,
            last_fix: None,
            silence_check_pending: false,
        })
    }

    fn id(&self) -> &BrigadeId {
        &self.id
    }

    /// An assignment or cancellation carries the brigade as the dispatcher's round or the
    /// releasing transaction wrote it.
    fn carried(request: &BrigadeRequest) -> Option<Brigade> {
        match request {
            BrigadeRequest::Assign { recorded, .. } | BrigadeRequest::Cancel { recorded, .. } => {
                recorded.as_deref().cloned()
            }
            _ => None,
        }
    }

    /// No terminal, no job, nothing unsaved, no silence to watch for: a unit recorded
    /// offline or out of service (an available one is watched, and marked offline once
    /// silent; its next report or terminal starts the actor again).
    fn idle(&self) -> bool {
        !self.terminal.is_attached()
            && self.job.is_none()
            && self.unsaved_position.is_none()
            && !self.silence_check_pending
            && matches!(
                self.brigade.status,
                BrigadeStatus::Offline | BrigadeStatus::OutOfService
            )
    }

    async fn request(&mut self, myself: &Myself, request: BrigadeRequest, reply: Reply) {
        if matches!(
            request,
            BrigadeRequest::Position { .. }
                | BrigadeRequest::Ack { .. }
                | BrigadeRequest::Status { .. }
                | BrigadeRequest::Heartbeat
        ) {
            self.heard(myself);
        }
        match request {
            BrigadeRequest::Assign {
                assignment,
                recorded,
            } => {
                self.assign(assignment, recorded.map(|b| *b)).await;
                reply.send(Ok(()));
            }
            BrigadeRequest::Cancel {
                incident,
                reason,
                recorded,
            } => {
                self.cancel(incident, reason, recorded.map(|b| *b)).await;
                reply.send(Ok(()));
            }
            BrigadeRequest::Position { position } => reply.send(self.position(position).await),
            BrigadeRequest::Ack { incident } => reply.send(self.ack(incident).await),
            BrigadeRequest::Status {
                status,
                incident,
                outcome,
            } => {
                reply.send(self.status(status, incident, outcome).await);
            }
            BrigadeRequest::Heartbeat => reply.send(self.heartbeat().await),
            BrigadeRequest::Radio {
                status,
                position,
                operator,
            } => reply.send(self.radio(status, position, operator).await),
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
            BrigadeMsg::TerminalGraceOver { generation } => {
                self.grace_over(myself, generation).await;
            }
            BrigadeMsg::SilenceCheck => {
                self.silence_check_pending = false;
                self.check_liveness(myself).await;
            }
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

    /// Takes `recorded` (the brigade as a transaction that just wrote it recorded it) when it
    /// is this brigade and `fits`; otherwise reads the brigade again.
    async fn take_or_refresh(
        &mut self,
        recorded: Option<Brigade>,
        fits: impl Fn(&Brigade) -> bool,
    ) {
        match recorded.filter(|b| b.id == self.id && fits(b)) {
            Some(brigade) => self.brigade = brigade,
            None => self.refresh().await,
        }
    }

    async fn assign(&mut self, mut assignment: Assignment, recorded: Option<Brigade>) {
        let span = tracing::info_span!(
            "brigade.notify",
            brigade = %self.id,
            incident = %assignment.incident
        );
        // The terminal sends this back with its ack: the ack joins the press's trace.
        assignment.trace = span.in_scope(propagation::traceparent);
        self.assign_traced(assignment, recorded)
            .instrument(span)
            .await;
    }

    async fn assign_traced(&mut self, assignment: Assignment, recorded: Option<Brigade>) {
        let incident = assignment.incident.clone();
        self.take_or_refresh(recorded, |b| b.incident.as_ref() == Some(&incident))
            .await;
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

    async fn cancel(&mut self, incident: IncidentId, reason: String, recorded: Option<Brigade>) {
        self.take_or_refresh(recorded, |b| b.incident.as_ref() != Some(&incident))
            .await;
        if self.job.as_ref().is_some_and(|job| *job != incident) {
            return; // already superseded (and cancelled) by a newer assignment
        }
        self.job = None;
        self.push(TerminalEvent::Cancelled { incident, reason });
    }

    fn push(&mut self, event: TerminalEvent) {
        // Not lost when undelivered: the store holds the job, re-sent when the terminal
        // reconnects.
        if let Err(reason) = self.terminal.send(Box::new(event)) {
            tracing::warn!(brigade = %self.id, reason, "terminal event not delivered now");
        }
    }

    async fn attach(
        &mut self,
        myself: &Myself,
        events: mpsc::Sender<Box<TerminalEvent>>,
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

    async fn grace_over(&mut self, myself: &Myself, generation: u64) {
        if self.terminal.is_attached() || generation != self.terminal.generation() {
            return; // it came back
        }
        self.check_liveness(myself).await;
    }

    /// Whether the unit can be reached now: its stream is open, or it reported recently.
    fn is_live(&self, now: Timestamp) -> bool {
        self.terminal.is_attached()
            || self.brigade.radio_live(now)
            || self.last_report.is_some_and(|at| {
                now.saturating_duration_since(at) < limits::UNIT_REPORT_SILENCE_MAX
            })
    }

    /// Records that the unit was heard from, and makes sure its silence will be noticed when
    /// it has no open stream.
    fn heard(&mut self, myself: &Myself) {
        self.last_report = Some(self.ctx.clock.now());
        if !self.terminal.is_attached() {
            self.schedule_silence_check(myself, limits::UNIT_REPORT_SILENCE_MAX);
        }
    }

    fn schedule_silence_check(&mut self, myself: &Myself, after: std::time::Duration) {
        if self.silence_check_pending {
            return;
        }
        self.silence_check_pending = true;
        myself.send_after(after, || EntityMsg::Internal(BrigadeMsg::SilenceCheck));
    }

    /// Records an available unit that is no longer live as offline (an assigned one once it is
    /// released); for one still live on its reports alone, looks again when they would run out.
    async fn check_liveness(&mut self, myself: &Myself) {
        let now = self.ctx.clock.now();
        if self.terminal.is_attached() {
            return;
        }
        if self.is_live(now) {
            let heard = self.last_report.unwrap_or(now);
            let left = limits::UNIT_REPORT_SILENCE_MAX
                .saturating_sub(now.saturating_duration_since(heard));
            self.schedule_silence_check(myself, left.max(limits::LIVENESS_CHECK_INTERVAL));
            return;
        }
        self.refresh().await;
        if self.brigade.status.is_assigned() {
            // A busy brigade is the ack timeout's business; once released it must not stay
            // available, so look again.
            self.schedule_silence_check(myself, limits::LIVENESS_CHECK_INTERVAL);
            return;
        }
        if self.brigade.status != BrigadeStatus::Available {
            return; // out of service or offline already: never offered
        }
        let now = self.ctx.clock.now();
        match self
            .ctx
            .records
            .update_brigade(&self.id, |b| Ok(b.go_offline(now)?))
            .await
        {
            Ok(brigade) => {
                tracing::warn!(brigade = %self.id, "terminal gone and no reports: brigade offline");
                self.brigade = brigade;
            }
            Err(e) => tracing::warn!(brigade = %self.id, error = %e, "offline not recorded"),
        }
    }

    async fn position(&mut self, position: Position) -> Result<(), Error> {
        let now = self.ctx.clock.now();
        if let Some((from, at)) = self.last_fix {
            check_move(&from, at, &position, now)
                .map_err(|e| records::Error::Invalid(e.to_string()))?;
        }
        self.last_fix = Some((position, now));
        self.unsaved_position = Some(position);
        let moved_m = self.brigade.position.distance_m(&position);
        let due = self.position_persisted.is_none_or(|at| {
            now.saturating_duration_since(at) >= limits::POSITION_PERSIST_INTERVAL
                && moved_m >= limits::POSITION_PERSIST_DISTANCE_M
        });
        if due || self.brigade.status == BrigadeStatus::Offline {
            self.save_position(now).await?;
        }
        Ok(())
    }

    /// An operator's radio report (docs/brigade-app.md, "Radio fallback"): recorded on the
    /// brigade with the operator's id, and logged.
    async fn radio(
        &mut self,
        status: BrigadeStatus,
        position: Option<Position>,
        operator: OperatorId,
    ) -> Result<Brigade, Error> {
        let now = self.ctx.clock.now();
        // A position the terminal had not saved yet is older than the operator's word.
        self.unsaved_position = None;
        let by = operator.clone();
        self.brigade = self
            .ctx
            .records
            .update_brigade(&self.id, |b| {
                b.radio_report(status, position, by.clone(), now)
                    .map_err(|e| match e {
                        RadioError::NotSettable { .. } => records::Error::Invalid(e.to_string()),
                        _ => records::Error::Refused(e.to_string()),
                    })
            })
            .await?;
        if let Some(position) = position {
            // The operator's position is the new baseline for the terminal's next report.
            self.last_fix = Some((position, now));
        }
        tracing::info!(
            brigade = %self.id,
            %operator,
            status = %self.brigade.status,
            lat = position.map(|p| p.lat()),
            lon = position.map(|p| p.lon()),
            "unit status set by radio"
        );
        Ok(self.brigade.clone())
    }

    /// A report without a position: the unit is live; an offline one comes back online.
    async fn heartbeat(&mut self) -> Result<(), Error> {
        if self.brigade.status == BrigadeStatus::Offline {
            self.come_online(self.ctx.clock.now()).await?;
        }
        Ok(())
    }

    /// Records an offline unit that is heard from again as available.
    async fn come_online(&mut self, now: Timestamp) -> Result<(), Error> {
        self.brigade = self
            .ctx
            .records
            .update_brigade(&self.id, |b| {
                if b.status == BrigadeStatus::Offline {
                    b.come_online(now)?;
                }
                Ok(())
            })
            .await?;
        tracing::info!(brigade = %self.id, status = %self.brigade.status, "unit heard from: online");
        Ok(())
    }

    async fn save_position(&mut self, now: Timestamp) -> Result<(), Error> {
        let Some(position) = self.unsaved_position.take() else {
            return Ok(());
        };
        // With the other units' positions due now, in one read and commit (a position is a
        // sign of life: an offline unit reporting one is back).
        self.brigade = self
            .ctx
            .router
            .positions
            .record(self.id.as_ref(), Moved { position, at: now })
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
        outcome: Option<Clearance>,
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
                                IncidentStep::Clear => {
                                    inc.unit_cleared(&id, outcome.as_ref(), now)?
                                }
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
