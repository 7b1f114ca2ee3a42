//! The node's side of the intercom gateway (`centinela-intercom`): a call joins its button's
//! open incident, or opens one through the press path (durable before the call is
//! answered), and its start and end go into the incident's audit trail.
//!
//! A call's media lives on the node that took it, so its `call_started` names that node
//! (`... on node n1`). When the node dies its calls die with it, and nobody hears their
//! hang-up: the leader ends them in the trail once the node has left the cluster
//! ([`sweep_lost_calls`]), and a node that restarts under the same id ends the calls it held
//! before it takes new ones ([`end_calls_of_this_node`]). The button redials (another node,
//! as field intercoms do) and its new call joins the same open incident.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use centinela_actors::Context;
use centinela_cluster::membership::MEMBERS_PREFIX;
use centinela_core::ids::{ButtonId, IncidentId, OperatorId, PressId};
use centinela_core::incident::{Actor, AuditAction, Incident};
use centinela_intercom::{Backend, CallInfo, CallStep, EndedBy, Passwords, Recorded};

use crate::limits;

/// Where the gateway listens, and whether a failure to listen stops the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipOptions {
    /// UDP and TCP (`--sip`, `CENTINELA_SIP`).
    pub addr: SocketAddr,
    /// The demo's default address may be taken (another demo): then the node runs without
    /// voice and says so. An address the operator gave must be served, or the node fails.
    pub optional: bool,
    /// Record every call's audio (`--record-calls`, `CENTINELA_RECORD_CALLS`; off by
    /// default): into the data directory's [`RECORDINGS_DIR`], so it needs `--data-dir`.
    pub record: bool,
}

/// Where recordings go under the node's data directory (`{incident}/{call}.wav`).
pub const RECORDINGS_DIR: &str = "recordings";

/// The gateway's view of the node.
pub struct NodeCalls {
    pub(crate) ctx: Arc<Context>,
}

/// The press id of a call: one per call, so a retransmitted INVITE, or the same call set up
/// again after a failure, presses once.
fn press_id(call_id: &str) -> PressId {
    let digest = centinela_intercom::digest::hex(&blake2_16(call_id.as_bytes()));
    PressId::new(format!("sip-{digest}")).expect("a hex press id is valid")
}

fn blake2_16(bytes: &[u8]) -> [u8; 16] {
    use blake2::{Blake2b256, Digest};
    let hash = Blake2b256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash[..16]);
    out
}

impl Backend for NodeCalls {
    async fn button_known(&self, button: &ButtonId) -> Result<bool, String> {
        let found = self.ctx.records.button(button).await;
        found.map(|b| b.is_some()).map_err(|e| e.to_string())
    }

