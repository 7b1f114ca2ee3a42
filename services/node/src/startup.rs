//! The phases of a node's start-up, in the order `Node::start_*` runs them (the crate docs list
//! them). Each returns what the next phases need; the order of their spawns is part of a
//! simulation's replay (tokio task ids), so they run in one fixed order.

use std::net::SocketAddr;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::Routes;

use centinela_actors::supervisor::{
    Brigades, Buttons, Cameras, ChildKind, Dispatchers, Supervisor, SupervisorMsg,
};
use centinela_actors::{Clock, Context};
use centinela_api::Feed;
use centinela_cluster::{KeepAlive, Member, Membership, Session, Topology};
use centinela_core::ids::NodeId;
use centinela_core::scenario::Scenario;
use centinela_records::Records;
use centinela_store::election::{Election, Fence};
use centinela_store::{ClientTls, ConnectOptions, EmbeddedStore, Store};

use crate::network::Network;
use crate::ownership::{self, EntitySupervisors, Share};
use centinela_api::conn::{self, Gate};
use centinela_api::streams::Streams;

use crate::{Bounds, DISPATCHER_ELECTION, Error, Options, StoreConfig, limits};

// ---- 1. listeners ---------------------------------------------------------------------------

/// The node's addresses, and its bound sockets (none on a simulated network).
pub(crate) struct Listeners {
    pub(crate) sockets: Option<(TcpListener, TcpListener)>,
    pub(crate) grpc_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
    /// The gRPC address other nodes are told.
    pub(crate) advertised: String,
}

