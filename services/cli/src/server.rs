//! The long-running commands: `demo`, `start` and `devices`.

use std::fmt::Display;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;

use centinela_devices::SimOptions;
use centinela_devices::calls::SipCalls;
use centinela_devices::onvif_fleet::OnvifFleet;
use centinela_node::{
    CameraCredentials, CameraLogin, ConsoleConfig, Node, Options, Security, SipOptions, StoreConfig,
};
use centinela_proto::client::{Credentials, Failover, parse_addrs};
use centinela_telemetry::LogFormat;

/// How a long-running command speaks on stderr besides its logs. With readable logs: plain
/// lines for people (`error:` and `hint:`, the banner). With JSON logs every line of stderr
/// must be one JSON object, since a log shipper reads them: the same words go out as log
/// events, and the banner is left out (the `node ready` event carries its addresses).
/// Writes to stderr ignore errors: a closed stderr leaves nobody to tell, and the exit code
/// still says how it went.
#[derive(Clone, Copy)]
pub struct Say {
    json: bool,
}

impl Say {
    pub fn new(format: LogFormat) -> Say {
        Say {
            json: format == LogFormat::Json,
        }
    }

    /// A failure that stops the command, and what to try, when we can tell.
    fn error(self, message: impl Display, hint: Option<&str>) {
        if self.json {
            match hint {
                Some(hint) => tracing::error!(hint, "{message}"),
                None => tracing::error!("{message}"),
            }
        } else {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {message}");
            if let Some(hint) = hint {
                let _ = writeln!(stderr, "hint: {hint}");
            }
        }
    }

    fn warning(self, message: impl Display) {
        if self.json {
            tracing::warn!("{message}");
        } else {
            let _ = writeln!(std::io::stderr(), "warning: {message}");
        }
    }

    /// A step of the command's life (`stopping`).
    fn note(self, message: impl Display) {
        if self.json {
            tracing::info!("{message}");
        } else {
            let _ = writeln!(std::io::stderr(), "{message}");
        }
    }

    /// Where to reach what just started, for people.
    fn banner(self, text: &str) {
        if !self.json {
            let _ = writeln!(std::io::stderr(), "{text}");
        }
    }
}

#[derive(Args)]
pub struct DemoArgs {
    /// gRPC listen address (devices, operators, CLI).
    #[arg(long, default_value = "127.0.0.1:7400")]
    grpc: SocketAddr,
    /// HTTP listen address (console, health, public map).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// No random presses; brigades still move and report, cameras still obey.
    #[arg(long)]
    quiet_sim: bool,
    /// Scenario file; the built-in Lima central district when absent.
    #[arg(long, env = "CENTINELA_SCENARIO")]
    scenario: Option<PathBuf>,
    /// Seed of the simulated devices (random presses, patrols); from the clock by default.
    #[arg(long)]
    seed: Option<u64>,
    /// The intercom gateway's address, UDP and TCP (docs/intercom.md); `off` for none. The
    /// demo runs without it when the default address is taken.
    #[arg(long, env = "CENTINELA_SIP", default_value = "127.0.0.1:5060")]
    sip: String,
    /// The simulated buttons do not call: by default, with the gateway up, a button whose
    /// press opens an incident calls it and speaks (a generated voice) for the console's
    /// operator to answer (docs/intercom.md).
    #[arg(long)]
    mute_buttons: bool,
    /// Time compression of brigade movement and time on scene (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    #[command(flatten)]
    history: HistoryArgs,
    /// Archive this many days of a plausible, seeded press history at start (up to 366), so
    /// reports and `plan-posts` show something at once; 0 (the default): an empty archive.
    #[arg(long = "history", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i64::from(centinela_archive::limits::SYNTHETIC_DAYS_MAX)))]
    history_days: u32,
}

