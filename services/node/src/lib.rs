//! The composition root: [`Options`] in, a running [`Node`] out.
//!
//! Start-up, in order (each step needs the one before):
//! 1. bind the gRPC and HTTP listeners (port 0 allowed: tests read the real ports back);
//! 2. reach the store: the embedded one in-process, or etcd;
//! 3. seed the scenario's entities the store does not hold yet (never overwriting live state);
//! 4. take a lease and keep it alive: it carries this node's election key;
//! 5. start one supervisor per entity kind and the entities this node owns;
//! 6. campaign for leadership in the background; the leader runs the dispatcher;
//! 7. serve gRPC and HTTP; mark ready (`/readyz`, gRPC health) once the entities run.
//!
//! Shutdown reverses it: not ready, resign leadership, stop serving, stop the actors, revoke
//! the lease so another node takes over at once instead of after the lease TTL.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use centinela_actors::supervisor::{
    Brigades, Buttons, Cameras, Dispatchers, Supervisor, SupervisorMsg,
};
use centinela_actors::{Clock, Context};
use centinela_api::{ClusterView, Feed, Member};
use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::ids::NodeId;
use centinela_core::scenario::Scenario;
use centinela_store::election::{Election, Fence, Leadership};
use centinela_store::records::Records;
use centinela_store::{EmbeddedStore, LeaseKeeper, Store};

/// The election every node campaigns in; its leader runs the dispatcher.
pub const DISPATCHER_ELECTION: &str = "/centinela/election/dispatcher";
/// TTL of a node's lease (its election key, later its membership): etcd's practical minimum,
/// so a dead leader is replaced in about two seconds.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// Pause before campaigning again after losing leadership or failing to campaign.
const CAMPAIGN_RETRY: Duration = Duration::from_millis(200);

