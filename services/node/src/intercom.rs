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
//!
//! Every node's consoles ring every call (docs/intercom.md, "Calls across nodes"): this node
//! publishes its desk's calls in the store ([`publish_calls`], under the session lease, so
//! they vanish when the node dies) and follows the other nodes' ([`follow_calls`]); a step
//! on a call another node anchors is forwarded to it over the peers' gRPC
//! ([`PeerForward`]).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use centinela_api::peer::GrpcPeers;
use centinela_intercom::remote::{
    BoxFuture, CALLS_PREFIX, CallRecord, Forward, ForwardError, RemoteCalls, Step, StepReply,
};
use centinela_intercom::{Desk, DeskError, DeskState};
use centinela_proto::v1::PeerCallStep;
use centinela_proto::v1::peer_call_step::Step as WireStep;
use centinela_store::{EventKind, LeaseId, Store};

use centinela_actors::Context;
use centinela_cluster::membership::MEMBERS_PREFIX;
use centinela_core::ids::{ButtonId, IncidentId, OperatorId, PressId};
use centinela_core::incident::{Actor, AuditAction, CALL_NODE_MARK, Incident, OpenCall};
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
            "call {} {} from {} over {}{CALL_NODE_MARK}{}",
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

/// Ends, in the trail of every incident in the store, the calls held by one of `lost` (actor
/// `system`, detail `call {id}: {why(node)}`). Each end is written in a transaction that
/// re-reads the incident, so two sweeps never end a call twice. Returns how many it ended.
async fn end_calls_on(
    ctx: &Context,
    lost: &BTreeSet<String>,
    why: impl Fn(&str) -> String,
) -> Result<usize, centinela_records::Error> {
    let incidents = incidents_in_store(ctx).await?;
    let mut ended = 0;
    for incident in incidents {
        let calls: Vec<OpenCall> = incident
            .open_calls()
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
                let calls: Vec<OpenCall> = i
                    .open_calls()
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

/// The incidents whose trail may show a call still up: the open ones and the closed ones
/// still in the store (a call outlives its incident by its hang-up, and the archiver holds
/// a closed incident back until its calls have ended).
async fn incidents_in_store(ctx: &Context) -> Result<Vec<Incident>, centinela_records::Error> {
    let (mut incidents, _) = ctx.records.open_incidents_snapshot().await?;
    let closed = ctx.records.closed_incidents().await?;
    incidents.extend(closed.into_iter().map(|(incident, _)| incident));
    Ok(incidents)
}

const NOTHING_TO_END: &str = "no call of a lost node left to end";

/// The nodes named by open calls that are no longer members: their member key (held under
/// their session lease) is gone, read now from the store, not from this node's view.
async fn lost_nodes(ctx: &Context) -> Result<BTreeSet<String>, centinela_records::Error> {
    let incidents = incidents_in_store(ctx).await?;
    let named: BTreeSet<String> = incidents
        .iter()
        .flat_map(Incident::open_calls)
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
    let ended = end_calls_on(ctx, &lost, |node| {
        format!("node {node} lost (it left the cluster); the call's media ended with it")
    })
    .await?;
    forget_call_records_of(ctx.records.store(), &lost).await?;
    Ok(ended)
}

/// Deletes the shared records ([`CALLS_PREFIX`]) of calls anchored on one of `lost`, so no
/// console rings them any longer. They are written under their node's session lease and
/// vanish with it; this covers a record left without one (written while the node's lease
/// was being renewed).
async fn forget_call_records_of(
    store: &Store,
    lost: &BTreeSet<String>,
) -> Result<usize, centinela_records::Error> {
    let (records, _) = store.get_prefix(CALLS_PREFIX).await?;
    let mut forgotten = 0;
    for kv in records {
        let Ok(record) = serde_json::from_slice::<CallRecord>(&kv.value) else {
            continue;
        };
        if lost.contains(&record.node) && store.delete(&kv.key).await? {
            forgotten += 1;
        }
    }
    if forgotten > 0 {
        tracing::info!(
            calls = forgotten,
            "sip: the shared records of a lost node's calls deleted"
        );
    }
    Ok(forgotten)
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

/// Publishes this node's desk in the store for the other nodes' consoles: each change of a
/// call rewrites its [`CallRecord`] (ring, answer, hold, resume: a handful of writes per
/// call, against presses' many), its end deletes it. Records are attached to the node's
/// session lease, so a node that dies takes its calls' records with it; a new lease (the
/// node rejoined) or missed changes rewrite the whole desk. Runs until `stop`; a store error
/// is retried after [`limits::CALL_RECORDS_RETRY`] with the whole desk.
pub(crate) async fn publish_calls(
    store: Store,
    node: String,
    desk: Arc<Desk>,
    mut lease: watch::Receiver<Option<LeaseId>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = desk.subscribe();
    let mut resync = true;
    loop {
        if resync {
            let current = *lease.borrow_and_update();
            match publish_desk(&store, &node, &desk, current).await {
                Ok(()) => resync = false,
                Err(e) => {
                    tracing::warn!(error = %e, "sip: this node's calls not published; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(limits::CALL_RECORDS_RETRY) => continue,
                        _ = stop.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
        let change = tokio::select! {
            change = changes.recv() => change,
            changed = lease.changed() => {
                if changed.is_err() {
                    return;
                }
                resync = true;
                continue;
            }
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match change {
            Ok(call) => {
                let current = *lease.borrow();
                let key = CallRecord::key(&call.call_id);
                let written = match call.state {
                    DeskState::Ended => store.delete(&key).await.map(|_| ()),
                    _ => put_record(&store, &CallRecord::of(&node, &call), current).await,
                };
                if let Err(e) = written {
                    tracing::warn!(error = %e, call = %call.call_id, "sip: a call's change not published; publishing the whole desk");
                    resync = true;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => resync = true,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn put_record(
    store: &Store,
    record: &CallRecord,
    lease: Option<LeaseId>,
) -> Result<(), centinela_store::Error> {
    let value = serde_json::to_vec(record).expect("a call record serializes");
    store
        .put(&CallRecord::key(&record.call_id), value, lease)
        .await
        .map(|_| ())
}

/// Rewrites every call of this node's desk, and deletes this node's records of calls that
/// are no longer on it (they ended while a change was missed).
async fn publish_desk(
    store: &Store,
    node: &str,
    desk: &Desk,
    lease: Option<LeaseId>,
) -> Result<(), centinela_store::Error> {
    let calls = desk.calls();
    let (records, _) = store.get_prefix(CALLS_PREFIX).await?;
    for kv in records {
        let Ok(record) = serde_json::from_slice::<CallRecord>(&kv.value) else {
            continue;
        };
        if record.node == node && !calls.iter().any(|c| c.call_id == record.call_id) {
            store.delete(&kv.key).await?;
        }
    }
    for call in &calls {
        put_record(store, &CallRecord::of(node, call), lease).await?;
    }
    Ok(())
}

/// Follows the other nodes' calls into `remote` (what this node's consoles ring): a read of
/// [`CALLS_PREFIX`], then a watch from the revision after it; a broken watch reads again.
/// Runs until `stop`; store errors are retried after [`limits::CALL_RECORDS_RETRY`].
pub(crate) async fn follow_calls(
    store: Store,
    remote: Arc<RemoteCalls>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = follow_once(&store, &remote).await {
            tracing::warn!(error = %e, "sip: following the other nodes' calls failed; reading them again");
        }
        tokio::select! {
            _ = tokio::time::sleep(limits::CALL_RECORDS_RETRY) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

async fn follow_once(store: &Store, remote: &RemoteCalls) -> Result<(), centinela_store::Error> {
    let (kvs, revision) = store.get_prefix(CALLS_PREFIX).await?;
    let records: Vec<CallRecord> = kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect();
    remote.reset(&records);
    let mut watch = store.watch_prefix(CALLS_PREFIX, Some(revision + 1)).await?;
    while let Some(event) = watch.next().await {
        let event = event?;
        match event.kind {
            EventKind::Put => match serde_json::from_slice::<CallRecord>(&event.kv.value) {
                Ok(record) => remote.put(&record),
                Err(e) => {
                    tracing::warn!(key = %event.kv.key, error = %e, "sip: an unreadable call record; skipped")
                }
            },
            EventKind::Delete => {
                if let Some(call_id) = event.kv.key.strip_prefix(CALLS_PREFIX) {
                    remote.deleted(call_id);
                }
            }
        }
    }
    Ok(())
}

/// Steps on calls other nodes anchor, forwarded over the peers' gRPC (`Peer.CallStep`) with
/// the cluster credential, as the router's messages travel.
pub(crate) struct PeerForward {
    pub(crate) ctx: Arc<Context>,
    pub(crate) peers: Arc<GrpcPeers>,
}

impl Forward for PeerForward {
    fn forward<'a>(
        &'a self,
        node: &'a str,
        call_id: &'a str,
        operator: &'a str,
        step: Step,
    ) -> BoxFuture<'a, Result<StepReply, ForwardError>> {
        Box::pin(async move {
            let unreachable = |why: String| ForwardError::Unreachable {
                node: node.to_string(),
                why,
            };
            let members = self.ctx.router.topology().members();
            let member = members
                .iter()
                .find(|m| m.id == node)
                .ok_or_else(|| unreachable("it is not a member of the cluster now".into()))?;
            let (step, browser_addr) = match step {
                Step::Answer { sdp, browser } => (
                    WireStep::AnswerSdp(sdp),
                    browser.map(|b| b.to_string()).unwrap_or_default(),
                ),
                Step::Hold(held) => (WireStep::Hold(held), String::new()),
                Step::HangUp => (WireStep::HangUp(true), String::new()),
            };
            let request = PeerCallStep {
                from_node: String::new(),
                call_id: call_id.to_string(),
                operator: operator.to_string(),
                step: Some(step),
                browser_addr,
            };
            let sent = tokio::time::timeout(
                limits::CALL_STEP_TIMEOUT,
                self.peers.call_step(member, request),
            )
            .await
            .map_err(|_| unreachable(format!("no reply within {:?}", limits::CALL_STEP_TIMEOUT)))?;
            let reply = sent.map_err(|status| step_refused(node, status))?;
            let state = centinela_intercom::remote::state_named(&reply.state).ok_or_else(|| {
                unreachable(format!(
                    "it answered an unknown call state {:?}",
                    reply.state
                ))
            })?;
            let some = |s: String| (!s.is_empty()).then_some(s);
            Ok(StepReply {
                sdp: some(reply.sdp),
                state,
                operator: some(reply.operator),
                ended_by: some(reply.ended_by),
            })
        })
    }
}

/// The anchoring node's refusal as its desk said it (peer.proto, `CallStep`).
fn step_refused(node: &str, status: tonic::Status) -> ForwardError {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::NotFound => DeskError::NoSuchCall(message).into(),
        tonic::Code::AlreadyExists => {
            let operator = status
                .metadata()
                .get(centinela_api::peer::server::TAKEN_BY_TRAILER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or(message);
            DeskError::Taken(operator).into()
        }
        tonic::Code::FailedPrecondition => DeskError::NotAnswered.into(),
        tonic::Code::InvalidArgument => DeskError::BadOffer(message).into(),
        tonic::Code::Unimplemented => ForwardError::Unsupported(node.to_string()),
        _ => ForwardError::Unreachable {
            node: node.to_string(),
            why: message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_steps_refusal_reads_as_the_anchoring_nodes_desk_said_it() {
        let mut taken = tonic::Status::already_exists("the call was taken by luis");
        let trailer = centinela_api::peer::server::TAKEN_BY_TRAILER;
        taken
            .metadata_mut()
            .insert(trailer, "luis".parse().unwrap());
        assert_eq!(
            step_refused("n1", taken),
            ForwardError::Desk(DeskError::Taken("luis".into()))
        );
        // A node older than CallStep: the operator is told where to answer it.
        let old = step_refused("n1", tonic::Status::unimplemented("unknown method"));
        assert_eq!(old, ForwardError::Unsupported("n1".into()));
        assert!(
            old.to_string().contains("answer it on node n1's console"),
            "{old}"
        );
        assert!(matches!(
            step_refused("n1", tonic::Status::not_found("gone")),
            ForwardError::Desk(DeskError::NoSuchCall(_))
        ));
        assert_eq!(
            step_refused("n1", tonic::Status::failed_precondition("x")),
            ForwardError::Desk(DeskError::NotAnswered)
        );
        assert!(matches!(
            step_refused("n1", tonic::Status::unavailable("down")),
            ForwardError::Unreachable { .. }
        ));
    }
}
