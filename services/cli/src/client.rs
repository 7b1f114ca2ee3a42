//! The client commands: one gRPC call (with failover across `--addr`) and its output.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tonic::Status;

use centinela_proto::client::{AuthChannel, Failover};
use centinela_proto::v1::{
    self, button_gateway_client::ButtonGatewayClient, operator_client::OperatorClient,
};

use crate::output::{self, print_json, print_line, print_table};
use crate::time::Zone;
use crate::{ClassifyArgs, DispatchArgs, HandoffArgs, ResolveArgs, UnitStatusArgs};

/// Where and how a client command talks to the cluster.
pub struct Client {
    pub failover: Failover,
    pub json: bool,
    pub operator: String,
    /// The zone the human output shows times in (`--json` keeps epoch milliseconds).
    pub zone: Zone,
}

/// Why a client command did not finish: its call failed, or its output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} (gRPC {:?})", .0.status.message(), .0.status.code())]
    Call(Failure),
    /// Not a reader that went away (`| head -1`): that ends the output quietly
    /// ([`output::write_stdout`]). A full disk, say.
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

impl Error {
    /// What to try next, when we can tell.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Call(failure) => failure.hint.as_deref(),
            Error::Output(_) => None,
        }
    }

    /// [`Failure::exit_code`] for a failed call; 6 when the output could not be written (the
    /// call itself went through: a press was made, an incident acknowledged).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Call(failure) => failure.exit_code(),
            Error::Output(_) => 6,
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        Error::Call(failure)
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        Error::Call(Failure::from(status))
    }
}

/// Why a client command failed, mapped to the exit code and the hint printed with it.
#[derive(Debug)]
pub struct Failure {
    pub status: Status,
    /// What to try next, when we can tell.
    pub hint: Option<String>,
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        let hint = match status.code() {
            tonic::Code::Unavailable => Some(
                "is a node running? start one with `centinela demo`, or pass --addr URL[,URL...]"
                    .to_string(),
            ),
            tonic::Code::DeadlineExceeded => {
                Some("the node did not answer in time; try again or another --addr".into())
            }
            _ => None,
        };
        Self { status, hint }
    }
}

