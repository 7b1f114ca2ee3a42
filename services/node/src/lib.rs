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
//!    joined and running its share, and for as long as that holds;
//! 8. with `--sip`, the intercom gateway (docs/intercom.md): a call joins its button's open
//!    incident or opens one through the press path.
//!
//! Shutdown reverses it: not ready, resign leadership, stop serving, stop the actors, revoke
//! the lease so another node takes over at once instead of after the lease TTL.
//!
//! # Layout
//! - `startup`: the start-up phases above, one function each.
//! - `ownership`: the reconciler that keeps this node's share of entities running.
//! - `leadership`: campaign, run the dispatcher while leading, resign on shutdown.
//! - `intercom`: the intercom gateway's view of the node (presses, the audit trail).
//! - `readiness`: `/readyz` and gRPC health, true only while joined and running the share.
//! - [`network`](Network): what a simulation hands a node instead of TCP.
//! - [`limits`]: the bounds of a node's life cycle, with their reasons.

mod intercom;
mod leadership;
pub mod limits;
mod network;
mod ownership;
mod readiness;
mod startup;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use centinela_actors::{Clock, Context};
use centinela_api::Feed;
use centinela_cluster::{Membership, Session};
use centinela_core::ids::NodeId;
use centinela_core::scenario::Scenario;
use centinela_records::Records;
use centinela_store::EmbeddedStore;

pub use centinela_api::Security;
pub use centinela_console::Config as ConsoleConfig;
pub use centinela_handoff::Setup as HandoffSetup;
pub use centinela_onvif::credentials::{Credentials as CameraCredentials, Login as CameraLogin};
pub use intercom::SipOptions;
pub use leadership::DISPATCHER_ELECTION;
pub use network::{Connection, Io, Network};
use readiness::Readiness;

/// Where the coordination store is.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// In-process, in memory: the single-node demo and tests. Gone when the process exits.
    Embedded,
    /// An etcd cluster (or anything speaking its API, such as an embedded store served on TCP).
    Etcd(Vec<String>),
    /// An etcd cluster over TLS (`https://` endpoints), with the client certificate etcd's
    /// `--client-cert-auth` maps to a user (docs/security.md, "etcd").
    EtcdTls {
        endpoints: Vec<String>,
        tls: EtcdTls,
    },
}

/// How a node speaks TLS to etcd (`CENTINELA_ETCD_CA`, `CENTINELA_ETCD_CERT`,
/// `CENTINELA_ETCD_KEY`).
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// The CA that signs etcd's certificates (etcd's `--trusted-ca-file`, usually not the
    /// nodes' CA).
    pub ca: std::path::PathBuf,
    /// The node's client certificate for etcd, re-read when its files change; its common name
    /// is the etcd user (role `centinela-node`: read-write under `/centinela/` only).
    pub identity: Option<centinela_tls::Files>,
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
    /// The accounts ONVIF cameras are signed in to (`CENTINELA_ONVIF_USER`, ...).
    pub cameras: centinela_onvif::credentials::Credentials,
    /// The agencies incidents may be handed to (`CENTINELA_AGENCIES_FILE`), and the CAP sender.
    pub handoff: centinela_handoff::Setup,
    /// Caps on connections and streams; [`Bounds::default`] in production, lower in tests.
    pub bounds: Bounds,
    /// Where closed incidents are archived and how long they stay in the store
    /// (`--archive`, `--retention`).
    pub history: centinela_archive::Settings,
    /// TLS on both ports and to the peers (`CENTINELA_TLS_CERT`, `CENTINELA_TLS_KEY`,
    /// `CENTINELA_TLS_CA`); `None`: plaintext (`--insecure`, the demo, most tests).
    pub tls: Option<TlsOptions>,
    /// The intercom gateway (`--sip ADDR`, docs/intercom.md); `None`: no SIP.
    pub sip: Option<SipOptions>,
}

/// A node's TLS (docs/security.md, "Transport security").
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// The node's certificate and key, re-read when the files change. With a CA, the
    /// certificate must name the node (`<node id>.node.centinela`).
    pub files: centinela_tls::Files,
    /// The CA that signs nodes, devices and clients: peers must present a node certificate
    /// it signed, and devices and clients may present one. Without it the node serves TLS
    /// but neither dials its peers over TLS nor accepts client certificates (a single node).
    pub ca: Option<std::path::PathBuf>,
}

