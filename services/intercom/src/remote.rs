//! Calls across nodes: every node's consoles ring every call, and an operator answers, holds
//! and hangs up a call from any node (docs/intercom.md, "Calls across nodes").
//!
//! A call's media stays on the node that took it (the anchoring node: its gateway's media
//! socket, its desk, its bridge). What the other nodes need is small and changes a handful
//! of times per call, so the anchoring node publishes each of its desk's calls as a
//! [`CallRecord`] in the store under [`CALLS_PREFIX`] (written on ring, answer, hold, resume;
//! deleted on end; attached to the node's session lease, so a dead node's calls vanish with
//! its lease), and every node follows that prefix into its [`RemoteCalls`].
//!
//! An operator's step on a call another node anchors is forwarded to that node
//! ([`Forward`], the peers' `CallStep` RPC), which decides on its own desk
//! ([`take_step`]): one operator per call holds across nodes because only the anchoring node
//! decides. The browser then does ICE directly with the anchoring node's bridge.
//!
//! ```text
//!  console on B ─POST answer─▶ node B ─CallStep(offer)─▶ node A: Desk::answer ─▶ SDP answer
//!  browser ◀────────────── WebRTC (ICE, DTLS-SRTP) ──────────────▶ node A's bridge ◀─RTP─▶ button
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use centinela_core::ids::{ButtonId, IncidentId};

use crate::desk::{Desk, DeskCall, DeskError, DeskState};
use crate::limits;
use crate::sdp::Codec;

/// Where the nodes publish their calls: `{prefix}{call_id}`. Outside the span the feed and
/// the dispatcher watch (`brigades/` to `incidents/`), so their watches never carry these
/// writes; only the nodes' call watches do.
pub const CALLS_PREFIX: &str = "/centinela/sip-calls/";

/// A call as the store holds it for the other nodes: what a console shows, and the node that
/// anchors it (where steps are forwarded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The anchoring node's id.
    pub node: String,
    pub call_id: String,
    pub incident: String,
    pub button: String,
    /// `PCMU` or `PCMA`.
    pub codec: String,
    /// [`DeskState::name`]: `ringing`, `talking`, `held`.
    pub state: String,
    /// Who answered it.
    pub operator: Option<String>,
    pub ringing_since_ms: u64,
}

impl CallRecord {
    /// `call` on `node`'s desk.
    pub fn of(node: &str, call: &DeskCall) -> Self {
        Self {
            node: node.to_string(),
            call_id: call.call_id.clone(),
            incident: call.incident.to_string(),
            button: call.button.to_string(),
            codec: call.codec.name().to_string(),
            state: call.state.name().to_string(),
            operator: call.operator.clone(),
            ringing_since_ms: call.ringing_since_ms,
        }
    }

    /// The store key of the call `call_id`.
    pub fn key(call_id: &str) -> String {
        format!("{CALLS_PREFIX}{call_id}")
    }

    /// The call as a console shows it; `None` for a record that names no valid call (written
    /// by a newer node, or damaged): it is skipped, never shown half-read.
    fn desk_call(&self) -> Option<DeskCall> {
        let codec = match self.codec.as_str() {
            "PCMU" => Codec::Pcmu,
            "PCMA" => Codec::Pcma,
            _ => return None,
        };
        Some(DeskCall {
            call_id: self.call_id.clone(),
            incident: IncidentId::new(self.incident.clone()).ok()?,
            button: ButtonId::new(self.button.clone()).ok()?,
            codec,
            state: state_named(&self.state)?,
            operator: self.operator.clone(),
            ended_by: None,
            ringing_since_ms: self.ringing_since_ms,
            rtp_from_button: 0,
            rtp_to_button: 0,
        })
    }
}

/// The state called `name` on the wire.
pub fn state_named(name: &str) -> Option<DeskState> {
    [
        DeskState::Ringing,
        DeskState::Talking,
        DeskState::Held,
        DeskState::Ended,
    ]
    .into_iter()
    .find(|state| state.name() == name)
}

/// A call another node anchors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCall {
    /// The anchoring node.
    pub node: String,
    pub call: DeskCall,
}

/// An operator's step on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Answer with the browser's SDP offer; `browser` is where the console saw the browser
    /// (the anchoring node's bridge offers the address it reaches it from).
    Answer {
        sdp: String,
        browser: Option<SocketAddr>,
    },
    /// Hold (`true`) or resume (`false`).
    Hold(bool),
    HangUp,
}

/// What a step left: the SDP answer (for [`Step::Answer`]) and the call after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReply {
    pub sdp: Option<String>,
    pub state: DeskState,
    pub operator: Option<String>,
    pub ended_by: Option<String>,
}

