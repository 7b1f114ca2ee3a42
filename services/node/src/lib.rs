//! The composition root: [`Options`] in, a running [`Node`] out.
//!
//! Start-up, in order (each step needs the one before):
//! 1. bind the gRPC and HTTP listeners (port 0 allowed: tests read the real ports back);
//! 2. reach the store: the embedded one in-process, or etcd;
//! 3. seed the scenario's entities the store does not hold yet (never overwriting live state);
//! 4. open a session (a lease kept alive for the node's life) and register as a member under
//!    it; follow the member set and the dispatcher election;
//! 5. start one supervisor per entity kind; the ownership reconciler starts the entities
//!    rendezvous hashing gives this node, and moves them as members come and go;
//! 6. campaign for leadership in the background; the leader runs the dispatcher;
//! 7. serve gRPC (devices, operators, peers) and HTTP; ready (`/readyz`, gRPC health) once
//!    joined and running its share, and for as long as that holds.
//!
//! Shutdown reverses it: not ready, resign leadership, stop serving, stop the actors, revoke
//! the lease so another node takes over at once instead of after the lease TTL.

mod leadership;
pub mod limits;
mod network;
mod ownership;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use centinela_actors::supervisor::{
    Brigades, Buttons, Cameras, ChildKind, Dispatchers, Supervisor, SupervisorMsg,
};
use centinela_actors::{Clock, Context};
use centinela_api::Feed;
use centinela_cluster::{Member, Membership, Session, Topology};
use centinela_core::ids::NodeId;
use centinela_core::scenario::Scenario;
use centinela_records::Records;
use centinela_store::election::Election;
use centinela_store::{EmbeddedStore, Store};

pub use centinela_api::Security;
pub use centinela_console::Config as ConsoleConfig;
pub use leadership::DISPATCHER_ELECTION;
pub use network::{Connection, Io, Network};
use ownership::{EntitySupervisors, Share};

