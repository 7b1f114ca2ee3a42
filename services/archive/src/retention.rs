//! The leader's archiver: closed incidents are copied to the archive, read back and checked
//! (same record, same audit head), and only then, once older than the retention window,
//! removed from the store (with a compare on the record's revision and the leader's fence).
//!
//! A crash between the copy and the removal leaves the incident in the store; the next pass
//! (on this leader or the next) archives it again, which is a no-op ([`Stored::AlreadyArchived`]),
//! and removes it. An archive that is down stops a pass with a warning: the incidents stay in
//! the store, the backlog gauge (`centinela.archive.backlog`) grows, and the next pass tries
//! again. Presses never wait on any of this: they touch only the store.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use centinela_core::ids::IncidentId;
use centinela_core::incident::Incident;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_store::{Fence, Revision};
use centinela_telemetry::metrics;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::{ArchivedIncident, History, Stored, limits};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Incidents newly copied to the archive.
    pub archived: usize,
    /// Incidents the archive already held (a pass after a crash, or a new leader).
    pub already: usize,
    /// Incidents removed from the store.
    pub removed: usize,
    /// Closed incidents in the store the archive does not hold (checked) yet, those waiting
    /// for a call's end left out: they wait for the call, not for the archive.
    pub backlog: usize,
}

/// Whether `incident` is held back from the archive: its trail shows a call still up, and it
/// closed less than [`limits::OPEN_CALL_WAIT_MAX`] ago. The call's end is appended to the
/// trail when it comes; archived before that, the live record would no longer match the
/// archived one (and would stay in the store as tampered).
fn awaits_call_end(incident: &Incident, now: Timestamp) -> bool {
    let closed_at = incident.closed_at.unwrap_or(now);
    !incident.open_calls().is_empty() && closed_at.saturating_add(limits::OPEN_CALL_WAIT_MAX) > now
}

/// Archives and retains; one per leadership term.
pub struct Archiver<F> {
    records: Records,
    history: History,
    fence: Option<Fence>,
    now: F,
    /// Incidents archived and read back, at the store revision they were archived at: not
    /// archived again while unchanged. Holds only incidents still in the store.
    checked: HashMap<IncidentId, Revision>,
}

impl<F: Fn() -> Timestamp + Send + 'static> Archiver<F> {
    pub fn new(records: Records, history: History, fence: Option<Fence>, now: F) -> Self {
        Self {
            records,
            history,
            fence,
            now,
            checked: HashMap::new(),
        }
    }

    /// Runs passes every [`limits::ARCHIVE_PERIOD`] until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            match self.pass().await {
                Ok(pass) if pass.archived + pass.removed > 0 => tracing::debug!(
                    archived = pass.archived,
                    removed = pass.removed,
                    backlog = pass.backlog,
                    "archive pass"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "archive pass failed; closed incidents stay in the store")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(limits::ARCHIVE_PERIOD) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One pass: archive what is not archived yet (at most [`limits::ARCHIVE_BATCH_MAX`]),
    /// then remove what is archived and past retention. An archive that fails ends the
    /// archiving part of the pass (it is retried next pass); removal goes on for incidents
    /// already checked.
    pub async fn pass(&mut self) -> Result<Pass> {
        if !self.history.remove {
            // Nothing will leave the store (an in-memory archive beside a durable etcd):
            // copying every closed incident into memory would only duplicate etcd there.
            return Ok(Pass::default());
        }
        let closed = self.records.closed_incidents().await?;
        let now = (self.now)();
        let mut pass = Pass::default();
        let mut archive_down = None;
        let mut attempted = 0;
        for (incident, revision) in &closed {
            if self.checked.get(&incident.id) == Some(revision) {
                continue;
            }
            if archive_down.is_some() || attempted >= limits::ARCHIVE_BATCH_MAX {
                continue;
            }
            if awaits_call_end(incident, now) {
                continue;
            }
            attempted += 1;
            match self.archive_one(incident, now).await {
                Ok(Stored::Archived { .. }) => pass.archived += 1,
                Ok(Stored::AlreadyArchived) => pass.already += 1,
                Err(e) if e.is_retryable() => {
                    archive_down = Some(e);
                    continue;
                }
                Err(e) => {
                    // Kept in the store, where `audit verify` reports it; never removed.
                    tracing::error!(incident = %incident.id, error = %e, "not archived");
                    continue;
                }
            }
            self.checked.insert(incident.id.clone(), *revision);
        }
        let mut removed = std::collections::HashSet::new();
        {
            for (incident, revision) in &closed {
                if self.checked.get(&incident.id) != Some(revision) {
                    continue;
                }
                let closed_at = incident.closed_at.unwrap_or(now);
                if closed_at.saturating_add(self.history.retention) > now {
                    continue;
                }
                if self
                    .records
                    .remove_archived(incident, *revision, self.fence.as_ref())
                    .await?
                {
                    pass.removed += 1;
                    self.checked.remove(&incident.id);
                    removed.insert(&incident.id);
                }
            }
        }
        let in_store: std::collections::HashSet<&IncidentId> = closed
            .iter()
            .map(|(incident, _)| &incident.id)
            .filter(|id| !removed.contains(id))
            .collect();
        self.checked.retain(|id, _| in_store.contains(id));
        pass.backlog = closed
            .iter()
            .filter(|(incident, revision)| {
                in_store.contains(&incident.id)
                    && self.checked.get(&incident.id) != Some(revision)
                    && !awaits_call_end(incident, now)
            })
            .count();
        metrics::GAUGES
            .archive_backlog
            .store(pass.backlog as i64, Ordering::Relaxed);
        if let Some(e) = archive_down {
            tracing::warn!(
                error = %e,
                backlog = pass.backlog,
                "the archive is unavailable: closed incidents stay in the store until it returns"
            );
        }
        Ok(pass)
    }

    /// Copies one incident, with its button's district, and reads it back.
    async fn archive_one(&self, incident: &Incident, now: Timestamp) -> Result<Stored> {
        let extras = self.records.extras(incident).await?;
        // The district as the button record has it now (a button removed since has none):
        // what the municipality's reports group by, kept with the incident from here on.
        let district = self
            .records
            .button(&incident.button)
            .await?
            .and_then(|button| button.district);
        let entry = ArchivedIncident {
            incident: incident.clone(),
            presses: extras.presses,
            stills: extras.stills.iter().map(|(sha, _)| sha.clone()).collect(),
            bookmarks: extras.bookmarks,
            district,
        };
        let key = self.records.audit_key();
        let stored = self
            .history
            .archive
            .archive(&entry, &extras.stills, key, now)
            .await?;
        let tampered = |reason: &str| Error::Tampered {
            id: incident.id.to_string(),
            reason: reason.to_string(),
        };
        let Some(read) = self.history.archive.get(incident.id.as_str()).await? else {
            return Err(tampered("archived, but not found when read back"));
        };
        if read.incident != *incident {
            return Err(tampered("read back different from the store's record"));
        }
        let stored_head = read.incident.verify_audit(Some(key));
        let live_head = incident.verify_audit(Some(key));
        if !stored_head.is_intact() || stored_head.head != live_head.head {
            return Err(tampered("read back with another audit head"));
        }
        Ok(stored)
    }

    /// The retention window in force.
    pub fn retention(&self) -> Duration {
        self.history.retention
    }
}
