//! The gRPC face of a node: the `centinela.v1` services over the actors and the store, plus the
//! standard health and reflection services (so `grpcurl` and Kubernetes gRPC probes work).
//! Reflection is served in both of its versions, `grpc.reflection.v1` and the older
//! `grpc.reflection.v1alpha`: many tools still speak only v1alpha (Python's grpcio-reflection,
//! Evans, older grpcurl) and would get `UNIMPLEMENTED` from a v1-only server.
//!
//! # Layout
//! - [`devices`]: `ButtonGateway`, `CameraGateway`, `UnitGateway`.
//! - [`operator`]: `Operator` (console and CLI), including the live `Watch` stream.
//! - [`peer`]: `Peer`, the node-to-node service, both ends: the server other nodes call
//!   (forwarded actor messages, proxied device channels) and this node's client of the others
//!   (the router's transport).
//! - [`posts`]: `Operator.PlanPosts`, where brigades should wait (demand from the archive).
//! - [`feed`]: the node's store watches fanned out to every operator stream.
//! - [`status`]: the one mapping from errors to gRPC status codes.
//! - [`admission`]: the device edge's attach admission, paced by the node's own attaches.
//! - [`auth`]: the edge: credentials, who may act as whom, request size, rate limits.
//! - [`conn`]: bounded listeners: a connection cap per listener and an idle timeout.
//! - [`streams`]: caps on long-lived streams, per operator and per node.
//! - [`limits`]: every bound of the edge, with its reason.
//! - [`routes`]: every service of a node, behind the edge, ready to serve.

pub mod admission;
pub mod auth;
pub mod conn;
pub mod devices;
pub mod feed;
pub mod limits;
pub mod operator;
pub mod peer;
pub mod posts;
pub mod status;
pub mod streams;

use std::sync::Arc;

use tonic::service::Routes;

use auth::Class;
use centinela_actors::Context;
use centinela_proto::v1::button_gateway_server::ButtonGatewayServer;
use centinela_proto::v1::camera_gateway_server::CameraGatewayServer;
use centinela_proto::v1::operator_server::OperatorServer;
use centinela_proto::v1::peer_server::PeerServer;
use centinela_proto::v1::unit_gateway_server::UnitGatewayServer;

pub use auth::Security;
pub use feed::Feed;
pub use limits::REQUEST_BYTES_MAX;
pub use streams::{StreamLimits, Streams};

/// The health reporter of a node's gRPC server: the node marks itself serving once ready.
pub struct Health {
    pub reporter: tonic_health::server::HealthReporter,
}

impl Health {
    /// `""` (the whole server) and each centinela service, as Kubernetes' gRPC probe asks.
    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        for service in [
            "",
            "centinela.v1.ButtonGateway",
            "centinela.v1.CameraGateway",
            "centinela.v1.UnitGateway",
            "centinela.v1.Operator",
        ] {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

/// Every service a node serves, and the handle that flips its health. The `centinela.v1`
/// services sit behind the edge configured by `security` ([`auth`]); health and reflection
/// stay open (probes and `grpcurl` need no credentials, and they reveal no state). Long-lived
/// streams (`Operator.Watch`, health's `Watch`) take slots from `streams` ([`streams`]).
/// `calls`: the node's call desk, when it runs the SIP gateway: other nodes' consoles step on
/// its calls through `Peer.CallStep`.
pub fn routes(
    ctx: Arc<Context>,
    feed: Arc<Feed>,
    store_kind: &'static str,
    security: Security,
    streams: &Arc<Streams>,
    calls: Option<Arc<centinela_intercom::Desk>>,
) -> Result<(Routes, Health), tonic_reflection::server::Error> {
    let edge = auth::Edge::new(security);
    let devices = devices::Devices::new(ctx.clone());
    let peer = peer::PeerService::new(ctx.clone()).with_calls(calls);
    let operator = operator::OperatorService::served(ctx, feed, store_kind);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let routes = Routes::new(streams.cap(health_service))
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(edge.guard(
            Class::Devices,
            ButtonGatewayServer::new(devices.clone()).max_decoding_message_size(REQUEST_BYTES_MAX),
        ))
        .add_service(edge.guard(
            Class::Devices,
            CameraGatewayServer::new(devices.clone()).max_decoding_message_size(REQUEST_BYTES_MAX),
        ))
        .add_service(edge.guard(
            Class::Devices,
            UnitGatewayServer::new(devices).max_decoding_message_size(REQUEST_BYTES_MAX),
        ))
        .add_service(edge.guard(
            Class::Operator,
            streams.cap(OperatorServer::new(operator).max_decoding_message_size(REQUEST_BYTES_MAX)),
        ))
        .add_service(edge.guard(
            Class::Peer,
            PeerServer::new(peer).max_decoding_message_size(REQUEST_BYTES_MAX),
        ));
    Ok((routes, Health { reporter }))
}

/// What reflection describes, the same for both of its versions: our services, health, and
/// reflection itself in both versions (so a client of either version lists both, as gRPC's
/// own servers do, and can tell which one to speak). The builder is not `Clone`: one per
/// version.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(centinela_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}
