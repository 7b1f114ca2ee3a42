//! [`GrpcPeers`]: the router's [`Transport`] over the `Peer` gRPC service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use centinela_actors::Error;
use centinela_actors::transport::{ChannelKind, Transport};
use centinela_actors::{limits, wire};
use centinela_cluster::Member;
use centinela_core::ids::NodeId;
use centinela_proto::client::Credentials;
use centinela_proto::v1::peer_client::PeerClient;
use centinela_proto::v1::{PeerCallReply, PeerCallStep, PeerMessage, PeerSubscribe};
use centinela_telemetry::propagation::Propagate;
use centinela_tls::ClientTls;
use centinela_tls::names::Kind;

/// Opens a (lazily connecting) channel to a peer's `http://host:port` URL. Production dials
/// TCP; a simulation dials its simulated network.
pub type PeerDialer = Arc<dyn Fn(&str) -> Result<Channel, String> + Send + Sync>;

/// A peer channel that sends the current trace context and the cluster credential with every
/// call.
type TracedChannel = InterceptedService<Channel, PeerCalls>;

/// What every call to another node carries: the trace context and this node's cluster
/// credential.
#[derive(Clone)]
struct PeerCalls {
    credentials: Credentials,
    /// This node's id, as [`NODE_HEADER`](crate::auth::edge::NODE_HEADER): the name the
    /// peer checks this node's certificate against.
    node: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl tonic::service::Interceptor for PeerCalls {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = Propagate.call(request)?;
        request
            .metadata_mut()
            .insert(crate::auth::edge::NODE_HEADER, self.node.clone());
        self.credentials.call(request)
    }
}

/// This node's connections to the other nodes.
pub struct GrpcPeers {
    node_id: NodeId,
    /// What this node presents to other nodes (its cluster credential; none when open).
    credentials: Credentials,
    /// How channels to peers are opened: TCP unless a simulation replaced it.
    dialer: Option<PeerDialer>,
    /// One lazily connected channel per peer node, replaced if its address changes.
    channels: Mutex<HashMap<String, (String, Channel)>>,
    /// TLS to the peers (`CENTINELA_TLS_*`): this node's certificate, and the cluster CA
    /// a peer's certificate must chain to. Each peer is dialed with its node name as the
    /// TLS server name, so only a process holding that node's certificate completes the
    /// handshake: a member record pointing elsewhere gets no call, no press, no secret.
    tls: Option<ClientTls>,
}

impl GrpcPeers {
    /// `authorization` is the `authorization` value presented to other nodes (`Node ID
    /// SECRET`, [`Security::peer_authorization`](crate::Security::peer_authorization)); `None`
    /// presents nothing. `dialer` replaces TCP (simulations).
    pub fn new(node_id: NodeId, authorization: Option<String>, dialer: Option<PeerDialer>) -> Self {
        let credentials = authorization
            .and_then(|value| match Credentials::node(&value) {
                Ok(credentials) => Some(credentials),
                Err(e) => {
                    tracing::error!(error = %e, "cluster credential unusable; peers will refuse this node");
                    None
                }
            })
            .unwrap_or_default();
        Self {
            node_id,
            credentials,
            dialer,
            channels: Mutex::new(HashMap::new()),
            tls: None,
        }
    }

    /// Speaks TLS to every peer; see the `tls` field.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    fn client(&self, member: &Member) -> Result<PeerClient<TracedChannel>, Error> {
        let calls = PeerCalls {
            credentials: self.credentials.clone(),
            node: self
                .node_id
                .as_str()
                .parse()
                .map_err(|_| Error::unavailable("this node's id is not ASCII"))?,
        };
        let mut channels = self.channels.lock().expect("peer table poisoned");
        if let Some((addr, channel)) = channels.get(&member.id)
            && *addr == member.grpc_addr
        {
            return Ok(PeerClient::with_interceptor(channel.clone(), calls));
        }
        let url = format!("http://{}", member.grpc_addr);
        let endpoint = || {
            centinela_proto::client::endpoint(&url)
                .map(|endpoint| endpoint.connect_timeout(limits::PEER_CONNECT_TIMEOUT))
                .map_err(|status| Error::unavailable(status.message().to_string()))
        };
        let channel = match (&self.dialer, &self.tls) {
            (Some(dial), _) => dial(&url).map_err(Error::unavailable)?,
            (None, Some(tls)) => {
                let name = centinela_tls::names::name(Kind::Node, &member.id).ok_or_else(|| {
                    Error::unavailable(format!(
                        "member {} has an id no certificate can name",
                        member.id
                    ))
                })?;
                endpoint()?.connect_with_connector_lazy(tls.connector(name))
            }
            (None, None) => endpoint()?.connect_lazy(),
        };
        channels.insert(
            member.id.clone(),
            (member.grpc_addr.clone(), channel.clone()),
        );
        Ok(PeerClient::with_interceptor(channel, calls))
    }
}

impl GrpcPeers {
    /// Forwards an operator's step on a call `to` anchors (`Peer.CallStep`), with the
    /// cluster credential; the status as the peer answered it (UNIMPLEMENTED from a node
    /// older than the RPC).
    pub async fn call_step(
        &self,
        to: &Member,
        mut step: PeerCallStep,
    ) -> Result<PeerCallReply, tonic::Status> {
        let mut client = self
            .client(to)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        step.from_node = self.node_id.to_string();
        client
            .call_step(step)
            .await
            .map(tonic::Response::into_inner)
    }
}

impl Transport for GrpcPeers {
    fn deliver<'a>(
        &'a self,
        to: &'a Member,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let mut client = self.client(to)?;
            let message = PeerMessage {
                from_node: self.node_id.to_string(),
                body,
                revision: wire::REVISION,
            };
            match client.deliver(message).await {
                Ok(reply) => Ok(reply.into_inner().body),
                Err(status) => Err(Error::from_peer(to, status)),
            }
        })
    }

    fn subscribe<'a>(
        &'a self,
        to: &'a Member,
        kind: ChannelKind,
        entity: &'a str,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Vec<u8>>, Error>> {
        Box::pin(async move {
            let mut client = self.client(to)?;
            let subscribe = PeerSubscribe {
                from_node: self.node_id.to_string(),
                entity_id: entity.to_string(),
            };
            let opened = match kind {
                ChannelKind::Camera => client.camera_commands(subscribe).await,
                ChannelKind::Unit => client.unit_assignments(subscribe).await,
            };
            let stream = opened
                .map_err(|status| Error::from_peer(to, status))?
                .into_inner();
            // The stream ends at the owner's first error or its end alike: the device
            // reconnects either way.
            let bodies = stream
                .take_while(|message| futures::future::ready(message.is_ok()))
                .filter_map(|message| futures::future::ready(message.ok().map(|m| m.body)));
            Ok(bodies.boxed())
        })
    }
}
