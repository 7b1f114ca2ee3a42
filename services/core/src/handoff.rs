//! Hand-offs: an incident handed to another agency (police, firefighters, ambulance) as a
//! sequence of CAP 1.2 messages — the first `Alert`, `Update`s as the incident changes, and a
//! final `Update` or a `Cancel` when it closes — each delivered until the agency answers 2xx.
//!
//! This module is the record and its bookkeeping; the CAP documents themselves are rendered by
//! `centinela-handoff` and kept here byte for byte, so that every retry of a message sends the
//! same body, the same signature and the same idempotency key.

use std::fmt;

use crate::ids::{AgencyId, IncidentId, OperatorId};
use crate::incident::{CallerDetails, Incident, IncidentKind, Priority, Resolution};
use crate::limits::{AUDIT_DETAIL_LEN_MAX, HANDOFF_ACKS_MAX, HANDOFF_MESSAGES_MAX};
use crate::time::Timestamp;

/// CAP's `msgType` for the messages a hand-off sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MsgType {
    Alert,
    Update,
    Cancel,
}

impl MsgType {
    /// As CAP spells it.
    pub fn cap_name(self) -> &'static str {
        match self {
            MsgType::Alert => "Alert",
            MsgType::Update => "Update",
            MsgType::Cancel => "Cancel",
        }
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MsgType::Alert => "alert",
            MsgType::Update => "update",
            MsgType::Cancel => "cancel",
        })
    }
}

/// Where the delivery of a message (or of a whole hand-off: its oldest undelivered message)
/// stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Durable, not attempted yet.
    Queued,
    /// The agency answered 2xx.
    Delivered,
    /// The last attempt failed (`last_error` says why); it is retried with back-off.
    Failed,
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        })
    }
}

/// One CAP message of a hand-off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CapMessage {
    /// 0 for the Alert, then 1, 2, ...: part of the idempotency key.
    pub seq: u32,
    pub msg_type: MsgType,
    /// The CAP `identifier` of this message.
    pub identifier: String,
    /// The CAP `sent` of this message (RFC 3339 with the city's offset), as rendered.
    pub sent: String,
    /// The CAP document, as rendered once and sent on every attempt.
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The agency's HTTP status on the last attempt that got an answer.
    pub last_status: Option<u16>,
    pub last_attempt_at: Option<Timestamp>,
    /// Not attempted again before this instant (the back-off).
    pub next_attempt_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

impl CapMessage {
    pub fn new(
        seq: u32,
        msg_type: MsgType,
        identifier: String,
        sent: String,
        body: String,
        now: Timestamp,
    ) -> Self {
        Self {
            seq,
            msg_type,
            identifier,
            sent,
            body,
            state: DeliveryState::Queued,
            attempts: 0,
            last_error: None,
            last_status: None,
            last_attempt_at: None,
            next_attempt_at: now,
            delivered_at: None,
        }
    }

    /// The `Idempotency-Key` header: the same on every attempt of this message, different for
    /// every message.
    pub fn idempotency_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.identifier,
            self.msg_type.cap_name(),
            self.seq
        )
    }
}

/// What a hand-off last told its agency about the incident: a change of any of these sends an
/// Update (or, on closing, the final Update or a Cancel).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reported {
    pub kind: IncidentKind,
    pub priority: Priority,
    pub caller: Option<CallerDetails>,
    pub resolution: Option<Resolution>,
}

impl Reported {
    pub fn of(incident: &Incident) -> Self {
        Self {
            kind: incident.kind,
            priority: incident.priority,
            caller: incident.caller.clone(),
            resolution: incident.resolution,
        }
    }
}

/// An acknowledgement the agency sent on its callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    pub at: Timestamp,
    /// What the agency said, cut to [`AUDIT_DETAIL_LEN_MAX`] bytes.
    pub detail: String,
}

/// An incident handed to one agency. One per incident and agency: handing the same incident
/// to the same agency again returns this record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Handoff {
    pub incident: IncidentId,
    pub agency: AgencyId,
    /// The identifier of the first (Alert) message, which every later message references.
    pub cap_id: String,
    pub operator: OperatorId,
    pub note: Option<String>,
    pub created_at: Timestamp,
    /// Oldest first, at most [`HANDOFF_MESSAGES_MAX`].
    pub messages: Vec<CapMessage>,
    pub reported: Reported,
    /// Oldest first, at most [`HANDOFF_ACKS_MAX`].
    pub acks: Vec<Ack>,
}

impl Handoff {
    /// The record key below the store's root: `handoffs/{incident}/{agency}`.
    pub fn record_id(incident: &IncidentId, agency: &AgencyId) -> String {
        format!("{incident}/{agency}")
    }

    /// The hand-off's state: that of its oldest message not delivered, or `Delivered`.
    pub fn state(&self) -> DeliveryState {
        self.messages
            .iter()
            .find(|m| m.state != DeliveryState::Delivered)
            .map_or(DeliveryState::Delivered, |m| m.state)
    }

    /// The message the sender works on: the oldest not delivered (messages go out in order, so
    /// an Update never overtakes its Alert).
    pub fn pending(&self) -> Option<&CapMessage> {
        self.messages
            .iter()
            .find(|m| m.state != DeliveryState::Delivered)
    }

    /// Whether the final message (sent on closing) is queued or sent: nothing follows it.
    pub fn is_final(&self) -> bool {
        self.reported.resolution.is_some()
    }

