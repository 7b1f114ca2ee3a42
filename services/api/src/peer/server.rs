//! The `Peer` service: other nodes' routers deliver messages for the entities this node owns
//! (and for its dispatcher, when it leads), and open device channels proxied through them.
//! Only other nodes may call it ([`auth::Caller::peer`]: the cluster secret); they authorized
//! the device or operator behind each message before forwarding it.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use centinela_actors::brigade::BrigadeActor;
use centinela_actors::camera::CameraActor;
use centinela_actors::{Context, limits, wire};
use centinela_core::ids::{BrigadeId, CameraId};
use centinela_intercom::remote::{self, Step};
use centinela_intercom::{Desk, DeskError};
use centinela_proto::convert::id;
use centinela_proto::v1::peer_call_step::Step as WireStep;
use centinela_proto::v1::peer_server::Peer;
use centinela_proto::v1::{PeerCallReply, PeerCallStep, PeerMessage, PeerSubscribe};

use crate::auth;
use crate::devices::ServerStream;
use crate::status::{from_actor, from_convert};

#[derive(Clone)]
pub struct PeerService {
    ctx: Arc<Context>,
    /// This node's call desk, when it runs the SIP gateway: other nodes' consoles step on
    /// the calls it anchors ([`Peer::call_step`]).
    calls: Option<Arc<Desk>>,
}

/// The trailer naming the operator who has a call, on `ALREADY_EXISTS` from `CallStep`.
pub const TAKEN_BY_TRAILER: &str = "centinela-taken-by";

impl PeerService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx, calls: None }
    }

    /// Takes forwarded steps on the calls of `desk`.
    pub fn with_calls(mut self, desk: Option<Arc<Desk>>) -> Self {
        self.calls = desk;
        self
    }

    fn message(&self, body: Vec<u8>) -> PeerMessage {
        PeerMessage {
            from_node: self.ctx.node_id.to_string(),
            body,
            revision: wire::REVISION,
        }
    }
}

fn relay<T: serde::Serialize + Send + 'static>(
    node: String,
    rx: mpsc::Receiver<T>,
) -> ServerStream<PeerMessage> {
    Box::pin(ReceiverStream::new(rx).map(move |item| {
        Ok(PeerMessage {
            from_node: node.clone(),
            body: wire::encode(&item),
            revision: wire::REVISION,
        })
    }))
}

#[tonic::async_trait]
impl Peer for PeerService {
    type CameraCommandsStream = ServerStream<PeerMessage>;
    type UnitAssignmentsStream = ServerStream<PeerMessage>;

    async fn deliver(
        &self,
        request: Request<PeerMessage>,
    ) -> Result<Response<PeerMessage>, Status> {
        auth::caller(&request)?.peer()?;
        let message = request.into_inner();
        tracing::debug!(from = %message.from_node, "peer delivery");
        let response = self
            .ctx
            .router
            .deliver(&message.body, message.revision)
            .await
            .map_err(from_actor)?;
        Ok(Response::new(self.message(response)))
    }

    async fn camera_commands(
        &self,
        request: Request<PeerSubscribe>,
    ) -> Result<Response<Self::CameraCommandsStream>, Status> {
        auth::caller(&request)?.peer()?;
        let camera: CameraId =
            id("entity_id", &request.get_ref().entity_id).map_err(from_convert)?;
        let (tx, rx) = mpsc::channel(limits::DEVICE_CHANNEL_CAPACITY);
        self.ctx
            .router
            .attach_local::<CameraActor>(&camera, tx)
            .await
            .map_err(from_actor)?;
        Ok(Response::new(relay(self.ctx.node_id.to_string(), rx)))
    }

    async fn unit_assignments(
        &self,
        request: Request<PeerSubscribe>,
    ) -> Result<Response<Self::UnitAssignmentsStream>, Status> {
        auth::caller(&request)?.peer()?;
        let unit: BrigadeId =
            id("entity_id", &request.get_ref().entity_id).map_err(from_convert)?;
        let (tx, rx) = mpsc::channel(limits::DEVICE_CHANNEL_CAPACITY);
        self.ctx
            .router
            .attach_local::<BrigadeActor>(&unit, tx)
            .await
            .map_err(from_actor)?;
        Ok(Response::new(relay(self.ctx.node_id.to_string(), rx)))
    }

    async fn call_step(
        &self,
        request: Request<PeerCallStep>,
    ) -> Result<Response<PeerCallReply>, Status> {
        auth::caller(&request)?.peer()?;
        let Some(desk) = &self.calls else {
            return Err(Status::not_found(
                "this node takes no intercom calls (it runs without --sip)",
            ));
        };
        let message = request.into_inner();
        let call_id = message.call_id;
        if call_id.is_empty()
            || call_id.len() > crate::limits::CALL_ID_LEN_MAX
            || call_id.chars().any(char::is_control)
        {
            return Err(Status::invalid_argument(format!(
                "call_id: 1 to {} printable characters",
                crate::limits::CALL_ID_LEN_MAX
            )));
        }
        if message.operator.is_empty() {
            return Err(Status::invalid_argument("operator: required"));
        }
        let step = match message.step {
            Some(WireStep::AnswerSdp(sdp)) => {
                let browser = match message.browser_addr.as_str() {
                    "" => None,
                    addr => Some(addr.parse().map_err(|e| {
                        Status::invalid_argument(format!("browser_addr {addr:?}: {e}"))
                    })?),
                };
                Step::Answer { sdp, browser }
            }
            Some(WireStep::Hold(held)) => Step::Hold(held),
            Some(WireStep::HangUp(_)) => Step::HangUp,
            None => return Err(Status::invalid_argument("step: required")),
        };
        tracing::info!(from = %message.from_node, call = %call_id, operator = %message.operator, "sip: a call step from another node's console");
        let reply = remote::take_step(desk, &call_id, &message.operator, step)
            .await
            .map_err(desk_status)?;
        Ok(Response::new(PeerCallReply {
            sdp: reply.sdp.unwrap_or_default(),
            state: reply.state.name().to_string(),
            operator: reply.operator.unwrap_or_default(),
            ended_by: reply.ended_by.unwrap_or_default(),
        }))
    }
}

/// A desk's refusal as the status `CallStep` answers (peer.proto).
fn desk_status(error: DeskError) -> Status {
    let message = error.to_string();
    match error {
        DeskError::NoSuchCall(_) => Status::not_found(message),
        DeskError::Taken(operator) => {
            let mut status = Status::already_exists(message);
            if let Ok(value) = operator.parse() {
                status.metadata_mut().insert(TAKEN_BY_TRAILER, value);
            }
            status
        }
        DeskError::NotAnswered => Status::failed_precondition(message),
        DeskError::BadOffer(_) => Status::invalid_argument(message),
        DeskError::Unavailable(_) => Status::unavailable(message),
    }
}
