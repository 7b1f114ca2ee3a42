//! How a router reaches other nodes: [`Transport`]. The router decides where a message goes
//! and retries; a transport only carries bytes there. The cluster's is gRPC
//! (`centinela_api::peer::GrpcPeers`: a channel per peer, the cluster credential, the trace
//! context); [`Alone`] is for a node that has no peers to reach (the actors' own tests).

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use centinela_cluster::Member;

use crate::error::Error;

/// A device channel whose owner runs on another node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    /// A camera's commands.
    Camera,
    /// A brigade terminal's assignments and cancellations.
    Unit,
}

/// Carries the router's messages to other nodes.
pub trait Transport: Send + Sync + 'static {
    /// Delivers one request body (`crate::wire`) to `to` and returns its response body. The
    /// router bounds the call with its deadline and decides about retries.
    fn deliver<'a>(
        &'a self,
        to: &'a Member,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, Error>>;

    /// Opens `to`'s device channel for `entity`: a stream of encoded items that ends when the
    /// owner closes it or goes away.
    fn subscribe<'a>(
        &'a self,
        to: &'a Member,
        kind: ChannelKind,
        entity: &'a str,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Vec<u8>>, Error>>;
}

/// No other node to reach: every call fails as unavailable.
pub struct Alone;

impl Transport for Alone {
    fn deliver<'a>(
        &'a self,
        to: &'a Member,
        _body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move { Err(unreachable(to)) })
    }

    fn subscribe<'a>(
        &'a self,
        to: &'a Member,
        _kind: ChannelKind,
        _entity: &'a str,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Vec<u8>>, Error>> {
        Box::pin(async move { Err(unreachable(to)) })
    }
}

fn unreachable(to: &Member) -> Error {
    Error::unavailable(format!(
        "node {} is out of reach: this node has no transport to peers",
        to.id
    ))
}
