//! Centinela's entities in the coordination store, and the transactions that change them.
//!
//! `centinela-store` speaks etcd's API and knows nothing of buttons or incidents; this crate is
//! where the domain meets it: the key layout, each entity as a typed JSON record, and every
//! change as an optimistic transaction.
//!
//! # Key layout (under [`ROOT`])
//! ```text
//! buttons/{button}              Button (JSON)
//! cameras/{camera}              Camera
//! brigades/{brigade}            Brigade
//! incidents/{incident}          Incident, its audit trail included
//! presses/{button}/{press_id}   incident id: makes a retried press idempotent
//! open/{button}                 incident id of the button's open incident (debounce merging)
//! open-incidents/{incident}     incident id: the index of open incidents (what listings read)
//! layout/open-incidents         present once that index is complete (built on older keyspaces)
//! handoffs/{incident}/{agency}  Handoff: the CAP messages sent to an agency, and their delivery
//! revoked-sessions/{session}    empty, leased: a console session signed out (until it expires)
//! device-audit/{device}/...     a device's alert clearances, hash-chained ([`device_audit`])
//! ```
//! Values are JSON so `etcdctl get --prefix /centinela/` is readable during an incident.
//!
//! # Transactions
//! Every change is optimistic: read the keys involved (one read-only transaction, so they are
//! a consistent snapshot), apply a domain transition in memory, then commit with a
//! compare-and-swap on each key's `mod_revision` — plus, for the dispatcher, the leader's
//! [`Fence`](centinela_store::Fence). A conflicting writer makes the commit fail; the change is
//! recomputed from fresh state, up to [`limits::CAS_ATTEMPTS_MAX`] times. Domain refusals (an
//! illegal transition) are returned as they are and never retried.
//!
//! # Layout
//! - [`record`]: the [`Record`] trait (an entity as one JSON value under its key) and the
//!   layout of the other keys.
//! - [`cas`]: the compare-and-swap engine: consistent reads of a set of keys (current or
//!   possibly stale, [`cas`]'s `Freshness`), guarded commits, single- and many-record updates.
//! - [`press`]: a button's presses become (or join) an incident, durably, idempotent by press id.
//! - [`incident`]: an incident and its brigades changed together (assignments, acks, status
//!   changes), and closing an incident.
//! - [`reads`]: plain reads: one record, every record of a kind, ids, open incidents (through
//!   their index, which [`reads`] also builds on a keyspace from before it).
//! - [`watch`]: typed changes from the store's watches, including the dispatcher's single
//!   ordered watch of incidents and brigades and the feed's, both through one store watch
//!   per node shared by every clone of [`Records`] ([`centinela_store::SharedWatch`]).
//! - [`seed`]: writing a scenario's entities that the store does not hold yet.
//! - [`history`]: what the leader's archiver reads and removes: closed incidents, their press
//!   ids, stills and bookmarks, and the removal of an archived one.
//! - [`device_audit`]: a supervisor's alert clearance and its entry in the device's hash-chained
//!   audit trail, written together; checking every device's trail.
//! - [`handoffs`]: incidents handed to other agencies, changed with their incident.
//! - [`sessions`]: console sessions signed out, for every node to refuse.
//! - [`stills`]: the camera stills operators attach to incidents, by SHA-256.
//! - [`limits`]: the bounds of these transactions, each with its reason.
//! - [`error`]: what a change can fail with, and which failures are worth retrying.

pub mod cas;
pub mod device_audit;
pub mod error;
pub mod handoffs;
pub mod history;
pub mod incident;
pub mod limits;
pub mod press;
pub mod reads;
pub mod record;
pub mod seed;
pub mod sessions;
pub mod stills;
pub mod watch;

use std::sync::Arc;

use centinela_core::seal::AuditKey;
use centinela_store::{LeaseId, Store};

pub use error::{Error, Result};
pub use incident::{Close, HeldClose, IncidentUpdate, Known, KnownChange};
pub use press::{PressGroup, PressOutcome, PressPlan};
pub use record::{ROOT, Record};
pub use seed::SeedReport;
pub use watch::{Change, DispatchChange};

