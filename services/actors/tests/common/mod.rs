//! What the actor tests share: a node's context on one store, alone in its cluster.

use std::sync::Arc;

use centinela_actors::transport::Alone;
use centinela_actors::{Clock, Context};
use centinela_cluster::{Member, Topology};
use centinela_core::ids::NodeId;
use centinela_records::Records;

/// The context of a node `test-node`, the only member of its cluster (so it owns every
/// entity), with no leader.
pub fn single_node_context(records: Records, clock: Clock) -> Arc<Context> {
    let me = Member {
        id: "test-node".into(),
        site: "test".into(),
        grpc_addr: "127.0.0.1:1".into(),
        http_addr: "127.0.0.1:1".into(),
    };
    Arc::new(Context::new(
        NodeId::new("test-node").unwrap(),
        records,
        clock,
        Topology::single(me),
        Arc::new(Alone),
    ))
}
