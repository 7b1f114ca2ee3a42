//! Presses: a button's presses become a new incident or join its open one, durably and
//! idempotently (a retried press id resolves to the incident it was recorded in).

use std::collections::BTreeMap;
use std::time::Duration;

use centinela_core::button::Button;
use centinela_core::ids::{IncidentId, PressId};
use centinela_core::incident::Incident;
use centinela_core::time::Timestamp;
use centinela_store::LeaseId;

use crate::cas::{Commit, Freshness, Read};
use crate::error::{Error, Result};
use crate::record::{Record, encode, incident_id_in, open_index_key, open_key, press_key};
use crate::{Records, limits};

/// What a press did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PressOutcome {
    pub incident: Incident,
    /// The press joined an open incident, or repeated a known press id.
    pub duplicate: bool,
}

impl Records {
    /// Records a press of `button`: a new incident, or a merge into the button's open
    /// incident when the previous press was within `debounce`. Durable when this returns.
    /// Retrying with the same `press_id` returns the same incident, marked duplicate.
    pub async fn press(
        &self,
        button: &Button,
        press_id: &PressId,
        now: Timestamp,
        debounce: Duration,
        trace: Option<String>,
    ) -> Result<PressOutcome> {
        let mut outcomes = self
            .press_many(button, std::slice::from_ref(press_id), now, debounce, trace)
            .await?;
        outcomes
            .pop()
            .ok_or_else(|| Error::unexpected("a press recorded no outcome"))
    }

