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
use centinela_proto::convert::id;
use centinela_proto::v1::peer_server::Peer;
use centinela_proto::v1::{PeerMessage, PeerSubscribe};

use crate::auth;
use crate::devices::ServerStream;
use crate::status::{from_actor, from_convert};

#[derive(Clone)]
pub struct PeerService {
    ctx: Arc<Context>,
}

impl PeerService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
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
}