/// What a node's listeners and long-lived streams are bounded by (docs/security.md,
/// "Connections and streams"). The default is the limits modules' values; tests lower them
/// to reach a cap with a handful of sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Connections the gRPC port holds at most ([`limits::GRPC_CONNECTIONS_MAX`]).
    pub grpc_connections_max: usize,
    /// Connections the HTTP port holds at most ([`limits::HTTP_CONNECTIONS_MAX`]).
    pub http_connections_max: usize,
    /// A connection idle this long is closed ([`limits::CONNECTION_IDLE`]).
    pub connection_idle: std::time::Duration,
    /// HTTP/2 streams per gRPC connection ([`limits::GRPC_STREAMS_PER_CONNECTION`]).
    pub grpc_streams_per_connection: u32,
    /// How long the console waits for a request's headers
    /// ([`centinela_console::limits::HEADER_READ_TIMEOUT`]).
    pub http_header_read_timeout: std::time::Duration,
    /// Long-lived gRPC streams per operator and per node ([`centinela_api::streams`]).
    pub streams: centinela_api::StreamLimits,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            grpc_connections_max: limits::GRPC_CONNECTIONS_MAX,
            http_connections_max: limits::HTTP_CONNECTIONS_MAX,
            connection_idle: limits::CONNECTION_IDLE,
            grpc_streams_per_connection: limits::GRPC_STREAMS_PER_CONNECTION,
            http_header_read_timeout: centinela_console::limits::HEADER_READ_TIMEOUT,
            streams: centinela_api::StreamLimits::default(),
        }
    }
}

