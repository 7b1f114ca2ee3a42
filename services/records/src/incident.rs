//! Incident transactions: an incident and the brigades involved change together (an
//! assignment, an acknowledgement, a status change, a replacement), and an incident closes
//! with its brigades released, each in one transaction.

use centinela_core::brigade::Brigade;
use centinela_core::ids::{BrigadeId, IncidentId};
use centinela_core::incident::{Actor, Incident, Resolution};
use centinela_core::time::Timestamp;
use centinela_store::{Fence, Revision};
use centinela_telemetry::metrics;
use opentelemetry::KeyValue;

use crate::cas::{Commit, Freshness, Read};
use crate::error::{Error, Result};
use crate::record::{Record, encode, open_index_key, open_key};
use crate::{Records, limits};

/// An incident and the brigades changed with it in one transaction.
#[derive(Debug, Clone)]
pub struct IncidentUpdate {
    pub incident: Incident,
    pub brigades: Vec<Brigade>,
    /// The store revision of the change.
    pub revision: Revision,
}

impl Records {
    pub async fn update_incident(
        &self,
        id: &IncidentId,
        mut change: impl FnMut(&mut Incident) -> Result<()>,
    ) -> Result<Incident> {
        Ok(self
            .update_incident_with(id, &[], None, |incident, _| change(incident))
            .await?
            .incident)
    }

