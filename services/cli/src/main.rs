//! `centinela`: one binary for the demo, cluster nodes, the client commands and the simulated
//! devices (docs/product.md §4 is the contract; keep its commands, flags and JSON stable).
//!
//! Exit codes: 0 done; 1 the cluster refused the request (unknown id, illegal transition,
//! bad argument, missing or wrong credentials); 2 bad command line (or a bad setting such as
//! `CENTINELA_TIMEZONE`); 3 no node reachable or none answered in time; 4 a server command
//! (demo, start, devices) failed; 5 `audit verify` found a broken audit chain; 6 the command
//! was carried out but its output could not be written (a reader closing the pipe early,
//! `| head -1`, is not that: the output just ends, see `output::write_stdout`).

mod alerts;
mod client;
mod demo_history;
mod loadgen;
mod output;
mod plan_posts;
mod report;
mod server;
mod time;
mod unit_token;

/// jemalloc instead of glibc's malloc, with its background thread returning freed pages to the
/// system on a timer: a node gives back what its passivated actors freed, where glibc kept the
/// attach's peak, and spends a little less CPU per press (measured against glibc and mimalloc
/// in docs/benchmarks.md, "The allocator"). The `jemalloc` feature (default) selects it; a
/// build without it uses the system's, which heaptrack can profile.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use std::path::PathBuf;

use centinela_proto::client::{ClientTls, Credentials, Failover, parse_addrs};
use centinela_proto::v1;

const DEFAULT_ADDR: &str = "http://127.0.0.1:7400";

#[derive(Parser)]
#[command(
    name = "centinela",
    version,
    about = "Centinela: street panic buttons to Serenazgo brigades, on a cluster that survives its machines",
    after_help = "Start with `centinela demo`, then in another terminal `centinela press B01`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Args, Clone)]
struct GlobalArgs {
    /// Node address(es) of the client commands, comma separated; tried in turn on failure.
    #[arg(long, global = true, env = "CENTINELA_ADDR", default_value = DEFAULT_ADDR)]
    addr: String,
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Operator id recorded in the audit trail for operator actions (with --password: the
    /// console account the CLI signs in as).
    #[arg(long, global = true, env = "CENTINELA_OPERATOR", default_value = "cli")]
    operator: String,
    /// The operator's console password, sent as `authorization: Basic` (a node started with
    /// `centinela start` needs it for operator commands; the demo needs none). Prefer the
    /// environment variable: a flag shows in the process list.
    #[arg(
        long,
        global = true,
        env = "CENTINELA_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// Shared device token, sent as `authorization: Bearer TOKEN` (the demo needs none).
    #[arg(
        long,
        global = true,
        env = "CENTINELA_DEVICE_TOKEN",
        hide_env_values = true
    )]
    device_token: Option<String>,
    /// The CA that signs the nodes' certificates (PEM): `https://` addresses are checked
    /// against it. A node started with certificates uses it for its peers and clients too.
    #[arg(long, global = true, env = "CENTINELA_TLS_CA")]
    ca: Option<PathBuf>,
    /// A client certificate to present over TLS (PEM; with --key): a device's certificate
    /// authenticates it like its token (docs/security.md).
    #[arg(
        long,
        global = true,
        env = "CENTINELA_TLS_CLIENT_CERT",
        requires = "key"
    )]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "CENTINELA_TLS_CLIENT_KEY",
        requires = "cert"
    )]
    key: Option<PathBuf>,
}