/// Where the coordination store is.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// In-process, in memory: the single-node demo and tests. Gone when the process exits.
    Embedded,
    /// An etcd cluster (or anything speaking its API, such as an embedded store served on TCP).
    Etcd(Vec<String>),
}

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct Options {
    pub node_id: String,
    /// The municipal site this node runs in.
    pub site: String,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The gRPC address other nodes and clients use (`host:port`); the bound address when
    /// `None` (which must then not be a wildcard like 0.0.0.0).
    pub advertise_grpc: Option<String>,
    pub scenario: Scenario,
    pub store: StoreConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid node id: {0}")]
    NodeId(String),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the gRPC address {0} is a wildcard; pass --advertise-grpc HOST:PORT for peers")]
    Advertise(SocketAddr),
    #[error("store: {0}")]
    Store(#[from] centinela_store::Error),
    #[error("store records: {0}")]
    Records(#[from] centinela_records::Error),
    #[error("cannot start the {0} supervisor: {1}")]
    Supervisor(&'static str, String),
    #[error("cannot build the gRPC services: {0}")]
    Services(String),
    #[error("cannot build the console: {0}")]
    Console(String),
    #[error("scenario {path}: {reason}")]
    Scenario { path: String, reason: String },
}

/// The scenario at `path`, or the built-in Lima central district.
pub fn load_scenario(path: Option<&Path>) -> Result<Scenario, Error> {
    let Some(path) = path else {
        return Ok(Scenario::lima_centro());
    };
    let text = std::fs::read_to_string(path).map_err(|e| Error::Scenario {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Scenario::from_toml(&text).map_err(|e| Error::Scenario {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A running node.
pub struct Node {
    ctx: Arc<Context>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    summary: String,
    ready: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    health: Arc<centinela_api::Health>,
    feed: Arc<Feed>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    leadership: JoinHandle<()>,
    supervisors: Vec<ractor::ActorCell>,
    session: Session,
    _membership: Membership,
    /// Keeps the embedded store alive as long as the node.
    _embedded: Option<EmbeddedStore>,
}

async fn supervisor<C>(ctx: &Arc<Context>) -> Result<ActorRef<SupervisorMsg<C::Key>>, Error>
where
    C: ChildKind,
    <C::Actor as Actor>::Arguments: Send,
{
    let (supervisor, _) = Actor::spawn(None, Supervisor::<C>::default(), ctx.clone())
        .await
        .map_err(|e| Error::Supervisor(C::KIND, e.to_string()))?;
    Ok(supervisor)
}

impl Node {
    /// [`Node::start_with_console`] with a console nobody can sign in to (no operators).
    pub async fn start(options: Options) -> Result<Node, Error> {
        Self::start_with_console(options, centinela_console::Config::default()).await
    }

    /// Starts a node whose operator console uses `console` (operators, demo mode), with an
    /// open gRPC edge (calls without credentials allowed: the demo and tests).
    pub async fn start_with_console(
        options: Options,
        console: centinela_console::Config,
    ) -> Result<Node, Error> {
        Self::start_secured(options, console, centinela_api::Security::open()).await
    }

    /// Starts a node whose gRPC edge checks credentials as `security` says (docs/security.md);
    /// operators' gRPC passwords are checked against `console`'s accounts, the same ones the
    /// console signs in.
    pub async fn start_secured(
        options: Options,
        console: centinela_console::Config,
        security: centinela_api::Security,
    ) -> Result<Node, Error> {
        Self::start_inner(options, console, security, None).await
    }

    /// Starts a node on `network` instead of TCP (the deterministic simulation): it serves
    /// gRPC on `network.incoming`, reaches the store and its peers through `network`, takes
    /// time from `network.clock`, and serves no HTTP. `options.store` and `options.http_addr`
    /// are ignored; `options.grpc_addr` (or `advertise_grpc`) is what peers are told.
    pub async fn start_with_network(
        options: Options,
        console: centinela_console::Config,
        security: centinela_api::Security,
        network: Network,
    ) -> Result<Node, Error> {
        Self::start_inner(options, console, security, Some(network)).await
    }

    async fn start_inner(
        options: Options,
        console: centinela_console::Config,
        security: centinela_api::Security,
        network: Option<Network>,
    ) -> Result<Node, Error> {
        let node_id =
            NodeId::new(options.node_id.clone()).map_err(|e| Error::NodeId(e.to_string()))?;
        let (listeners, grpc_addr, http_addr) = if network.is_none() {
            let grpc_listener = bind("gRPC", options.grpc_addr).await?;
            let http_listener = bind("HTTP", options.http_addr).await?;
            let grpc_addr = local_addr("gRPC", &grpc_listener, options.grpc_addr)?;
            let http_addr = local_addr("HTTP", &http_listener, options.http_addr)?;
            (Some((grpc_listener, http_listener)), grpc_addr, http_addr)
        } else {
            (None, options.grpc_addr, options.http_addr)
        };
        let advertised = match &options.advertise_grpc {
            Some(addr) => addr.clone(),
            None if grpc_addr.ip().is_unspecified() => return Err(Error::Advertise(grpc_addr)),
            None => grpc_addr.to_string(),
        };

        let (store, embedded, store_kind) = match (&network, &options.store) {
            (Some(network), _) => (network.store.clone(), None, "etcd"),
            (None, StoreConfig::Embedded) => {
                let embedded = EmbeddedStore::new();
                (Store::embedded(&embedded), Some(embedded), "embedded")
            }
            (None, StoreConfig::Etcd(endpoints)) => (
                Store::connect(endpoints, Default::default()).await?,
                None,
                "etcd",
            ),
        };
        let clock = network.as_ref().map_or_else(Clock::system, |n| n.clock);
        let records = Records::new(store.clone());
        #[cfg(feature = "fault-injection")]
        let records = records.with_planted_bug(network.as_ref().and_then(|n| n.planted_bug));
        let seeded = records.seed(&options.scenario, clock.now()).await?;
        tracing::info!(
            scenario = %options.scenario.name,
            created = seeded.created,
            existing = seeded.existing,
            "scenario in the store"
        );
        let summary = format!(
            "scenario {}: {} buttons, {} cameras, {} brigades",
            options.scenario.name,
            options.scenario.buttons.len(),
            options.scenario.buttons.len(),
            options.scenario.brigades.len()
        );

        // Membership and leadership hang off one session lease.
        let session = Session::start(store.clone(), limits::LEASE_TTL).await?;
        let me = Member {
            id: options.node_id.clone(),
            site: options.site.clone(),
            grpc_addr: advertised,
            http_addr: http_addr.to_string(),
        };
        let membership = Membership::start(store.clone(), me.clone(), session.lease());
        let leader = Election::observe(&store, DISPATCHER_ELECTION);
        let topology = Topology::new(me, membership.members(), leader);
        // The router reaches other nodes over gRPC, presenting the cluster credential.
        let peers = centinela_api::peer::GrpcPeers::new(
            node_id.clone(),
            security.peer_authorization(&node_id),
            network.as_ref().map(|n| n.dial.clone()),
        );
        let ctx = Arc::new(Context::new(
            node_id.clone(),
            records.clone(),
            clock,
            topology,
            Arc::new(peers),
        ));

        let entities = EntitySupervisors {
            buttons: supervisor::<Buttons>(&ctx).await?,
            cameras: supervisor::<Cameras>(&ctx).await?,
            brigades: supervisor::<Brigades>(&ctx).await?,
        };
        let dispatchers = supervisor::<Dispatchers>(&ctx).await?;
        let supervisors = vec![
            dispatchers.get_cell(),
            entities.buttons.get_cell(),
            entities.cameras.get_cell(),
            entities.brigades.get_cell(),
        ];
        let (share_tx, share) = watch::channel(None);
        let reconciler = tokio::spawn(ownership::reconcile(
            ctx.clone(),
            entities,
            session.lease(),
            share_tx,
        ));

        let (shutdown, shutdown_rx) = watch::channel(false);
        let leadership = tokio::spawn(leadership::lead(
            ctx.clone(),
            store.clone(),
            session.lease(),
            dispatchers,
            shutdown_rx.clone(),
        ));

        let feed = Arc::new(Feed::start(records.clone()).await?);
        // Security: one account system, the console's, for gRPC operators too.
        let accounts =
            centinela_console::auth::Auth::new(console.clone()).map_err(Error::Console)?;
        let security = security.with_operators(Arc::new(accounts));
        tracing::info!(summary = %security.summary(), "gRPC edge");
        let (routes, health) =
            centinela_api::routes(ctx.clone(), feed.clone(), store_kind, security)
                .map_err(|e| Error::Services(e.to_string()))?;
        let health = Arc::new(health);
        let (ready, ready_rx) = watch::channel(false);
        // The console calls the same Operator implementation the gRPC server serves.
        let console = centinela_console::ConsoleState::new(
            options.node_id.clone(),
            records.clone(),
            ready_rx,
            centinela_api::operator::OperatorService::new(ctx.clone(), feed.clone(), store_kind),
            console,
        )
        .map_err(|e| Error::Console(e.to_string()))?;
        let (grpc_listener, http_listener) = listeners.unzip();
        let sim_incoming = network.map(|network| network.incoming);
        let grpc = {
            let mut shutdown = shutdown_rx.clone();
            tokio::spawn(async move {
                let server = tonic::transport::Server::builder()
                    // A span per call (parent from the caller's traceparent) and its latency.
                    .layer(centinela_telemetry::grpc::TraceLayer)
                    // `date` headers from the node's clock, not hyper's system clock: in a
                    // simulation, real time must not reach the bytes on the wire.
                    .layer(centinela_store::http_date::DateLayer::new(Arc::new(
                        move || clock.now().as_millis(),
                    )))
                    .tcp_nodelay(true)
                    .http2_keepalive_interval(Some(limits::GRPC_KEEPALIVE_INTERVAL))
                    .http2_keepalive_timeout(Some(limits::GRPC_KEEPALIVE_TIMEOUT))
                    .add_routes(routes);
                let stop = async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                };
                let result = match (grpc_listener, sim_incoming) {
                    (_, Some(incoming)) => {
                        server.serve_with_incoming_shutdown(incoming, stop).await
                    }
                    (Some(grpc_listener), None) => {
                        server
                            .serve_with_incoming_shutdown(
                                // Nagle off on accepted sockets too: a reply's headers, data
                                // and trailers are separate small writes, and with Nagle each
                                // call can stall 40 ms on the client's delayed ACK (measured:
                                // ping p50 43 ms).
                                TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
                                stop,
                            )
                            .await
                    }
                    (None, None) => Ok(()),
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "gRPC server failed");
                }
            })
        };
        let mut servers = vec![grpc];
        if let Some(http_listener) = http_listener {
            let mut shutdown = shutdown_rx.clone();
            let router = centinela_console::router(console);
            servers.push(tokio::spawn(async move {
                let stop = async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                };
                if let Err(e) = centinela_console::serve(http_listener, router, stop).await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            }));
        }

        // Ready once joined and running this node's share; watched for as long as the node
        // lives (a node that lost its lease is not ready until it is back in).
        let mut readiness = Readiness {
            lease: session.lease(),
            ctx: ctx.clone(),
            share,
            ready: ready.clone(),
            health: health.clone(),
        };
        readiness.wait_first().await;
        let watcher = tokio::spawn(readiness.follow(shutdown_rx.clone()));

        tracing::info!(node = %node_id, site = %options.site, grpc = %grpc_addr, http = %http_addr, store = store_kind, "node ready");
        Ok(Node {
            ctx,
            grpc_addr,
            http_addr,
            summary,
            ready,
            shutdown,
            health,
            feed,
            servers,
            background: vec![reconciler, watcher],
            leadership,
            supervisors,
            session,
            _membership: membership,
            _embedded: embedded,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn scenario_summary(&self) -> &str {
        &self.summary
    }

    /// The node's actors' shared context (tests reach actors through its router).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Graceful stop; see the module docs.
    pub async fn shutdown(self) {
        let _ = self.ready.send(false);
        self.health.set_serving(false).await;
        for task in &self.background {
            task.abort();
        }
        // Servers stop accepting; the leadership loop stops the dispatcher and resigns, so
        // the next candidate leads at once.
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(limits::SHUTDOWN_STEP, self.leadership).await;
        // Revoking the lease removes this node's membership at once: the others take over its
        // entities now, not one TTL from now. (For a moment an entity may run here and on its
        // new owner; every change is a compare-and-swap on the store, so that is safe.)
        self.session.close().await;
        // Long-lived streams end so the servers can drain: operator feeds close, and stopping
        // the actors drops the device channels they hold (devices reconnect elsewhere).
        self.feed.close();
        for cell in &self.supervisors {
            let _ = cell
                .stop_and_wait(
                    Some("node shutting down".into()),
                    Some(limits::SHUTDOWN_STEP),
                )
                .await;
        }
        for server in self.servers {
            let _ = tokio::time::timeout(limits::SHUTDOWN_STEP, server).await;
        }
        tracing::info!(node = %self.ctx.node_id, "node stopped");
    }
}

/// The node's readiness, kept true only while its session lease is live, it is a member and it
/// runs its share.
struct Readiness {
    /// The session lease: `None` once it is lost (the store's quorum unreachable for a TTL).
    lease: watch::Receiver<Option<centinela_store::LeaseId>>,
    ctx: Arc<Context>,
    share: watch::Receiver<Option<Share>>,
    ready: watch::Sender<bool>,
    health: Arc<centinela_api::Health>,
}

impl Readiness {
    /// Ready while the session lease is live (a node cut off from the store's quorum is not
    /// ready, so a load balancer sends devices elsewhere), the node is a member, and the
    /// entities of its share are running here.
    fn is_ready(&self) -> bool {
        let share = *self.share.borrow();
        self.lease.borrow().is_some()
            && self.ctx.router.topology().is_member()
            && share.is_some_and(|share| share == self.ctx.router.local_counts())
    }

    async fn set(&self, ready: bool) {
        if *self.ready.borrow() != ready {
            let _ = self.ready.send(ready);
            self.health.set_serving(ready).await;
            tracing::info!(node = %self.ctx.node_id, ready, "readiness changed");
        }
    }

    /// Waits (boundedly) for the first time the node is ready.
    async fn wait_first(&mut self) {
        let deadline = tokio::time::Instant::now() + limits::FIRST_READY_WAIT;
        while !self.is_ready() {
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(
                    wait_s = limits::FIRST_READY_WAIT.as_secs(),
                    "not joined with my share running yet; starting unready"
                );
                return;
            }
            tokio::time::sleep(limits::FIRST_READY_POLL).await;
        }
        self.set(true).await;
    }

    async fn follow(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(limits::READINESS_POLL) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            self.set(self.is_ready()).await;
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|source| Error::Bind { what, addr, source })
}
