//! The node's side of the intercom gateway (`centinela-intercom`): a call joins its button's
//! open incident, or opens one through the press path (durable before the call is
//! answered), and its start and end go into the incident's audit trail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use centinela_actors::Context;
use centinela_core::ids::{ButtonId, IncidentId, OperatorId, PressId};
use centinela_core::incident::{Actor, AuditAction};
use centinela_intercom::{Backend, CallInfo, CallStep, EndedBy, Passwords, Recorded};

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
            "call {} {} from {} over {}",
            call.call_id,
            call.codec.name(),
            call.caller,
            call.transport
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