/// Binds the gRPC and HTTP listeners (port 0 allowed: tests read the real ports back).
pub(crate) async fn listen(options: &Options, simulated: bool) -> Result<Listeners, Error> {
    let (sockets, grpc_addr, http_addr) = if simulated {
        (None, options.grpc_addr, options.http_addr)
    } else {
        let grpc_listener = bind("gRPC", options.grpc_addr).await?;
        let http_listener = bind("HTTP", options.http_addr).await?;
        let grpc_addr = local_addr("gRPC", &grpc_listener, options.grpc_addr)?;
        let http_addr = local_addr("HTTP", &http_listener, options.http_addr)?;
        (Some((grpc_listener, http_listener)), grpc_addr, http_addr)
    };
    let advertised = match &options.advertise_grpc {
        Some(addr) => addr.clone(),
        None if grpc_addr.ip().is_unspecified() => return Err(Error::Advertise(grpc_addr)),
        None => grpc_addr.to_string(),
    };
    Ok(Listeners {
        sockets,
        grpc_addr,
        http_addr,
        advertised,
    })
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

// ---- 2. store, 3. seed ----------------------------------------------------------------------

/// The coordination store a node talks to.
pub(crate) struct Coordination {
    pub(crate) client: Store,
    /// The embedded store, kept alive as long as the node.
    pub(crate) embedded: Option<EmbeddedStore>,
    /// `embedded` or `etcd`, as the operator API reports it.
    pub(crate) kind: &'static str,
    /// Where the session keeps its lease alive: on a real etcd from a thread and connection of
    /// its own (a busy node must not miss its 2 s TTL), else on the node's runtime.
    pub(crate) keep_alive: KeepAlive,
}

/// Reaches the store: the embedded one in-process, etcd, or the simulation's.
pub(crate) async fn open_store(
    config: &StoreConfig,
    network: Option<&Network>,
) -> Result<Coordination, Error> {
    let (client, embedded, kind, keep_alive) = match (network, config) {
        (Some(network), _) => (network.store.clone(), None, "etcd", KeepAlive::Shared),
        (None, StoreConfig::Embedded) => {
            let embedded = EmbeddedStore::new();
            let client = Store::embedded(&embedded);
            (client, Some(embedded), "embedded", KeepAlive::Shared)
        }
        (None, StoreConfig::Etcd(endpoints)) => {
            let options = ConnectOptions::default();
            let client = Store::connect(endpoints, options.clone()).await?;
            let endpoints = endpoints.clone();
            let keep_alive = KeepAlive::Dedicated { endpoints, options };
            (client, None, "etcd", keep_alive)
        }
        (None, StoreConfig::EtcdTls { endpoints, tls }) => {
            let options = ConnectOptions {
                tls: Some(ClientTls::from_files(&tls.ca, tls.identity.clone())?),
                ..ConnectOptions::default()
            };
            let client = Store::connect(endpoints, options.clone()).await?;
            let endpoints = endpoints.clone();
            let keep_alive = KeepAlive::Dedicated { endpoints, options };
            (client, None, "etcd", keep_alive)
        }
    };
    Ok(Coordination {
        client,
        embedded,
        kind,
        keep_alive,
    })
}

/// Writes the scenario's entities the store does not hold yet (never overwriting live state).
pub(crate) async fn seed(
    records: &Records,
    scenario: &Scenario,
    clock: Clock,
) -> Result<(), Error> {
    let seeded = records.seed(scenario, clock.now()).await?;
    tracing::info!(
        scenario = %scenario.name,
        created = seeded.created,
        existing = seeded.existing,
        cameras_reconfigured = seeded.reconfigured,
        "scenario in the store"
    );
    Ok(())
}

/// One line about the scenario, for the start-up banner.
pub(crate) fn summary(scenario: &Scenario) -> String {
    format!(
        "scenario {}: {} buttons, {} cameras, {} brigades",
        scenario.name,
        scenario.buttons.len(),
        scenario.buttons.len(),
        scenario.brigades.len()
    )
}

// ---- 4. join --------------------------------------------------------------------------------

/// A node in the cluster: its session, its membership under it, and its view.
pub(crate) struct Joined {
    pub(crate) session: Session,
    pub(crate) membership: Membership,
    pub(crate) topology: Topology,
}

/// Opens the session (a lease kept alive for the node's life), registers as a member under
/// it, and follows the member set and the dispatcher election.
pub(crate) async fn join(
    store: &Store,
    keep_alive: KeepAlive,
    options: &Options,
    listeners: &Listeners,
) -> Result<Joined, Error> {
    // Membership and leadership hang off one session lease.
    let session = Session::start_with(store.clone(), limits::LEASE_TTL, keep_alive).await?;
    let me = Member {
        id: options.node_id.clone(),
        site: options.site.clone(),
        grpc_addr: listeners.advertised.clone(),
        http_addr: listeners.http_addr.to_string(),
    };
    let membership = Membership::start(store.clone(), me.clone(), session.lease());
    let leader = Election::observe(store, DISPATCHER_ELECTION);
    let topology = Topology::new(me, membership.members(), leader);
    Ok(Joined {
        session,
        membership,
        topology,
    })
}

// ---- 5. actors ------------------------------------------------------------------------------

/// The node's supervisors and the reconciler that keeps its share running.
pub(crate) struct Actors {
    /// Every supervisor, stopped in this order at shutdown.
    pub(crate) supervisors: Vec<ActorCell>,
    pub(crate) dispatchers: ActorRef<SupervisorMsg<Fence>>,
    pub(crate) reconciler: JoinHandle<()>,
    /// The size of the share the reconciler last applied.
    pub(crate) share: watch::Receiver<Option<Share>>,
}

/// Starts one supervisor per entity kind and the dispatcher's, and the ownership reconciler,
/// which starts the entities rendezvous hashing gives this node and moves them as members
/// come and go.
pub(crate) async fn start_actors(ctx: &Arc<Context>, session: &Session) -> Result<Actors, Error> {
    let entities = EntitySupervisors {
        buttons: supervisor::<Buttons>(ctx).await?,
        cameras: supervisor::<Cameras>(ctx).await?,
        brigades: supervisor::<Brigades>(ctx).await?,
    };
    let dispatchers = supervisor::<Dispatchers>(ctx).await?;
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
    Ok(Actors {
        supervisors,
        dispatchers,
        reconciler,
        share,
    })
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

// ---- 7. serve -------------------------------------------------------------------------------

/// The caps a node runs with: [`Options::bounds`] fitted to the open-file limit (raised to its
/// hard value first) when the node has real sockets.
pub(crate) fn bounds(options: &Options, simulated: bool) -> Bounds {
    if simulated {
        return options.bounds;
    }
    match conn::raise_file_limit() {
        Some(open_files) => {
            let fitted = options.bounds.fit(open_files);
            tracing::info!(
                open_files,
                grpc_connections_max = fitted.grpc_connections_max,
                http_connections_max = fitted.http_connections_max,
                "connection caps"
            );
            fitted
        }
        None => options.bounds,
    }
}

/// What a node serves: every gRPC service behind the edge, its health, and the console.
pub(crate) struct Services {
    routes: Routes,
    streams: Arc<Streams>,
    pub(crate) health: Arc<centinela_api::Health>,
    pub(crate) console: centinela_console::ConsoleState,
}

impl Services {
    /// The gRPC services and the console, on one account system (the console's accounts sign
    /// in gRPC operators too) and one `Operator` implementation. `calls`: the gateway's desk,
    /// which the peers' `CallStep` serves to other nodes' consoles.
    #[allow(clippy::too_many_arguments)] // each is one of the node's parts, built before
    pub(crate) fn build(
        ctx: &Arc<Context>,
        feed: &Arc<Feed>,
        store_kind: &'static str,
        security: centinela_api::Security,
        console: centinela_console::Config,
        ready: watch::Receiver<bool>,
        bounds: &Bounds,
        calls: Option<Arc<centinela_intercom::Desk>>,
    ) -> Result<Self, Error> {
        let streams = Streams::new(bounds.streams);
        let accounts =
            centinela_console::auth::Auth::new(console.clone()).map_err(Error::Console)?;
        let security = security.with_operators(Arc::new(accounts));
        tracing::info!(summary = %security.summary(), "gRPC edge");
        // The brigade app checks unit tokens with the same credentials as the gRPC devices.
        let app_edge = centinela_api::auth::Edge::new(security.clone());
        let (routes, health) = centinela_api::routes(
            ctx.clone(),
            feed.clone(),
            store_kind,
            security,
            &streams,
            calls,
        )
        .map_err(|e| Error::Services(e.to_string()))?;
        // The console calls the same Operator implementation the gRPC server serves.
        let console = centinela_console::ConsoleState::new(
            ctx.node_id.to_string(),
            ctx.records.clone(),
            ready,
            centinela_api::operator::OperatorService::new(ctx.clone(), feed.clone(), store_kind),
            console,
            ctx.onvif.clone(),
        )
        .map_err(|e| Error::Console(e.to_string()))?
        .with_brigade_app(centinela_console::brigade_app::BrigadeApp::new(
            app_edge,
            centinela_api::devices::Devices::new(ctx.clone()),
            ctx.clone(),
        ));
        Ok(Self {
            routes,
            streams,
            health: Arc::new(health),
            console,
        })
    }
}

/// The listeners' gates and the stream table, for tests and status.
pub(crate) struct Gates {
    pub(crate) grpc: Option<Arc<Gate>>,
    pub(crate) http: Option<Arc<Gate>>,
    pub(crate) streams: Arc<Streams>,
    pub(crate) public_map: Arc<centinela_console::public::PublicMap>,
}

/// A node's TLS, built once at start-up: the same certificate pair (re-read when its files
/// change) on both ports and towards the peers.
pub(crate) struct Tls {
    grpc: centinela_tls::ServerTls,
    http: centinela_tls::ServerTls,
    /// How this node dials its peers; `None` without a cluster CA.
    pub(crate) peers: Option<centinela_tls::ClientTls>,
}

/// Loads the node's certificate, key and CA (`options.tls`). With a CA, the certificate must
/// name this node: a node that could not prove itself to its peers fails now, not at its
/// first forwarded press.
pub(crate) fn tls(options: &Options, node_id: &NodeId) -> Result<Option<Tls>, Error> {
    use centinela_tls::{ClientTls, Pair, Protocol, ServerTls, names};
    let Some(tls) = &options.tls else {
        return Ok(None);
    };
    let pair = Pair::load(tls.files.clone(), centinela_tls::provider())?;
    let ca = tls.ca.as_deref();
    if ca.is_some() {
        let current = pair.current();
        let leaf = current.cert.first().ok_or_else(|| {
            centinela_tls::Error::Config("the certificate file has no certificate".into())
        })?;
        if !names::names(leaf, names::Kind::Node, node_id.as_str()) {
            return Err(centinela_tls::Error::Invalid {
                what: format!("certificate {}", tls.files.certificate.display()),
                reason: format!(
                    "it does not name this node: it must carry the DNS name {} (docs/operations.md, \"Certificates\")",
                    names::name(names::Kind::Node, node_id.as_str())
                        .map(|name| name.to_str().into_owned())
                        .unwrap_or_else(|| format!("{node_id}.node.centinela"))
                ),
            }
            .into());
        }
    }
    let grpc = ServerTls::new(pair.clone(), ca, Protocol::Grpc)?;
    // The console asks for no client certificate: browsers would prompt for one.
    let http = ServerTls::new(pair.clone(), None, Protocol::Http1)?;
    let peers = ca.map(|ca| ClientTls::new(ca, Some(pair))).transpose()?;
    tracing::info!(
        certificate = %tls.files.certificate.display(),
        peers = if peers.is_some() { "mutual TLS" } else { "no CA: plaintext" },
        "TLS on both ports"
    );
    Ok(Some(Tls { grpc, http, peers }))
}

/// Serves gRPC (on the bound socket, or the simulation's connections) and HTTP (when bound)
/// until `shutdown` says stop. Each bound socket accepts through its own [`Gate`]
/// (`centinela_api::conn`): a cap and an idle timeout per listener.
pub(crate) fn serve(
    services: Services,
    sockets: Option<(TcpListener, TcpListener)>,
    simulated: Option<futures::stream::BoxStream<'static, std::io::Result<crate::Connection>>>,
    tls: Option<Tls>,
    clock: Clock,
    bounds: &Bounds,
    shutdown: &watch::Receiver<bool>,
) -> (Vec<JoinHandle<()>>, Gates) {
    let (grpc_listener, http_listener) = sockets.unzip();
    let routes = services.routes;
    let grpc_gate = grpc_listener.is_some().then(|| {
        Gate::new(
            "grpc",
            conn::Bounds {
                connections_max: bounds.grpc_connections_max,
                idle: bounds.connection_idle,
            },
        )
    });
    let http_gate = http_listener.is_some().then(|| {
        Gate::new(
            "http",
            conn::Bounds {
                connections_max: bounds.http_connections_max,
                idle: bounds.connection_idle,
            },
        )
    });
    let gates = Gates {
        grpc: grpc_gate.clone(),
        http: http_gate.clone(),
        streams: services.streams.clone(),
        public_map: services.console.public_map.clone(),
    };
    let streams_per_connection = bounds.grpc_streams_per_connection;
    let (grpc_tls, http_tls) = tls.map(|tls| (tls.grpc, tls.http)).unzip();
    let grpc = {
        let mut shutdown = shutdown.clone();
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
                .max_concurrent_streams(Some(streams_per_connection))
                .http2_max_header_list_size(Some(limits::GRPC_HEADER_LIST_BYTES_MAX))
                .add_routes(routes);
            let stop = async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            };
            let result = match (grpc_listener, grpc_gate, simulated) {
                (_, _, Some(incoming)) => server.serve_with_incoming_shutdown(incoming, stop).await,
                (Some(grpc_listener), Some(gate), None) => match grpc_tls {
                    // The handshake runs on a connection that already holds its slot.
                    Some(tls) => {
                        server
                            .serve_with_incoming_shutdown(
                                tls.incoming(gate.incoming(grpc_listener)),
                                stop,
                            )
                            .await
                    }
                    None => {
                        server
                            .serve_with_incoming_shutdown(gate.incoming(grpc_listener), stop)
                            .await
                    }
                },
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "gRPC server failed");
            }
        })
    };
    let mut servers = vec![grpc];
    if let (Some(http_listener), Some(gate)) = (http_listener, http_gate) {
        let mut shutdown = shutdown.clone();
        let router = centinela_console::router(services.console);
        let header_read_timeout = bounds.http_header_read_timeout;
        servers.push(tokio::spawn(async move {
            let stop = async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            };
            let incoming = gate.incoming(http_listener);
            match http_tls {
                Some(tls) => {
                    centinela_console::serve(
                        tls.incoming(incoming),
                        centinela_console::with_hsts(router),
                        header_read_timeout,
                        stop,
                    )
                    .await;
                }
                None => {
                    centinela_console::serve(incoming, router, header_read_timeout, stop).await;
                }
            }
        }));
    }
    (servers, gates)
}