    /// Records several presses of `button` in **one** transaction, each exactly as
    /// [`Records::press`] would (a flood of presses costs one store write, not one per press):
    /// presses already recorded return their incident; the others open an incident (the first
    /// of them) or join the open one. Each of an incident's first
    /// [`limits::PRESS_KEYS_PER_INCIDENT_MAX`] presses gets its `presses/` record, on a lease
    /// of [`limits::PRESS_KEY_TTL`], so its press id keeps resolving to its incident while
    /// devices may retry it; later presses are counted in the incident only (the press budget:
    /// a flood costs no key per press). Outcomes come in the order of `press_ids`. At most
    /// [`limits::PRESS_BATCH_MAX`] presses.
    pub async fn press_many(
        &self,
        button: &Button,
        press_ids: &[PressId],
        now: Timestamp,
        debounce: Duration,
        trace: Option<String>,
    ) -> Result<Vec<PressOutcome>> {
        if press_ids.is_empty() || press_ids.len() > limits::PRESS_BATCH_MAX {
            return Err(Error::Invalid(format!(
                "{} presses in one transaction, 1 to {} allowed",
                press_ids.len(),
                limits::PRESS_BATCH_MAX
            )));
        }
        // The same id twice in one batch is one press (a retry that overtook its original).
        let mut unique: Vec<&PressId> = Vec::with_capacity(press_ids.len());
        for id in press_ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        let press_keys: Vec<String> = unique.iter().map(|p| press_key(&button.id, p)).collect();
        let open = open_key(button.id.as_str());
        let prefix = IncidentId::press_prefix(&button.id, now);
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            // One round trip reads the press keys, the open pointer and the incident ids this
            // button already has in this second: a press that opens an incident (no open
            // pointer) needs nothing more before its write.
            let mut keys = press_keys.clone();
            keys.push(open.clone());
            // A stale first read is safe here: every write below is guarded on what was read
            // (press keys absent, the open pointer and the open incident unchanged, the new id
            // absent), and the only conclusion drawn without a write, "already recorded",
            // holds for as long as the press key lives (`limits::PRESS_KEY_TTL`).
            let freshness = Freshness::for_attempt(attempt);
            let (pointers, taken) = self
                .read_with_prefix(&keys, &Incident::key_of(&prefix), freshness)
                .await?;
            // Presses already recorded (retries), and the ones to record now.
            let mut recorded: BTreeMap<&PressId, IncidentId> = BTreeMap::new();
            let mut fresh: Vec<(&PressId, &String)> = Vec::new();
            for (id, key) in unique.iter().zip(&press_keys) {
                match pointers.kv(key) {
                    Some(kv) => {
                        recorded.insert(id, incident_id_in(kv)?);
                    }
                    None => fresh.push((id, key)),
                }
            }
            let Some((opener, _)) = fresh.first().copied() else {
                return self.press_outcomes(press_ids, &recorded, None).await;
            };
            // Guards for the write: every press key still absent, the open pointer unchanged.
            let mut guarded = Read::absent(fresh.iter().map(|(_, key)| *key));
            guarded.guard_as_read(&open, &pointers);

            // The button's open incident, if the last press was recent enough to join it;
            // otherwise a new incident.
            let joined = match pointers.kv(&open) {
                Some(kv) => {
                    let key = Incident::key_of(incident_id_in(kv)?.as_str());
                    let read = self.read(std::slice::from_ref(&key), freshness).await?;
                    guarded.guard_as_read(&key, &read);
                    read.decode::<Incident>(&key)?
                        .filter(|incident| incident.within_debounce(now, debounce))
                }
                None => None,
            };
            let (mut incident, opened_by, stored) = match joined {
                Some(mut incident) => {
                    let stored = incident.clone();
                    for _ in &fresh {
                        incident.merge_press(now)?;
                    }
                    (incident, None, Some(stored))
                }
                None => {
                    // Under the first free id of this button and second (the listing was read
                    // with the pointers, so "absent" is guarded at that read).
                    let id = IncidentId::for_press(&prefix, taken.len())
                        .map_err(|e| Error::Invalid(e.to_string()))?;
                    let key = Incident::key_of(id.as_str());
                    if taken.iter().any(|kv| kv.key == key) {
                        Self::backoff(attempt).await;
                        continue; // the suffixes are not dense (should not happen): list again
                    }
                    guarded.kvs.insert(key, None);
                    let mut incident = Incident::open(
                        id,
                        button.id.clone(),
                        button.camera.clone(),
                        button.position,
                        now,
                    );
                    incident.trace = trace.clone();
                    incident.held_until = button
                        .verify_hold_s
                        .map(|s| now.saturating_add(Duration::from_secs(s)));
                    for _ in 1..fresh.len() {
                        incident.merge_press(now)?;
                    }
                    (incident, Some(opener), None)
                }
            };
            incident.seal(stored.as_ref(), self.audit_key());
            let id = incident.id.clone();
            let pointer = || Some(id.as_str().as_bytes().to_vec());
            let mut writes = vec![(Incident::key_of(id.as_str()), Some(encode(&incident)))];
            if opened_by.is_some() {
                writes.push((open.clone(), pointer()));
                writes.push((open_index_key(id.as_str()), pointer()));
            }
            // The press budget: the incident's first presses get their idempotency key, on
            // the press lease; later ones are only counted (`limits::PRESS_KEYS_PER_INCIDENT_MAX`).
            let keyed_before = stored.as_ref().map_or(0, |s| s.press_count as usize);
            let keys_left = limits::PRESS_KEYS_PER_INCIDENT_MAX.saturating_sub(keyed_before);
            let leased: Vec<(String, Vec<u8>)> = fresh
                .iter()
                .take(keys_left)
                .map(|(_, press)| ((*press).clone(), id.as_str().as_bytes().to_vec()))
                .collect();
            let lease = if leased.is_empty() {
                None
            } else {
                Some(self.press_lease().await?)
            };
            let committed = self
                .commit_leased(&guarded, None, writes, lease, leased)
                .await;
            if let (Err(Error::Store { message, .. }), Some(lease)) = (&committed, lease)
                && message.contains("lease not found")
            {
                // The lease expired under us (a long pause): a new one, and again.
                self.forget_press_lease(lease);
                continue;
            }
            #[cfg(feature = "fault-injection")]
            let committed = match committed {
                Err(_) | Ok(Commit::Conflict)
                    if self.planted(crate::PlantedBug::AckBeforeDurable) =>
                {
                    Ok(Commit::Done(0))
                }
                other => other,
            };
            match committed? {
                Commit::Done(_) => {
                    for (press, _) in &fresh {
                        recorded.insert(press, id.clone());
                    }
                    return self
                        .press_outcomes(press_ids, &recorded, Some((incident, opened_by)))
                        .await;
                }
                Commit::Conflict => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// The lease new press keys go on: the current one while younger than
    /// [`limits::PRESS_LEASE_REUSE`], else a fresh one of [`limits::PRESS_KEY_TTL`] plus that.
    async fn press_lease(&self) -> Result<LeaseId> {
        let now = tokio::time::Instant::now();
        let cached = *self.press_lease.lock().expect("press lease lock");
        if let Some((lease, granted)) = cached
            && now.saturating_duration_since(granted) < limits::PRESS_LEASE_REUSE
        {
            return Ok(lease);
        }
        let lease = self
            .store()
            .grant_lease(limits::PRESS_KEY_TTL + limits::PRESS_LEASE_REUSE)
            .await?;
        *self.press_lease.lock().expect("press lease lock") = Some((lease, now));
        Ok(lease)
    }

    fn forget_press_lease(&self, lease: LeaseId) {
        let mut cached = self.press_lease.lock().expect("press lease lock");
        if cached.is_some_and(|(current, _)| current == lease) {
            *cached = None;
        }
    }

    /// The outcome of each press id, given the incident each is recorded in. `written` is the
    /// incident the batch just wrote (not read back), with the press that opened it.
    async fn press_outcomes(
        &self,
        press_ids: &[PressId],
        recorded: &BTreeMap<&PressId, IncidentId>,
        written: Option<(Incident, Option<&PressId>)>,
    ) -> Result<Vec<PressOutcome>> {
        let mut incidents: BTreeMap<IncidentId, Incident> = BTreeMap::new();
        let mut opener = None;
        if let Some((incident, opened_by)) = written {
            opener = opened_by;
            incidents.insert(incident.id.clone(), incident);
        }
        let mut outcomes = Vec::with_capacity(press_ids.len());
        let mut opener_answered = false;
        for press in press_ids {
            let incident_id = recorded
                .get(press)
                .ok_or_else(|| Error::unexpected(format!("press {press} was not recorded")))?;
            if !incidents.contains_key(incident_id) {
                let incident = self
                    .incident(incident_id)
                    .await?
                    .ok_or_else(|| Error::Corrupt {
                        key: press.to_string(),
                        reason: format!("points at missing incident {incident_id}"),
                    })?;
                incidents.insert(incident_id.clone(), incident);
            }
            // Only the press that opened the incident (its first copy in the batch) is new.
            let opened = !opener_answered && opener == Some(press);
            opener_answered |= opened;
            outcomes.push(PressOutcome {
                incident: incidents[incident_id].clone(),
                duplicate: !opened,
            });
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NOW, button_id, lima};

    #[tokio::test]
    async fn presses_on_stale_reads_still_make_one_incident() {
        let (embedded, records) = lima().await;
        let now = NOW;
        let button = records.button(&button_id("B01")).await.unwrap().unwrap();
        let debounce = Duration::from_secs(60);
        let press = |id: &str, at: Timestamp| {
            let id = PressId::new(id).unwrap();
            let (records, button) = (records.clone(), button.clone());
            async move {
                records
                    .press(&button, &id, at, debounce, None)
                    .await
                    .unwrap()
            }
        };
        let first = press("p-1", now).await;
        // The second press reads first from a copy that has not seen the first one (no open
        // pointer, no press key, no incident id taken): its guarded write must fail and its
        // retry, on a current read, join the open incident.
        embedded.lag_serializable_reads(1);
        let later = Timestamp::from_millis(now.as_millis() + 1_000);
        let second = press("p-2", later).await;
        assert!(second.duplicate, "joined the open incident");
        assert_eq!(second.incident.id, first.incident.id);
        assert_eq!(second.incident.press_count, 2);
        // A repeat of the first press, read stale, resolves to the same incident.
        let repeat = press("p-1", later).await;
        assert_eq!(repeat.incident.id, first.incident.id);
        let open: Vec<_> = records
            .incidents(false)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.button == button.id)
            .collect();
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].press_count, 2);
    }
}
