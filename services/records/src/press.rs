//! Presses: a button's presses become a new incident or join its open one, durably and
//! idempotently (a retried press id resolves to the incident it was recorded in).

use std::collections::BTreeMap;
use std::time::Duration;

use centinela_core::button::Button;
use centinela_core::camera::{Camera, CameraState};
use centinela_core::ids::{IncidentId, PressId};
use centinela_core::incident::Incident;
use centinela_core::time::Timestamp;
use centinela_store::{Kv, LeaseId};

use crate::cas::{Commit, Freshness, Read, chunks_under};
use crate::error::{Error, Result};
use crate::record::{Record, encode, incident_id_in, open_index_key, open_key, press_key};
use crate::{Records, limits};

/// What a press did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PressOutcome {
    pub incident: Incident,
    /// The press joined an open incident, or repeated a known press id.
    pub duplicate: bool,
    /// The button's camera as this press's transaction aimed it at the incident (the aim rides
    /// in the press's write); `None` when it was already aimed there or no write was made. For
    /// the camera's actor on this node only: never on the wire.
    #[serde(skip)]
    pub camera: Option<Camera>,
}

/// One button's presses in a group commit ([`Records::press_groups`]): what
/// [`Records::press_many`] takes.
#[derive(Clone, Debug)]
pub struct PressGroup {
    pub button: Button,
    pub press_ids: Vec<PressId>,
    pub now: Timestamp,
    pub debounce: Duration,
    pub trace: Option<String>,
}

impl PressGroup {
    /// The most store operations this group adds to a group commit, in any one part of it (its
    /// reads, its guards, its writes): a key per press, plus the open pointer, the camera, the
    /// incident ids listed (reads) or the incident, the open pointer, the index entry and the
    /// camera (writes).
    pub fn ops(&self) -> usize {
        self.press_ids.len() + 4
    }
}

/// A group commit read and decided, not yet written ([`Records::plan_presses`]).
pub struct PressPlan {
    groups: Vec<(PressGroup, Decision)>,
}

/// What a group's read decided.
enum Decision {
    /// Every press is already recorded: nothing to write.
    Recorded(BTreeMap<PressId, IncidentId>),
    /// One guarded write.
    Write(Box<PressWrite>),
    /// The incident ids listed are not dense (should not happen): read again, on its own.
    Collision,
    /// Not in the shared transaction (its button twice in the batch, or a group of a size
    /// refused): recorded on its own.
    Alone,
}

/// A group's write, with what it is guarded on.
struct PressWrite {
    guarded: Read,
    writes: Vec<(String, Option<Vec<u8>>)>,
    /// The `presses/` keys, put on the press lease.
    leased: Vec<(String, Vec<u8>)>,
    /// Where each press id goes (those recorded before included).
    recorded: BTreeMap<PressId, IncidentId>,
    incident: Incident,
    /// The press that opens the incident, when it is new.
    opened_by: Option<PressId>,
    /// The camera as the write aims it, when it was not aimed at the incident yet.
    camera: Option<Camera>,
}

/// The keys a group's presses read.
struct PressKeys {
    /// The press ids, each once (the same id twice in one batch is one press: a retry that
    /// overtook its original).
    unique: Vec<PressId>,
    press_keys: Vec<String>,
    open: String,
    /// The button's camera: the press's write aims it.
    camera: String,
    /// The incident ids of this button and second...
    id_prefix: String,
    /// ...and the key prefix they are listed under.
    prefix: String,
}