    async fn call_started(&self, button: &ButtonId, call: &CallInfo) -> Result<IncidentId, String> {
        let open = self.ctx.records.open_incident_of(button).await;
        let incident = match open.map_err(|e| e.to_string())? {
            Some(incident) => incident,
            // No open incident: the call is the press (the same path, durable on return).
            None => {
                let pressed = self.ctx.router.press(button, press_id(&call.call_id)).await;
                pressed.map_err(|e| e.to_string())?.incident.id
            }
        };
        let detail = format!(
            "call {} {} from {} over {}{NODE_MARK}{}",
            call.call_id,
            call.codec.name(),
            call.caller,
            call.transport,
            self.ctx.node_id
        );
        let now = self.ctx.clock.now();
        let button = button.clone();
        self.ctx
            .records
            .update_incident(&incident, |i| {
                Ok(i.call_started(button.clone(), &detail, now)?)
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(incident)
    }

    async fn call_step(
        &self,
        incident: &IncidentId,
        operator: &str,
        step: CallStep,
        detail: &str,
    ) -> Result<(), String> {
        let operator = OperatorId::new(operator).map_err(|e| e.to_string())?;
        let action = match step {
            CallStep::Answered => AuditAction::CallAnswered,
            CallStep::Held => AuditAction::CallHeld,
            CallStep::Resumed => AuditAction::CallResumed,
            CallStep::LegDropped => AuditAction::CallLegDropped,
        };
        let now = self.ctx.clock.now();
        self.ctx
            .records
            .update_incident(incident, |i| {
                Ok(i.call_step(operator.clone(), action, detail, now)?)
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn call_recorded(
        &self,
        incident: &IncidentId,
        call_id: &str,
        recorded: &Recorded,
    ) -> Result<(), String> {
        let complete = recorded.complete();
        centinela_telemetry::metrics::instruments()
            .call_recordings
            .add(1, &[opentelemetry::KeyValue::new("complete", complete)]);
        let detail = recorded.audit_detail(call_id);
        let now = self.ctx.clock.now();
        self.ctx
            .records
            .update_incident(incident, |i| {
                i.call_recorded(&detail, now);
                Ok(())
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn call_ended(
        &self,
        incident: &IncidentId,
        button: &ButtonId,
        by: EndedBy,
        detail: &str,
    ) -> Result<(), String> {
        let actor = match by {
            EndedBy::Button => Actor::Button(button.clone()),
            EndedBy::Operator(operator) => {
                Actor::Operator(OperatorId::new(operator).map_err(|e| e.to_string())?)
            }
            EndedBy::System => Actor::System,
        };
        let now = self.ctx.clock.now();
        self.ctx
            .records
            .update_incident(incident, |i| {
                i.call_ended(actor.clone(), detail, now);
                Ok(())
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Where calls are recorded: `{data dir}/recordings`, created now (a node that cannot keep
/// what it was told to record refuses to start rather than lose calls' audio); `None` when
/// recording is off or there is no gateway.
pub(crate) fn recordings_dir(options: &crate::Options) -> Result<Option<PathBuf>, crate::Error> {
    if !options.sip.is_some_and(|sip| sip.record) {
        return Ok(None);
    }
    let Some(data_dir) = &options.history.data_dir else {
        return Err(crate::Error::Recordings(
            "recordings are kept in the node's data directory: pass --data-dir".into(),
        ));
    };
    let dir = data_dir.join(RECORDINGS_DIR);
    // The node's account alone reads recordings (personal data, docs/intercom.md).
    let created = {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
    };
    created
        .map_err(|e| crate::Error::Recordings(format!("cannot create {}: {e}", dir.display())))?;
    Ok(Some(dir))
}

/// The gateway's passwords from the node's credentials.
pub fn passwords(credentials: centinela_api::auth::SipCredentials) -> Passwords {
    let mut passwords = match credentials.open {
        true => Passwords::open(),
        false => Passwords::enforced(),
    };
    if let Some(shared) = &credentials.shared {
        passwords = passwords.with_shared(shared);
    }
    for (button, ha1) in credentials.per_button {
        if let Some(ha1) = centinela_intercom::digest::parse_ha1(&ha1) {
            passwords = passwords.with_button(button, ha1);
        }
    }
    passwords
}

/// How a `call_started` detail names the node that holds the call's media (its last words).
const NODE_MARK: &str = " on node ";

/// A call the trail shows started on `node` and never ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenCall {
    pub call_id: String,
    pub node: String,
}

/// The calls of `incident` whose `call_started` names a node and that have no `call_ended`.
/// Details are ours: `call {id} {codec} from {caller} over {transport} on node {node}` and
/// `call {id}: {why}` (a SIP Call-ID has no spaces). A start from before nodes were named is
/// left alone: nobody can say where its media was.
pub(crate) fn open_calls(incident: &Incident) -> Vec<OpenCall> {
    let mut open: Vec<OpenCall> = Vec::new();
    for entry in &incident.audit {
        let Some(rest) = entry.detail.strip_prefix("call ") else {
            continue;
        };
        match entry.action {
            AuditAction::CallStarted => {
                let call_id = rest.split(' ').next().unwrap_or_default();
                let node = rest.rsplit_once(NODE_MARK).map(|(_, node)| node);
                if let (false, Some(node)) = (call_id.is_empty(), node) {
                    open.push(OpenCall {
                        call_id: call_id.to_string(),
                        node: node.to_string(),
                    });
                }
            }
            AuditAction::CallEnded => open.retain(|call| {
                let ended = rest
                    .strip_prefix(call.call_id.as_str())
                    .is_some_and(|after| after.is_empty() || after.starts_with(':'));
                !ended
            }),
            _ => {}
        }
    }
    open
}

/// Ends, in the trail of every open incident, the calls held by one of `lost` (actor
/// `system`, detail `call {id}: {why(node)}`). Each end is written in a transaction that
/// re-reads the incident, so two sweeps never end a call twice. Returns how many it ended.
async fn end_calls_on(
    ctx: &Context,
    lost: &BTreeSet<String>,
    why: impl Fn(&str) -> String,
) -> Result<usize, centinela_records::Error> {
    let (incidents, _) = ctx.records.open_incidents_snapshot().await?;
    let mut ended = 0;
    for incident in incidents {
        let calls: Vec<OpenCall> = open_calls(&incident)
            .into_iter()
            .filter(|call| lost.contains(&call.node))
            .collect();
        if calls.is_empty() {
            continue;
        }
        let now = ctx.clock.now();
        let update = ctx
            .records
            .update_incident(&incident.id, |i| {
                let calls: Vec<OpenCall> = open_calls(i)
                    .into_iter()
                    .filter(|call| lost.contains(&call.node))
                    .collect();
                if calls.is_empty() {
                    // Ended meanwhile (by its own node, or by another sweep).
                    return Err(centinela_records::Error::Refused(NOTHING_TO_END.into()));
                }
                for call in &calls {
                    let detail = format!("call {}: {}", call.call_id, why(&call.node));
                    i.call_ended(Actor::System, &detail, now);
                }
                Ok(())
            })
            .await;
        match update {
            Ok(after) => {
                let count = calls.len();
                tracing::info!(incident = %after.id, calls = count, "sip: ended the calls of a lost node in the audit trail");
                ended += count;
            }
            Err(centinela_records::Error::Refused(why)) if why == NOTHING_TO_END => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ended)
}

const NOTHING_TO_END: &str = "no call of a lost node left to end";

/// The nodes named by open calls that are no longer members: their member key (held under
/// their session lease) is gone, read now from the store, not from this node's view.
async fn lost_nodes(ctx: &Context) -> Result<BTreeSet<String>, centinela_records::Error> {
    let (incidents, _) = ctx.records.open_incidents_snapshot().await?;
    let named: BTreeSet<String> = incidents
        .iter()
        .flat_map(open_calls)
        .map(|call| call.node)
        .filter(|node| node != ctx.node_id.as_str())
        .collect();
    let mut lost = BTreeSet::new();
    for node in named {
        let key = format!("{MEMBERS_PREFIX}{node}");
        if ctx.records.store().get(&key).await?.is_none() {
            lost.insert(node);
        }
    }
    Ok(lost)
}

/// One pass of the leader's sweep: the calls of nodes that left the cluster are ended.
async fn sweep_once(ctx: &Context) -> Result<usize, centinela_records::Error> {
    let lost = lost_nodes(ctx).await?;
    if lost.is_empty() {
        return Ok(0);
    }
    end_calls_on(ctx, &lost, |node| {
        format!("node {node} lost (it left the cluster); the call's media ended with it")
    })
    .await
}

/// The leader's sweep of lost calls: once on taking the lead (the node that died may have
/// been the previous leader), then whenever a member leaves, until `stop`. (A join loses no
/// call: the sweep reads nothing then.) A store error is retried after
/// [`limits::LOST_CALLS_RETRY`].
pub(crate) async fn sweep_lost_calls(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let mut members = ctx.router.topology().members_watch();
    let ids = |members: &[centinela_cluster::Member]| -> BTreeSet<String> {
        members.iter().map(|m| m.id.clone()).collect()
    };
    let mut known = ids(&members.borrow_and_update());
    let mut sweep = true;
    loop {
        let mut pause = None;
        if sweep {
            match sweep_once(&ctx).await {
                Ok(_) => sweep = false,
                Err(e) => {
                    tracing::warn!(error = %e, "sip: the sweep of lost calls failed; retrying");
                    pause = Some(limits::LOST_CALLS_RETRY);
                }
            }
        }
        tokio::select! {
            changed = members.changed(), if pause.is_none() => {
                if changed.is_err() {
                    return;
                }
                let now = ids(&members.borrow_and_update());
                sweep = !known.is_subset(&now);
                known = now;
            }
            _ = tokio::time::sleep(pause.unwrap_or_default()), if pause.is_some() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Before the gateway listens: the calls the trail still shows on this node were held by an
/// earlier run of it (it restarted under the same id before its lease expired, so the leader
/// never saw it leave). They ended when it died.
pub(crate) async fn end_calls_of_this_node(
    ctx: &Context,
) -> Result<usize, centinela_records::Error> {
    let me = BTreeSet::from([ctx.node_id.to_string()]);
    end_calls_on(ctx, &me, |node| {
        format!("node {node} restarted; the call's media ended with its previous run")
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use centinela_core::geo::Position;
    use centinela_core::ids::{ButtonId, CameraId};
    use centinela_core::time::Timestamp;

    fn incident() -> Incident {
        Incident::open(
            IncidentId::new("I1").unwrap(),
            ButtonId::new("B01").unwrap(),
            CameraId::new("C01").unwrap(),
            Position::new(-12.0464, -77.03).unwrap(),
            Timestamp::from_millis(0),
        )
    }

    #[test]
    fn a_started_call_is_open_until_its_end() {
        let mut i = incident();
        let b = ButtonId::new("B01").unwrap();
        let t = Timestamp::from_millis(1);
        i.call_started(
            b.clone(),
            "call a:1@x PCMU from 10.0.0.9:5060 over UDP on node n1",
            t,
        )
        .unwrap();
        i.call_started(
            b.clone(),
            "call a:12@x PCMA from 10.0.0.9:5060 over TCP on node n2",
            t,
        )
        .unwrap();
        // From before nodes were named: never swept.
        i.call_started(b.clone(), "call old PCMU from 10.0.0.9:5060 over UDP", t)
            .unwrap();
        assert_eq!(
            open_calls(&i),
            [
                OpenCall {
                    call_id: "a:1@x".into(),
                    node: "n1".into()
                },
                OpenCall {
                    call_id: "a:12@x".into(),
                    node: "n2".into()
                },
            ]
        );
        // `a:1@x`'s end does not end `a:12@x`, whose id it prefixes.
        i.call_ended(Actor::Button(b), "call a:1@x: the caller hung up", t);
        assert_eq!(
            open_calls(&i),
            [OpenCall {
                call_id: "a:12@x".into(),
                node: "n2".into()
            }]
        );
        i.call_ended(Actor::System, "call a:12@x: node n2 lost", t);
        assert!(open_calls(&i).is_empty());
    }
}