/// Where closed incidents go (docs/operations.md, "History").
#[derive(Args)]
pub struct HistoryArgs {
    /// The archive of closed incidents: postgres://USER@HOST/DB, sqlite:PATH or
    /// sqlite::memory:. Absent: SQLite in memory on the embedded store; on etcd, an SQLite
    /// file in --data-dir (this node's own: a cluster of several nodes should use PostgreSQL),
    /// or without --data-dir nothing is archived and closed incidents stay in etcd.
    #[arg(long, env = "CENTINELA_ARCHIVE")]
    archive: Option<String>,
    /// How long a closed incident stays in the live store once archived (30s, 15m, 1h, 2d).
    #[arg(long, env = "CENTINELA_RETENTION", default_value = "1h", value_parser = centinela_archive::parse_duration)]
    retention: std::time::Duration,
}

impl HistoryArgs {
    fn settings(&self, data_dir: Option<&std::path::Path>) -> centinela_archive::Settings {
        centinela_archive::Settings {
            archive: self.archive.clone().filter(|url| !url.is_empty()),
            retention: self.retention,
            data_dir: data_dir.map(std::path::Path::to_path_buf),
        }
    }
}

#[derive(Args)]
pub struct StartArgs {
    /// This node's id: unique in the cluster, stable across restarts (e.g. the pod name).
    #[arg(long, env = "CENTINELA_NODE_ID")]
    node_id: String,
    /// The municipal site this node runs in (e.g. site-a).
    #[arg(long, env = "CENTINELA_SITE")]
    site: String,
    /// gRPC listen address (devices, operators, CLI, other nodes).
    #[arg(long, env = "CENTINELA_GRPC", default_value = "127.0.0.1:7400")]
    grpc: SocketAddr,
    /// HTTP listen address (console, health, public map).
    #[arg(long, env = "CENTINELA_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// The gRPC address other nodes reach this one at (HOST:PORT); needed when --grpc listens
    /// on a wildcard address.
    #[arg(long, env = "CENTINELA_ADVERTISE_GRPC")]
    advertise_grpc: Option<String>,
    /// The intercom gateway's address, UDP and TCP (docs/intercom.md): buttons call
    /// `sip:centinela@ADDR`. Absent: no SIP.
    #[arg(long, env = "CENTINELA_SIP")]
    sip: Option<SocketAddr>,
    /// Record every call's audio, both ways, into --data-dir's `recordings` (off by
    /// default; docs/intercom.md, "Recording", has the legal note). Needs --sip and
    /// --data-dir.
    #[arg(long, env = "CENTINELA_RECORD_CALLS", requires_all = ["sip", "data_dir"], value_parser = clap::builder::BoolishValueParser::new())]
    record_calls: bool,
    /// etcd endpoints, comma separated.
    #[arg(long, env = "CENTINELA_ETCD")]
    etcd: String,
    /// Scenario file seeding the store (entities the store already holds are left alone);
    /// the built-in Lima central district when absent.
    #[arg(long, env = "CENTINELA_SCENARIO")]
    scenario: Option<PathBuf>,
    /// Accept calls without credentials (like the demo). For a trusted test network only:
    /// by default a node refuses them, and refuses to start without CENTINELA_CLUSTER_SECRET
    /// (docs/security.md).
    #[arg(long, env = "CENTINELA_INSECURE", value_parser = clap::builder::BoolishValueParser::new())]
    insecure: bool,
    #[command(flatten)]
    history: HistoryArgs,
    /// This node's own directory (a persistent volume): without --archive, the archive is an
    /// SQLite file here (archive.db).
    #[arg(long, env = "CENTINELA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// This node's certificate (PEM, with its chain): TLS on both ports, and with --ca (or
    /// CENTINELA_TLS_CA) mutual TLS between the nodes. It must name the node as
    /// `<node id>.node.centinela`, besides the names clients dial (docs/operations.md).
    #[arg(long, env = "CENTINELA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "CENTINELA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA that signs etcd's certificates (PEM): etcd is spoken over TLS (endpoints
    /// `https://HOST:PORT`, or bare `HOST:PORT`). Without it an `https://` endpoint is refused.
    #[arg(long, env = "CENTINELA_ETCD_CA")]
    etcd_ca: Option<PathBuf>,
    /// This node's client certificate for etcd (PEM): etcd's `--client-cert-auth` makes its
    /// common name the etcd user (docs/operations.md).
    #[arg(long, env = "CENTINELA_ETCD_CERT", requires_all = ["etcd_key", "etcd_ca"])]
    etcd_cert: Option<PathBuf>,
    /// The private key of --etcd-cert (PEM).
    #[arg(long, env = "CENTINELA_ETCD_KEY", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct DevicesArgs {
    /// No random presses; brigades still move and report, cameras still obey.
    #[arg(long)]
    quiet_sim: bool,
    /// Play the brigades' terminals only (no cameras, no button heartbeats or presses): live
    /// brigades for a benchmark whose buttons are pressed by `centinela loadgen`.
    #[arg(long)]
    units_only: bool,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// The intercom gateway (a node's --sip, HOST:PORT) that a simulated button calls when
    /// its press opens an incident, with the device token as its SIP password. Absent:
    /// buttons do not call.
    #[arg(long)]
    sip: Option<SocketAddr>,
}