    /// Whether another message may be queued: one slot is kept for the final one.
    pub fn can_queue(&self, final_message: bool) -> bool {
        if self.is_final() {
            return false;
        }
        let limit = if final_message {
            HANDOFF_MESSAGES_MAX
        } else {
            HANDOFF_MESSAGES_MAX - 1
        };
        self.messages.len() < limit
    }

    /// Queues `message` and remembers what it reported. The caller checked [`Self::can_queue`].
    pub fn queue(&mut self, message: CapMessage, reported: Reported) {
        debug_assert!(self.messages.len() < HANDOFF_MESSAGES_MAX);
        self.messages.push(message);
        self.reported = reported;
    }

    /// Records an attempt at message `seq`: `Ok(status)` for a 2xx, `Err((status, reason))`
    /// otherwise. Returns false if `seq` is unknown or already delivered (a late duplicate).
    pub fn record_attempt(
        &mut self,
        seq: u32,
        outcome: Result<u16, (Option<u16>, String)>,
        now: Timestamp,
        next_attempt_at: Timestamp,
    ) -> bool {
        let Some(message) = self.messages.iter_mut().find(|m| m.seq == seq) else {
            return false;
        };
        if message.state == DeliveryState::Delivered {
            return false;
        }
        message.attempts = message.attempts.saturating_add(1);
        message.last_attempt_at = Some(now);
        match outcome {
            Ok(status) => {
                message.state = DeliveryState::Delivered;
                message.last_status = Some(status);
                message.delivered_at = Some(now);
                message.last_error = None;
            }
            Err((status, mut reason)) => {
                truncate(&mut reason, AUDIT_DETAIL_LEN_MAX);
                message.state = DeliveryState::Failed;
                message.last_status = status;
                message.last_error = Some(reason);
                message.next_attempt_at = next_attempt_at;
            }
        }
        true
    }

    /// Keeps an acknowledgement from the agency (the oldest goes past [`HANDOFF_ACKS_MAX`]).
    pub fn acknowledge(&mut self, mut detail: String, now: Timestamp) {
        truncate(&mut detail, AUDIT_DETAIL_LEN_MAX);
        if self.acks.len() >= HANDOFF_ACKS_MAX {
            self.acks.remove(0);
        }
        self.acks.push(Ack { at: now, detail });
    }

    /// Total attempts over every message.
    pub fn attempts(&self) -> u32 {
        self.messages.iter().map(|m| m.attempts).sum()
    }

    /// The last error of the message the sender works on.
    pub fn last_error(&self) -> Option<&str> {
        self.pending().and_then(|m| m.last_error.as_deref())
    }
}

fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff() -> Handoff {
        let t = Timestamp::from_millis(1_000);
        Handoff {
            incident: IncidentId::new("inc-1").unwrap(),
            agency: AgencyId::new("pnp").unwrap(),
            cap_id: "c1".into(),
            operator: OperatorId::new("ana").unwrap(),
            note: None,
            created_at: t,
            messages: vec![CapMessage::new(
                0,
                MsgType::Alert,
                "c1".into(),
                "s".into(),
                "<alert/>".into(),
                t,
            )],
            reported: Reported {
                kind: IncidentKind::Robbery,
                priority: Priority::High,
                caller: None,
                resolution: None,
            },
            acks: Vec::new(),
        }
    }

    #[test]
    fn a_failed_attempt_is_retried_then_delivered_once() {
        let mut h = handoff();
        assert_eq!(h.state(), DeliveryState::Queued);
        let t = Timestamp::from_millis(2_000);
        let later = Timestamp::from_millis(3_000);
        assert!(h.record_attempt(0, Err((Some(503), "busy".into())), t, later));
        assert_eq!(h.state(), DeliveryState::Failed);
        assert_eq!(h.last_error(), Some("busy"));
        assert_eq!(h.messages[0].next_attempt_at, later);
        assert!(h.record_attempt(0, Ok(202), later, later));
        assert_eq!(h.state(), DeliveryState::Delivered);
        assert!(
            !h.record_attempt(0, Ok(200), later, later),
            "late duplicate"
        );
        assert_eq!(h.attempts(), 2);
        assert_eq!(h.messages[0].idempotency_key(), "c1:Alert:0");
    }

    #[test]
    fn one_slot_is_kept_for_the_final_message() {
        let mut h = handoff();
        let t = Timestamp::from_millis(1);
        let reported = h.reported.clone();
        while h.can_queue(false) {
            let seq = h.messages.len() as u32;
            let m = CapMessage::new(
                seq,
                MsgType::Update,
                format!("c1.{seq}"),
                "s".into(),
                "b".into(),
                t,
            );
            h.queue(m, reported.clone());
        }
        assert_eq!(h.messages.len(), HANDOFF_MESSAGES_MAX - 1);
        assert!(h.can_queue(true));
        let closed = Reported {
            resolution: Some(Resolution::Handled),
            ..reported
        };
        h.queue(
            CapMessage::new(7, MsgType::Update, "c1.7".into(), "s".into(), "b".into(), t),
            closed,
        );
        assert!(h.is_final());
        assert!(!h.can_queue(true));
    }

    #[test]
    fn acks_are_bounded() {
        let mut h = handoff();
        for i in 0..(HANDOFF_ACKS_MAX + 3) {
            h.acknowledge(
                "x".repeat(1000) + &i.to_string(),
                Timestamp::from_millis(i as u64),
            );
        }
        assert_eq!(h.acks.len(), HANDOFF_ACKS_MAX);
        assert!(
            h.acks
                .iter()
                .all(|a| a.detail.len() <= AUDIT_DETAIL_LEN_MAX)
        );
        assert_eq!(h.acks[0].at, Timestamp::from_millis(3));
    }
}