/// Why a forwarded step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The anchoring node refused it, as its own console would have.
    #[error(transparent)]
    Desk(#[from] DeskError),
    /// The anchoring node runs a version without forwarded steps.
    #[error(
        "node {0} holds this call and runs a version that takes no steps from other nodes: \
         answer it on node {0}'s console"
    )]
    Unsupported(String),
    /// The anchoring node could not be reached (or is gone: its calls end with it).
    #[error("node {node} holds this call and cannot be reached: {why}")]
    Unreachable { node: String, why: String },
}

/// A boxed future, as [`Forward`] returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a step reaches the node that anchors the call (the node: over the peers' gRPC).
pub trait Forward: Send + Sync + 'static {
    fn forward<'a>(
        &'a self,
        node: &'a str,
        call_id: &'a str,
        operator: &'a str,
        step: Step,
    ) -> BoxFuture<'a, Result<StepReply, ForwardError>>;
}

/// The calls other nodes anchor, as this node's consoles see them, kept current from the
/// store ([`RemoteCalls::put`], [`RemoteCalls::deleted`], [`RemoteCalls::reset`]) and
/// answered through [`Forward`].
pub struct RemoteCalls {
    /// This node: its own records are its desk's, never remote.
    me: String,
    calls: Mutex<HashMap<String, RemoteCall>>,
    events: broadcast::Sender<RemoteCall>,
    forward: Arc<dyn Forward>,
}

impl std::fmt::Debug for RemoteCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let calls = self.calls.lock().unwrap().len();
        f.debug_struct("RemoteCalls")
            .field("me", &self.me)
            .field("calls", &calls)
            .finish()
    }
}

impl RemoteCalls {
    pub fn new(me: &str, forward: Arc<dyn Forward>) -> Arc<Self> {
        let (events, _) = broadcast::channel(limits::DESK_EVENTS_BUFFER);
        Arc::new(Self {
            me: me.to_string(),
            calls: Mutex::new(HashMap::new()),
            events,
            forward,
        })
    }

    /// The calls other nodes anchor now, by call id.
    pub fn calls(&self) -> Vec<RemoteCall> {
        let calls = self.calls.lock().unwrap();
        let mut all: Vec<RemoteCall> = calls.values().cloned().collect();
        all.sort_by(|a, b| a.call.call_id.cmp(&b.call.call_id));
        all
    }