const SCENARIO_HINT: &str = "deploy/scenarios/lima-centro.toml shows the format";

fn seed_or_clock(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    })
}

fn check_speedup(say: Say, speedup: f64) -> Result<(), ExitCode> {
    if speedup.is_finite() && (0.1..=1000.0).contains(&speedup) {
        Ok(())
    } else {
        say.error(
            format_args!("--speedup must be between 0.1 and 1000, got {speedup}"),
            None,
        );
        Err(ExitCode::from(2))
    }
}

/// The gRPC edge's configuration: `CENTINELA_DEVICES_FILE` and `CENTINELA_CLUSTER_SECRET` from
/// the environment, the shared device token from `--device-token` / `CENTINELA_DEVICE_TOKEN`.
fn security(say: Say, base: Security, device_token: Option<&str>) -> Result<Security, ExitCode> {
    let configured = base.from_env().and_then(|security| match device_token {
        Some(token) if !token.is_empty() => security.with_shared_device_token(token),
        _ => Ok(security),
    });
    configured.map_err(|e| {
        say.error(
            format_args!("credentials: {e}"),
            Some("docs/security.md describes CENTINELA_DEVICE_TOKEN, CENTINELA_DEVICES_FILE and CENTINELA_CLUSTER_SECRET"),
        );
        ExitCode::from(2)
    })
}

/// The ONVIF cameras' accounts: `CENTINELA_ONVIF_USER` / `CENTINELA_ONVIF_PASSWORD`, and
/// `CENTINELA_CAMERAS_FILE` per camera.
fn camera_credentials(say: Say) -> Result<CameraCredentials, ExitCode> {
    CameraCredentials::from_env().map_err(|e| {
        say.error(
            format_args!("camera credentials: {e}"),
            Some("docs/cameras.md describes CENTINELA_ONVIF_USER, CENTINELA_ONVIF_PASSWORD and CENTINELA_CAMERAS_FILE"),
        );
        ExitCode::from(2)
    })
}

