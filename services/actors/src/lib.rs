//! Centinela's actors: one per button, camera and brigade, each kind under its own supervisor,
//! and the dispatcher, a singleton run by the elected leader.
//!
//! Every actor is built from the store when it starts, so a panicking actor is restarted by its
//! supervisor with its state intact (within a restart budget). Every message to an entity goes
//! through the [`Router`]: a lookup in this node's registry, or a hop to the
//! owning node. Each entity kind is written once, as an [`Entity`](entity::Entity): the
//! supervision, the routing and the wire format are the same for all of them.
//!
//! ```text
//!                        node (centinela-node)
//!        ┌────────────────────┼────────────────────┬───────────────────────┐
//!  Supervisor<Buttons>  Supervisor<Cameras>  Supervisor<Brigades>  Supervisor<Dispatchers>
//!        │                    │                    │                  (leader only)
//!   ButtonActor ×N       CameraActor ×N       BrigadeActor ×N        DispatcherActor
//!        │  press → store txn │  aim → device      │  assign → terminal   │ index + queue,
//!        └──── aim ──────────►│                    │◄──── assign ─────────┤ fenced txns
//!                             │                    │                      │ ◄── store watch
//! ```
//!
//! # Layout
//! - [`entity`]: what an entity kind is ([`Entity`](entity::Entity): its id, record, requests
//!   and behaviour), and the one ractor actor that runs any kind.
//! - [`button`]: presses become durable incidents (debounced), heartbeats, tamper.
//! - [`camera`]: aim / on target / release, bookmarks, the device command channel.
//! - [`brigade`]: the terminal's channel, acks, status changes, positions.
//! - [`dispatcher`]: ranking, assignment, ack timeouts, the priority queue.
//! - [`supervisor`]: start, register, restart-from-store with a budget.
//! - [`router`]: the one path for entity messages, local or to the owning node (routing and
//!   retries); [`transport`]: what carries them to another node (gRPC, in `centinela-api`);
//!   [`wire`]: their bodies, an API kept across versions; [`registry`]: id → running actor.
//! - [`device`]: the sending side of a device's channel, shared by cameras and brigades.
//! - [`liveness`]: heartbeats absorbed in one node-wide table; silent buttons marked offline
//!   in paced batches, not one write each.
//! - [`group_commit`]: presses of many buttons written in one transaction; likewise the closes
//!   made through the node from held copies, and the marks devices make by their contact
//!   (cameras attaching and going away, offline buttons heard again).
//! - [`clock`]: wall-clock timestamps that follow tokio's (possibly simulated) time.
//! - [`limits`]: every runtime bound, with its reason.
//! - [`error`]: what delivery or handling can fail with.
//!
//! Supervision tests crash actors on purpose with `Router::inject_crash`, built only with
//! the `fault-injection` feature.

pub mod brigade;
pub mod button;
pub mod camera;
pub mod clock;
pub mod device;
pub mod dispatcher;
pub mod entity;
pub mod error;
pub mod group_commit;
pub mod limits;
pub mod liveness;
pub mod registry;
pub mod router;
pub mod supervisor;
pub mod transport;
pub mod wire;

use std::sync::Arc;

use centinela_cluster::Topology;
use centinela_core::ids::NodeId;
use centinela_records::Records;

pub use clock::Clock;
pub use error::Error;
pub use liveness::Liveness;
pub use router::Router;
pub use transport::Transport;

/// What every actor of a node shares.
pub struct Context {
    pub node_id: NodeId,
    pub records: Records,
    pub router: Router,
    pub clock: Clock,
    /// The accounts ONVIF cameras are signed in to with (none until configured).
    pub onvif: centinela_onvif::credentials::Credentials,
    /// The agencies incidents are handed to, and the CAP sender (none until configured).
    pub handoff: centinela_handoff::Setup,
    /// Where closed incidents go (the archive) and how long they stay in the store; the
    /// leader archives, every node answers history reads and `audit verify` from it.
    pub history: Option<centinela_archive::History>,
}

impl Context {
    /// A node's context; `transport` carries its router's messages to the other nodes.
    pub fn new(
        node_id: NodeId,
        records: Records,
        clock: Clock,
        topology: Topology,
        transport: Arc<dyn Transport>,
    ) -> Self {
        Self {
            router: Router::new(node_id.clone(), records.clone(), clock, topology, transport),
            node_id,
            records,
            clock,
            onvif: Default::default(),
            handoff: Default::default(),
            history: None,
        }
    }

    /// With the node's history: its archive and retention window.
    pub fn with_history(mut self, history: centinela_archive::History) -> Self {
        self.history = Some(history);
        self
    }

    /// With the accounts ONVIF cameras are signed in to.
    pub fn with_onvif(mut self, credentials: centinela_onvif::credentials::Credentials) -> Self {
        self.onvif = credentials;
        self
    }

    /// With the agencies incidents may be handed to (`CENTINELA_AGENCIES_FILE`).
    pub fn with_handoff(mut self, setup: centinela_handoff::Setup) -> Self {
        self.handoff = setup;
        self
    }
}