    /// The node that anchors `call_id`, if another node does.
    pub fn node_of(&self, call_id: &str) -> Option<String> {
        let calls = self.calls.lock().unwrap();
        calls.get(call_id).map(|remote| remote.node.clone())
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RemoteCall> {
        self.events.subscribe()
    }

    /// A record written (or rewritten) by its node.
    pub fn put(&self, record: &CallRecord) {
        if record.node == self.me {
            return;
        }
        let Some(call) = record.desk_call() else {
            tracing::warn!(call = %record.call_id, node = %record.node, "sip: a call record no console can show; skipped");
            return;
        };
        let remote = RemoteCall {
            node: record.node.clone(),
            call,
        };
        let mut calls = self.calls.lock().unwrap();
        if calls.get(&record.call_id) == Some(&remote) {
            return;
        }
        calls.insert(record.call_id.clone(), remote.clone());
        drop(calls);
        let _ = self.events.send(remote);
    }

    /// A record deleted: the call ended on its node (or the node died, its lease with it).
    pub fn deleted(&self, call_id: &str) {
        let removed = self.calls.lock().unwrap().remove(call_id);
        if let Some(mut remote) = removed {
            remote.call.state = DeskState::Ended;
            let _ = self.events.send(remote);
        }
    }

    /// Every record there is now (a fresh read after the watch broke): calls missing from it
    /// ended meanwhile.
    pub fn reset(&self, records: &[CallRecord]) {
        let gone: Vec<String> = {
            let calls = self.calls.lock().unwrap();
            calls
                .keys()
                .filter(|id| !records.iter().any(|r| &r.call_id == *id))
                .cloned()
                .collect()
        };
        for id in gone {
            self.deleted(&id);
        }
        for record in records {
            self.put(record);
        }
    }

    /// `operator`'s step on `call_id`, forwarded to the node that anchors it.
    pub async fn step(
        &self,
        call_id: &str,
        operator: &str,
        step: Step,
    ) -> Result<StepReply, ForwardError> {
        let node = self
            .node_of(call_id)
            .ok_or_else(|| DeskError::NoSuchCall(call_id.to_string()))?;
        self.forward.forward(&node, call_id, operator, step).await
    }
}

/// A step forwarded from another node's console, taken on this node's desk: the same checks
/// as this node's own console (one operator per call).
pub async fn take_step(
    desk: &Desk,
    call_id: &str,
    operator: &str,
    step: Step,
) -> Result<StepReply, DeskError> {
    let view = |sdp: Option<String>, call: Option<DeskCall>| StepReply {
        sdp,
        state: call.as_ref().map_or(DeskState::Ended, |c| c.state),
        operator: call.as_ref().and_then(|c| c.operator.clone()),
        ended_by: call.and_then(|c| c.ended_by),
    };
    match step {
        Step::Answer { sdp, browser } => {
            let ip = local_ip_toward(browser).await;
            let answer = desk.answer(call_id, operator, &sdp, ip).await?;
            let call = desk.calls().into_iter().find(|c| c.call_id == call_id);
            Ok(view(Some(answer), call))
        }
        Step::Hold(held) => Ok(view(None, Some(desk.hold(call_id, operator, held)?))),
        Step::HangUp => Ok(view(None, Some(desk.hang_up(call_id, operator)?))),
    }
}

/// The node's address as the browser at `peer` reaches it: the bridge's host candidate.
/// The OS's route toward the browser says which of the node's addresses that is (a UDP
/// socket's connect sends nothing). Loopback when the browser's address is unknown.
pub async fn local_ip_toward(peer: Option<SocketAddr>) -> IpAddr {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let Some(peer) = peer else {
        return loopback;
    };
    let any: SocketAddr = match peer {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let Ok(probe) = tokio::net::UdpSocket::bind(any).await else {
        return loopback;
    };
    if probe.connect(peer).await.is_err() {
        return loopback;
    }
    probe.local_addr().map(|a| a.ip()).unwrap_or(loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refuse;

    impl Forward for Refuse {
        fn forward<'a>(
            &'a self,
            node: &'a str,
            _call_id: &'a str,
            _operator: &'a str,
            _step: Step,
        ) -> BoxFuture<'a, Result<StepReply, ForwardError>> {
            Box::pin(async move { Err(ForwardError::Unsupported(node.to_string())) })
        }
    }

    fn record(node: &str, call_id: &str, state: &str) -> CallRecord {
        CallRecord {
            node: node.into(),
            call_id: call_id.into(),
            incident: "I1".into(),
            button: "B01".into(),
            codec: "PCMU".into(),
            state: state.into(),
            operator: None,
            ringing_since_ms: 7,
        }
    }

    #[tokio::test]
    async fn other_nodes_calls_ring_change_and_end_and_steps_go_to_their_node() {
        let remote = RemoteCalls::new("n2", Arc::new(Refuse));
        let mut events = remote.subscribe();
        // Our own records are our desk's: never remote.
        remote.put(&record("n2", "mine", "ringing"));
        remote.put(&record("n1", "c1", "ringing"));
        let rung = events.recv().await.unwrap();
        assert_eq!(
            (rung.node.as_str(), rung.call.state),
            ("n1", DeskState::Ringing)
        );
        // The same record again (a replayed watch) says nothing new.
        remote.put(&record("n1", "c1", "ringing"));
        let mut taken = record("n1", "c1", "talking");
        taken.operator = Some("luis".into());
        remote.put(&taken);
        let talking = events.recv().await.unwrap();
        assert_eq!(talking.call.operator.as_deref(), Some("luis"));
        // Unreadable records are skipped.
        remote.put(&record("n1", "odd", "singing"));
        assert_eq!(remote.calls().len(), 1);
        assert_eq!(remote.node_of("c1").as_deref(), Some("n1"));
        let refused = remote.step("c1", "ana", Step::HangUp).await;
        assert_eq!(refused, Err(ForwardError::Unsupported("n1".into())));
        let unknown = remote.step("nope", "ana", Step::HangUp).await;
        assert_eq!(
            unknown,
            Err(ForwardError::Desk(DeskError::NoSuchCall("nope".into())))
        );
        // A fresh read without c1: it ended meanwhile.
        remote.reset(&[record("n3", "c3", "held")]);
        let ended = events.recv().await.unwrap();
        assert_eq!(
            (ended.call.call_id.as_str(), ended.call.state),
            ("c1", DeskState::Ended)
        );
        let held = events.recv().await.unwrap();
        assert_eq!(
            (held.node.as_str(), held.call.state),
            ("n3", DeskState::Held)
        );
        remote.deleted("c3");
        assert_eq!(events.recv().await.unwrap().call.state, DeskState::Ended);
        assert!(remote.calls().is_empty());
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let record = record("n1", "a/b:1@x", "held");
        let json = serde_json::to_vec(&record).unwrap();
        assert_eq!(serde_json::from_slice::<CallRecord>(&json).unwrap(), record);
        assert_eq!(CallRecord::key("a/b:1@x"), "/centinela/sip-calls/a/b:1@x");
        let call = record.desk_call().unwrap();
        assert_eq!(CallRecord::of("n1", &call), record);
    }
}