impl Failure {
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint.get_or_insert_with(|| hint.into());
        self
    }

    /// 1: the cluster refused the request; 3: no node could be reached or answered in time.
    pub fn exit_code(&self) -> u8 {
        match self.status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => 3,
            _ => 1,
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

impl Client {
    pub(crate) async fn operator<T, F, Fut>(&self, call: F) -> std::result::Result<T, Status>
    where
        F: Fn(OperatorClient<AuthChannel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        operator_on(&self.failover, call).await
    }

    /// [`Client::operator`] for a list of the whole inventory, on a connection of its own
    /// with [`LIST_CALL_TIMEOUT`].
    pub(crate) async fn listing<T, F, Fut>(&self, call: F) -> std::result::Result<T, Status>
    where
        F: Fn(OperatorClient<AuthChannel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        operator_on(&for_lists(&self.failover), call).await
    }

    pub async fn press(&self, button: &str, press_id: Option<String>) -> Result<()> {
        let press_id = press_id.unwrap_or_else(new_press_id);
        let creds = self.failover.credentials().device_only();
        // The same press_id on every retry and every node: a retried press is one press.
        let reply = self
            .failover
            .call(|channel| {
                let request = v1::PressRequest {
                    button_id: button.to_string(),
                    press_id: press_id.clone(),
                };
                let creds = creds.clone();
                async move {
                    ButtonGatewayClient::with_interceptor(channel, creds)
                        .press(request)
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await
            .map_err(|s| {
                let not_found = s.code() == tonic::Code::NotFound;
                let failure = Failure::from(s);
                if not_found {
                    failure.with_hint("`centinela buttons` lists the buttons")
                } else {
                    failure
                }
            })?;
        if self.json {
            print_json(&serde_json::json!({
                "incident": reply.incident_id,
                "duplicate": reply.duplicate,
            }))?;
        } else if reply.duplicate {
            print_line(&format!(
                "{} (duplicate: merged into the open incident)",
                reply.incident_id
            ))?;
        } else {
            print_line(&reply.incident_id)?;
        }
        Ok(())
    }

    pub async fn incidents(&self, open_only: bool) -> Result<()> {
        let reply = self
            .operator(|mut c| async move {
                c.list_incidents(v1::ListIncidentsRequest {
                    include_closed: !open_only,
                })
                .await
            })
            .await?;
        if self.json {
            let list: Vec<Value> = reply.incidents.iter().map(output::incident_json).collect();
            print_json(&list)?;
        } else {
            let rows: Vec<Vec<String>> = reply
                .incidents
                .iter()
                .map(|incident| output::incident_row(incident, &self.zone))
                .collect();
            print_table(output::INCIDENT_HEADER, &rows)?;
        }
        Ok(())
    }

    /// `incidents --closed`: pages through the archive until `limit` incidents (default
    /// [`CLOSED_DEFAULT`]) or the end.
    pub async fn closed_incidents(&self, since_ms: Option<u64>, limit: Option<u32>) -> Result<()> {
        let wanted = limit.unwrap_or(CLOSED_DEFAULT) as usize;
        let mut incidents: Vec<v1::Incident> = Vec::new();
        let mut page_token = String::new();
        while incidents.len() < wanted {
            let page = (wanted - incidents.len()).min(CLOSED_PAGE_MAX as usize) as u32;
            let token = page_token.clone();
            let reply = self
                .operator(|mut c| {
                    let request = v1::ListClosedIncidentsRequest {
                        since_ms: since_ms.unwrap_or(0),
                        limit: page,
                        page_token: token.clone(),
                    };
                    async move { c.list_closed_incidents(request).await }
                })
                .await?;
            incidents.extend(reply.incidents);
            if reply.next_page_token.is_empty() {
                break;
            }
            page_token = reply.next_page_token;
        }
        if self.json {
            let list: Vec<Value> = incidents.iter().map(output::incident_json).collect();
            print_json(&list)?;
        } else {
            let rows: Vec<Vec<String>> = incidents
                .iter()
                .map(|incident| output::incident_row(incident, &self.zone))
                .collect();
            print_table(output::INCIDENT_HEADER, &rows)?;
        }
        Ok(())
    }

    pub async fn incident(&self, id: &str) -> Result<()> {
        let incident = self
            .operator(|mut c| async move {
                c.get_incident(v1::GetIncidentRequest {
                    incident_id: id.to_string(),
                })
                .await
            })
            .await
            .map_err(incident_hint)?;
        self.print_incident(&incident)?;
        Ok(())
    }

    pub async fn recommend(&self, id: &str, limit: u32) -> Result<()> {
        let reply = self
            .operator(|mut c| async move {
                c.recommend(v1::RecommendRequest {
                    incident_id: id.to_string(),
                    limit,
                })
                .await
            })
            .await
            .map_err(incident_hint)?;
        if self.json {
            let list: Vec<Value> = reply
                .candidates
                .iter()
                .map(output::candidate_json)
                .collect();
            print_json(&list)?;
        } else {
            let rows: Vec<Vec<String>> = reply
                .candidates
                .iter()
                .map(|c| {
                    vec![
                        c.unit_id.clone(),
                        format!("{:.0}", c.eta_s),
                        if c.preferred { "yes" } else { "no" }.into(),
                        c.unit
                            .as_ref()
                            .map(|u| output::unit_mode(u.mode))
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["UNIT", "ETA_S", "PREFERRED", "MODE"], &rows)?;
        }
        Ok(())
    }

    pub async fn units(&self) -> Result<()> {
        let reply = self
            .listing(|mut c| async move { c.list_units(v1::ListUnitsRequest {}).await })
            .await?;
        if self.json {
            let list: Vec<Value> = reply.units.iter().map(output::unit_json).collect();
            print_json(&list)?;
        } else {
            let rows: Vec<Vec<String>> = reply
                .units
                .iter()
                .map(|u| {
                    let (lat, lon) = u
                        .position
                        .map(|p| (format!("{:.5}", p.lat), format!("{:.5}", p.lon)))
                        .unwrap_or_default();
                    // A unit that let an assignment time out says until when it is skipped.
                    let now_ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or_default();
                    let status = match u.cooldown_until_ms {
                        Some(until) if until > now_ms => format!(
                            "{} (cool-down until {})",
                            output::unit_status(u.status),
                            self.zone.format_ms(until)
                        ),
                        _ => output::unit_status(u.status),
                    };
                    vec![
                        u.id.clone(),
                        u.callsign.clone(),
                        output::unit_mode(u.mode),
                        status,
                        u.incident.clone().unwrap_or_else(|| "-".into()),
                        lat,
                        lon,
                    ]
                })
                .collect();
            print_table(
                &["ID", "CALLSIGN", "MODE", "STATUS", "INCIDENT", "LAT", "LON"],
                &rows,
            )?;
        }
        Ok(())
    }

    pub async fn buttons(&self) -> Result<()> {
        let reply = self
            .listing(|c| async move {
                c.max_decoding_message_size(LIST_REPLY_BYTES_MAX)
                    .list_buttons(v1::ListButtonsRequest {})
                    .await
            })
            .await?;
        if self.json {
            let list: Vec<Value> = reply.buttons.iter().map(output::button_json).collect();
            print_json(&list)?;
        } else {
            let rows: Vec<Vec<String>> = reply
                .buttons
                .iter()
                .map(|b| {
                    vec![
                        b.id.clone(),
                        output::button_status(b.status),
                        b.camera.clone(),
                        b.name.clone(),
                    ]
                })
                .collect();
            print_table(&["ID", "STATUS", "CAMERA", "NAME"], &rows)?;
        }
        Ok(())
    }

    pub async fn cameras(&self) -> Result<()> {
        let reply = self
            .listing(|c| async move {
                c.max_decoding_message_size(LIST_REPLY_BYTES_MAX)
                    .list_cameras(v1::ListCamerasRequest {})
                    .await
            })
            .await?;
        if self.json {
            let list: Vec<Value> = reply.cameras.iter().map(output::camera_json).collect();
            print_json(&list)?;
        } else {
            let rows: Vec<Vec<String>> = reply
                .cameras
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.button.clone(),
                        output::camera_state(c.state),
                        if c.online { "yes" } else { "no" }.into(),
                        if c.driver.is_empty() {
                            "native".into()
                        } else {
                            c.driver.clone()
                        },
                        c.target_incident.clone().unwrap_or_else(|| "-".into()),
                        c.fault.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID", "BUTTON", "STATE", "ONLINE", "DRIVER", "INCIDENT", "FAULT",
                ],
                &rows,
            )?;
        }
        Ok(())
    }

    pub async fn cluster(&self) -> Result<()> {
        let status = self
            .operator(|mut c| async move { c.cluster_status(v1::ClusterStatusRequest {}).await })
            .await?;
        if self.json {
            print_json(&output::cluster_json(&status))?;
        } else {
            let leader = if status.leader.is_empty() {
                "(none)"
            } else {
                &status.leader
            };
            print_line(&format!(
                "leader {leader}  term {}  store {} at revision {}",
                status.term, status.store, status.store_revision
            ))?;
            let rows: Vec<Vec<String>> = status
                .members
                .iter()
                .map(|m| vec![m.id.clone(), m.site.clone(), m.grpc_addr.clone()])
                .collect();
            print_table(&["MEMBER", "SITE", "GRPC"], &rows)?;
        }
        Ok(())
    }

    /// `audit verify`: every incident's audit chain, checked by the node; `Ok(false)` when a
    /// chain is broken (the caller exits with 5).
    pub async fn audit_verify(&self) -> Result<bool> {
        let reply = self
            .operator(|c| async move {
                // One verdict per incident: far more than a list of incidents may hold.
                c.max_decoding_message_size(AUDIT_REPLY_BYTES_MAX)
                    .verify_audit(v1::VerifyAuditRequest {})
                    .await
            })
            .await?;
        if self.json {
            let incidents: Vec<Value> = reply
                .incidents
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "id": v.incident_id,
                        "entries": v.entries,
                        "chained": v.chained,
                        "intact": v.intact,
                        "first_break": v.first_break,
                        "reason": if v.reason.is_empty() { Value::Null } else { Value::from(v.reason.clone()) },
                        "head": v.head,
                    })
                })
                .collect();
            let devices: Vec<Value> = reply
                .devices
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "device": v.device,
                        "entries": v.entries,
                        "intact": v.intact,
                        "first_break": v.first_break,
                        "reason": if v.reason.is_empty() { Value::Null } else { Value::from(v.reason.clone()) },
                        "head": v.head,
                    })
                })
                .collect();
            print_json(&serde_json::json!({
                "checked": reply.incidents.len(),
                "archived": reply.archived,
                "broken": reply.broken,
                "incidents": incidents,
                "devices": devices,
            }))?;
        } else {
            let rows: Vec<Vec<String>> = reply
                .incidents
                .iter()
                .filter(|v| !v.intact)
                .map(|v| {
                    vec![
                        v.incident_id.clone(),
                        v.first_break.map_or("-".into(), |i| i.to_string()),
                        v.reason.clone(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print_table(&["INCIDENT", "ENTRY", "BREAK"], &rows)?;
            }
            let device_rows: Vec<Vec<String>> = reply
                .devices
                .iter()
                .filter(|v| !v.intact)
                .map(|v| {
                    vec![
                        v.device.clone(),
                        v.first_break.map_or("-".into(), |i| i.to_string()),
                        v.reason.clone(),
                    ]
                })
                .collect();
            if !device_rows.is_empty() {
                print_table(&["DEVICE", "ENTRY", "BREAK"], &device_rows)?;
            }
            print_line(&format!(
                "{} incidents checked: {} intact, {} broken; {} archived incidents checked \
                 against the ledger; {} device trails of alert clearances checked: {} broken",
                reply.incidents.len(),
                reply.incidents.len() - rows.len(),
                rows.len(),
                reply.archived,
                reply.devices.len(),
                device_rows.len(),
            ))?;
        }
        Ok(reply.broken == 0)
    }

    pub async fn ack(&self, id: &str) -> Result<()> {
        let operator = self.operator.clone();
        let incident = self
            .operator(|mut c| {
                let request = v1::AcknowledgeRequest {
                    incident_id: id.to_string(),
                    operator_id: operator.clone(),
                };
                async move { c.acknowledge(request).await }
            })
            .await
            .map_err(incident_hint)?;
        self.print_incident(&incident)?;
        Ok(())
    }

    pub async fn classify(&self, args: &ClassifyArgs) -> Result<()> {
        let operator = self.operator.clone();
        let caller =
            (args.caller_name.is_some() || args.caller_phone.is_some() || args.notes.is_some())
                .then(|| v1::CallerDetails {
                    name: args.caller_name.clone(),
                    phone: args.caller_phone.clone(),
                    notes: args.notes.clone(),
                });
        let incident = self
            .operator(|mut c| {
                let request = v1::ClassifyRequest {
                    incident_id: args.incident.clone(),
                    operator_id: operator.clone(),
                    kind: args.kind.to_wire() as i32,
                    priority: args.priority.map(|p| p.to_wire() as i32).unwrap_or(0),
                    caller: caller.clone(),
                };
                async move { c.classify(request).await }
            })
            .await
            .map_err(incident_hint)?;
        self.print_incident(&incident)?;
        Ok(())
    }

    pub async fn dispatch(&self, args: &DispatchArgs) -> Result<()> {
        let operator = self.operator.clone();
        let incident = self
            .operator(|mut c| {
                let request = v1::DispatchRequest {
                    incident_id: args.incident.clone(),
                    operator_id: operator.clone(),
                    unit_id: args.unit.clone(),
                    replace: args.replace,
                    swap_out: args.swap_out.clone(),
                };
                async move { c.dispatch(request).await }
            })
            .await
            .map_err(incident_hint)?;
        self.print_incident(&incident)?;
        Ok(())
    }

    pub async fn unit_status(&self, args: &UnitStatusArgs) -> Result<()> {
        let operator = self.operator.clone();
        let position = args
            .lat
            .zip(args.lon)
            .map(|(lat, lon)| v1::LatLon { lat, lon });
        let unit = self
            .operator(|mut c| {
                let request = v1::SetUnitStatusRequest {
                    unit_id: args.unit.clone(),
                    operator_id: operator.clone(),
                    status: args.status.to_wire() as i32,
                    position,
                };
                async move { c.set_unit_status(request).await }
            })
            .await?;
        if self.json {
            print_json(&output::unit_json(&unit))?;
        } else {
            print_line(&format!(
                "unit {} is {} (set by radio by {})",
                unit.id,
                output::unit_status(unit.status),
                unit.radio_by.as_deref().unwrap_or("-")
            ))?;
        }
        Ok(())
    }

    pub async fn prank(&self, id: &str) -> Result<()> {
        let operator = self.operator.clone();
        let incident = self
            .operator(|mut c| {
                let request = v1::MarkPrankRequest {
                    incident_id: id.to_string(),
                    operator_id: operator.clone(),
                };
                async move { c.mark_prank(request).await }
            })
            .await
            .map_err(incident_hint)?;
        self.print_incident(&incident)?;
        Ok(())
    }

    pub async fn resolve(&self, args: &ResolveArgs) -> Result<()> {
        let operator = self.operator.clone();
        let incident = self
            .operator(|mut c| {
                let request = v1::ResolveRequest {
                    incident_id: args.incident.clone(),
                    operator_id: operator.clone(),
                    resolution: args.resolution.to_wire() as i32,
                };
                async move { c.resolve(request).await }
            })
            .await
            .map_err(incident_hint)?;
        self.print_incident(&incident)?;
        Ok(())
    }

    pub async fn handoff(&self, args: &HandoffArgs) -> Result<()> {
        let operator = self.operator.clone();
        let handoff = self
            .operator(|mut c| {
                let request = v1::HandoffRequest {
                    incident_id: args.incident.clone(),
                    agency_id: args.to.clone(),
                    note: args.note.clone().unwrap_or_default(),
                    operator_id: operator.clone(),
                };
                async move { c.handoff(request).await }
            })
            .await
            .map_err(|status| {
                let unknown_agency = status.code() == tonic::Code::NotFound
                    && status.message().starts_with("agency");
                if unknown_agency {
                    Failure::from(status).with_hint(
                        "`centinela agencies` lists the agencies this cluster hands off to",
                    )
                } else {
                    incident_hint(status)
                }
            })?;
        if self.json {
            print_json(&output::handoff_json(&handoff))?;
        } else {
            output::print_handoffs(std::slice::from_ref(&handoff), &self.zone)?;
        }
        Ok(())
    }

    pub async fn handoffs(&self, incident: &str) -> Result<()> {
        let reply = self
            .operator(|mut c| {
                let request = v1::ListHandoffsRequest {
                    incident_id: incident.to_string(),
                };
                async move { c.list_handoffs(request).await }
            })
            .await
            .map_err(incident_hint)?;
        if self.json {
            let all: Vec<Value> = reply.handoffs.iter().map(output::handoff_json).collect();
            print_json(&all)?;
        } else {
            output::print_handoffs(&reply.handoffs, &self.zone)?;
        }
        Ok(())
    }

    pub async fn agencies(&self) -> Result<()> {
        let reply = self
            .operator(|mut c| async move { c.list_agencies(v1::ListAgenciesRequest {}).await })
            .await?;
        if self.json {
            let all: Vec<Value> = reply
                .agencies
                .iter()
                .map(|a| serde_json::json!({"id": a.id, "name": a.name, "kinds": a.kinds}))
                .collect();
            print_json(&all)?;
        } else {
            let rows: Vec<Vec<String>> = reply
                .agencies
                .iter()
                .map(|a| {
                    let kinds = if a.kinds.is_empty() {
                        "all".to_string()
                    } else {
                        a.kinds.join(",")
                    };
                    vec![a.id.clone(), a.name.clone(), kinds]
                })
                .collect();
            print_table(&["ID", "NAME", "KINDS"], &rows)?;
        }
        Ok(())
    }

    fn print_incident(&self, incident: &v1::Incident) -> io::Result<()> {
        if self.json {
            print_json(&output::incident_json(incident))
        } else {
            output::print_incident(incident, &self.zone)
        }
    }
}

fn incident_hint(status: Status) -> Failure {
    let code = status.code();
    let failure = Failure::from(status);
    match code {
        tonic::Code::NotFound => {
            failure.with_hint("`centinela incidents` lists the incidents and their ids")
        }
        tonic::Code::FailedPrecondition => {
            failure.with_hint("`centinela incident ID` shows the incident's state and audit trail")
        }
        _ => failure,
    }
}

/// Closed incidents `incidents --closed` prints when not told (`--limit`).
pub const CLOSED_DEFAULT: u32 = 100;
/// Closed incidents asked for per call: the node's page limit
/// (`centinela_archive::limits::PAGE_MAX`).
pub const CLOSED_PAGE_MAX: u32 = 1_000;

/// `--since`: an RFC 3339 instant, as milliseconds since the Unix epoch.
pub fn parse_rfc3339_ms(text: &str) -> std::result::Result<u64, String> {
    let at: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 instant (2026-12-04T00:00:00Z): {e}"))?;
    u64::try_from(at.as_millisecond()).map_err(|_| format!("{text:?} is before 1970"))
}

/// Largest `audit verify` reply the CLI accepts: ~150 bytes per incident, so about 400k
/// incidents; tonic's default 4 MiB would stop at ~25k.
const AUDIT_REPLY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Largest `buttons` / `cameras` list reply the CLI (and `loadgen`) accepts: ~80 bytes per
/// button or camera, so about 800k; tonic's default 4 MiB stopped at ~50k, short of a
/// 100,000-button city (docs/benchmarks.md, "Scale on three nodes with devices attached").
pub(crate) const LIST_REPLY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How long a list of the whole inventory (`buttons`, `cameras`, `units`, `alerts`, and
/// `loadgen`'s buttons) may take: 100,000 records read from the store and encoded by a loaded
/// node took longer than other calls' 10 s (docs/benchmarks.md, "Scale on three nodes with
/// devices attached").
pub(crate) const LIST_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `failover`'s nodes and credentials on a connection of its own whose calls may take
/// [`LIST_CALL_TIMEOUT`] (a connection's timeout bounds every call on it).
pub(crate) fn for_lists(failover: &Failover) -> Failover {
    failover.separate(0).with_call_timeout(LIST_CALL_TIMEOUT)
}

/// An operator call on `failover`, with failover across its nodes.
async fn operator_on<T, F, Fut>(failover: &Failover, call: F) -> std::result::Result<T, Status>
where
    F: Fn(OperatorClient<AuthChannel>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, Status>>,
{
    let creds = failover.credentials();
    failover
        .call(|channel| {
            let client = OperatorClient::with_interceptor(channel, creds.clone());
            let fut = call(client);
            async move { fut.await.map(tonic::Response::into_inner) }
        })
        .await
}

/// A press id unique to this invocation: the CLI is a button too, and a retried call reuses it.
fn new_press_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("cli-{nanos:x}-{:x}", std::process::id())
}