/// Where the coordination store is.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// In-process, in memory: the single-node demo and tests. Gone when the process exits.
    Embedded,
    /// An etcd cluster.
    Etcd(Vec<String>),
}

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct Options {
    pub node_id: String,
    pub site: String,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
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
    #[error("store: {0}")]
    Store(#[from] centinela_store::Error),
    #[error("store records: {0}")]
    Records(#[from] centinela_store::records::Error),
    #[error("cannot start the {0} supervisor: {1}")]
    Supervisor(&'static str, String),
    #[error("cannot build the gRPC services: {0}")]
    Services(String),
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
    health: centinela_api::Health,
    feed: Arc<Feed>,
    servers: Vec<JoinHandle<()>>,
    leadership: JoinHandle<()>,
    supervisors: Supervisors,
    keeper: LeaseKeeper,
    /// Keeps the embedded store alive as long as the node.
    _embedded: Option<EmbeddedStore>,
}

struct Supervisors {
    buttons: ActorRef<SupervisorMsg<centinela_core::ids::ButtonId>>,
    cameras: ActorRef<SupervisorMsg<centinela_core::ids::CameraId>>,
    brigades: ActorRef<SupervisorMsg<centinela_core::ids::BrigadeId>>,
    dispatchers: ActorRef<SupervisorMsg<Fence>>,
}

impl Supervisors {
    async fn start(ctx: &Arc<Context>) -> Result<Self, Error> {
        async fn one<C>(ctx: &Arc<Context>) -> Result<ActorRef<SupervisorMsg<C::Key>>, Error>
        where
            C: centinela_actors::supervisor::ChildKind,
            <C::Actor as Actor>::Arguments: Send,
        {
            let (supervisor, _) = Actor::spawn(None, Supervisor::<C>::default(), ctx.clone())
                .await
                .map_err(|e| Error::Supervisor(C::KIND, e.to_string()))?;
            Ok(supervisor)
        }
        Ok(Self {
            buttons: one::<Buttons>(ctx).await?,
            cameras: one::<Cameras>(ctx).await?,
            brigades: one::<Brigades>(ctx).await?,
            dispatchers: one::<Dispatchers>(ctx).await?,
        })
    }

    async fn stop(&self) {
        for cell in [
            self.dispatchers.get_cell(),
            self.buttons.get_cell(),
            self.cameras.get_cell(),
            self.brigades.get_cell(),
        ] {
            let _ = cell
                .stop_and_wait(
                    Some("node shutting down".into()),
                    Some(Duration::from_secs(5)),
                )
                .await;
        }
    }
}

impl Node {
    pub async fn start(options: Options) -> Result<Node, Error> {
        let node_id =
            NodeId::new(options.node_id.clone()).map_err(|e| Error::NodeId(e.to_string()))?;
        let grpc_listener = bind("gRPC", options.grpc_addr).await?;
        let http_listener = bind("HTTP", options.http_addr).await?;
        let grpc_addr = local_addr("gRPC", &grpc_listener, options.grpc_addr)?;
        let http_addr = local_addr("HTTP", &http_listener, options.http_addr)?;

        let (store, embedded, store_kind) = match &options.store {
            StoreConfig::Embedded => {
                let embedded = EmbeddedStore::new();
                (Store::embedded(&embedded), Some(embedded), "embedded")
            }
            StoreConfig::Etcd(endpoints) => (
                Store::connect(endpoints, Default::default()).await?,
                None,
                "etcd",
            ),
        };
        let clock = Clock::system();
        let records = Records::new(store.clone());
        let seeded = records.seed(&options.scenario, clock.now()).await?;
        tracing::info!(
            scenario = %options.scenario.name,
            created = seeded.created,
            existing = seeded.existing,
            "scenario in the store"
        );
        let lease = store.grant_lease(LEASE_TTL).await?;
        let keeper = store.keep_alive(lease).await?;

        let ctx = Arc::new(Context::new(node_id.clone(), records.clone(), clock));
        let supervisors = Supervisors::start(&ctx).await?;
        // Every entity is local on one node; the cluster narrows this to the node's share.
        let (buttons, _) = records.snapshot::<Button>().await?;
        let (cameras, _) = records.snapshot::<Camera>().await?;
        let (brigades, _) = records.snapshot::<Brigade>().await?;
        let summary = format!(
            "scenario {}: {} buttons, {} cameras, {} brigades",
            options.scenario.name,
            buttons.len(),
            cameras.len(),
            brigades.len()
        );
        let _ = supervisors.buttons.cast(SupervisorMsg::Start(
            buttons.into_iter().map(|b| b.id).collect(),
        ));
        let _ = supervisors.cameras.cast(SupervisorMsg::Start(
            cameras.into_iter().map(|c| c.id).collect(),
        ));
        let _ = supervisors.brigades.cast(SupervisorMsg::Start(
            brigades.into_iter().map(|b| b.id).collect(),
        ));

        let (shutdown, shutdown_rx) = watch::channel(false);
        let me = Member {
            id: options.node_id.clone(),
            site: options.site.clone(),
            grpc_addr: grpc_addr.to_string(),
        };
        let (cluster_tx, cluster_rx) = watch::channel(ClusterView {
            members: vec![me],
            leader: None,
            term: 0,
        });
        let leadership = tokio::spawn(lead(
            ctx.clone(),
            store.clone(),
            keeper.lease(),
            supervisors.dispatchers.clone(),
            cluster_tx,
            shutdown_rx.clone(),
        ));

        let feed = Arc::new(Feed::start(records.clone()).await?);
        let (routes, health) =
            centinela_api::routes(ctx.clone(), feed.clone(), cluster_rx, store_kind)
                .map_err(|e| Error::Services(e.to_string()))?;
        let (ready, ready_rx) = watch::channel(false);
        let grpc = {
            let mut shutdown = shutdown_rx.clone();
            tokio::spawn(async move {
                let result = tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .http2_keepalive_interval(Some(Duration::from_secs(1)))
                    .http2_keepalive_timeout(Some(Duration::from_secs(2)))
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(
                        // Nagle off on accepted sockets too: a reply's headers, data and
                        // trailers are separate small writes, and with Nagle each call can
                        // stall 40 ms on the client's delayed ACK (measured: ping p50 43 ms).
                        TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
                        async move {
                            let _ = shutdown.wait_for(|stop| *stop).await;
                        },
                    )
                    .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, "gRPC server failed");
                }
            })
        };
        let http = {
            let mut shutdown = shutdown_rx.clone();
            let router = centinela_console::router(centinela_console::ConsoleState {
                node_id: options.node_id.clone(),
                records: records.clone(),
                ready: ready_rx,
            });
            tokio::spawn(async move {
                let stop = async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                };
                if let Err(e) = centinela_console::serve(http_listener, router, stop).await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            })
        };

        let node = Node {
            ctx,
            grpc_addr,
            http_addr,
            summary,
            ready,
            shutdown,
            health,
            feed,
            servers: vec![grpc, http],
            leadership,
            supervisors,
            keeper,
            _embedded: embedded,
        };
        node.wait_entities_running().await;
        node.health.set_serving(true).await;
        let _ = node.ready.send(true);
        tracing::info!(node = %node_id, grpc = %grpc_addr, http = %http_addr, store = store_kind, "node ready");
        Ok(node)
    }

    /// Waits (boundedly) until every entity the node started has a running actor, so `ready`
    /// means what it says.
    async fn wait_entities_running(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pending = [
                running(&self.supervisors.buttons).await,
                running(&self.supervisors.cameras).await,
                running(&self.supervisors.brigades).await,
            ];
            let (b, c, u) = self.ctx.router.local_counts();
            if pending.iter().all(Option::is_some)
                && [b, c, u]
                    == [
                        pending[0].unwrap_or(0),
                        pending[1].unwrap_or(0),
                        pending[2].unwrap_or(0),
                    ]
                && b > 0
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(
                    buttons = b,
                    cameras = c,
                    brigades = u,
                    "not every entity started in time; ready anyway"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        // Servers stop accepting; the leadership loop resigns (handing over at once).
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.leadership).await;
        // Long-lived streams end so the servers can drain: operator feeds close, and stopping
        // the actors drops the device channels they hold.
        self.feed.close();
        self.supervisors.stop().await;
        for server in self.servers {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
        let lease = self.keeper.lease();
        drop(self.keeper);
        if let Err(e) = self.ctx.records.store().revoke(lease).await {
            tracing::debug!(error = %e, "lease revoke on shutdown failed (it expires anyway)");
        }
        tracing::info!(node = %self.ctx.node_id, "node stopped");
    }
}

/// Number of running children of a supervisor (`None` if it did not answer).
async fn running<K: Send + 'static>(supervisor: &ActorRef<SupervisorMsg<K>>) -> Option<usize> {
    match supervisor
        .call(SupervisorMsg::Running, Some(Duration::from_secs(2)))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(keys)) => Some(keys.len()),
        _ => None,
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

