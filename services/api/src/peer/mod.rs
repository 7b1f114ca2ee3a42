//! The `Peer` service, both ends: how nodes deliver the router's messages to each other.
//!
//! - [`server`]: [`PeerService`], what other nodes' routers call on this node (forwarded
//!   requests, proxied device channels); only the cluster's nodes may call it.
//! - [`client`]: [`GrpcPeers`], this node's [`Transport`](centinela_actors::Transport) to the
//!   others: one lazily connected channel per peer, the cluster credential and the trace
//!   context on every call.

pub mod client;
pub mod server;

pub use client::{GrpcPeers, PeerDialer};
pub use server::PeerService;
