//! Hand-offs to other agencies, one record per incident and agency under
//! `{ROOT}handoffs/{incident}/{agency}`: the CAP messages with their delivery state
//! (`centinela_core::handoff`).
//!
//! A hand-off and its incident change together, in one transaction: the record is created
//! with the incident's `handed_off` audit entry, and each delivery attempt or acknowledgement
//! is recorded on both. So the operator is answered only once both are durable, and the audit
//! chain never tells a different story from the hand-off record.

use centinela_core::handoff::Handoff;
use centinela_core::ids::{AgencyId, IncidentId};
use centinela_core::incident::Incident;
use centinela_store::Fence;

use crate::cas::{Commit, Freshness};
use crate::error::{Error, Result};
use crate::record::{ROOT, Record, decode, encode};
use crate::{Records, limits};

/// `handoffs/{incident}/{agency}`.
pub fn handoff_key(incident: &IncidentId, agency: &AgencyId) -> String {
    format!("{ROOT}handoffs/{}", Handoff::record_id(incident, agency))
}

/// Every hand-off's key starts with this.
pub fn handoffs_prefix() -> String {
    format!("{ROOT}handoffs/")
}

/// Whether a hand-off was created by the call or already existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

impl Records {
    /// Creates the hand-off of `incident` to `agency`, which `make` builds from the incident
    /// (recording `handed_off` in its audit). If the hand-off exists already, returns it
    /// unchanged: handing an incident to the same agency twice is one hand-off.
    pub async fn create_handoff(
        &self,
        incident_id: &IncidentId,
        agency: &AgencyId,
        mut make: impl FnMut(&mut Incident) -> Result<Handoff>,
    ) -> Result<(Handoff, Created)> {
        let incident_key = Incident::key_of(incident_id.as_str());
        let key = handoff_key(incident_id, agency);
        let keys = [incident_key.clone(), key.clone()];
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let freshness = Freshness::for_attempt(attempt);
            let read = self.read(&keys, freshness).await?;
            if let Some(existing) = read.decode::<Handoff>(&key)? {
                return Ok((existing, Created::Existing));
            }
            let Some(mut incident) = read.decode::<Incident>(&incident_key)? else {
                if freshness.may_be_stale() {
                    continue;
                }
                return Err(Error::NotFound {
                    kind: Incident::KIND,
                    id: incident_id.to_string(),
                });
            };
            let stored = incident.clone();
            let handoff = match make(&mut incident) {
                Err(_) if freshness.may_be_stale() => continue,
                made => made?,
            };
            debug_assert_eq!(handoff.incident, *incident_id);
            incident.seal(Some(&stored), self.audit_key());
            let writes = vec![
                (incident_key.clone(), Some(encode(&incident))),
                (key.clone(), Some(encode(&handoff))),
            ];
            match self.commit(&read, None, writes).await? {
                Commit::Done(_) => return Ok((handoff, Created::New)),
                Commit::Conflict => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// Changes a hand-off and its incident together (a delivery attempt, a follow-up message,
    /// an acknowledgement). `change` returning `Ok(false)` means nothing to write.
    pub async fn update_handoff(
        &self,
        incident_id: &IncidentId,
        agency: &AgencyId,
        change: impl FnMut(&mut Handoff, &mut Incident) -> Result<bool>,
    ) -> Result<Handoff> {
        self.update_handoff_fenced(incident_id, agency, None, change)
            .await
    }

    /// [`Records::update_handoff`], only while the leadership term `fence` holds (the leader's
    /// sender).
    pub async fn update_handoff_fenced(
        &self,
        incident_id: &IncidentId,
        agency: &AgencyId,
        fence: Option<&Fence>,
        mut change: impl FnMut(&mut Handoff, &mut Incident) -> Result<bool>,
    ) -> Result<Handoff> {
        let incident_key = Incident::key_of(incident_id.as_str());
        let key = handoff_key(incident_id, agency);
        let keys = [incident_key.clone(), key.clone()];
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let freshness = Freshness::for_attempt(attempt);
            let read = self.read(&keys, freshness).await?;
            let (Some(mut handoff), Some(mut incident)) = (
                read.decode::<Handoff>(&key)?,
                read.decode::<Incident>(&incident_key)?,
            ) else {
                if freshness.may_be_stale() {
                    continue;
                }
                return Err(Error::NotFound {
                    kind: "handoff",
                    id: Handoff::record_id(incident_id, agency),
                });
            };
            let stored = incident.clone();
            let changed = match change(&mut handoff, &mut incident) {
                Err(_) if freshness.may_be_stale() => continue,
                changed => changed?,
            };
            if !changed {
                if freshness.may_be_stale() {
                    continue;
                }
                return Ok(handoff);
            }
            if incident != stored {
                incident.seal(Some(&stored), self.audit_key());
            }
            let writes = vec![
                (incident_key.clone(), Some(encode(&incident))),
                (key.clone(), Some(encode(&handoff))),
            ];
            match self.commit(&read, fence, writes).await? {
                Commit::Done(_) => return Ok(handoff),
                Commit::Conflict => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// The hand-offs of one incident, by agency id.
    pub async fn handoffs_of(&self, incident: &IncidentId) -> Result<Vec<Handoff>> {
        let prefix = format!("{}{incident}/", handoffs_prefix());
        let (kvs, _) = self.store.get_prefix(&prefix).await?;
        kvs.iter().map(decode).collect()
    }

    /// Every hand-off (what the sender scans).
    pub async fn handoffs(&self) -> Result<Vec<Handoff>> {
        let (kvs, _) = self.store.get_prefix(&handoffs_prefix()).await?;
        kvs.iter().map(decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use centinela_core::incident::AuditAction;

    use super::*;
    use crate::testing::{NOW, button_id, handoff_for, lima};

    #[tokio::test]
    async fn a_handoff_is_created_once_with_its_audit_entry() {
        let (_embedded, records) = lima().await;
        let incident_id = IncidentId::new("inc-1").unwrap();
        let mut opened = Incident::open(
            incident_id.clone(),
            button_id("B-01"),
            centinela_core::ids::CameraId::new("C-01").unwrap(),
            centinela_core::geo::Position::new(-12.05, -77.04).unwrap(),
            NOW,
        );
        opened.seal(None, records.audit_key());
        records
            .store()
            .put(&Incident::key_of("inc-1"), encode(&opened), None)
            .await
            .unwrap();
        let pnp = AgencyId::new("pnp").unwrap();
        let (first, created) = records
            .create_handoff(&incident_id, &pnp, |i| handoff_for(i, &pnp))
            .await
            .unwrap();
        assert_eq!(created, Created::New);
        let (again, created) = records
            .create_handoff(&incident_id, &pnp, |i| handoff_for(i, &pnp))
            .await
            .unwrap();
        assert_eq!(created, Created::Existing);
        assert_eq!(first, again);
        let incident = records.incident(&incident_id).await.unwrap().unwrap();
        let handed: Vec<_> = incident
            .audit
            .iter()
            .filter(|e| e.action == AuditAction::HandedOff)
            .collect();
        assert_eq!(handed.len(), 1);
        assert!(incident.verify_audit(Some(records.audit_key())).is_intact());
        assert_eq!(
            records.handoffs_of(&incident_id).await.unwrap(),
            vec![first.clone()]
        );

        let updated = records
            .update_handoff(&incident_id, &pnp, |h, i| {
                h.record_attempt(0, Ok(202), NOW, NOW);
                i.handoff_attempt(&pnp, "cap-1", "delivered (202)", NOW);
                Ok(true)
            })
            .await
            .unwrap();
        assert_eq!(updated.messages[0].attempts, 1);
        assert_eq!(records.handoffs().await.unwrap(), vec![updated]);

        let missing = IncidentId::new("inc-missing").unwrap();
        let error = records
            .create_handoff(&missing, &pnp, |i| handoff_for(i, &pnp))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error}");
    }
}