    /// Changes an incident and some brigades atomically (an assignment, an ack, a status
    /// change, a replacement). With a `fence`, only while that leadership term holds. An
    /// incident that `change` closes also stops being its button's open incident.
    pub async fn update_incident_with(
        &self,
        incident_id: &IncidentId,
        brigades: &[BrigadeId],
        fence: Option<&Fence>,
        mut change: impl FnMut(&mut Incident, &mut [Brigade]) -> Result<()>,
    ) -> Result<IncidentUpdate> {
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let freshness = Freshness::for_attempt(attempt);
            let read = self.read_incident_with(incident_id, brigades, freshness);
            let applied = match read.await {
                Ok(read) => {
                    self.apply_incident_change(
                        &read,
                        freshness,
                        incident_id,
                        brigades,
                        fence,
                        &mut change,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match applied {
                Ok(Some(update)) => return Ok(update),
                // A stale read's refusal, "not found" or "nothing to change" (`None`, as a
                // conflict) is checked on a current read, at once.
                Err(_) | Ok(None) if freshness.may_be_stale() => {}
                Err(e) => return Err(e),
                Ok(None) => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// Closes an incident with `resolution` and releases every brigade attached to it, in one
    /// transaction.
    pub async fn close_incident(
        &self,
        incident_id: &IncidentId,
        resolution: Resolution,
        actor: Actor,
        now: Timestamp,
    ) -> Result<IncidentUpdate> {
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let current = self
                .incident(incident_id)
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: Incident::KIND,
                    id: incident_id.to_string(),
                })?;
            let units = current.units.clone();
            let read = self
                .read_incident_with(incident_id, &units, Freshness::Current)
                .await?;
            let mut change = |incident: &mut Incident, brigades: &mut [Brigade]| {
                if incident.units != units {
                    // Units changed between the two reads: recompute.
                    return Err(Error::Contention { attempts: 0 });
                }
                incident.close(resolution, actor.clone(), now)?;
                for brigade in brigades.iter_mut() {
                    if brigade.incident.as_ref() == Some(&incident.id) {
                        brigade.release(now)?;
                    }
                }
                Ok(())
            };
            match self
                .apply_incident_change(
                    &read,
                    Freshness::Current,
                    incident_id,
                    &units,
                    None,
                    &mut change,
                )
                .await
            {
                Ok(Some(update)) => {
                    metrics::instruments().incidents_closed.add(
                        1,
                        &[
                            KeyValue::new("kind", update.incident.kind.to_string()),
                            KeyValue::new("resolution", resolution_name(resolution)),
                        ],
                    );
                    return Ok(update);
                }
                Ok(None) | Err(Error::Contention { .. }) => Self::backoff(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// Reads an incident, the named brigades and the incident's button's open pointer.
    async fn read_incident_with(
        &self,
        incident_id: &IncidentId,
        brigades: &[BrigadeId],
        freshness: Freshness,
    ) -> Result<Read> {
        // The open pointer's key depends on the incident's button. Ids we make start with it
        // (`IncidentId::for_press`), so it is read in the same round trip under the button the
        // id names; if the incident says otherwise, everything is read again with the right one.
        let mut keys = vec![Incident::key_of(incident_id.as_str())];
        keys.extend(brigades.iter().map(|b| Brigade::key_of(b.as_str())));
        let guess = incident_id.button_part();
        if let Some(button) = guess {
            keys.push(open_key(button));
        }
        let first = self.read(&keys, freshness).await?;
        let Some(incident) = first.decode::<Incident>(&keys[0])? else {
            return Err(Error::NotFound {
                kind: Incident::KIND,
                id: incident_id.to_string(),
            });
        };
        if guess == Some(incident.button.as_str()) {
            return Ok(first);
        }
        if guess.is_some() {
            keys.pop();
        }
        keys.push(open_key(incident.button.as_str()));
        self.read(&keys, freshness).await
    }

    /// One attempt; `Ok(None)` on a conflict, and when there is nothing to write on a read
    /// that may be stale (so that the caller reads current before concluding so).
    async fn apply_incident_change(
        &self,
        read: &Read,
        freshness: Freshness,
        incident_id: &IncidentId,
        brigade_ids: &[BrigadeId],
        fence: Option<&Fence>,
        change: &mut impl FnMut(&mut Incident, &mut [Brigade]) -> Result<()>,
    ) -> Result<Option<IncidentUpdate>> {
        let incident_key = Incident::key_of(incident_id.as_str());
        let original: Incident = read.decode(&incident_key)?.ok_or_else(|| Error::NotFound {
            kind: Incident::KIND,
            id: incident_id.to_string(),
        })?;
        let mut originals = Vec::with_capacity(brigade_ids.len());
        for id in brigade_ids {
            let brigade: Brigade =
                read.decode(&Brigade::key_of(id.as_str()))?
                    .ok_or_else(|| Error::NotFound {
                        kind: Brigade::KIND,
                        id: id.to_string(),
                    })?;
            originals.push(brigade);
        }
        let mut incident = original.clone();
        let mut brigades = originals.clone();
        change(&mut incident, &mut brigades)?;

        let mut writes = Vec::new();
        if incident != original {
            incident.seal(Some(&original), self.audit_key());
            writes.push((incident_key, Some(encode(&incident))));
        }
        for (brigade, before) in brigades.iter().zip(&originals) {
            if brigade != before {
                writes.push((Brigade::key_of(brigade.id.as_str()), Some(encode(brigade))));
            }
        }
        // The index of open incidents follows the incident (removing an absent key is a no-op).
        let indexed = open_index_key(incident.id.as_str());
        match (original.is_open(), incident.is_open()) {
            (true, false) => writes.push((indexed, None)),
            (false, true) => writes.push((indexed, Some(incident.id.as_str().as_bytes().to_vec()))),
            _ => {}
        }
        let open = open_key(incident.button.as_str());
        if original.is_open() && !incident.is_open() {
            let points_here = read
                .kv(&open)
                .is_some_and(|kv| kv.value == incident.id.as_str().as_bytes());
            if points_here {
                writes.push((open, None));
            }
        }
        if writes.is_empty() && fence.is_none() {
            if freshness.may_be_stale() {
                return Ok(None);
            }
            return Ok(Some(IncidentUpdate {
                incident,
                brigades,
                revision: read.revision(),
            }));
        }
        match self.commit(read, fence, writes).await? {
            Commit::Done(revision) => Ok(Some(IncidentUpdate {
                incident,
                brigades,
                revision,
            })),
            Commit::Conflict => Ok(None),
        }
    }
}

fn resolution_name(resolution: Resolution) -> &'static str {
    match resolution {
        Resolution::Handled => "handled",
        Resolution::Prank => "prank",
        Resolution::FalseAlarm => "false_alarm",
        Resolution::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use centinela_core::ids::PressId;
    use centinela_core::incident::IncidentKind;

    use crate::testing::{NOW, button_id, lima};

    #[tokio::test]
    async fn incident_changes_on_a_stale_first_read_are_rechecked() {
        let (embedded, records) = lima().await;
        let button = records.button(&button_id("B01")).await.unwrap().unwrap();
        let press = PressId::new("p-1").unwrap();
        let opened = records
            .press(&button, &press, NOW, Duration::from_secs(60), None)
            .await
            .unwrap();
        let id = opened.incident.id.clone();
        // Stale reads from before the press: the incident does not exist on that copy.
        embedded.lag_serializable_reads(3);
        let robbery = records
            .update_incident(&id, |i| {
                i.kind = IncidentKind::Robbery;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(
            robbery.kind,
            IncidentKind::Robbery,
            "found on a current read"
        );

        // Now the stale copy holds the robbery and the current record an assault: setting
        // robbery again is a no-op only on the stale copy, and must be written.
        embedded.lag_serializable_reads(0);
        records
            .update_incident(&id, |i| {
                i.kind = IncidentKind::Assault;
                Ok(())
            })
            .await
            .unwrap();
        embedded.lag_serializable_reads(1);
        records
            .update_incident(&id, |i| {
                i.kind = IncidentKind::Robbery;
                Ok(())
            })
            .await
            .unwrap();
        let stored = records.incident(&id).await.unwrap().unwrap();
        assert_eq!(stored.kind, IncidentKind::Robbery, "written, not skipped");
    }
}
