//! The `Operator` service: what the console and the CLI use.
//!
//! Reads come straight from the store (any node answers with the cluster's state). Operator
//! actions on an incident are compare-and-swap transactions on the store; dispatch orders go to
//! the dispatcher, the only writer of assignments.
//!
//! Who may call what ([`auth::Caller`]): reads take any operator; the device inventory and
//! `Ping` also the shared device token; actions are recorded as the signed-in operator (an
//! `operator_id` naming someone else is refused); closing as `cancelled`, clearing a device's
//! alert and verifying the audit trails take a supervisor.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use centinela_actors::Context;
use centinela_actors::brigade::BrigadeRequest;
use centinela_actors::button::ButtonRequest;
use centinela_actors::camera::CameraRequest;
use centinela_archive::report::{Grouping, Latency, Query as ReportQuery, Row as ReportRow};
use centinela_core::alert::AlertKind;
use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::{Camera, PtzPreset};
use centinela_core::dispatch::{Policy, StraightLine, swap_advice};
use centinela_core::handoff::Handoff;
use centinela_core::ids::{AgencyId, BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{Actor, Incident, Resolution};
use centinela_core::limits::{ALERT_NOTE_LEN_MAX, HANDOFF_NOTE_LEN_MAX};
use centinela_core::seal::AuditKey;
use centinela_core::time::Timestamp;
use centinela_proto::convert::{self, id};
use centinela_proto::v1;
use centinela_proto::v1::operator_server::Operator;
use centinela_records::device_audit::Clearing;
use centinela_records::handoffs::Created;
use centinela_records::{Close, IncidentUpdate, Record};

use centinela_telemetry::metrics;

use sha2::{Digest, Sha256};

use crate::auth::{self, Caller, Role};
use crate::devices::ServerStream;
use crate::feed::{Feed, FeedEvent, Subscription};
use crate::limits;
use crate::status::{from_actor, from_archive, from_convert, from_records};

/// What an operator's live view holds ([`OperatorService::watch_items`]): `Operator.Watch`'s
/// request.
#[derive(Clone, Copy, Debug, Default)]
pub struct WatchScope {
    /// Closed incidents too (the snapshot holds only open ones otherwise).
    pub include_closed: bool,
    /// Incidents only: no units, buttons or cameras, in the snapshot or live.
    pub incidents_only: bool,
}

/// One item of an operator's live view ([`OperatorService::watch_items`]).
// Unboxed on purpose: items only move through the stream's channel, one allocation fewer per
// event; `SnapshotStart` is sent once per snapshot.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum WatchItem {
    /// A snapshot of the current state follows, up to `SnapshotDone`: whatever the watcher
    /// held before is to be replaced by it (sent first, and again after the watcher lagged).
    SnapshotStart,
    Event(v1::operator_event::Event),
}

#[derive(Clone)]
pub struct OperatorService {
    ctx: Arc<Context>,
    feed: Arc<Feed>,
    store_kind: &'static str,
    /// Called in-process (the console): a call without an authenticated [`Caller`] is the
    /// node's own code, which signed its operator in itself. Served over gRPC: such a call is
    /// refused (the edge puts a caller on every call it lets through).
    in_process: bool,
}

impl OperatorService {
    /// The service for in-process callers (the console): see [`OperatorService::served`].
    pub fn new(ctx: Arc<Context>, feed: Arc<Feed>, store_kind: &'static str) -> Self {
        Self {
            ctx,
            feed,
            store_kind,
            in_process: true,
        }
    }

    /// The service a node serves over gRPC, behind the edge ([`crate::auth`]).
    pub fn served(ctx: Arc<Context>, feed: Arc<Feed>, store_kind: &'static str) -> Self {
        Self {
            in_process: false,
            ..Self::new(ctx, feed, store_kind)
        }
    }

    /// The agencies and the CAP sender (the console checks agencies' callbacks with them).
    pub fn handoff_setup(&self) -> &centinela_handoff::Setup {
        &self.ctx.handoff
    }