/// The leadership loop: campaign, run the dispatcher while leading, step down on loss or
/// shutdown, campaign again.
async fn lead(
    ctx: Arc<Context>,
    store: Store,
    lease: centinela_store::LeaseId,
    dispatchers: ActorRef<SupervisorMsg<Fence>>,
    cluster: watch::Sender<ClusterView>,
    mut shutdown: watch::Receiver<bool>,
) {
    let observer = Election::observe(&store, DISPATCHER_ELECTION);
    let follow = {
        let cluster = cluster.clone();
        let mut observer = observer.clone();
        tokio::spawn(async move {
            loop {
                let leader = observer.borrow_and_update().clone();
                cluster.send_modify(|view| {
                    view.leader = leader.as_ref().map(|l| l.node_id.clone());
                    view.term = leader.as_ref().map_or(0, |l| l.term);
                });
                if observer.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    loop {
        let campaign = Election::campaign(&store, DISPATCHER_ELECTION, lease, ctx.node_id.as_str());
        let result = tokio::select! {
            result = campaign => result,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let leadership: Leadership = match result {
            Ok(leadership) => leadership,
            Err(e) => {
                tracing::warn!(error = %e, "campaign failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(CAMPAIGN_RETRY) => continue,
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
            }
        };
        let fence = Fence::new(leadership.key.clone(), leadership.term);
        tracing::info!(node = %ctx.node_id, term = leadership.term, "leading: starting the dispatcher");
        let _ = dispatchers.cast(SupervisorMsg::Start(vec![fence.clone()]));
        let stopping = tokio::select! {
            _ = leadership.lost() => {
                tracing::warn!(node = %ctx.node_id, term = fence.term(), "leadership lost");
                false
            }
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        let _ = dispatchers.cast(SupervisorMsg::Stop(vec![fence.clone()]));
        if stopping {
            if let Err(e) = leadership.resign().await {
                tracing::warn!(error = %e, "resign failed; the lease revoke hands over instead");
            }
            break;
        }
        tokio::time::sleep(CAMPAIGN_RETRY).await;
    }
    follow.abort();
}