/// The demo: an open node (every CLI command works with no credentials set), which also takes
/// the shared device token its simulated devices present when one is set.
pub async fn demo(
    say: Say,
    args: DemoArgs,
    credentials: Credentials,
    device_token: Option<String>,
) -> ExitCode {
    if let Err(code) = check_speedup(say, args.speedup) {
        return code;
    }
    let mut scenario = match centinela_node::load_scenario(args.scenario.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            say.error(e, Some(SCENARIO_HINT));
            return ExitCode::from(2);
        }
    };
    // Every camera without one of its own gets a simulated ONVIF camera on loopback, which
    // accepts the configured account or, without one, an account made up for this run.
    let mut cameras = match camera_credentials(say) {
        Ok(cameras) => cameras,
        Err(code) => return code,
    };
    let fallback = cameras.default.clone().unwrap_or_else(demo_camera_login);
    let onvif = match OnvifFleet::for_scenario(&mut scenario, &cameras, &fallback).await {
        Ok(fleet) => fleet,
        Err(e) => {
            say.error(
                format_args!("the simulated cameras did not start: {e}"),
                None,
            );
            return ExitCode::from(4);
        }
    };
    cameras.default.get_or_insert(fallback);
    let handoff = match handoff_setup(say) {
        Ok(handoff) => handoff,
        Err(code) => return code,
    };
    // The demo's gateway: a given address must be served; the default one may be taken by
    // another demo, and then the demo runs without voice.
    let sip = match args.sip.as_str() {
        "off" | "" => None,
        text => match text.parse::<SocketAddr>() {
            Ok(addr) => Some(SipOptions {
                addr,
                optional: std::env::var_os("CENTINELA_SIP").is_none() && text == "127.0.0.1:5060",
                // The demo keeps nothing on disk.
                record: false,
            }),
            Err(e) => {
                say.error(format_args!("--sip {text:?}: {e} (HOST:PORT or off)"), None);
                return ExitCode::from(2);
            }
        },
    };
    let history_scenario = (args.history_days > 0).then(|| scenario.clone());
    let options = Options {
        node_id: "demo".into(),
        site: "lima-centro".into(),
        grpc_addr: args.grpc,
        http_addr: args.http,
        advertise_grpc: None,
        scenario,
        store: StoreConfig::Embedded,
        cameras: cameras.clone(),
        handoff,
        bounds: Default::default(),
        history: args.history.settings(None),
        tls: None,
        sip,
    };
    // The demo's console opens signed in as the demo operator (docs/console.md).
    let console = match ConsoleConfig::demo().from_env() {
        Ok(console) => console,
        Err(e) => {
            say.error(format_args!("console configuration: {e}"), None);
            return ExitCode::from(2);
        }
    };
    let security = match security(say, Security::open(), device_token.as_deref()) {
        Ok(security) => security,
        Err(code) => return code,
    };
    let node = match Node::start_secured(options, console, security).await {
        Ok(node) => node,
        Err(e) => {
            let hint = e
                .to_string()
                .contains("address")
                .then_some("another process holds the port; pass --grpc / --http");
            say.error(format_args!("the demo node did not start: {e}"), hint);
            return ExitCode::from(4);
        }
    };
    let seed = seed_or_clock(args.seed);
    if let Some(scenario) = &history_scenario {
        match crate::demo_history::fill(&node, scenario, args.history_days, seed).await {
            Ok(made) => say.note(format_args!(
                "centinela demo: archived {made} incidents of synthetic history ({} days)",
                args.history_days
            )),
            Err(e) => {
                say.error(e, None);
                node.shutdown().await;
                return ExitCode::from(4);
            }
        }
    }
    let grpc = format!("http://{}", node.grpc_addr());
    // Pressed buttons call the demo's gateway, with the device token (if any) as their
    // password, as the node's gateway expects of them (docs/intercom.md).
    let sip_calls = node
        .sip_addr()
        .filter(|_| !args.mute_buttons)
        .map(|addr| SipCalls::new(reachable(addr), device_token.clone()));
    let sip_addr = sip_calls.as_ref().map(|calls| calls.gateway);
    let sim = SimOptions {
        quiet: args.quiet_sim,
        seed,
        speedup: args.speedup,
        onvif: cameras,
        sip: sip_calls,
        ..SimOptions::default()
    };
    let failover = Failover::new(vec![grpc.clone()], credentials);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let devices = tokio::spawn(centinela_devices::run(failover, sim, async move {
        let _ = stop_rx.await;
    }));
    // Units are offline until their terminal is heard from: the banner says the demo is ready
    // once the simulated terminals have attached (or after a bound, whatever they did). A stop
    // asked for meanwhile is honoured at once.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let stopped_early = tokio::select! {
        () = wait_for_terminals(&node) => false,
        () = &mut shutdown => true,
    };
    if !stopped_early {
        let calls = match sip_addr {
            Some(sip) => format!(
                "  calls    a pressed button calls sip:centinela@{sip}: answer it on its card (T)\n"
            ),
            None => String::new(),
        };
        say.banner(&format!(
            "\ncentinela demo: one node, embedded store, {}\n  gRPC     {grpc}\n  console  http://{}/\n  brigade  http://{}/brigada/   (token: centinela unit-token)\n  operator demo (the console opens signed in)\n  try      centinela press B01 --json   (another terminal)\n{calls}  stop     Ctrl-C\n",
            node.scenario_summary(),
            node.http_addr(),
            node.http_addr(),
        ));
        shutdown.await;
    }
    say.note("centinela demo: stopping");
    let _ = stop_tx.send(());
    if let Ok(Err(e)) = devices.await {
        say.warning(format_args!("device simulator: {e}"));
    }
    node.shutdown().await;
    drop(onvif);
    ExitCode::SUCCESS
}

