//! The device-facing services: `ButtonGateway`, `CameraGateway`, `UnitGateway`.
//!
//! Each call validates its input at the edge (ids, coordinates, enums), checks that the caller
//! may act as the device it names ([`auth::Caller`]: a button's token presses only that
//! button), then goes through the router to the entity's actor. Device channels (camera
//! commands, unit assignments) are server streams fed by an mpsc channel the actor holds; when
//! the device goes away the stream is dropped and the actor notices. Attaches go through the
//! node's [`Admission`]: a bounded number at once, the rest refused with `RESOURCE_EXHAUSTED`
//! and a `retry-after` that follows the node's pace, so an attach storm is absorbed at it.
//!
//! A device that follows owner redirects (`centinela_proto::redirect`, request metadata
//! `centinela-follow-owner: 1`) and reaches a node that does not own it is answered with the
//! owner's address instead of a proxied stream (or, for a button's heartbeat, a forwarded
//! call); when its stream on the owner ends because ownership moved, the stream's last word is
//! the same redirect naming the new owner. A device that does not ask is proxied, as before.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use centinela_actors::brigade::{BrigadeActor, BrigadeRequest, TerminalEvent};
use centinela_actors::button::{ButtonActor, ButtonRequest};
use centinela_actors::camera::{CameraActor, CameraCommand, CameraRequest};
use centinela_actors::device::DeviceEntity;
use centinela_actors::entity::Entity;
use centinela_actors::{Context, Router, limits};
use centinela_core::brigade::{Brigade, BrigadeStatus};
use centinela_core::button::{Button, ButtonHealth};
use centinela_core::camera::Camera;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, PressId};
use centinela_core::incident::Clearance;
use centinela_proto::convert::{self, id};
use centinela_proto::redirect;
use centinela_proto::v1;
use centinela_proto::v1::button_gateway_server::ButtonGateway;
use centinela_proto::v1::camera_gateway_server::CameraGateway;
use centinela_proto::v1::unit_gateway_server::UnitGateway;

use crate::admission::{Admission, Attaching};
use crate::auth;
use crate::limits::TAMPER_DETAIL_LEN_MAX;
use crate::status::{from_actor, from_convert};

pub type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
pub struct Devices {
    ctx: Arc<Context>,
    /// Device channels being attached: an [`Attaching`] is held from the owner check (a
    /// redirect takes none) until the actor (or the owner's proxy) holds the channel.
    admission: Admission,
}

impl Devices {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self {
            ctx,
            admission: Admission::new(),
        }
    }
}