/// Typed access to Centinela's records; cheap to clone.
#[derive(Clone, Debug)]
pub struct Records {
    store: Store,
    /// The audit seal's key: every incident written is sealed with it (docs/security.md,
    /// "Audit"). Never written to the store.
    audit_key: Arc<AuditKey>,
    /// The lease new `presses/` keys are attached to, and when it was granted
    /// ([`limits::PRESS_LEASE_REUSE`]).
    press_lease: Arc<std::sync::Mutex<Option<(LeaseId, tokio::time::Instant)>>>,
    /// The one store watch of the span the dispatcher and the operators' feed follow
    /// ([`watch`]): every clone of these records (a node builds one and hands it to both)
    /// shares it, so the store sends each change of that span to the node once.
    follow: Arc<centinela_store::SharedWatch>,
    /// Whether the index of open incidents was seen complete (its marker is never removed, so
    /// once seen it need not be read again).
    open_index_ready: Arc<std::sync::atomic::AtomicBool>,
    /// A bug planted on purpose (the simulation's tests prove their invariants catch it).
    #[cfg(feature = "fault-injection")]
    planted: Option<PlantedBug>,
}

/// A deliberate bug, switched on only by the simulation's tests (`centinela-sim`), which
/// assert that their invariant checker catches it.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// A press is acknowledged whether or not the write that records it committed (a commit
    /// that failed or conflicted counts as done): the acknowledgement runs ahead of the durable
    /// write, and a press whose write was lost is acknowledged anyway.
    AckBeforeDurable,
}

impl Records {
    /// Records on `store`, sealing incidents with the public key ([`AuditKey::public`]):
    /// a node sets its own with [`Records::with_audit_key`].
    pub fn new(store: Store) -> Self {
        let (start, end) = watch::followed_span();
        let follow = Arc::new(centinela_store::SharedWatch::new(
            store.clone(),
            start.as_bytes(),
            &end,
        ));
        Self {
            store,
            follow,
            audit_key: Arc::new(AuditKey::public()),
            press_lease: Arc::default(),
            open_index_ready: Arc::default(),
            #[cfg(feature = "fault-injection")]
            planted: None,
        }
    }

    /// The same records with `bug` planted (simulation tests only; see [`PlantedBug`]).
    #[cfg(feature = "fault-injection")]
    pub fn with_planted_bug(mut self, bug: Option<PlantedBug>) -> Self {
        self.planted = bug;
        self
    }

    /// Whether `bug` is planted; always false without the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    fn planted(&self, bug: PlantedBug) -> bool {
        self.planted == Some(bug)
    }

    /// The same records, sealing incidents with `key`.
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.audit_key = Arc::new(key);
        self
    }

    /// The key incidents are sealed and verified with.
    pub fn audit_key(&self) -> &AuditKey {
        &self.audit_key
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use centinela_core::handoff::{CapMessage, Handoff, MsgType, Reported};
    use centinela_core::ids::{AgencyId, ButtonId, OperatorId};
    use centinela_core::incident::Incident;
    use centinela_core::scenario::Scenario;
    use centinela_core::time::Timestamp;
    use centinela_store::{EmbeddedStore, Store};

    use crate::Records;

    /// 2026-11-27T22:05:12.345Z
    pub const NOW: Timestamp = Timestamp::from_millis(1_795_817_112_345);

    /// A seeded Lima and its records, on an embedded store whose serializable reads can be
    /// made to lag (an etcd follower that is behind).
    pub async fn lima() -> (EmbeddedStore, Records) {
        let embedded = EmbeddedStore::new();
        let records = Records::new(Store::embedded(&embedded));
        records.seed(&Scenario::lima_centro(), NOW).await.unwrap();
        (embedded, records)
    }

    pub fn button_id(id: &str) -> ButtonId {
        ButtonId::new(id).unwrap()
    }

    /// A hand-off of `incident` to `agency` with one CAP alert, as an operator's would be
    /// (`ana`, CAP id `cap-1`), for `Records::create_handoff`.
    pub fn handoff_for(
        incident: &mut Incident,
        agency: &AgencyId,
    ) -> crate::error::Result<Handoff> {
        incident.hand_off(OperatorId::new("ana").unwrap(), agency, "cap-1", NOW)?;
        Ok(Handoff {
            incident: incident.id.clone(),
            agency: agency.clone(),
            cap_id: "cap-1".into(),
            operator: OperatorId::new("ana").unwrap(),
            note: None,
            created_at: NOW,
            messages: vec![CapMessage::new(
                0,
                MsgType::Alert,
                "cap-1".into(),
                "s".into(),
                "<alert/>".into(),
                NOW,
            )],
            reported: Reported::of(incident),
            acks: Vec::new(),
        })
    }
}