impl GlobalArgs {
    /// The client's TLS from --ca, --cert and --key; `None` without a CA. A certificate
    /// without a CA is refused: the node's own certificate could not be checked.
    fn client_tls(&self) -> Result<Option<ClientTls>, String> {
        let identity = match (&self.cert, &self.key) {
            (Some(certificate), Some(key)) => Some(centinela_tls::Files {
                certificate: certificate.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => return Err("--cert and --key go together".into()),
        };
        match &self.ca {
            Some(ca) => ClientTls::from_files(ca, identity)
                .map(Some)
                .map_err(|e| e.to_string()),
            None if identity.is_some() => {
                Err("--cert needs --ca (the CA that signs the nodes' certificates)".into())
            }
            None => Ok(None),
        }
    }
}

/// `addrs` with `tls`: an `https://` address without a CA is a usage error, never plaintext.
fn failover(
    addrs: Vec<String>,
    credentials: Credentials,
    tls: Option<ClientTls>,
) -> Result<Failover, String> {
    let failover = Failover::new(addrs, credentials);
    match tls {
        Some(tls) => Ok(failover.with_tls(tls)),
        None => match failover.addrs().iter().find(|a| a.starts_with("https://")) {
            Some(addr) => Err(format!(
                "{addr} is an https:// address: pass --ca (or CENTINELA_TLS_CA) with the CA that signs the node's certificate"
            )),
            None => Ok(failover),
        },
    }
}

#[derive(Subcommand)]
enum Command {
    /// One node on the embedded store with Lima's central district and simulated devices.
    Demo(server::DemoArgs),
    /// A cluster node on etcd.
    Start(Box<server::StartArgs>),
    /// Simulated device terminals (buttons, cameras, brigades) against running node(s).
    Devices(server::DevicesArgs),
    /// Press a panic button; prints the incident id.
    Press {
        button: String,
        /// Reuse a press id to retry a press (idempotent); a fresh one by default.
        #[arg(long)]
        press_id: Option<String>,
    },
    /// List incidents (open and closed); with --closed, closed incidents from the archive.
    Incidents {
        /// Only open incidents.
        #[arg(long, conflicts_with = "closed")]
        open: bool,
        /// Closed incidents from the archive (those past retention included), oldest
        /// closing first.
        #[arg(long)]
        closed: bool,
        /// With --closed: only incidents closed at or after this RFC 3339 instant
        /// (2026-12-04T00:00:00-05:00).
        #[arg(long, requires = "closed", value_parser = client::parse_rfc3339_ms)]
        since: Option<u64>,
        /// With --closed: at most this many incidents (default 100).
        #[arg(long, requires = "closed", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        limit: Option<u32>,
    },
    /// The municipality's report from the archive: presses, incidents, resolutions (pranks
    /// and false alarms as a share) and response times (p50/p90) per button, district, hour,
    /// weekday or unit, with the buttons pranked more than once.
    Report(report::ReportArgs),
    /// Where N brigades should wait so the most recent presses are reachable within M minutes
    /// (from the archive), with the coverage now and with the posts (docs/plan-posts.md).
    PlanPosts(plan_posts::PlanPostsArgs),
    /// Show one incident with its audit trail.
    Incident { id: String },
    /// Rank the brigades for an incident, best first, with estimated travel times.
    Recommend {
        id: String,
        #[arg(long, default_value_t = 5)]
        limit: u32,
    },
    /// List brigades (units).
    Units,
    /// List panic buttons.
    Buttons,
    /// List cameras.
    Cameras,
    /// The open device alerts (tamper, button_offline, camera_offline), as the console's
    /// alerts panel shows them, oldest first.
    Alerts,
    /// Clear a device's open alert after inspection (supervisor); recorded in the device's
    /// audit trail. A cleared tamper returns the button to service.
    ClearAlert(alerts::ClearAlertArgs),
    /// Cluster members, leader and term.
    Cluster,
    /// Acknowledge an incident (operator).
    Ack { id: String },
    /// Classify an incident: kind, priority, caller's details (operator).
    Classify(ClassifyArgs),
    /// Assign a brigade: the best one, a given one (--unit), or replace the current ones.
    Dispatch(DispatchArgs),
    /// Radio fallback: set a unit's status (and position) by hand from a radio call, for a
    /// unit without a working terminal (operator). Recorded with the operator's id.
    UnitStatus(UnitStatusArgs),
    /// A unit's token for the brigade app (`/brigada/`): prints a fresh token and writes its
    /// devices-file entry (to --devices-file, else to standard error).
    UnitToken(unit_token::UnitTokenArgs),
    /// Close an incident as a prank; its brigades become available.
    Prank { id: String },
    /// Close an incident with a resolution.
    Resolve(ResolveArgs),
    /// Hand an incident to another agency (police, firefighters, ambulance) as a CAP 1.2
    /// alert; prints the hand-off's state (docs/handoff.md).
    Handoff(HandoffArgs),
    /// The hand-offs of an incident and their delivery state.
    Handoffs { incident: String },
    /// The agencies incidents may be handed to.
    Agencies,
    /// Open-loop load: presses at --rate for --duration seconds, closing incidents as an
    /// operator; reports latencies against a same-run baseline.
    Loadgen(loadgen::LoadgenArgs),
    /// Incidents' and devices' audit trails (supervisor).
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verifies every incident's audit hash chain, the archive's ledger and every device's
    /// trail of alert clearances, and reports any break (exit code 5 when one is found).
    Verify,
}

#[derive(Args)]
pub struct ClassifyArgs {
    incident: String,
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Defaults to the kind's priority.
    #[arg(long, value_enum)]
    priority: Option<PriorityArg>,
    #[arg(long)]
    caller_name: Option<String>,
    #[arg(long)]
    caller_phone: Option<String>,
    #[arg(long)]
    notes: Option<String>,
}

#[derive(Args)]
pub struct HandoffArgs {
    incident: String,
    /// The agency's id, as the node's agencies file names it (`centinela agencies`).
    #[arg(long = "to")]
    to: String,
    /// A note for the agency, sent in the CAP description.
    #[arg(long)]
    note: Option<String>,
}

#[derive(Args)]
pub struct DispatchArgs {
    incident: String,
    /// The brigade to send; the best available one when absent.
    #[arg(long)]
    unit: Option<String>,
    /// Release the incident's current brigades and send this one instead.
    #[arg(long, conflicts_with = "swap_out")]
    replace: bool,
    /// Release only this brigade and send `--unit` instead: the swap the incident recommends
    /// after a reclassification (`swap` in `incident --json`).
    #[arg(long, requires = "unit")]
    swap_out: Option<String>,
}

#[derive(Args)]
pub struct UnitStatusArgs {
    unit: String,
    #[arg(long, value_enum)]
    status: RadioStatusArg,
    /// Where the unit says it is (with --lon); unchanged when absent.
    #[arg(long, requires = "lon", allow_negative_numbers = true)]
    lat: Option<f64>,
    #[arg(long, requires = "lat", allow_negative_numbers = true)]
    lon: Option<f64>,
}

/// The statuses an operator sets by radio.
#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RadioStatusArg {
    Available,
    OutOfService,
    Offline,
}

impl RadioStatusArg {
    pub fn to_wire(self) -> v1::UnitStatus {
        match self {
            RadioStatusArg::Available => v1::UnitStatus::Available,
            RadioStatusArg::OutOfService => v1::UnitStatus::OutOfService,
            RadioStatusArg::Offline => v1::UnitStatus::Offline,
        }
    }
}

#[derive(Args)]
pub struct ResolveArgs {
    incident: String,
    #[arg(long, value_enum, default_value = "handled")]
    resolution: ResolutionArg,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum KindArg {
    Robbery,
    Assault,
    PurseSnatching,
    VehicleTheft,
    Medical,
    Other,
}

impl KindArg {
    fn to_wire(self) -> v1::IncidentKind {
        match self {
            Self::Robbery => v1::IncidentKind::Robbery,
            Self::Assault => v1::IncidentKind::Assault,
            Self::PurseSnatching => v1::IncidentKind::PurseSnatching,
            Self::VehicleTheft => v1::IncidentKind::VehicleTheft,
            Self::Medical => v1::IncidentKind::Medical,
            Self::Other => v1::IncidentKind::Other,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PriorityArg {
    Low,
    Medium,
    High,
    Critical,
}

impl PriorityArg {
    fn to_wire(self) -> v1::Priority {
        match self {
            Self::Low => v1::Priority::Low,
            Self::Medium => v1::Priority::Medium,
            Self::High => v1::Priority::High,
            Self::Critical => v1::Priority::Critical,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ResolutionArg {
    Handled,
    Prank,
    FalseAlarm,
    Cancelled,
}

impl ResolutionArg {
    fn to_wire(self) -> v1::Resolution {
        match self {
            Self::Handled => v1::Resolution::Handled,
            Self::Prank => v1::Resolution::Prank,
            Self::FalseAlarm => v1::Resolution::FalseAlarm,
            Self::Cancelled => v1::Resolution::Cancelled,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report(&format!("cannot start the async runtime: {e}"), None);
            return ExitCode::from(4);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let telemetry = centinela_telemetry::init(telemetry_options(&cli.command));
    let say = server::Say::new(telemetry.log_format());
    let code = run_command(cli, say).await;
    // Flushes the last spans and metrics (bounded: a dead collector does not hold the exit).
    telemetry.shutdown();
    code
}

/// Logs for people in the demo and the client commands, JSON for cluster nodes; OTLP export
/// wherever the standard OTEL_* variables ask for it.
fn telemetry_options(command: &Command) -> centinela_telemetry::Options {
    use centinela_telemetry::{LogFormat, Options};
    let (default_level, log_format, instance) = match command {
        Command::Start(args) => ("info", LogFormat::Json, Some(args.node_id().to_string())),
        Command::Demo(_) => ("info", LogFormat::Pretty, Some("demo".to_string())),
        Command::Devices(_) => ("info", LogFormat::Pretty, None),
        _ => ("warn", LogFormat::Pretty, None),
    };
    Options {
        default_level,
        log_format,
        service_name: "centinela",
        instance,
    }
}

async fn run_command(cli: Cli, say: server::Say) -> ExitCode {
    let credentials = match Credentials::new(cli.global.device_token.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage_error(&format!("--device-token: {e}")),
    };
    let device_token = cli.global.device_token.clone();
    let tls = match cli.global.client_tls() {
        Ok(tls) => tls,
        Err(e) => return usage_error(&format!("TLS: {e}")),
    };
    match cli.command {
        Command::Demo(args) => return server::demo(say, args, credentials, device_token).await,
        Command::Start(args) => {
            return server::start(say, *args, device_token, cli.global.ca.clone()).await;
        }
        Command::Devices(args) => {
            return server::devices(say, args, &cli.global.addr, credentials, device_token, tls)
                .await;
        }
        Command::UnitToken(args) => {
            return match unit_token::run(&args, cli.global.json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => usage_error(&e),
            };
        }
        _ => {}
    }

    let addrs = match parse_addrs(&cli.global.addr) {
        Ok(a) => a,
        Err(e) => return usage_error(&format!("--addr: {e}")),
    };
    // Client commands also present the operator's account when a password is given.
    let credentials =
        match credentials.with_operator(&cli.global.operator, cli.global.password.as_deref()) {
            Ok(c) => c,
            Err(e) => return usage_error(&format!("--password: {e}")),
        };
    let failover = match failover(addrs, credentials, tls) {
        Ok(failover) => failover,
        Err(e) => return usage_error(&e),
    };
    let json = cli.global.json;
    if let Command::Loadgen(args) = cli.command {
        let report_text = match loadgen::run(args, failover).await {
            Ok(report) if json => report.to_string(),
            Ok(report) => {
                serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string())
            }
            Err(e) => {
                report(&e, None);
                return ExitCode::from(1);
            }
        };
        return match output::print_line(&report_text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let error = client::Error::Output(e);
                report(&error.to_string(), None);
                ExitCode::from(error.exit_code())
            }
        };
    }
    // Human output shows times in the city's zone; `--json` keeps epoch milliseconds, so a
    // zone setting can neither change nor break it.
    let zone = if json {
        time::Zone::utc()
    } else {
        match time::Zone::from_env() {
            Ok(zone) => zone,
            Err(e) => {
                report(&e.to_string(), Some(&e.hint()));
                return ExitCode::from(2);
            }
        }
    };
    let client = client::Client {
        failover,
        json,
        operator: cli.global.operator.clone(),
        zone,
    };
    let result = match &cli.command {
        Command::Press { button, press_id } => client.press(button, press_id.clone()).await,
        Command::Incidents {
            closed: true,
            since,
            limit,
            ..
        } => client.closed_incidents(*since, *limit).await,
        Command::Incidents { open, .. } => client.incidents(*open).await,
        Command::Report(args) => {
            if args.csv() && json {
                return usage_error("--csv and --json: choose one");
            }
            // Hours and weekdays are the city's whatever the output format.
            let city = match time::Zone::from_env() {
                Ok(zone) => zone,
                Err(e) => {
                    report(&e.to_string(), Some(&e.hint()));
                    return ExitCode::from(2);
                }
            };
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            report::run(&client, args, now_ms, |ms| city.offset_minutes_at(ms)).await
        }
        Command::PlanPosts(args) => plan_posts::run(&client, args).await,
        Command::Incident { id } => client.incident(id).await,
        Command::Recommend { id, limit } => client.recommend(id, *limit).await,
        Command::Units => client.units().await,
        Command::Buttons => client.buttons().await,
        Command::Cameras => client.cameras().await,
        Command::Alerts => client.alerts().await,
        Command::ClearAlert(args) => client.clear_alert(args).await,
        Command::Cluster => client.cluster().await,
        Command::Ack { id } => client.ack(id).await,
        Command::Classify(args) => client.classify(args).await,
        Command::Dispatch(args) => client.dispatch(args).await,
        Command::UnitStatus(args) => client.unit_status(args).await,
        Command::Prank { id } => client.prank(id).await,
        Command::Resolve(args) => client.resolve(args).await,
        Command::Handoff(args) => client.handoff(args).await,
        Command::Handoffs { incident } => client.handoffs(incident).await,
        Command::Agencies => client.agencies().await,
        Command::Audit {
            action: AuditCommand::Verify,
        } => match client.audit_verify().await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(5),
            Err(failure) => Err(failure),
        },
        Command::Demo(_)
        | Command::Start(_)
        | Command::Devices(_)
        | Command::Loadgen(_)
        | Command::UnitToken(_) => {
            unreachable!("handled above")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error.to_string(), error.hint());
            ExitCode::from(error.exit_code())
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    report(message, None);
    ExitCode::from(2)
}

/// `error: MESSAGE` and `hint: HINT` on stderr. Unlike `eprintln!`, a closed stderr is no
/// panic: there is nobody left to tell, and the exit code still says what happened.
fn report(message: &str, hint: Option<&str>) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {message}");
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}