#[tonic::async_trait]
impl ButtonGateway for Devices {
    async fn press(
        &self,
        request: Request<v1::PressRequest>,
    ) -> Result<Response<v1::PressReply>, Status> {
        let caller = auth::caller(&request)?;
        let request = request.into_inner();
        let button: ButtonId = id("button_id", &request.button_id).map_err(from_convert)?;
        let press_id: PressId = id("press_id", &request.press_id).map_err(from_convert)?;
        caller.act_as_button(&button)?;
        let outcome = self
            .ctx
            .router
            .press(&button, press_id)
            .await
            .map_err(from_actor)?;
        Ok(Response::new(v1::PressReply {
            incident_id: outcome.incident.id.to_string(),
            duplicate: outcome.duplicate,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<v1::ButtonHeartbeat>,
    ) -> Result<Response<v1::HeartbeatReply>, Status> {
        let button: ButtonId =
            id("button_id", &request.get_ref().button_id).map_err(from_convert)?;
        auth::caller(&request)?.act_as_button(&button)?;
        // A button that follows redirects is sent to its owner instead of forwarded there: a
        // forwarded heartbeat costs two nodes a call each, and 100,000 buttons send 10,000 a
        // second.
        if redirect::follows_owner(request.metadata())
            && let Some(owner) = self.ctx.router.remote_owner::<ButtonActor>(&button)
        {
            return Err(redirect_to::<ButtonActor>(&button, owner));
        }
        let health: ButtonHealth = self
            .ctx
            .router
            .call(&button, ButtonRequest::Heartbeat {})
            .await
            .map_err(from_actor)?;
        Ok(Response::new(v1::HeartbeatReply {
            status: convert::button_health_to_wire(health) as i32,
        }))
    }

    async fn report_tamper(
        &self,
        request: Request<v1::TamperReport>,
    ) -> Result<Response<v1::TamperReply>, Status> {
        let caller = auth::caller(&request)?;
        let request = request.into_inner();
        let button: ButtonId = id("button_id", &request.button_id).map_err(from_convert)?;
        caller.act_as_button(&button)?;
        if request.detail.len() > TAMPER_DETAIL_LEN_MAX {
            return Err(Status::invalid_argument(format!(
                "detail: {} bytes, at most {TAMPER_DETAIL_LEN_MAX}",
                request.detail.len()
            )));
        }
        let detail = request.detail;
        let _: Button = self
            .ctx
            .router
            .call(&button, ButtonRequest::Tamper { detail })
            .await
            .map_err(from_actor)?;
        Ok(Response::new(v1::TamperReply {}))
    }
}

#[tonic::async_trait]
impl CameraGateway for Devices {
    type CommandsStream = ServerStream<v1::CameraCommand>;

    async fn commands(
        &self,
        request: Request<v1::CameraSubscribe>,
    ) -> Result<Response<Self::CommandsStream>, Status> {
        let camera: CameraId =
            id("camera_id", &request.get_ref().camera_id).map_err(from_convert)?;
        auth::caller(&request)?.act_as_camera(&camera)?;
        let follows = redirect::follows_owner(request.metadata());
        let rx = attach::<CameraActor>(&self.ctx.router, &self.admission, &camera, follows).await?;
        Ok(Response::new(device_stream::<CameraActor, _>(
            &self.ctx.router,
            camera,
            follows,
            rx,
            |command| camera_command_to_wire(*command),
        )))
    }

    async fn report_status(
        &self,
        request: Request<v1::CameraStatusReport>,
    ) -> Result<Response<v1::CameraStatusReply>, Status> {
        let caller = auth::caller(&request)?;
        let request = request.into_inner();
        let camera: CameraId = id("camera_id", &request.camera_id).map_err(from_convert)?;
        caller.act_as_camera(&camera)?;
        let state = convert::camera_state(request.state).map_err(from_convert)?;
        let incident: Option<IncidentId> =
            convert::optional_id("incident_id", request.incident_id.as_deref())
                .map_err(from_convert)?;
        let _: Camera = self
            .ctx
            .router
            .call(&camera, CameraRequest::Report { state, incident })
            .await
            .map_err(from_actor)?;
        Ok(Response::new(v1::CameraStatusReply {}))
    }
}

/// Attaches a device's channel: here when this node owns the device (or when the device does
/// not follow redirects: then a non-owner proxies it), else the redirect naming the owner. A
/// redirect costs the node nothing, so only an attach goes through `admission`.
async fn attach<E: DeviceEntity>(
    router: &Router,
    admission: &Admission,
    id: &E::Id,
    follows: bool,
) -> Result<mpsc::Receiver<E::Item>, Status> {
    if follows && let Some(owner) = router.remote_owner::<E>(id) {
        return Err(redirect_to::<E>(id, owner));
    }
    let _attaching: Attaching = admission.admit(id.as_ref())?;
    let (tx, rx) = mpsc::channel(limits::DEVICE_CHANNEL_CAPACITY);
    router.attach::<E>(id, tx).await.map_err(from_actor)?;
    Ok(rx)
}

fn redirect_to<E: Entity>(id: &E::Id, owner: centinela_cluster::Member) -> Status {
    redirect::status(
        E::KIND,
        id.as_ref(),
        &redirect::Owner {
            node: owner.id,
            addr: owner.grpc_addr,
        },
    )
}

/// The device's stream: the channel's items on the wire, counted while open. When the channel
/// ends (the entity stopped here, the node shutting down or ownership moving) a device that
/// follows redirects gets the new owner as the stream's last word, when another node owns it
/// now.
fn device_stream<E: DeviceEntity, W: Send + 'static>(
    router: &Router,
    id: E::Id,
    follows: bool,
    rx: mpsc::Receiver<E::Item>,
    to_wire: fn(E::Item) -> W,
) -> ServerStream<W> {
    let proxied_here = router.remote_owner::<E>(&id).is_some();
    let count = (!proxied_here).then(|| router.streams.count_served());
    let router = router.clone();
    let last_word = futures::stream::once(async move {
        drop(count);
        if !follows {
            return None;
        }
        router
            .remote_owner::<E>(&id)
            .map(|owner| Err(redirect_to::<E>(&id, owner)))
    })
    .filter_map(|item| item);
    Box::pin(
        ReceiverStream::new(rx)
            .map(move |item| Ok(to_wire(item)))
            .chain(last_word),
    )
}

fn camera_command_to_wire(command: CameraCommand) -> v1::CameraCommand {
    let command = match command {
        CameraCommand::Aim {
            incident,
            preset,
            trace,
        } => v1::camera_command::Command::Aim(v1::AimCommand {
            incident_id: incident.to_string(),
            preset: Some(convert::preset_to_wire(&preset)),
            traceparent: trace,
        }),
        CameraCommand::Release => v1::camera_command::Command::Release(v1::ReleaseCommand {}),
    };
    v1::CameraCommand {
        command: Some(command),
    }
}

#[tonic::async_trait]
impl UnitGateway for Devices {
    type AssignmentsStream = ServerStream<v1::AssignmentEvent>;

    async fn report_position(
        &self,
        request: Request<v1::PositionReport>,
    ) -> Result<Response<v1::PositionReply>, Status> {
        let caller = auth::caller(&request)?;
        let request = request.into_inner();
        let unit: BrigadeId = id("unit_id", &request.unit_id).map_err(from_convert)?;
        caller.act_as_unit(&unit)?;
        let position =
            convert::position("position", request.position.as_ref()).map_err(from_convert)?;
        self.ctx
            .router
            .call::<_, ()>(&unit, BrigadeRequest::Position { position })
            .await
            .map_err(from_actor)?;
        Ok(Response::new(v1::PositionReply {}))
    }

    async fn assignments(
        &self,
        request: Request<v1::UnitSubscribe>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let unit: BrigadeId = id("unit_id", &request.get_ref().unit_id).map_err(from_convert)?;
        auth::caller(&request)?.act_as_unit(&unit)?;
        let follows = redirect::follows_owner(request.metadata());
        let rx = attach::<BrigadeActor>(&self.ctx.router, &self.admission, &unit, follows).await?;
        Ok(Response::new(device_stream::<BrigadeActor, _>(
            &self.ctx.router,
            unit,
            follows,
            rx,
            |event| terminal_event_to_wire(*event),
        )))
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AssignmentAck>,
    ) -> Result<Response<v1::AssignmentAckReply>, Status> {
        let caller = auth::caller(&request)?;
        let request = request.into_inner();
        let unit: BrigadeId = id("unit_id", &request.unit_id).map_err(from_convert)?;
        caller.act_as_unit(&unit)?;
        let incident: IncidentId = id("incident_id", &request.incident_id).map_err(from_convert)?;
        let _: Brigade = self
            .ctx
            .router
            .call(&unit, BrigadeRequest::Ack { incident })
            .await
            .map_err(from_actor)?;
        Ok(Response::new(v1::AssignmentAckReply {}))
    }

    async fn update_status(
        &self,
        request: Request<v1::UnitStatusUpdate>,
    ) -> Result<Response<v1::UnitStatusReply>, Status> {
        let caller = auth::caller(&request)?;
        let request = request.into_inner();
        let unit: BrigadeId = id("unit_id", &request.unit_id).map_err(from_convert)?;
        caller.act_as_unit(&unit)?;
        let status = convert::unit_status(request.status).map_err(from_convert)?;
        let incident: Option<IncidentId> =
            convert::optional_id("incident_id", request.incident_id.as_deref())
                .map_err(from_convert)?;
        let outcome = clearance(status, incident.is_some(), request.outcome, request.note)?;
        let brigade: Brigade = self
            .ctx
            .router
            .call(
                &unit,
                BrigadeRequest::Status {
                    status,
                    incident,
                    outcome,
                },
            )
            .await
            .map_err(from_actor)?;
        Ok(Response::new(v1::UnitStatusReply {
            unit: Some(convert::brigade_to_wire(&brigade)),
        }))
    }
}

/// The officer's outcome of a clear: only with a clear (available, with the incident), in the
/// operators' resolution vocabulary, with a note of bounded length.
fn clearance(
    status: BrigadeStatus,
    with_incident: bool,
    outcome: Option<i32>,
    note: Option<String>,
) -> Result<Option<Clearance>, Status> {
    let Some(outcome) = outcome else {
        if note.is_some() {
            return Err(Status::invalid_argument(
                "note: a note goes with an outcome",
            ));
        }
        return Ok(None);
    };
    if status != BrigadeStatus::Available || !with_incident {
        return Err(Status::invalid_argument(
            "outcome: an outcome goes with a clear only (status AVAILABLE with the incident_id)",
        ));
    }
    let clearance = Clearance {
        resolution: convert::resolution(outcome).map_err(from_convert)?,
        note: note.filter(|n| !n.trim().is_empty()),
    };
    clearance
        .validate()
        .map_err(|e| Status::invalid_argument(format!("note: {e}")))?;
    Ok(Some(clearance))
}

fn terminal_event_to_wire(event: TerminalEvent) -> v1::AssignmentEvent {
    let event = match event {
        TerminalEvent::Assigned(a) => v1::assignment_event::Event::Assignment(v1::Assignment {
            incident_id: a.incident.to_string(),
            button: a.button.to_string(),
            position: Some(convert::lat_lon(&a.position)),
            kind: convert::kind_to_wire(a.kind) as i32,
            priority: convert::priority_to_wire(a.priority) as i32,
            eta_s: a.eta.as_secs_f64(),
            traceparent: a.trace,
        }),
        TerminalEvent::Cancelled { incident, reason } => {
            v1::assignment_event::Event::Cancellation(v1::Cancellation {
                incident_id: incident.to_string(),
                reason,
            })
        }
    };
    v1::AssignmentEvent { event: Some(event) }
}