impl Bounds {
    /// The connection caps lowered to fit `open_files` (the process's `RLIMIT_NOFILE`):
    /// [`limits::FDS_RESERVED`] stay for the node's own use, the HTTP port gets at most a
    /// quarter of the rest and the gRPC port what remains, so the two listeners together can
    /// never exhaust the descriptors presses need. With a 1024 limit: 192 HTTP, 576 gRPC.
    pub fn fit(self, open_files: u64) -> Self {
        let spare = open_files.saturating_sub(limits::FDS_RESERVED).max(2);
        let http = (self.http_connections_max as u64)
            .min(spare / limits::HTTP_FD_SHARE_DIVISOR)
            .max(1);
        let grpc = (self.grpc_connections_max as u64)
            .min(spare.saturating_sub(http))
            .max(1);
        Self {
            grpc_connections_max: grpc as usize,
            http_connections_max: http as usize,
            ..self
        }
    }
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
    #[error("archive: {0}")]
    Archive(#[from] centinela_archive::Error),
    #[error("store records: {0}")]
    Records(#[from] centinela_records::Error),
    #[error("cannot start the {0} supervisor: {1}")]
    Supervisor(&'static str, String),
    #[error("cannot build the gRPC services: {0}")]
    Services(String),
    #[error("cannot build the console: {0}")]
    Console(String),
    #[error("TLS: {0}")]
    Tls(#[from] centinela_tls::Error),
    #[error("scenario {path}: {reason}")]
    Scenario { path: String, reason: String },
    #[error("--record-calls: {0}")]
    Recordings(String),
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
    /// The listeners' gates (none on a simulated network; no HTTP gate there either).
    gates: startup::Gates,
    background: Vec<JoinHandle<()>>,
    leadership: JoinHandle<()>,
    supervisors: Vec<ractor::ActorCell>,
    session: Session,
    _membership: Membership,
    /// The intercom gateway, when `--sip` is given (and could listen).
    intercom: Option<centinela_intercom::Gateway<intercom::NodeCalls>>,
    /// Keeps the embedded store alive as long as the node.
    _embedded: Option<EmbeddedStore>,
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
        // 1. Listeners (none on a simulated network).
        let listeners = startup::listen(&options, network.is_some()).await?;
        let bounds = startup::bounds(&options, network.is_some());
        // 2. The store, and the clock and records on it.
        let store = startup::open_store(&options.store, network.as_ref()).await?;
        let clock = network.as_ref().map_or_else(Clock::system, |n| n.clock);
        let records = Records::new(store.client.clone()).with_audit_key(security.audit_key());
        #[cfg(feature = "fault-injection")]
        let records = records.with_planted_bug(network.as_ref().and_then(|n| n.planted_bug));
        // The archive is opened, not connected: one that is down delays only the removal of
        // closed incidents from the store, never the node's start or a press.
        // A simulated node (centinela-sim) runs without one: the database's own threads would
        // run outside simulated time and break the replay of a seed.
        let history = match network.is_some() {
            true => None,
            false => Some(centinela_archive::History::open(
                &options.history,
                matches!(options.store, StoreConfig::Embedded),
            )?),
        };
        if history.as_ref().is_some_and(|h| !h.remove) {
            tracing::warn!(
                "no --archive and no --data-dir: closed incidents are not archived and stay \
                 in etcd; pass --archive postgres://... to take them out of it"
            );
        } else if let (Some(dir), None, StoreConfig::Etcd(_)) = (
            &options.history.data_dir,
            &options.history.archive,
            &options.store,
        ) && network.is_none()
        {
            // Each node's file is its own archive: the leader archives into its file, so with
            // several nodes history is split between them (docs/operations.md, "History").
            tracing::warn!(
                file = %dir.join(centinela_archive::DEFAULT_ARCHIVE_FILE).display(),
                "no --archive: archiving into this node's own SQLite file; a cluster of more \
                 than one node must use --archive postgres://... (one archive for all)"
            );
        }
        // 3. The scenario's entities the store does not hold yet.
        startup::seed(&records, &options.scenario, clock).await?;
        // 4. A session, membership under it, the election followed.
        let joined = startup::join(
            &store.client,
            store.keep_alive.clone(),
            &options,
            &listeners,
        )
        .await?;
        // TLS on both ports, and to the peers when there is a cluster CA.
        let tls = startup::tls(&options, &node_id)?;
        let security = match &tls {
            Some(tls) if tls.peers.is_some() => security.with_node_certificates(),
            _ => security,
        };
        // The router reaches other nodes over gRPC, presenting the cluster credential.
        let mut peers = centinela_api::peer::GrpcPeers::new(
            node_id.clone(),
            security.peer_authorization(&node_id),
            network.as_ref().map(|n| n.dial.clone()),
        );
        if let Some(client) = tls.as_ref().and_then(|tls| tls.peers.clone()) {
            peers = peers.with_tls(client);
        }
        // Kept also for forwarding operators' steps on calls other nodes anchor.
        let peers = Arc::new(peers);
        let ctx = Context::new(
            node_id.clone(),
            records.clone(),
            clock,
            joined.topology.clone(),
            peers.clone(),
        )
        .with_onvif(options.cameras.clone())
        .with_handoff(options.handoff.clone());
        let ctx = Arc::new(match history {
            Some(history) => ctx.with_history(history),
            None => ctx,
        });
        // 5. The supervisors, and the reconciler that starts this node's share.
        let actors = startup::start_actors(&ctx, &joined.session).await?;
        // 6. Leadership, in the background: the leader runs the dispatcher.
        let (shutdown, shutdown_rx) = watch::channel(false);
        let leadership = tokio::spawn(leadership::lead(
            ctx.clone(),
            store.client.clone(),
            joined.session.lease(),
            actors.dispatchers.clone(),
            shutdown_rx.clone(),
        ));
        // 7. Serve gRPC and HTTP (and SIP, below, once ready).
        let sip_credentials = security.sip_credentials();
        let feed = Arc::new(Feed::new(records.clone()));
        let (ready, ready_rx) = watch::channel(false);
        // Answered calls ring on this desk; the console answers them (docs/intercom.md).
        let desk = options.sip.map(|_| centinela_intercom::Desk::new());
        let recordings = intercom::recordings_dir(&options)?;
        let mut services = startup::Services::build(
            &ctx,
            &feed,
            store.kind,
            security,
            console,
            ready_rx,
            &bounds,
            desk.clone(),
        )?;
        // Every node's consoles ring every call: this node publishes its desk's calls and
        // follows the others', and forwards steps on theirs (docs/intercom.md).
        let mut call_tasks = Vec::new();
        if let Some(desk) = &desk {
            let forward = Arc::new(intercom::PeerForward {
                ctx: ctx.clone(),
                peers: peers.clone(),
            });
            let remote = centinela_intercom::remote::RemoteCalls::new(node_id.as_str(), forward);
            services.console = services
                .console
                .with_calls(desk.clone())
                .with_remote_calls(remote.clone());
            call_tasks.push(tokio::spawn(intercom::publish_calls(
                store.client.clone(),
                node_id.to_string(),
                desk.clone(),
                joined.session.lease(),
                shutdown_rx.clone(),
            )));
            call_tasks.push(tokio::spawn(intercom::follow_calls(
                store.client.clone(),
                remote,
                shutdown_rx.clone(),
            )));
        }
        if let Some(dir) = &recordings {
            services.console = services.console.with_recordings(dir.clone());
        }
        let health = services.health.clone();
        let (servers, gates) = startup::serve(
            services,
            listeners.sockets,
            network.map(|network| network.incoming),
            tls,
            clock,
            &bounds,
            &shutdown_rx,
        );

        // Ready once joined and running this node's share; watched for as long as the node
        // lives (a node that lost its lease is not ready until it is back in).
        let mut readiness = Readiness {
            lease: joined.session.lease(),
            ctx: ctx.clone(),
            share: actors.share,
            ready: ready.clone(),
            health: health.clone(),
        };
        readiness.wait_first().await;
        let watcher = tokio::spawn(readiness.follow(shutdown_rx.clone()));
        // 8. The intercom gateway: calls open incidents, so it listens once the node can
        // take presses. It never stands between a press and its incident.
        let intercom = match options.sip {
            None => None,
            Some(sip) => {
                let mut config =
                    centinela_intercom::Config::new(sip.addr, intercom::passwords(sip_credentials));
                if let Some(desk) = desk {
                    config.desk = desk;
                }
                config.recordings = recordings.clone();
                // The trail's calls on this node id are from an earlier run: they ended
                // with it. Never fatal: the trail is wrong, the node is not.
                match intercom::end_calls_of_this_node(&ctx).await {
                    Ok(0) => {}
                    Ok(ended) => tracing::info!(
                        calls = ended,
                        "sip: ended the calls this node held before it restarted"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "sip: calls held before a restart not ended in the trail")
                    }
                }
                let calls = intercom::NodeCalls { ctx: ctx.clone() };
                match centinela_intercom::Gateway::start(config, calls).await {
                    Ok(gateway) => Some(gateway),
                    Err(e) if sip.optional => {
                        tracing::warn!(addr = %sip.addr, error = %e, "no intercom gateway: its address is taken; presses work as ever, calls do not reach this node");
                        None
                    }
                    Err(source) => {
                        return Err(Error::Bind {
                            what: "SIP",
                            addr: sip.addr,
                            source,
                        });
                    }
                }
            }
        };

        tracing::info!(node = %node_id, site = %options.site, grpc = %listeners.grpc_addr, http = %listeners.http_addr, store = store.kind, "node ready");
        Ok(Node {
            ctx,
            grpc_addr: listeners.grpc_addr,
            http_addr: listeners.http_addr,
            summary: startup::summary(&options.scenario),
            ready,
            shutdown,
            health,
            feed,
            servers,
            gates,
            background: [actors.reconciler, watcher]
                .into_iter()
                .chain(call_tasks)
                .collect(),
            leadership,
            supervisors: actors.supervisors,
            session: joined.session,
            _membership: joined.membership,
            intercom,
            _embedded: store.embedded,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the intercom gateway listens (UDP and TCP), when it runs.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.intercom.as_ref().map(|g| g.local_addr())
    }

    /// The intercom gateway, when it runs (tests read its calls and counters).
    pub fn intercom(&self) -> Option<&centinela_intercom::Gateway<intercom::NodeCalls>> {
        self.intercom.as_ref()
    }

    pub fn scenario_summary(&self) -> &str {
        &self.summary
    }

    /// The gRPC port's gate: its cap, open and refused connections (none when simulated).
    pub fn grpc_gate(&self) -> Option<&Arc<centinela_api::conn::Gate>> {
        self.gates.grpc.as_ref()
    }

    /// The HTTP port's gate (none when simulated).
    pub fn http_gate(&self) -> Option<&Arc<centinela_api::conn::Gate>> {
        self.gates.http.as_ref()
    }

    /// The table of long-lived streams and their caps.
    pub fn streams(&self) -> &Arc<centinela_api::Streams> {
        &self.gates.streams
    }

    /// The in-process store, when the node runs on one (`StoreConfig::Embedded`): tests ask it
    /// what is watched.
    pub fn embedded_store(&self) -> Option<&EmbeddedStore> {
        self._embedded.as_ref()
    }

    /// The node's operator feed (it watches the store only while someone is subscribed).
    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// The console's public map (its cache counts the store reads it made).
    pub fn public_map(&self) -> &Arc<centinela_console::public::PublicMap> {
        &self.gates.public_map
    }

    /// The node's actors' shared context (tests reach actors through its router).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Graceful stop; see the module docs.
    pub async fn shutdown(mut self) {
        let _ = self.ready.send(false);
        // No new calls; calls in progress lose their media with the gateway.
        drop(self.intercom.take());
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
        // the actors drops the device channels they hold (devices reconnect elsewhere), as
        // does clearing the cameras' channels the node holds.
        self.feed.close();
        for cell in &self.supervisors {
            let _ = cell
                .stop_and_wait(
                    Some("node shutting down".into()),
                    Some(limits::SHUTDOWN_STEP),
                )
                .await;
        }
        // The native cameras' channels are the node's, not their actors': end them too.
        self.ctx.router.camera_links.clear();
        for server in self.servers {
            let _ = tokio::time::timeout(limits::SHUTDOWN_STEP, server).await;
        }
        tracing::info!(node = %self.ctx.node_id, "node stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_caps_fit_in_the_file_limit() {
        let fitted = Bounds::default().fit(1024);
        assert_eq!(
            (fitted.http_connections_max, fitted.grpc_connections_max),
            (192, 576)
        );
        let sum = fitted.http_connections_max + fitted.grpc_connections_max;
        assert!(sum as u64 + limits::FDS_RESERVED <= 1024);
        // A generous limit leaves the caps as they are.
        assert_eq!(Bounds::default().fit(1 << 20), Bounds::default());
        // A tiny one still serves something on each port.
        let tiny = Bounds::default().fit(16);
        assert!(tiny.http_connections_max >= 1 && tiny.grpc_connections_max >= 1);
    }
}