    /// Records an acknowledgement `agency` sent on its callback for the message `identifier`
    /// of its hand-off of `incident` (the caller verified the signature): on the hand-off and
    /// in the incident's audit, together.
    pub async fn record_handoff_ack(
        &self,
        incident: &IncidentId,
        agency: &AgencyId,
        identifier: &str,
        detail: &str,
    ) -> Result<Handoff, Status> {
        // The agency's own words go into the audit, which the CLI prints in terminals.
        let detail = &*centinela_core::text::printable(detail);
        let now = self.ctx.clock.now();
        let handoff = self
            .ctx
            .records
            .update_handoff(incident, agency, |handoff, incident| {
                if !handoff.messages.iter().any(|m| m.identifier == identifier) {
                    return Err(centinela_records::Error::NotFound {
                        kind: "CAP message",
                        id: identifier.to_string(),
                    });
                }
                handoff.acknowledge(detail.to_string(), now);
                incident.handoff_acknowledged(agency, detail, now);
                Ok(true)
            })
            .await
            .map_err(from_records)?;
        tracing::info!(%incident, %agency, cap = identifier, "hand-off acknowledged by the agency");
        Ok(handoff)
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        match request.extensions().get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None if self.in_process => Ok(Caller::in_process()),
            None => auth::caller(request),
        }
    }

    /// The live view behind `Watch`, for in-process consumers too (the browser console's
    /// server-sent events): a [`WatchItem::SnapshotStart`], the current state, `SnapshotDone`,
    /// then live changes; again from `SnapshotStart` whenever the subscriber lagged. Ends with
    /// the node's feed, or with an error status when the store cannot be read.
    pub fn watch_items(&self, scope: WatchScope) -> mpsc::Receiver<Result<WatchItem, Status>> {
        let feed = self.feed.clone();
        let (tx, rx) = mpsc::channel(limits::WATCH_CHANNEL_CAPACITY);
        let records = self.ctx.records.clone();
        tokio::spawn(async move {
            // Subscribed (the node's watch open) before the snapshot is read: see `feed`.
            let subscribed = feed.subscribe().await.map_err(from_records);
            let result = match subscribed {
                Ok(feed) => stream_watch(records, feed, scope, tx.clone()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    /// The node's feed of store changes (the console's public map follows it while it is
    /// requested).
    pub fn feed(&self) -> Arc<Feed> {
        self.feed.clone()
    }

    /// After an incident closed: its brigades are told and its camera released.
    /// After a classification: re-checks the incident's units against the new kind's needs
    /// and records the swap to recommend, if a better-suited unit is free
    /// ([`swap_advice`], with the dispatcher's policy and travel estimate). Best effort: the
    /// classification stands whatever happens here, and the operator still has the ranked
    /// recommendations.
    async fn advise_swap(&self, classified: Incident) -> Incident {
        let now = self.ctx.clock.now();
        let brigades = match self.ctx.records.snapshot::<Brigade>().await {
            Ok((brigades, _)) => brigades,
            Err(e) => {
                tracing::warn!(incident = %classified.id, error = %e, "swap advice: units not read");
                return classified;
            }
        };
        let Some(advice) = swap_advice(
            &Policy::default(),
            &StraightLine::default(),
            &classified,
            &brigades,
            now,
        ) else {
            return classified;
        };
        tracing::info!(
            incident = %classified.id,
            out = %advice.out,
            into = %advice.into,
            kind = %advice.kind,
            "swap recommended after reclassification"
        );
        match self
            .ctx
            .records
            .update_incident(&classified.id, |i| Ok(i.advise_swap(Some(advice.clone()))?))
            .await
        {
            Ok(advised) => advised,
            Err(e) => {
                tracing::info!(incident = %classified.id, error = %e, "swap advice not recorded");
                classified
            }
        }
    }

    async fn after_close(&self, update: &IncidentUpdate, reason: &str) {
        let incident = &update.incident;
        for brigade in &update.brigades {
            self.ctx.router.tell(
                &brigade.id,
                BrigadeRequest::Cancel {
                    incident: incident.id.clone(),
                    reason: reason.to_string(),
                    recorded: Some(Box::new(brigade.clone())),
                },
            );
        }
        self.ctx.router.tell(
            &incident.camera,
            CameraRequest::Release {
                incident: incident.id.clone(),
                recorded: update.camera.clone().map(Box::new),
            },
        );
        self.ctx.router.nudge_dispatcher();
    }

    async fn close(
        &self,
        incident: &str,
        operator: OperatorId,
        resolution: Resolution,
    ) -> Result<Incident, Status> {
        let incident: IncidentId = id("incident_id", incident).map_err(from_convert)?;
        let now = self.ctx.clock.now();
        // The node's feed (open while an operator watches through this node) holds the
        // incident, and usually its units and camera: the close commits from those copies
        // without a read, or, with the incident alone, reads its units and camera with it at
        // once, not after reading it alone.
        // Closes from copies made through this node at the same moment share a transaction.
        let actor = Actor::Operator(operator);
        let closed = match self.feed.held_close(&incident) {
            Some(held) => {
                let close = Close {
                    held,
                    resolution,
                    actor,
                    now,
                };
                self.ctx.router.close_from_held(close).await
            }
            None => {
                let hint = self.feed.held_incident(&incident);
                self.ctx
                    .records
                    .close_incident_hinted(&incident, hint.as_deref(), resolution, actor, now)
                    .await
            }
        };
        let update = closed.map_err(from_records)?;
        tracing::info!(incident = %update.incident.id, ?resolution, released = update.brigades.len(), "incident closed");
        let reason = format!("incident closed: {}", resolution_word(resolution));
        self.after_close(&update, &reason).await;
        Ok(update.incident)
    }
}

fn resolution_word(resolution: Resolution) -> &'static str {
    match resolution {
        Resolution::Handled => "handled",
        Resolution::Prank => "prank",
        Resolution::FalseAlarm => "false alarm",
        Resolution::Cancelled => "cancelled",
    }
}

#[tonic::async_trait]
impl Operator for OperatorService {
    type WatchStream = ServerStream<v1::OperatorEvent>;

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.caller(&request)?.read_operations()?;
        // gRPC clients learn that a snapshot begins from the stream's start; a re-snapshot
        // after lag is plain upserts for them, so the marker is dropped here.
        let request = request.get_ref();
        let items = self.watch_items(WatchScope {
            include_closed: request.include_closed,
            incidents_only: request.incidents_only,
        });
        let events = ReceiverStream::new(items).filter_map(|item| match item {
            Ok(WatchItem::SnapshotStart) => None,
            Ok(WatchItem::Event(event)) => Some(Ok(v1::OperatorEvent { event: Some(event) })),
            Err(status) => Some(Err(status)),
        });
        Ok(Response::new(Box::pin(events)))
    }

    async fn list_incidents(
        &self,
        request: Request<v1::ListIncidentsRequest>,
    ) -> Result<Response<v1::ListIncidentsReply>, Status> {
        self.caller(&request)?.read_operations()?;
        let incidents = self
            .ctx
            .records
            .incidents(request.get_ref().include_closed)
            .await
            .map_err(from_records)?;
        Ok(Response::new(v1::ListIncidentsReply {
            incidents: incidents.iter().map(convert::incident_to_wire).collect(),
        }))
    }

    async fn get_incident(
        &self,
        request: Request<v1::GetIncidentRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        self.caller(&request)?.read_operations()?;
        let incident: IncidentId =
            id("incident_id", &request.get_ref().incident_id).map_err(from_convert)?;
        let found = self
            .ctx
            .records
            .incident(&incident)
            .await
            .map_err(from_records)?;
        let found = match (found, &self.ctx.history) {
            (Some(found), _) => found,
            // Past retention a closed incident lives in the archive only.
            (None, Some(history)) => history
                .archive
                .get(incident.as_str())
                .await
                .map_err(from_archive)?
                .map(|archived| archived.incident)
                .ok_or_else(|| Status::not_found(format!("incident '{incident}' not found")))?,
            (None, None) => {
                return Err(Status::not_found(format!(
                    "incident '{incident}' not found"
                )));
            }
        };
        Ok(Response::new(convert::incident_to_wire(&found)))
    }

    async fn recommend(
        &self,
        request: Request<v1::RecommendRequest>,
    ) -> Result<Response<v1::RecommendReply>, Status> {
        self.caller(&request)?.read_operations()?;
        let request = request.into_inner();
        let incident: IncidentId = id("incident_id", &request.incident_id).map_err(from_convert)?;
        let limit = if request.limit == 0 {
            5
        } else {
            request.limit as usize
        };
        let candidates = self
            .ctx
            .router
            .recommend(incident, limit)
            .await
            .map_err(from_actor)?;
        Ok(Response::new(v1::RecommendReply {
            candidates: candidates
                .iter()
                .map(|(candidate, brigade)| v1::Candidate {
                    unit_id: candidate.brigade.to_string(),
                    eta_s: candidate.eta.as_secs_f64(),
                    preferred: candidate.preferred,
                    unit: Some(convert::brigade_to_wire(brigade)),
                })
                .collect(),
        }))
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let incident: IncidentId = id("incident_id", &request.incident_id).map_err(from_convert)?;
        let operator = caller.operator(&request.operator_id, Role::Operator)?;
        let now = self.ctx.clock.now();
        let updated = self
            .ctx
            .records
            .update_incident(&incident, |i| Ok(i.acknowledge(operator.clone(), now)?))
            .await
            .map_err(from_records)?;
        // The call answered: what the acknowledgement objective counts (each incident is
        // acknowledged once; a second acknowledgement is refused above).
        metrics::instruments().press_to_operator_ack.record(
            now.saturating_duration_since(updated.first_press_at)
                .as_secs_f64()
                * 1000.0,
            &[],
        );
        Ok(Response::new(convert::incident_to_wire(&updated)))
    }

    async fn classify(
        &self,
        request: Request<v1::ClassifyRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let incident: IncidentId = id("incident_id", &request.incident_id).map_err(from_convert)?;
        let operator = caller.operator(&request.operator_id, Role::Operator)?;
        let kind = convert::incident_kind(request.kind).map_err(from_convert)?;
        let priority = convert::priority(request.priority).map_err(from_convert)?;
        let caller = convert::caller(request.caller.as_ref());
        let now = self.ctx.clock.now();
        let updated = self
            .ctx
            .records
            .update_incident(&incident, |i| {
                Ok(i.classify(operator.clone(), kind, priority, caller.clone(), now)?)
            })
            .await
            .map_err(from_records)?;
        // A new kind may change who is eligible and the queue order.
        self.ctx.router.nudge_dispatcher();
        let updated = self.advise_swap(updated).await;
        Ok(Response::new(convert::incident_to_wire(&updated)))
    }

    async fn dispatch(
        &self,
        request: Request<v1::DispatchRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let incident: IncidentId = id("incident_id", &request.incident_id).map_err(from_convert)?;
        let operator = caller.operator(&request.operator_id, Role::Operator)?;
        let unit: Option<BrigadeId> =
            convert::optional_id("unit_id", request.unit_id.as_deref()).map_err(from_convert)?;
        let swap_out: Option<BrigadeId> =
            convert::optional_id("swap_out", request.swap_out.as_deref()).map_err(from_convert)?;
        if swap_out.is_some() && (unit.is_none() || request.replace) {
            return Err(Status::invalid_argument(
                "swap_out: a swap names the unit to send (unit_id) and is not a replace",
            ));
        }
        let updated = self
            .ctx
            .router
            .dispatch(incident, operator, unit, request.replace, swap_out)
            .await
            .map_err(from_actor)?;
        Ok(Response::new(convert::incident_to_wire(&updated)))
    }

    async fn set_unit_status(
        &self,
        request: Request<v1::SetUnitStatusRequest>,
    ) -> Result<Response<v1::Unit>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let unit: BrigadeId = id("unit_id", &request.unit_id).map_err(from_convert)?;
        let operator = caller.operator(&request.operator_id, Role::Operator)?;
        let status = convert::unit_status(request.status).map_err(from_convert)?;
        let position = match request.position.as_ref() {
            Some(p) => Some(convert::position("position", Some(p)).map_err(from_convert)?),
            None => None,
        };
        let brigade: Brigade = self
            .ctx
            .router
            .call(
                &unit,
                BrigadeRequest::Radio {
                    status,
                    position,
                    operator,
                },
            )
            .await
            .map_err(from_actor)?;
        Ok(Response::new(convert::brigade_to_wire(&brigade)))
    }

    async fn confirm_verified(
        &self,
        request: Request<v1::ConfirmVerifiedRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let incident: IncidentId = id("incident_id", &request.incident_id).map_err(from_convert)?;
        let operator = caller.operator(&request.operator_id, Role::Operator)?;
        let now = self.ctx.clock.now();
        let updated = self
            .ctx
            .records
            .update_incident(
                &incident,
                |i| Ok(i.confirm_verified(operator.clone(), now)?),
            )
            .await
            .map_err(from_records)?;
        // The hold is over: the incident joins the dispatcher's queue.
        self.ctx.router.nudge_dispatcher();
        Ok(Response::new(convert::incident_to_wire(&updated)))
    }

    async fn mark_prank(
        &self,
        request: Request<v1::MarkPrankRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let operator = caller.operator(&request.operator_id, Role::Operator)?;
        let incident = self
            .close(&request.incident_id, operator, Resolution::Prank)
            .await?;
        Ok(Response::new(convert::incident_to_wire(&incident)))
    }

    async fn resolve(
        &self,
        request: Request<v1::ResolveRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let resolution = convert::resolution(request.resolution).map_err(from_convert)?;
        // Withdrawing a possible emergency without a response is a supervisor's decision.
        // `prank` and `false_alarm` stay an operator's: they are a judgement the operator makes
        // on the evidence (the camera, a call back), the queue cannot wait for a supervisor in
        // a prank wave, and the audit names who judged (docs/security.md, "Sign-in and
        // sessions").
        let role = if resolution == Resolution::Cancelled {
            Role::Supervisor
        } else {
            Role::Operator
        };
        let operator = caller.operator(&request.operator_id, role)?;
        let incident = self
            .close(&request.incident_id, operator, resolution)
            .await?;
        Ok(Response::new(convert::incident_to_wire(&incident)))
    }

    async fn list_units(
        &self,
        request: Request<v1::ListUnitsRequest>,
    ) -> Result<Response<v1::ListUnitsReply>, Status> {
        self.caller(&request)?.read_inventory()?;
        let (brigades, _) = self
            .ctx
            .records
            .snapshot::<Brigade>()
            .await
            .map_err(from_records)?;
        Ok(Response::new(v1::ListUnitsReply {
            units: brigades.iter().map(convert::brigade_to_wire).collect(),
        }))
    }

    async fn list_buttons(
        &self,
        request: Request<v1::ListButtonsRequest>,
    ) -> Result<Response<v1::ListButtonsReply>, Status> {
        self.caller(&request)?.read_inventory()?;
        let (buttons, _) = self
            .ctx
            .records
            .snapshot::<Button>()
            .await
            .map_err(from_records)?;
        Ok(Response::new(v1::ListButtonsReply {
            buttons: buttons.iter().map(convert::button_to_wire).collect(),
        }))
    }

    async fn list_cameras(
        &self,
        request: Request<v1::ListCamerasRequest>,
    ) -> Result<Response<v1::ListCamerasReply>, Status> {
        self.caller(&request)?.read_inventory()?;
        let (cameras, _) = self
            .ctx
            .records
            .snapshot::<Camera>()
            .await
            .map_err(from_records)?;
        Ok(Response::new(v1::ListCamerasReply {
            cameras: cameras.iter().map(convert::camera_to_wire).collect(),
        }))
    }

    async fn clear_alert(
        &self,
        request: Request<v1::ClearAlertRequest>,
    ) -> Result<Response<v1::ClearAlertReply>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        // Role first: an operator learns it is not theirs to clear before anything else.
        let supervisor = caller.operator(&request.operator_id, Role::Supervisor)?;
        let note = Some(request.note.trim().to_string()).filter(|n| !n.is_empty());
        if let Some(note) = &note
            && note.len() > ALERT_NOTE_LEN_MAX
        {
            return Err(Status::invalid_argument(format!(
                "note: {} bytes, at most {ALERT_NOTE_LEN_MAX}",
                note.len()
            )));
        }
        let kind = match request.kind.as_str() {
            "" => None,
            "tamper" => Some(AlertKind::Tamper),
            "button_offline" => Some(AlertKind::ButtonOffline),
            "camera_offline" => Some(AlertKind::CameraOffline),
            other => {
                return Err(Status::invalid_argument(format!(
                    "kind: {other:?} is not tamper, button_offline or camera_offline"
                )));
            }
        };
        let reply = match request.device {
            Some(v1::clear_alert_request::Device::ButtonId(button_id)) => {
                let button: ButtonId = id("button_id", &button_id).map_err(from_convert)?;
                // Through the button's actor: clearing a tamper changes the health it watches.
                let cleared: Button = self
                    .ctx
                    .router
                    .call(
                        &button,
                        ButtonRequest::ClearAlert {
                            by: supervisor.clone(),
                            kind,
                            note: note.clone(),
                        },
                    )
                    .await
                    .map_err(from_actor)?;
                v1::ClearAlertReply {
                    clearance: cleared
                        .alerts
                        .cleared
                        .last()
                        .map(convert::clearance_to_wire),
                    button: Some(convert::button_to_wire(&cleared)),
                    camera: None,
                }
            }
            Some(v1::clear_alert_request::Device::CameraId(camera_id)) => {
                let camera: CameraId = id("camera_id", &camera_id).map_err(from_convert)?;
                let now = self.ctx.clock.now();
                // Straight to the store: the camera's actor keeps no alert state of its own,
                // and its own writes change the fresh record, never a stale copy.
                let (cleared, _) = self
                    .ctx
                    .records
                    .clear_camera_alert(
                        &camera,
                        Clearing {
                            by: &supervisor,
                            kind,
                            note: note.as_deref(),
                        },
                        now,
                    )
                    .await
                    .map_err(from_records)?;
                if let Some(clearance) = cleared.alerts.cleared.last() {
                    tracing::warn!(camera = %camera, kind = %clearance.kind, by = %supervisor, "alert cleared");
                }
                v1::ClearAlertReply {
                    clearance: cleared
                        .alerts
                        .cleared
                        .last()
                        .map(convert::clearance_to_wire),
                    button: None,
                    camera: Some(convert::camera_to_wire(&cleared)),
                }
            }
            None => {
                return Err(Status::invalid_argument(
                    "device: name the button_id or the camera_id whose alert to clear",
                ));
            }
        };
        Ok(Response::new(reply))
    }

    async fn steer_camera(
        &self,
        request: Request<v1::SteerCameraRequest>,
    ) -> Result<Response<v1::Camera>, Status> {
        let caller = self.caller(&request)?;
        let operator = caller.operator("", Role::Operator).ok();
        caller.require_role(Role::Operator)?;
        let request = request.into_inner();
        let camera: CameraId = id("camera_id", &request.camera_id).map_err(from_convert)?;
        let to = request
            .to
            .map(|p| PtzPreset::new(p.pan_deg, p.tilt_deg, p.zoom))
            .transpose()
            .map_err(|e| Status::invalid_argument(format!("to: {e}")))?;
        let steered: Camera = self
            .ctx
            .router
            .call(&camera, CameraRequest::Steer { to })
            .await
            .map_err(from_actor)?;
        tracing::info!(%camera, operator = ?operator.map(|o| o.to_string()), ?to, "camera steered");
        Ok(Response::new(convert::camera_to_wire(&steered)))
    }

    async fn save_still(
        &self,
        request: Request<v1::SaveStillRequest>,
    ) -> Result<Response<v1::SaveStillReply>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let operator = caller.operator(&request.operator_id, Role::Operator)?;
        let incident_id: IncidentId =
            id("incident_id", &request.incident_id).map_err(from_convert)?;
        let jpeg = request.jpeg;
        let whole_jpeg =
            jpeg.len() >= 4 && jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]);
        if !whole_jpeg {
            return Err(Status::invalid_argument(
                "jpeg: not a whole JPEG image (it must start with FF D8 and end with FF D9)",
            ));
        }
        let sha256: String = Sha256::digest(&jpeg)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let records = &self.ctx.records;
        let current = records
            .incident(&incident_id)
            .await
            .map_err(from_records)?
            .ok_or_else(|| Status::not_found(format!("incident {incident_id} not found")))?;
        if current.closed_at.is_some() {
            return Err(Status::failed_precondition(format!(
                "incident {incident_id} is closed; stills attach to open incidents"
            )));
        }
        // The image first: an audit entry never names a still that was not kept.
        records
            .put_still(&incident_id, &sha256, &jpeg)
            .await
            .map_err(from_records)?;
        let now = self.ctx.clock.now();
        let incident = records
            .update_incident(&incident_id, |i| {
                let camera = i.camera.clone();
                Ok(i.save_still(operator.clone(), &camera, &sha256, jpeg.len(), now)?)
            })
            .await
            .map_err(from_records)?;
        tracing::info!(incident = %incident_id, %sha256, bytes = jpeg.len(), "still saved");
        Ok(Response::new(v1::SaveStillReply {
            sha256,
            incident: Some(convert::incident_to_wire(&incident)),
        }))
    }

    async fn cluster_status(
        &self,
        request: Request<v1::ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatusReply>, Status> {
        self.caller(&request)?.read_operations()?;
        let topology = self.ctx.router.topology();
        let leader = topology.leader();
        let store_revision = self.ctx.records.revision().await.map_err(from_records)?;
        Ok(Response::new(v1::ClusterStatusReply {
            members: topology
                .members()
                .into_iter()
                .map(|m| v1::Member {
                    id: m.id,
                    site: m.site,
                    grpc_addr: m.grpc_addr,
                })
                .collect(),
            leader: leader
                .as_ref()
                .map(|l| l.node_id.clone())
                .unwrap_or_default(),
            term: leader.map_or(0, |l| l.term),
            store: self.store_kind.to_string(),
            store_revision,
            device_streams_served: self.ctx.router.streams.served(),
            device_streams_proxied: self.ctx.router.streams.proxied(),
        }))
    }

    async fn verify_audit(
        &self,
        request: Request<v1::VerifyAuditRequest>,
    ) -> Result<Response<v1::VerifyAuditReply>, Status> {
        self.caller(&request)?.require_role(Role::Supervisor)?;
        // Raw records: one that no longer decodes is a verdict, not a failure of the call.
        let prefix = Incident::prefix();
        let (kvs, _) = self
            .ctx
            .records
            .store()
            .get_prefix(&prefix)
            .await
            .map_err(|e| from_records(e.into()))?;
        let incidents: Vec<v1::AuditVerdict> = kvs
            .iter()
            .map(|kv| {
                let id = kv.key.strip_prefix(&prefix).unwrap_or(&kv.key);
                audit_verdict(id, &kv.value, self.ctx.records.audit_key())
            })
            .collect();
        let mut incidents = incidents;
        let mut archived = 0;
        if let Some(history) = &self.ctx.history {
            let verification = history
                .archive
                .verify(self.ctx.records.audit_key())
                .await
                .map_err(from_archive)?;
            archived = verification.checked;
            incidents.extend(verification.breaks.iter().map(|found| v1::AuditVerdict {
                incident_id: found.incident_id.clone(),
                intact: false,
                reason: format!("archive: {}", found.reason),
                ..v1::AuditVerdict::default()
            }));
        }
        let devices: Vec<v1::DeviceAuditVerdict> = self
            .ctx
            .records
            .verify_device_trails()
            .await
            .map_err(from_records)?
            .into_iter()
            .map(device_verdict)
            .collect();
        let broken = incidents.iter().filter(|v| !v.intact).count()
            + devices.iter().filter(|v| !v.intact).count();
        if broken > 0 {
            tracing::error!(
                broken,
                checked = incidents.len(),
                "audit verification found broken chains"
            );
        }
        Ok(Response::new(v1::VerifyAuditReply {
            broken: broken as u32,
            incidents,
            archived: u32::try_from(archived).unwrap_or(u32::MAX),
            devices,
        }))
    }

    async fn list_closed_incidents(
        &self,
        request: Request<v1::ListClosedIncidentsRequest>,
    ) -> Result<Response<v1::ListClosedIncidentsReply>, Status> {
        self.caller(&request)?.read_operations()?;
        let request = request.into_inner();
        let history = crate::status::history(&self.ctx)?;
        let limit = match request.limit {
            0 => centinela_archive::limits::PAGE_DEFAULT,
            n if n > centinela_archive::limits::PAGE_MAX => {
                return Err(Status::invalid_argument(format!(
                    "limit {n} is over {}",
                    centinela_archive::limits::PAGE_MAX
                )));
            }
            n => n,
        };
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(parse_page_token(token).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "page_token {token:?} is not one this service returned"
                ))
            })?),
        };
        let page = centinela_archive::Page {
            since: (request.since_ms > 0).then(|| Timestamp::from_millis(request.since_ms)),
            after,
            limit,
        };
        let incidents = history.archive.closed(&page).await.map_err(from_archive)?;
        let next_page_token = match incidents.last() {
            Some(last) if incidents.len() == limit as usize => format!(
                "{}:{}",
                last.closed_at.map_or(0, Timestamp::as_millis),
                last.id
            ),
            _ => String::new(),
        };
        Ok(Response::new(v1::ListClosedIncidentsReply {
            incidents: incidents.iter().map(convert::incident_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn report(
        &self,
        request: Request<v1::ReportRequest>,
    ) -> Result<Response<v1::ReportReply>, Status> {
        // Any operator: the report is the closed incidents ListClosedIncidents already shows
        // them, summed.
        self.caller(&request)?.read_operations()?;
        let request = request.into_inner();
        let history = crate::status::history(&self.ctx)?;
        let by = match request.by.as_str() {
            "" => Grouping::Button,
            by => by.parse::<Grouping>().map_err(Status::invalid_argument)?,
        };
        let until = match request.until_ms {
            0 => self.ctx.clock.now(),
            ms => Timestamp::from_millis(ms),
        };
        let query = ReportQuery {
            since: Timestamp::from_millis(request.since_ms),
            until,
            by,
            utc_offset_minutes: request.utc_offset_minutes,
        };
        let report = history.archive.report(&query).await.map_err(from_archive)?;
        Ok(Response::new(v1::ReportReply {
            rows: report.rows.iter().map(report_row_to_wire).collect(),
            total: Some(report_row_to_wire(&report.total)),
            repeat_pranks: report
                .repeat_pranks
                .iter()
                .map(|r| v1::RepeatPranks {
                    button: r.button.clone(),
                    pranks: r.pranks,
                })
                .collect(),
            since_ms: query.since.as_millis(),
            until_ms: query.until.as_millis(),
            by: by.to_string(),
        }))
    }

    async fn plan_posts(
        &self,
        request: Request<v1::PlanPostsRequest>,
    ) -> Result<Response<v1::PlanPostsReply>, Status> {
        // Any operator: it reads what Report and ListUnits already show.
        self.caller(&request)?.read_operations()?;
        crate::posts::plan(&self.ctx, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn handoff(
        &self,
        request: Request<v1::HandoffRequest>,
    ) -> Result<Response<v1::Handoff>, Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let operator = caller.operator(&request.operator_id, Role::Operator)?;
        let incident_id: IncidentId =
            id("incident_id", &request.incident_id).map_err(from_convert)?;
        let agency_id: AgencyId = id("agency_id", &request.agency_id).map_err(from_convert)?;
        let setup = &self.ctx.handoff;
        let Some(agency) = setup.agencies.get(&agency_id) else {
            let known: Vec<&str> = setup
                .agencies
                .agencies
                .iter()
                .map(|a| a.id.as_str())
                .collect();
            return Err(Status::not_found(format!(
                "agency {agency_id} not found; configured: {}",
                if known.is_empty() {
                    "none (CENTINELA_AGENCIES_FILE)".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        let note = Some(request.note.trim().to_string()).filter(|n| !n.is_empty());
        if let Some(note) = &note
            && note.len() > HANDOFF_NOTE_LEN_MAX
        {
            return Err(Status::invalid_argument(format!(
                "note: {} bytes, at most {HANDOFF_NOTE_LEN_MAX}",
                note.len()
            )));
        }
        let records = &self.ctx.records;
        let current = records
            .incident(&incident_id)
            .await
            .map_err(from_records)?
            .ok_or_else(|| Status::not_found(format!("incident {incident_id} not found")))?;
        if !agency.takes(current.kind) {
            return Err(Status::failed_precondition(format!(
                "agency {agency_id} does not take {} incidents",
                current.kind
            )));
        }
        let area = records
            .button(&current.button)
            .await
            .map_err(from_records)?
            .map_or_else(|| format!("button {}", current.button), |b| b.name);
        let now = self.ctx.clock.now();
        let (handoff, created) = records
            .create_handoff(&incident_id, &agency_id, |incident| {
                centinela_handoff::begin(
                    incident,
                    &agency_id,
                    operator.clone(),
                    note.clone(),
                    &area,
                    &setup.sender,
                    now,
                )
            })
            .await
            .map_err(from_records)?;
        let created = created == Created::New;
        if created {
            tracing::info!(incident = %incident_id, agency = %agency_id, cap = %handoff.cap_id, "incident handed off");
        }
        let mut wire = handoff_to_wire(&handoff);
        wire.created = created;
        Ok(Response::new(wire))
    }

    async fn list_handoffs(
        &self,
        request: Request<v1::ListHandoffsRequest>,
    ) -> Result<Response<v1::ListHandoffsReply>, Status> {
        self.caller(&request)?.read_operations()?;
        let incident_id: IncidentId =
            id("incident_id", &request.get_ref().incident_id).map_err(from_convert)?;
        let handoffs = self
            .ctx
            .records
            .handoffs_of(&incident_id)
            .await
            .map_err(from_records)?;
        Ok(Response::new(v1::ListHandoffsReply {
            handoffs: handoffs.iter().map(handoff_to_wire).collect(),
        }))
    }

    async fn list_agencies(
        &self,
        request: Request<v1::ListAgenciesRequest>,
    ) -> Result<Response<v1::ListAgenciesReply>, Status> {
        self.caller(&request)?.read_operations()?;
        Ok(Response::new(v1::ListAgenciesReply {
            agencies: self
                .ctx
                .handoff
                .agencies
                .agencies
                .iter()
                .map(|a| v1::Agency {
                    id: a.id.to_string(),
                    name: a.name.clone(),
                    kinds: a.kinds.iter().flatten().map(ToString::to_string).collect(),
                })
                .collect(),
        }))
    }

    async fn ping(
        &self,
        request: Request<v1::PingRequest>,
    ) -> Result<Response<v1::PingReply>, Status> {
        self.caller(&request)?.read_inventory()?;
        Ok(Response::new(v1::PingReply {
            server_time_ms: self.ctx.clock.now().as_millis(),
        }))
    }
}

/// A hand-off as the wire shows it (the CAP bodies stay in the store).
pub fn handoff_to_wire(handoff: &Handoff) -> v1::Handoff {
    v1::Handoff {
        incident_id: handoff.incident.to_string(),
        agency_id: handoff.agency.to_string(),
        cap_id: handoff.cap_id.clone(),
        state: handoff.state().to_string(),
        attempts: handoff.attempts(),
        last_error: handoff.last_error().unwrap_or_default().to_string(),
        messages: handoff
            .messages
            .iter()
            .map(|m| v1::HandoffMessage {
                seq: m.seq,
                msg_type: m.msg_type.to_string(),
                identifier: m.identifier.clone(),
                sent: m.sent.clone(),
                state: m.state.to_string(),
                attempts: m.attempts,
                last_error: m.last_error.clone().unwrap_or_default(),
                last_status: m.last_status.map_or(0, u32::from),
                delivered_at_ms: m.delivered_at.map_or(0, |t| t.as_millis()),
                next_attempt_at_ms: m.next_attempt_at.as_millis(),
            })
            .collect(),
        acks: handoff
            .acks
            .iter()
            .map(|a| v1::HandoffAck {
                at_ms: a.at.as_millis(),
                detail: a.detail.clone(),
            })
            .collect(),
        created_at_ms: handoff.created_at.as_millis(),
        operator: Actor::Operator(handoff.operator.clone()).tag(),
        note: handoff.note.clone().unwrap_or_default(),
        created: false,
    }
}

/// A page token, `{closed_at_ms}:{incident id}` (the last incident of the previous page).
fn parse_page_token(token: &str) -> Option<(Timestamp, String)> {
    let (at, id) = token.split_once(':')?;
    let at: u64 = at.parse().ok()?;
    IncidentId::new(id).ok()?;
    Some((Timestamp::from_millis(at), id.to_string()))
}

/// The verdict on one stored incident record ([`Incident::verify_audit`]), with the node's
/// audit key.
fn audit_verdict(key_id: &str, value: &[u8], key: &AuditKey) -> v1::AuditVerdict {
    let broken = |reason: String| v1::AuditVerdict {
        incident_id: key_id.to_string(),
        intact: false,
        reason,
        ..v1::AuditVerdict::default()
    };
    let incident: Incident = match serde_json::from_slice(value) {
        Ok(incident) => incident,
        Err(e) => return broken(format!("the record does not decode: {e}")),
    };
    if incident.id.as_str() != key_id {
        return broken(format!(
            "the record of {} is stored under {key_id}",
            incident.id
        ));
    }
    let verdict = incident.verify_audit(Some(key));
    let (first_break, reason) = match verdict.first_break {
        Some(found) => (found.entry.map(|index| index as u32), found.reason),
        None => (None, String::new()),
    };
    v1::AuditVerdict {
        incident_id: key_id.to_string(),
        entries: verdict.entries as u32,
        chained: verdict.chained as u32,
        intact: reason.is_empty(),
        first_break,
        reason,
        head: verdict.head,
    }
}

/// The verdict on one device's trail of alert clearances, on the wire.
fn device_verdict(found: centinela_records::device_audit::DeviceVerdict) -> v1::DeviceAuditVerdict {
    let verdict = found.verdict;
    let (first_break, reason) = match verdict.first_break {
        Some(found) => (found.entry.map(|index| index as u32), found.reason),
        None => (None, String::new()),
    };
    v1::DeviceAuditVerdict {
        device: found.device,
        entries: verdict.entries as u32,
        intact: reason.is_empty(),
        first_break,
        reason,
        head: verdict.head,
    }
}

type Outbox = mpsc::Sender<Result<WatchItem, Status>>;

/// Snapshot, then live changes newer than the snapshot; a lagging subscriber re-snapshots.
async fn stream_watch(
    records: centinela_records::Records,
    mut feed: Subscription,
    scope: WatchScope,
    tx: Outbox,
) -> Result<(), Status> {
    use v1::operator_event::Event;
    let WatchScope {
        include_closed,
        incidents_only,
    } = scope;
    loop {
        tx.send(Ok(WatchItem::SnapshotStart))
            .await
            .map_err(|_| Status::cancelled("operator stream closed"))?;
        // Revision of each entity in the snapshot: older live events are dropped.
        let mut seen: HashMap<String, i64> = HashMap::new();
        // Open incidents through their index (never a walk of `incidents/`); the closed ones
        // still in the store (the retention window) only when asked for.
        let (incidents, rev) = match include_closed {
            true => records.snapshot::<Incident>().await,
            false => records.open_incidents_snapshot().await,
        }
        .map_err(from_records)?;
        for incident in incidents.iter().filter(|i| include_closed || i.is_open()) {
            seen.insert(format!("i/{}", incident.id), rev);
            send(&tx, Event::Incident(convert::incident_to_wire(incident))).await?;
        }
        if !incidents_only {
            let (brigades, rev) = records.snapshot::<Brigade>().await.map_err(from_records)?;
            for brigade in &brigades {
                seen.insert(format!("u/{}", brigade.id), rev);
                send(&tx, Event::Unit(convert::brigade_to_wire(brigade))).await?;
            }
            let (buttons, rev) = records.snapshot::<Button>().await.map_err(from_records)?;
            for button in &buttons {
                seen.insert(format!("b/{}", button.id), rev);
                send(&tx, Event::Button(convert::button_to_wire(button))).await?;
            }
            let (cameras, rev) = records.snapshot::<Camera>().await.map_err(from_records)?;
            for camera in &cameras {
                seen.insert(format!("c/{}", camera.id), rev);
                send(&tx, Event::Camera(convert::camera_to_wire(camera))).await?;
            }
        }
        send(&tx, Event::SnapshotDone(v1::SnapshotDone {})).await?;

        loop {
            // A client that left is noticed at once, not at the next event: its
            // subscription is what keeps the node's store watch open.
            let received = tokio::select! {
                received = feed.recv() => received,
                () = tx.closed() => return Err(Status::cancelled("operator stream closed")),
            };
            let event = match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "operator stream lagged; re-sending a snapshot");
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            let fresh = |key: String, revision: i64| {
                seen.get(&key).is_none_or(|snapshot| revision > *snapshot)
            };
            let out = match event {
                FeedEvent::Resync => break,
                FeedEvent::Incident(i, rev) if fresh(format!("i/{}", i.id), rev) => {
                    // Every incident the watcher was shown, in the snapshot or live, is
                    // followed to its closure; once closed (final) it is forgotten, which
                    // keeps `seen` to the open incidents plus the fixed entities.
                    let key = format!("i/{}", i.id);
                    let shown = seen.contains_key(&key);
                    if include_closed || i.is_open() {
                        seen.insert(key, rev);
                    } else {
                        seen.remove(&key);
                    }
                    (include_closed || i.is_open() || shown)
                        .then(|| Event::Incident(convert::incident_to_wire(&i)))
                }
                // Skipped, not filtered out of the node's watch: one watch feeds every
                // subscriber, and a device's change costs this one only its receipt.
                FeedEvent::Brigade(..) | FeedEvent::Button(..) | FeedEvent::Camera(..)
                    if incidents_only =>
                {
                    None
                }
                FeedEvent::Brigade(b, rev) if fresh(format!("u/{}", b.id), rev) => {
                    Some(Event::Unit(convert::brigade_to_wire(&b)))
                }
                FeedEvent::Button(b, rev) if fresh(format!("b/{}", b.id), rev) => {
                    Some(Event::Button(convert::button_to_wire(&b)))
                }
                FeedEvent::Camera(c, rev) if fresh(format!("c/{}", c.id), rev) => {
                    Some(Event::Camera(convert::camera_to_wire(&c)))
                }
                _ => None,
            };
            if let Some(out) = out {
                send(&tx, out).await?;
            }
        }
    }
}

async fn send(tx: &Outbox, event: v1::operator_event::Event) -> Result<(), Status> {
    tx.send(Ok(WatchItem::Event(event)))
        .await
        .map_err(|_| Status::cancelled("operator stream closed"))
}

fn report_row_to_wire(row: &ReportRow) -> v1::ReportRow {
    let latency = |l: &Latency| v1::ReportLatency {
        count: l.count,
        p50_s: l.p50_s,
        p90_s: l.p90_s,
    };
    v1::ReportRow {
        key: row.key.clone(),
        presses: row.presses,
        incidents: row.incidents,
        handled: row.handled,
        pranks: row.pranks,
        false_alarms: row.false_alarms,
        cancelled: row.cancelled,
        prank_share: row.prank_share,
        false_alarm_share: row.false_alarm_share,
        acknowledged: Some(latency(&row.acknowledged)),
        assigned: Some(latency(&row.assigned)),
        on_scene: Some(latency(&row.on_scene)),
    }
}