impl PressKeys {
    fn of(group: &PressGroup) -> Result<Self> {
        let press_ids = &group.press_ids;
        if press_ids.is_empty() || press_ids.len() > limits::PRESS_BATCH_MAX {
            return Err(Error::Invalid(format!(
                "{} presses in one transaction, 1 to {} allowed",
                press_ids.len(),
                limits::PRESS_BATCH_MAX
            )));
        }
        let mut unique: Vec<PressId> = Vec::with_capacity(press_ids.len());
        for id in press_ids {
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        let button = &group.button.id;
        let id_prefix = IncidentId::press_prefix(button, group.now);
        Ok(Self {
            press_keys: unique.iter().map(|p| press_key(button, p)).collect(),
            unique,
            open: open_key(button.as_str()),
            camera: Camera::key_of(group.button.camera.as_str()),
            prefix: Incident::key_of(&id_prefix),
            id_prefix,
        })
    }

    /// The press keys, the open pointer and the camera: read together.
    fn pointer_keys(&self) -> Vec<String> {
        let mut keys = self.press_keys.clone();
        keys.push(self.open.clone());
        keys.push(self.camera.clone());
        keys
    }

    /// The key of the incident the open pointer names, as `pointers` read it.
    fn open_incident_key(&self, pointers: &Read) -> Result<Option<String>> {
        pointers
            .kv(&self.open)
            .map(|kv| Ok(Incident::key_of(incident_id_in(kv)?.as_str())))
            .transpose()
    }
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
        let group = PressGroup {
            button: button.clone(),
            press_ids: press_ids.to_vec(),
            now,
            debounce,
            trace,
        };
        let keys = PressKeys::of(&group)?;
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            // One round trip reads the press keys, the open pointer and the incident ids this
            // button already has in this second: a press that opens an incident (no open
            // pointer) needs nothing more before its write.
            // A stale first read is safe here: every write is guarded on what was read (press
            // keys absent, the open pointer and the open incident unchanged, the new id
            // absent), and the only conclusion drawn without a write, "already recorded",
            // holds for as long as the press key lives (`limits::PRESS_KEY_TTL`).
            let freshness = Freshness::for_attempt(attempt);
            let (pointers, mut taken) = self
                .read_with_prefixes(&keys.pointer_keys(), &[keys.prefix.as_str()], freshness)
                .await?;
            let taken = taken.pop().unwrap_or_default();
            let open_incident = match keys.open_incident_key(&pointers)? {
                Some(key) => Some(self.read(std::slice::from_ref(&key), freshness).await?),
                None => None,
            };
            let decided = self.decide(&group, &keys, &pointers, &taken, open_incident.as_ref())?;
            let write = match decided {
                Decision::Recorded(recorded) => {
                    return self.press_outcomes(press_ids, &recorded, None).await;
                }
                // The suffixes are not dense (should not happen): list again. (`Alone` is a
                // group commit's decision only.)
                Decision::Collision | Decision::Alone => {
                    Self::backoff(attempt).await;
                    continue;
                }
                Decision::Write(write) => write,
            };
            let lease = if write.leased.is_empty() {
                None
            } else {
                Some(self.press_lease().await?)
            };
            let committed = self
                .commit_leased(
                    &write.guarded,
                    None,
                    write.writes.clone(),
                    lease,
                    write.leased.clone(),
                )
                .await;
            if let (Err(Error::Store { message, .. }), Some(lease)) = (&committed, lease)
                && message.contains("lease not found")
            {
                // The lease expired under us (a long pause): a new one, and again.
                self.forget_press_lease(lease);
                continue;
            }
            #[cfg(feature = "fault-injection")]
            let committed = self.plant_ack_before_durable(committed);
            match committed? {
                Commit::Done(_) => return self.write_outcomes(press_ids, *write).await,
                Commit::Conflict => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// The planted [`crate::PlantedBug::AckBeforeDurable`]: a failed or conflicting commit
    /// counts as done.
    #[cfg(feature = "fault-injection")]
    fn plant_ack_before_durable(&self, committed: Result<Commit>) -> Result<Commit> {
        match committed {
            Err(_) | Ok(Commit::Conflict) if self.planted(crate::PlantedBug::AckBeforeDurable) => {
                Ok(Commit::Done(0))
            }
            other => other,
        }
    }

    /// Decides what one group's presses write, from what was read: the press keys and the
    /// open pointer (`pointers`), the incident ids under this button and second (`taken`),
    /// and the open pointer's incident (`open_incident`, read when there is a pointer).
    fn decide(
        &self,
        group: &PressGroup,
        keys: &PressKeys,
        pointers: &Read,
        taken: &[Kv],
        open_incident: Option<&Read>,
    ) -> Result<Decision> {
        let PressGroup {
            button, now, trace, ..
        } = group;
        let now = *now;
        // Presses already recorded (retries), and the ones to record now.
        let mut recorded: BTreeMap<PressId, IncidentId> = BTreeMap::new();
        let mut fresh: Vec<(&PressId, &String)> = Vec::new();
        for (id, key) in keys.unique.iter().zip(&keys.press_keys) {
            match pointers.kv(key) {
                Some(kv) => {
                    recorded.insert(id.clone(), incident_id_in(kv)?);
                }
                None => fresh.push((id, key)),
            }
        }
        let Some((opener, _)) = fresh.first().copied() else {
            return Ok(Decision::Recorded(recorded));
        };
        // Guards for the write: every press key still absent, the open pointer unchanged.
        let mut guarded = Read::absent(fresh.iter().map(|(_, key)| *key));
        guarded.guard_as_read(&keys.open, pointers);

        // The button's open incident, if the last press was recent enough to join it;
        // otherwise a new incident.
        let joined = match (keys.open_incident_key(pointers)?, open_incident) {
            (Some(key), Some(read)) => {
                guarded.guard_as_read(&key, read);
                read.decode::<Incident>(&key)?
                    .filter(|incident| incident.within_debounce(now, group.debounce))
            }
            (Some(key), None) => {
                return Err(Error::unexpected(format!("{key} was not read")));
            }
            (None, _) => None,
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
                let id = IncidentId::for_press(&keys.id_prefix, taken.len())
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                let key = Incident::key_of(id.as_str());
                if taken.iter().any(|kv| kv.key == key) {
                    return Ok(Decision::Collision);
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
                (incident, Some(opener.clone()), None)
            }
        };
        incident.seal(stored.as_ref(), self.audit_key());
        let id = incident.id.clone();
        let pointer = || Some(id.as_str().as_bytes().to_vec());
        let mut writes = vec![(Incident::key_of(id.as_str()), Some(encode(&incident)))];
        if opened_by.is_some() {
            writes.push((keys.open.clone(), pointer()));
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
        // The camera turns to the caller in the same write (whether the press opened the
        // incident or joined it), unless it is already aimed there.
        let camera = match pointers.decode::<Camera>(&keys.camera)? {
            Some(stored)
                if !(stored.target.as_ref() == Some(&id) && stored.state != CameraState::Idle) =>
            {
                let mut camera = stored.clone();
                camera.aim(id.clone(), now);
                camera.seal(Some(&stored), self.audit_key());
                guarded.guard_as_read(&keys.camera, pointers);
                writes.push((keys.camera.clone(), Some(encode(&camera))));
                Some(camera)
            }
            _ => None,
        };
        for (press, _) in &fresh {
            recorded.insert((*press).clone(), id.clone());
        }
        Ok(Decision::Write(Box::new(PressWrite {
            guarded,
            writes,
            leased,
            recorded,
            incident,
            opened_by,
            camera,
        })))
    }

    /// The outcomes of a group whose write committed.
    async fn write_outcomes(
        &self,
        press_ids: &[PressId],
        write: PressWrite,
    ) -> Result<Vec<PressOutcome>> {
        let mut outcomes = self
            .press_outcomes(
                press_ids,
                &write.recorded,
                Some((write.incident, write.opened_by)),
            )
            .await?;
        if let Some(outcome) = outcomes.iter_mut().find(|o| !o.duplicate) {
            outcome.camera = write.camera;
        } else if let Some(outcome) = outcomes.first_mut() {
            outcome.camera = write.camera;
        }
        Ok(outcomes)
    }

    /// Group commit: the presses of several buttons (each group one button's, as
    /// [`Records::press_many`] takes them) read in one transaction and written in one, each
    /// group durable and idempotent exactly as on its own. Groups are split into transactions
    /// under etcd's `--max-txn-ops` ([`PressGroup::ops`]). A conflict on one group's records
    /// fails no other group: the transaction is retried without the groups whose guards no
    /// longer hold, and those are recorded on their own. Results come in the order of `groups`.
    pub async fn press_groups(&self, groups: Vec<PressGroup>) -> Vec<Result<Vec<PressOutcome>>> {
        let count = groups.len();
        let chunks = chunks_under(
            groups.into_iter().enumerate(),
            limits::GROUP_COMMIT_OPS_MAX,
            |(_, group)| group.ops(),
        );
        let done = futures::future::join_all(chunks.into_iter().map(|chunk| async move {
            let (indices, groups): (Vec<usize>, Vec<PressGroup>) = chunk.into_iter().unzip();
            let results = match self.plan_presses(groups.clone()).await {
                Ok(plan) => self.commit_presses(plan).await,
                // The shared read failed: each group on its own (each reports its own error).
                Err(_) => self.press_alone(groups.iter()).await,
            };
            indices.into_iter().zip(results).collect::<Vec<_>>()
        }))
        .await;
        let mut results: Vec<Option<Result<Vec<PressOutcome>>>> = vec![None; count];
        for (index, result) in done.into_iter().flatten() {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::unexpected("a press group got no outcome"))))
            .collect()
    }

    /// The first half of a group commit: one read of every group's press keys, open pointer
    /// and incident ids (serializable, as a single press's first read), one read of the open
    /// incidents they point at, and each group's write decided. Nothing is written. At most
    /// [`limits::GROUP_COMMIT_OPS_MAX`] operations in all ([`PressGroup::ops`]).
    pub async fn plan_presses(&self, groups: Vec<PressGroup>) -> Result<PressPlan> {
        let ops: usize = groups.iter().map(PressGroup::ops).sum();
        if ops > limits::GROUP_COMMIT_OPS_MAX {
            return Err(Error::Invalid(format!(
                "a group commit of {ops} operations, at most {} allowed",
                limits::GROUP_COMMIT_OPS_MAX
            )));
        }
        // Groups that cannot share the transaction go alone: a button twice (etcd refuses a
        // key twice in one transaction) or a group of the wrong size (refused on its own).
        let mut planned: Vec<(PressGroup, Option<PressKeys>)> = Vec::with_capacity(groups.len());
        let mut buttons = std::collections::BTreeSet::new();
        for group in groups {
            let keys = if buttons.insert(group.button.id.clone()) {
                PressKeys::of(&group).ok()
            } else {
                None
            };
            planned.push((group, keys));
        }
        let freshness = Freshness::MaybeStale;
        let mut pointer_keys = Vec::new();
        let mut prefixes = Vec::new();
        for keys in planned.iter().filter_map(|(_, keys)| keys.as_ref()) {
            pointer_keys.extend(keys.pointer_keys());
            prefixes.push(keys.prefix.as_str());
        }
        let (pointers, listings) = self
            .read_with_prefixes(&pointer_keys, &prefixes, freshness)
            .await?;
        let mut incident_keys = Vec::new();
        for keys in planned.iter().filter_map(|(_, keys)| keys.as_ref()) {
            incident_keys.extend(keys.open_incident_key(&pointers)?);
        }
        let open_incidents = if incident_keys.is_empty() {
            None
        } else {
            Some(self.read(&incident_keys, freshness).await?)
        };
        let mut listings = listings.into_iter();
        let mut plan = PressPlan {
            groups: Vec::with_capacity(planned.len()),
        };
        for (group, keys) in planned {
            let decision = match keys {
                Some(keys) => {
                    let taken = listings.next().unwrap_or_default();
                    self.decide(&group, &keys, &pointers, &taken, open_incidents.as_ref())?
                }
                None => Decision::Alone,
            };
            plan.groups.push((group, decision));
        }
        Ok(plan)
    }

    /// The second half of a group commit: every planned write in one transaction, guarded
    /// on everything each group read. On a conflict, the guards are read again (current) and
    /// the groups whose guards no longer hold are recorded on their own
    /// ([`Records::press_many`]); the rest are committed again together, at most
    /// [`limits::GROUP_COMMIT_ATTEMPTS`] times. Each group's result is its own.
    pub async fn commit_presses(&self, plan: PressPlan) -> Vec<Result<Vec<PressOutcome>>> {
        let count = plan.groups.len();
        let mut results: Vec<Option<Result<Vec<PressOutcome>>>> = vec![None; count];
        let mut groups = Vec::with_capacity(count);
        let mut pending: Vec<(usize, PressWrite)> = Vec::new();
        let mut alone: Vec<usize> = Vec::new();
        for (index, (group, decision)) in plan.groups.into_iter().enumerate() {
            match decision {
                Decision::Recorded(recorded) => {
                    results[index] =
                        Some(self.press_outcomes(&group.press_ids, &recorded, None).await);
                }
                Decision::Write(write) => pending.push((index, *write)),
                Decision::Collision | Decision::Alone => alone.push(index),
            }
            groups.push(group);
        }
        for _ in 0..limits::GROUP_COMMIT_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let mut compares = Vec::new();
            let mut writes = Vec::new();
            let mut leased = Vec::new();
            for (_, write) in &pending {
                compares.extend(write.guarded.guards());
                writes.extend(write.writes.iter().cloned());
                leased.extend(write.leased.iter().cloned());
            }
            let lease = if leased.is_empty() {
                None
            } else {
                match self.press_lease().await {
                    Ok(lease) => Some(lease),
                    Err(_) => break, // each on its own, reporting its own error
                }
            };
            let committed = self
                .commit_guarded(compares, None, writes, lease, leased)
                .await;
            if let (Err(Error::Store { message, .. }), Some(lease)) = (&committed, lease)
                && message.contains("lease not found")
            {
                self.forget_press_lease(lease);
            }
            #[cfg(feature = "fault-injection")]
            let committed = self.plant_ack_before_durable(committed);
            match committed {
                Ok(Commit::Done(_)) => {
                    for (index, write) in pending.drain(..) {
                        let press_ids = &groups[index].press_ids;
                        results[index] = Some(self.write_outcomes(press_ids, write).await);
                    }
                }
                Ok(Commit::Conflict) => {
                    // Which groups conflicted: their guards, read again, current.
                    let keys: Vec<String> = pending
                        .iter()
                        .flat_map(|(_, write)| write.guarded.kvs.keys().cloned())
                        .collect();
                    let Ok(current) = self.read(&keys, Freshness::Current).await else {
                        break;
                    };
                    let before = pending.len();
                    pending.retain(|(index, write)| {
                        let holds = write.guarded.still_holds(&current);
                        if !holds {
                            alone.push(*index);
                        }
                        holds
                    });
                    if pending.len() == before {
                        break; // nothing to blame: every group on its own
                    }
                }
                Err(_) => break,
            }
        }
        alone.extend(pending.into_iter().map(|(index, _)| index));
        let alone_results = self.press_alone(alone.iter().map(|&i| &groups[i])).await;
        for (index, result) in alone.into_iter().zip(alone_results) {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::unexpected("a press group got no outcome"))))
            .collect()
    }

    /// Groups recorded each on its own, concurrently.
    async fn press_alone<'a>(
        &self,
        groups: impl Iterator<Item = &'a PressGroup>,
    ) -> Vec<Result<Vec<PressOutcome>>> {
        futures::future::join_all(groups.map(|group| {
            self.press_many(
                &group.button,
                &group.press_ids,
                group.now,
                group.debounce,
                group.trace.clone(),
            )
        }))
        .await
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
        recorded: &BTreeMap<PressId, IncidentId>,
        written: Option<(Incident, Option<PressId>)>,
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
            let opened = !opener_answered && opener.as_ref() == Some(press);
            opener_answered |= opened;
            outcomes.push(PressOutcome {
                incident: incidents[incident_id].clone(),
                duplicate: !opened,
                camera: None,
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