/// Longest the demo waits for its simulated terminals before announcing itself: they connect
/// within a second on any machine; a node that is slow to start is still announced.
const DEMO_TERMINALS_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits until no unit of the demo is `offline` (every simulated terminal attached), at most
/// [`DEMO_TERMINALS_WAIT`].
async fn wait_for_terminals(node: &Node) {
    let deadline = tokio::time::Instant::now() + DEMO_TERMINALS_WAIT;
    while tokio::time::Instant::now() < deadline {
        let records = &node.context().records;
        if let Ok((units, _)) = records.snapshot::<centinela_core::brigade::Brigade>().await
            && units
                .iter()
                .all(|u| u.status != centinela_core::brigade::BrigadeStatus::Offline)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The demo's camera account when none is configured: a password nobody else knows, new on
/// every run (the node and the simulated cameras are in the same process).
fn demo_camera_login() -> CameraLogin {
    use rand::Rng;
    let secret: [u8; 16] = rand::rng().random();
    CameraLogin {
        username: "centinela".into(),
        password: secret.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The agencies incidents may be handed to (`CENTINELA_AGENCIES_FILE`, docs/handoff.md) and
/// the city's zone for CAP's `sent`; a bad file or zone is a bad setting (exit 2).
fn handoff_setup(say: Say) -> Result<centinela_node::HandoffSetup, ExitCode> {
    centinela_node::HandoffSetup::from_env().map_err(|e| {
        say.error(
            format_args!("hand-off configuration: {e}"),
            Some("see docs/handoff.md for the agencies file"),
        );
        ExitCode::from(2)
    })
}

impl StartArgs {
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
}

/// A cluster node: credentials enforced (fails closed) unless `--insecure`.
pub async fn start(
    say: Say,
    args: StartArgs,
    device_token: Option<String>,
    ca: Option<PathBuf>,
) -> ExitCode {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(certificate), Some(key)) => Some(centinela_node::TlsOptions {
            files: centinela_tls::Files {
                certificate: certificate.clone(),
                key: key.clone(),
            },
            ca,
        }),
        _ => {
            tracing::warn!(
                "no CENTINELA_TLS_CERT: both ports speak plaintext; tokens, passwords and the cluster secret cross the network in clear (docs/security.md)"
            );
            None
        }
    };
    let secure = tls.is_some();
    let scenario = match centinela_node::load_scenario(args.scenario.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            say.error(e, Some(SCENARIO_HINT));
            return ExitCode::from(2);
        }
    };
    let cameras = match camera_credentials(say) {
        Ok(cameras) => cameras,
        Err(code) => return code,
    };
    let handoff = match handoff_setup(say) {
        Ok(handoff) => handoff,
        Err(code) => return code,
    };
    // With etcd's CA a bare HOST:PORT means TLS, as `https://` does.
    let etcd = if args.etcd_ca.is_some() {
        args.etcd
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|a| {
                if a.contains("://") {
                    a.to_string()
                } else {
                    format!("https://{a}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    } else {
        args.etcd.clone()
    };
    let endpoints = match parse_addrs(&etcd) {
        Ok(endpoints) => endpoints,
        Err(e) => {
            say.error(format_args!("--etcd: {e}"), None);
            return ExitCode::from(2);
        }
    };
    let options = Options {
        node_id: args.node_id.clone(),
        site: args.site.clone(),
        grpc_addr: args.grpc,
        http_addr: args.http,
        advertise_grpc: args.advertise_grpc,
        scenario,
        store: match &args.etcd_ca {
            None => StoreConfig::Etcd(endpoints.clone()),
            Some(ca) => StoreConfig::EtcdTls {
                endpoints: endpoints.clone(),
                tls: centinela_node::EtcdTls {
                    ca: ca.clone(),
                    identity: args
                        .etcd_cert
                        .clone()
                        .zip(args.etcd_key.clone())
                        .map(|(certificate, key)| centinela_tls::Files { certificate, key }),
                },
            },
        },
        cameras,
        handoff,
        bounds: Default::default(),
        history: args.history.settings(args.data_dir.as_deref()),
        tls,
        sip: args.sip.map(|addr| SipOptions {
            addr,
            optional: false,
            record: args.record_calls,
        }),
    };
    // Operators and the session secret from CENTINELA_OPERATORS(_FILE) and
    // CENTINELA_CONSOLE_SECRET (docs/console.md).
    let console = match ConsoleConfig::default().from_env() {
        Ok(console) => console,
        Err(e) => {
            say.error(
                format_args!("console configuration: {e}"),
                Some("docs/console.md shows the operator file format"),
            );
            return ExitCode::from(2);
        }
    };
    let base = if args.insecure {
        tracing::warn!(
            "--insecure: calls without credentials are accepted; for a trusted test network only"
        );
        Security::open()
    } else {
        Security::enforced()
    };
    let security = match security(say, base, device_token.as_deref()) {
        Ok(security) => security,
        Err(code) => return code,
    };
    if let Err(e) = security.check_cluster() {
        say.error(e, None);
        return ExitCode::from(2);
    }
    let node = match Node::start_secured(options, console, security).await {
        Ok(node) => node,
        Err(e) => {
            let endpoints = endpoints.join(",");
            say.error(
                format_args!("node {} did not start: {e}", args.node_id),
                Some(&format!(
                    "is etcd reachable at {endpoints}? (`etcdctl --endpoints {endpoints} endpoint health`)"
                )),
            );
            return ExitCode::from(4);
        }
    };
    // The scheme clients must dial: with a certificate both ports speak TLS only.
    let scheme = if secure { "https" } else { "http" };
    // The gateway's address as bound (`--sip 127.0.0.1:0` picks a port).
    let sip = node
        .sip_addr()
        .map(|addr| format!("  SIP      sip:centinela@{addr} (UDP and TCP)\n"))
        .unwrap_or_default();
    say.banner(&format!(
        "\ncentinela node {} (site {}) ready on etcd {}\n  gRPC     {scheme}://{}\n  console  {scheme}://{}/\n{sip}",
        args.node_id,
        args.site,
        endpoints.join(","),
        node.grpc_addr(),
        node.http_addr(),
    ));
    shutdown_signal().await;
    say.note(format_args!("centinela node {}: stopping", args.node_id));
    node.shutdown().await;
    ExitCode::SUCCESS
}

pub async fn devices(
    say: Say,
    args: DevicesArgs,
    addr: &str,
    credentials: Credentials,
    device_token: Option<String>,
    tls: Option<centinela_proto::client::ClientTls>,
) -> ExitCode {
    if let Err(code) = check_speedup(say, args.speedup) {
        return code;
    }
    let addrs = match parse_addrs(addr) {
        Ok(a) => a,
        Err(e) => {
            say.error(format_args!("--addr: {e}"), None);
            return ExitCode::from(2);
        }
    };
    let onvif = match camera_credentials(say) {
        Ok(cameras) => cameras,
        Err(code) => return code,
    };
    let sim = SimOptions {
        quiet: args.quiet_sim,
        units_only: args.units_only,
        seed: seed_or_clock(args.seed),
        speedup: args.speedup,
        onvif,
        sip: args
            .sip
            .map(|addr| SipCalls::new(reachable(addr), device_token.clone())),
        ..SimOptions::default()
    };
    let failover = match crate::failover(addrs, credentials, tls) {
        Ok(failover) => failover,
        Err(e) => {
            say.error(format_args!("--addr: {e}"), None);
            return ExitCode::from(2);
        }
    };
    match centinela_devices::run(failover, sim, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say.error(e, Some("is a node running? `centinela demo` starts one"));
            ExitCode::from(4)
        }
    }
}

/// Where to send to a listener on `addr`: a wildcard address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        ip if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Ctrl-C or SIGTERM (Kubernetes stops pods with SIGTERM).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
