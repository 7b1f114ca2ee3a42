//! Handing incidents to other agencies (police, firefighters, ambulance) over signed webhooks,
//! as OASIS CAP 1.2 alerts.
//!
//! # Layout
//! - [`agency`]: the agencies file (`CENTINELA_AGENCIES_FILE`): who takes hand-offs, where,
//!   with which key. Configuration only, never changed over the API.
//! - [`cap`]: an incident as a CAP 1.2 `alert` (the mapping table: docs/handoff.md).
//! - [`sender`]: the leader's task that delivers hand-offs and queues their Updates.
//! - [`signature`]: HMAC-SHA256 of a body, the `X-Centinela-Signature` header both ways.
//!
//! The record of a hand-off and its messages is `centinela_core::handoff`; the store keeps it
//! (`centinela-records`), the operator API creates it, the leader's sender delivers it.

pub mod agency;
pub mod cap;
pub mod sender;
pub mod signature;
#[doc(hidden)]
pub mod testing;

pub use agency::{Agencies, Agency};

use std::sync::Arc;

/// What a node needs to hand incidents off: the agencies and the CAP sender (who, in which
/// zone). The default has no agencies (hand-offs are refused) and sends from Lima.
#[derive(Clone, Debug)]
pub struct Setup {
    pub agencies: Arc<Agencies>,
    pub sender: cap::Sender,
}

impl Default for Setup {
    fn default() -> Self {
        let zone = cap::Sender::zone_named(cap::ZONE_DEFAULT).unwrap_or(jiff::tz::TimeZone::UTC);
        Self::new(Agencies::none(), zone)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Agencies(#[from] agency::Error),
    #[error(transparent)]
    Zone(#[from] cap::Error),
}

impl Setup {
    pub fn new(agencies: Agencies, zone: jiff::tz::TimeZone) -> Self {
        let sender = cap::Sender::new(agencies.sender(), agencies.sender_name(), zone);
        Self {
            agencies: Arc::new(agencies),
            sender,
        }
    }

    /// From `CENTINELA_AGENCIES_FILE` and `CENTINELA_TIMEZONE`.
    pub fn from_env() -> Result<Self, SetupError> {
        Ok(Self::new(
            Agencies::from_env()?,
            cap::Sender::zone_from_env()?,
        ))
    }
}

/// A new hand-off of `incident` to `agency`: records `handed_off` in the incident's audit and
/// returns the record with its first message (the Alert), ready to be stored with the incident
/// in one transaction ([`centinela_records::Records::create_handoff`]).
pub fn begin(
    incident: &mut centinela_core::incident::Incident,
    agency: &centinela_core::ids::AgencyId,
    operator: centinela_core::ids::OperatorId,
    note: Option<String>,
    area_desc: &str,
    sender: &cap::Sender,
    now: centinela_core::time::Timestamp,
) -> Result<centinela_core::handoff::Handoff, centinela_records::Error> {
    let message = cap::first_message(incident, agency, area_desc, note.as_deref(), sender, now)
        .map_err(|e| centinela_records::Error::Invalid(e.to_string()))?;
    incident.hand_off(operator.clone(), agency, &message.identifier, now)?;
    Ok(centinela_core::handoff::Handoff {
        incident: incident.id.clone(),
        agency: agency.clone(),
        cap_id: message.identifier.clone(),
        operator,
        note,
        created_at: now,
        messages: vec![message],
        reported: centinela_core::handoff::Reported::of(incident),
        acks: Vec::new(),
    })
}
