//! Incident transactions: an incident and the brigades involved change together (an
//! assignment, an acknowledgement, a status change, a replacement), and an incident closes
//! with its brigades released, each in one transaction.

use std::collections::BTreeMap;

use centinela_core::brigade::Brigade;
use centinela_core::camera::Camera;
use centinela_core::ids::{BrigadeId, CameraId, IncidentId};
use centinela_core::incident::{Actor, Incident, Resolution};
use centinela_core::time::Timestamp;
use centinela_store::{Compare, Fence, Kv, Revision};
use centinela_telemetry::metrics;
use opentelemetry::KeyValue;

use crate::cas::{Commit, Freshness, KnownCommit, Read, chunks_under, known_compares};
use crate::error::{Error, Result};
use crate::record::{Record, encode, open_index_key, open_key};
use crate::{Records, limits};

/// An incident and the brigades changed with it in one transaction.
#[derive(Debug, Clone)]
pub struct IncidentUpdate {
    pub incident: Incident,
    pub brigades: Vec<Brigade>,
    /// The incident's camera as the same transaction released it (closing an incident
    /// releases its camera); `None` when the camera was not part of the change.
    pub camera: Option<Camera>,
    /// The store revision of the change.
    pub revision: Revision,
}

/// The records an incident change reads and may change besides the incident: brigades, and
/// the incident's camera (read by a close, which releases it).
#[derive(Clone, Copy)]
struct Involved<'a> {
    brigades: &'a [BrigadeId],
    camera: Option<&'a CameraId>,
}

/// A record as a watcher holds it: the value, and a store revision at which it was the
/// stored one (the revision of the watch event or snapshot that brought it, or of the
/// holder's own write).
#[derive(Debug, Clone)]
pub struct Known<T> {
    pub value: T,
    pub revision: Revision,
}

/// One change of [`Records::update_incidents_known`]: an incident and brigades as a watcher
/// holds them, and what to do to them (as [`Records::update_incident_with`]'s `change`).
pub struct KnownChange<F> {
    pub incident: Known<Incident>,
    pub brigades: Vec<Known<Brigade>>,
    pub change: F,
}

/// What a node holds of an open incident it is asked to close (the operators' feed, from its
/// watch): the incident, every brigade it names and its camera, each with a revision at which
/// it was the stored one ([`Records::close_incident_known`]).
#[derive(Debug, Clone)]
pub struct HeldClose {
    pub incident: Known<Incident>,
    /// The incident's units, in its order.
    pub brigades: Vec<Known<Brigade>>,
    pub camera: Known<Camera>,
}

/// One close of [`Records::close_incidents_known`]: the copies held, and the close.
#[derive(Debug, Clone)]
pub struct Close {
    pub held: HeldClose,
    pub resolution: Resolution,
    pub actor: Actor,
    pub now: Timestamp,
}

/// A close applied to its held copies: its guards, its writes and the result.
struct PreparedClose {
    guards: Vec<(String, Revision)>,
    /// The button's open pointer, and the value (the incident's id) it must still hold.
    pointer: (String, Vec<u8>),
    writes: Vec<(String, Option<Vec<u8>>)>,
    /// The result, its revision set once committed.
    update: IncidentUpdate,
}

impl PreparedClose {
    /// Every key the close compares or writes.
    fn keys(&self) -> impl Iterator<Item = &String> {
        self.guards
            .iter()
            .map(|(key, _)| key)
            .chain(self.writes.iter().map(|(key, _)| key))
    }

    /// Whether every guard holds on `stored` (the keys a failed transaction read back).
    fn holds(&self, stored: &BTreeMap<String, Option<Kv>>) -> bool {
        let current = |key: &String| stored.get(key).and_then(Option::as_ref);
        self.guards
            .iter()
            .all(|(key, revision)| current(key).is_some_and(|kv| kv.mod_revision <= *revision))
            && current(&self.pointer.0).is_some_and(|kv| kv.value == self.pointer.1)
    }
}

/// A change of a batch applied to its held copies: its guards, its writes and the result.
struct PreparedChange {
    guards: Vec<(String, Revision)>,
    writes: Vec<(String, Option<Vec<u8>>)>,
    incident: Incident,
    brigades: Vec<Brigade>,
}

/// How one change of a batch's chunk ended.
enum ChunkOutcome {
    Done(Box<IncidentUpdate>),
    /// Its copies moved (or the store failed the attempt): it continues alone, from a read.
    Alone,
    Failed(Error),
}

impl Records {
    /// [`Records::update_incident_with`] starting from copies the caller already holds from a
    /// watch (the dispatcher): the first attempt commits without reading, guarded on each
    /// copy still being the stored one ([`Records::commit_known`]). A conflict, a refusal or
    /// "nothing to change" on those copies (which may be outdated), or a change that closes
    /// the incident (it needs the open pointer, which the caller does not hold), continues as
    /// [`Records::update_incident_with`] does, from a read.
    pub async fn update_incident_known(
        &self,
        incident: &Known<Incident>,
        brigades: &[Known<Brigade>],
        fence: Option<&Fence>,
        mut change: impl FnMut(&mut Incident, &mut [Brigade]) -> Result<()>,
    ) -> Result<IncidentUpdate> {
        match self
            .apply_known_change(incident, brigades, fence, &mut change)
            .await
        {
            Ok(Some(update)) => return Ok(update),
            Err(e @ (Error::Fenced | Error::Store { .. })) => return Err(e),
            Ok(None) | Err(_) => {}
        }
        let ids: Vec<BrigadeId> = brigades.iter().map(|b| b.value.id.clone()).collect();
        self.update_incident_with(&incident.value.id, &ids, fence, change)
            .await
    }

    /// One attempt on held copies; `Ok(None)` when the read path must decide.
    async fn apply_known_change(
        &self,
        known: &Known<Incident>,
        known_brigades: &[Known<Brigade>],
        fence: Option<&Fence>,
        change: &mut impl FnMut(&mut Incident, &mut [Brigade]) -> Result<()>,
    ) -> Result<Option<IncidentUpdate>> {
        let prepared = self.prepare_known_change(known, known_brigades, change)?;
        let Some(PreparedChange {
            guards,
            writes,
            incident,
            brigades,
        }) = prepared
        else {
            return Ok(None);
        };
        match self.commit_known(&guards, fence, writes).await? {
            Commit::Done(revision) => Ok(Some(IncidentUpdate {
                incident,
                brigades,
                camera: None,
                revision,
            })),
            Commit::Conflict => Ok(None),
        }
    }

    /// Several [`Records::update_incident_known`]s in **one** fenced transaction: a
    /// dispatcher's round of assignments. Each change is applied to its held copies, and every
    /// write goes in one transaction guarded on every copy still being the stored one and on
    /// `fence` (split only if the guards exceed etcd's `--max-txn-ops`:
    /// [`limits::KNOWN_BATCH_COMPARES_MAX`]). A conflict on one change fails no other: the
    /// failed transaction reads back every guarded key, so the changes whose copies moved are
    /// known without another read; those continue alone from a read
    /// ([`Records::update_incident_with`]), and the rest are committed again together, at
    /// most [`limits::KNOWN_BATCH_ATTEMPTS`] times. A change that names a record an earlier
    /// change of the batch names (etcd refuses a key twice in one transaction), or that the
    /// held copies cannot decide (a refusal or "nothing to change" on them, a close), goes
    /// alone from the start. A lost term fails every change not yet committed with
    /// [`Error::Fenced`]. Results come in the order of `changes`.
    pub async fn update_incidents_known<F>(
        &self,
        changes: Vec<KnownChange<F>>,
        fence: &Fence,
    ) -> Vec<Result<IncidentUpdate>>
    where
        F: FnMut(&mut Incident, &mut [Brigade]) -> Result<()>,
    {
        let count = changes.len();
        let mut results: Vec<Option<Result<IncidentUpdate>>> = (0..count).map(|_| None).collect();
        let mut items: Vec<KnownChange<F>> = Vec::with_capacity(count);
        let mut pending: Vec<(usize, PreparedChange)> = Vec::new();
        let mut alone: Vec<usize> = Vec::new();
        let mut named = std::collections::HashSet::new();
        for (index, mut item) in changes.into_iter().enumerate() {
            let keys: Vec<String> =
                std::iter::once(Incident::key_of(item.incident.value.id.as_str()))
                    .chain(
                        item.brigades
                            .iter()
                            .map(|b| Brigade::key_of(b.value.id.as_str())),
                    )
                    .collect();
            let disjoint = keys.iter().all(|key| !named.contains(key));
            named.extend(keys);
            let prepared = if disjoint {
                self.prepare_known_change(&item.incident, &item.brigades, &mut item.change)
            } else {
                Ok(None)
            };
            match prepared {
                Ok(Some(prepared)) => pending.push((index, prepared)),
                Ok(None) | Err(_) => alone.push(index),
            }
            items.push(item);
        }
        // Chunks under etcd's limit on compares (two a guarded key, one for the fence).
        let chunks = chunks_under(pending, limits::KNOWN_BATCH_COMPARES_MAX, |(_, p)| {
            2 * p.guards.len()
        });
        let committed = futures::future::join_all(
            chunks
                .into_iter()
                .map(|chunk| self.commit_known_chunk(chunk, fence)),
        )
        .await;
        let mut fenced = false;
        for (index, outcome) in committed.into_iter().flatten() {
            match outcome {
                ChunkOutcome::Done(update) => results[index] = Some(Ok(*update)),
                ChunkOutcome::Alone => alone.push(index),
                ChunkOutcome::Failed(e) => {
                    fenced |= matches!(e, Error::Fenced);
                    results[index] = Some(Err(e));
                }
            }
        }
        alone.sort_unstable();
        if fenced {
            for index in alone.drain(..) {
                results[index] = Some(Err(Error::Fenced));
            }
        }
        let mut by_index: std::collections::HashMap<usize, &mut KnownChange<F>> =
            items.iter_mut().enumerate().collect();
        let lone = alone.iter().filter_map(|index| {
            let item = by_index.remove(index)?;
            let ids: Vec<BrigadeId> = item.brigades.iter().map(|b| b.value.id.clone()).collect();
            let id = item.incident.value.id.clone();
            let change = &mut item.change;
            Some(async move {
                let result = self
                    .update_incident_with(&id, &ids, Some(fence), |i, b| change(i, b))
                    .await;
                (*index, result)
            })
        });
        for (index, result) in futures::future::join_all(lone).await {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::unexpected("a batched change got no outcome"))))
            .collect()
    }

    /// A change applied to held copies, ready to commit; `Ok(None)` when the read path must
    /// decide (as [`Records::apply_known_change`]).
    fn prepare_known_change(
        &self,
        known: &Known<Incident>,
        known_brigades: &[Known<Brigade>],
        change: &mut impl FnMut(&mut Incident, &mut [Brigade]) -> Result<()>,
    ) -> Result<Option<PreparedChange>> {
        let original = &known.value;
        let originals: Vec<Brigade> = known_brigades.iter().map(|b| b.value.clone()).collect();
        let mut incident = original.clone();
        let mut brigades = originals.clone();
        change(&mut incident, &mut brigades)?;
        if original.is_open() && !incident.is_open() {
            return Ok(None);
        }
        let incident_key = Incident::key_of(incident.id.as_str());
        let mut guards = vec![(incident_key.clone(), known.revision)];
        let mut writes = Vec::new();
        if incident != *original {
            incident.seal(Some(original), self.audit_key());
            writes.push((incident_key, Some(encode(&incident))));
        }
        for ((brigade, before), held) in brigades.iter().zip(&originals).zip(known_brigades) {
            let key = Brigade::key_of(brigade.id.as_str());
            guards.push((key.clone(), held.revision));
            if brigade != before {
                writes.push((key, Some(encode(brigade))));
            }
        }
        if writes.is_empty() {
            return Ok(None);
        }
        Ok(Some(PreparedChange {
            guards,
            writes,
            incident,
            brigades,
        }))
    }

    /// Commits one chunk of [`Records::update_incidents_known`]: all together while their
    /// guards hold; the changes a conflict is traced to go alone.
    async fn commit_known_chunk(
        &self,
        chunk: Vec<(usize, PreparedChange)>,
        fence: &Fence,
    ) -> Vec<(usize, ChunkOutcome)> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut pending = chunk;
        for _ in 0..limits::KNOWN_BATCH_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let guards: Vec<(String, Revision)> = pending
                .iter()
                .flat_map(|(_, p)| p.guards.iter().cloned())
                .collect();
            let writes = pending
                .iter()
                .flat_map(|(_, p)| p.writes.iter().cloned())
                .collect();
            match self.commit_known_traced(&guards, fence, writes).await {
                Ok(KnownCommit::Done(revision)) => {
                    out.extend(pending.drain(..).map(|(index, p)| {
                        let update = IncidentUpdate {
                            incident: p.incident,
                            brigades: p.brigades,
                            camera: None,
                            revision,
                        };
                        (index, ChunkOutcome::Done(Box::new(update)))
                    }));
                }
                Ok(KnownCommit::Conflict(stored)) => {
                    let holds = |p: &PreparedChange| {
                        p.guards.iter().all(|(key, revision)| {
                            stored
                                .get(key)
                                .and_then(Option::as_ref)
                                .is_some_and(|kv| kv.mod_revision <= *revision)
                        })
                    };
                    let (keep, moved): (Vec<_>, Vec<_>) =
                        pending.into_iter().partition(|(_, p)| holds(p));
                    out.extend(
                        moved
                            .into_iter()
                            .map(|(index, _)| (index, ChunkOutcome::Alone)),
                    );
                    pending = keep;
                }
                Err(e) => {
                    let fenced = matches!(e, Error::Fenced);
                    out.extend(pending.drain(..).map(|(index, _)| {
                        let outcome = if fenced {
                            ChunkOutcome::Failed(Error::Fenced)
                        } else {
                            // The store failed this attempt: each alone, with its own retries.
                            ChunkOutcome::Alone
                        };
                        (index, outcome)
                    }));
                }
            }
        }
        out.extend(
            pending
                .into_iter()
                .map(|(index, _)| (index, ChunkOutcome::Alone)),
        );
        out
    }

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
            let read = self.read_incident_with(incident_id, brigades, None, freshness);
            let applied = match read.await {
                Ok(read) => {
                    self.apply_incident_change(
                        &read,
                        freshness,
                        incident_id,
                        Involved {
                            brigades,
                            camera: None,
                        },
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

    /// Closes an incident with `resolution` and releases every brigade attached to it and its
    /// camera (when still aimed at it), in one transaction.
    pub async fn close_incident(
        &self,
        incident_id: &IncidentId,
        resolution: Resolution,
        actor: Actor,
        now: Timestamp,
    ) -> Result<IncidentUpdate> {
        self.close_incident_hinted(incident_id, None, resolution, actor, now)
            .await
    }

    /// [`Records::close_incident`] from copies the caller holds ([`HeldClose`]: the node's
    /// feed): one transaction and no read, guarded on each copy still being the stored one and
    /// on the button's open pointer still naming the incident. Whatever the copies cannot
    /// decide (a guard that fails, a close or release they refuse, units or a camera that are
    /// not the incident's) is decided again from a read ([`Records::close_incident_hinted`]),
    /// so a stale copy costs a retry, never a wrong close.
    pub async fn close_incident_known(
        &self,
        held: &HeldClose,
        resolution: Resolution,
        actor: Actor,
        now: Timestamp,
    ) -> Result<IncidentUpdate> {
        let close = Close {
            held: held.clone(),
            resolution,
            actor,
            now,
        };
        self.close_incidents_known(vec![close])
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::unexpected("a close got no outcome")))
    }

    /// Several [`Records::close_incident_known`]s in **one** transaction (a node's closes
    /// gathered by its committer), each exactly as on its own: each close's copies and its
    /// button's open pointer guard its writes. A conflict on one close fails no other: the
    /// failed transaction reads back every guarded key, the closes whose copies moved continue
    /// alone from a read, and the rest are committed again together, at most
    /// [`limits::KNOWN_BATCH_ATTEMPTS`] times. A close that names a record an earlier close of
    /// the batch names (etcd refuses a key twice in one transaction) goes alone. Results come
    /// in the order of `closes`.
    pub async fn close_incidents_known(&self, closes: Vec<Close>) -> Vec<Result<IncidentUpdate>> {
        let count = closes.len();
        let mut results: Vec<Option<Result<IncidentUpdate>>> = (0..count).map(|_| None).collect();
        let mut pending: Vec<(usize, PreparedClose)> = Vec::new();
        let mut alone: Vec<usize> = Vec::new();
        let mut named = std::collections::HashSet::new();
        for (index, close) in closes.iter().enumerate() {
            match self.prepare_close(close) {
                Some(prepared) if prepared.keys().all(|key| !named.contains(key)) => {
                    named.extend(prepared.keys().cloned());
                    pending.push((index, prepared));
                }
                _ => alone.push(index),
            }
        }
        // Chunks under etcd's limit on compares (two a guarded key, one for the pointer).
        let chunks = chunks_under(pending, limits::KNOWN_BATCH_COMPARES_MAX, |(_, p)| {
            2 * p.guards.len() + 1
        });
        let committed =
            futures::future::join_all(chunks.into_iter().map(|chunk| self.commit_closes(chunk)))
                .await;
        for (index, outcome) in committed.into_iter().flatten() {
            match outcome {
                Some(update) => {
                    count_closed(&update, closes[index].resolution);
                    results[index] = Some(Ok(update));
                }
                None => alone.push(index),
            }
        }
        let lone = alone.into_iter().map(|index| {
            let Close {
                held,
                resolution,
                actor,
                now,
            } = &closes[index];
            let incident = &held.incident.value;
            async move {
                let result = self
                    .close_incident_hinted(
                        &incident.id,
                        Some(incident),
                        *resolution,
                        actor.clone(),
                        *now,
                    )
                    .await;
                (index, result)
            }
        });
        for (index, result) in futures::future::join_all(lone).await {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::unexpected("a batched close got no outcome"))))
            .collect()
    }

    /// A close applied to its held copies, ready to commit; `None` when a read must decide.
    fn prepare_close(&self, close: &Close) -> Option<PreparedClose> {
        let Close {
            held,
            resolution,
            actor,
            now,
        } = close;
        let now = *now;
        let original = &held.incident.value;
        let units = held.brigades.iter().map(|b| &b.value.id);
        if !original.is_open()
            || !units.eq(original.units.iter())
            || held.camera.value.id != original.camera
        {
            return None;
        }
        let mut incident = original.clone();
        incident.close(*resolution, actor.clone(), now).ok()?;
        incident.seal(Some(original), self.audit_key());
        let incident_key = Incident::key_of(incident.id.as_str());
        let mut guards = vec![(incident_key.clone(), held.incident.revision)];
        let mut writes = vec![(incident_key, Some(encode(&incident)))];
        let mut brigades = Vec::with_capacity(held.brigades.len());
        for known in &held.brigades {
            let key = Brigade::key_of(known.value.id.as_str());
            guards.push((key.clone(), known.revision));
            let mut brigade = known.value.clone();
            if brigade.incident.as_ref() == Some(&incident.id) {
                brigade.release(now).ok()?;
                writes.push((key, Some(encode(&brigade))));
            }
            brigades.push(brigade);
        }
        // The camera is released if still aimed here, as on the read path; guarded either way,
        // since its copy decided.
        let camera_key = Camera::key_of(held.camera.value.id.as_str());
        guards.push((camera_key.clone(), held.camera.revision));
        let stored = &held.camera.value;
        let camera = (stored.target.as_ref() == Some(&incident.id)).then(|| {
            let mut released = stored.clone();
            released.release(incident.closed_at.unwrap_or(stored.state_since));
            released.seal(Some(stored), self.audit_key());
            writes.push((camera_key, Some(encode(&released))));
            released
        });
        writes.push((open_index_key(incident.id.as_str()), None));
        // The button's open pointer is not watched, so it is not held: the write removes it
        // guarded on its value naming this incident. A pointer that names another incident
        // (a press after the debounce window opened a new one) fails the guard, and the read
        // path leaves it alone.
        let pointer = (
            open_key(incident.button.as_str()),
            incident.id.as_str().as_bytes().to_vec(),
        );
        writes.push((pointer.0.clone(), None));
        Some(PreparedClose {
            guards,
            pointer,
            writes,
            update: IncidentUpdate {
                incident,
                brigades,
                camera,
                revision: 0,
            },
        })
    }

    /// Commits one chunk of [`Records::close_incidents_known`]: all together while their
    /// guards hold; `None` for the closes a conflict is traced to (or all, when the store
    /// fails the attempt), which go alone.
    async fn commit_closes(
        &self,
        chunk: Vec<(usize, PreparedClose)>,
    ) -> Vec<(usize, Option<IncidentUpdate>)> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut pending = chunk;
        for _ in 0..limits::KNOWN_BATCH_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let mut compares = Vec::new();
            let mut writes = Vec::new();
            let mut keys = Vec::new();
            for (_, p) in &pending {
                compares.extend(known_compares(&p.guards));
                compares.push(Compare::value(p.pointer.0.clone()).equal(&p.pointer.1));
                writes.extend(p.writes.iter().cloned());
                keys.extend(p.guards.iter().map(|(key, _)| key.clone()));
                keys.push(p.pointer.0.clone());
            }
            match self.commit_or_read_back(compares, writes, &keys).await {
                Ok(KnownCommit::Done(revision)) => {
                    out.extend(pending.drain(..).map(|(index, p)| {
                        let mut update = p.update;
                        update.revision = revision;
                        (index, Some(update))
                    }));
                }
                Ok(KnownCommit::Conflict(stored)) => {
                    let (keep, moved): (Vec<_>, Vec<_>) =
                        pending.into_iter().partition(|(_, p)| p.holds(&stored));
                    out.extend(moved.into_iter().map(|(index, _)| (index, None)));
                    pending = keep;
                }
                Err(_) => break,
            }
        }
        out.extend(pending.into_iter().map(|(index, _)| (index, None)));
        out
    }

    /// [`Records::close_incident`] with a copy of the incident the caller holds (the node's
    /// feed, from its watch): its units and camera name the keys to read, so the first
    /// attempt skips reading the incident alone first. The copy only chooses what to read: the
    /// read is current and the write guarded on it, and a copy whose units or camera are not
    /// the stored ones costs a retry from a read, never a wrong close.
    pub async fn close_incident_hinted(
        &self,
        incident_id: &IncidentId,
        mut hint: Option<&Incident>,
        resolution: Resolution,
        actor: Actor,
        now: Timestamp,
    ) -> Result<IncidentUpdate> {
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let held = hint.take().filter(|h| h.id == *incident_id);
            let hinted = held.is_some();
            let (units, camera) = match held {
                Some(held) => (held.units.clone(), held.camera.clone()),
                None => {
                    let current =
                        self.incident(incident_id)
                            .await?
                            .ok_or_else(|| Error::NotFound {
                                kind: Incident::KIND,
                                id: incident_id.to_string(),
                            })?;
                    (current.units, current.camera)
                }
            };
            // With a held copy the first read may be stale (served by the nearest member, not
            // through the raft leader): the write is guarded on what it read, and whatever it
            // leads to, error or conflict, is decided again from a current read.
            let freshness = if hinted {
                Freshness::MaybeStale
            } else {
                Freshness::Current
            };
            let read = match self
                .read_incident_with(incident_id, &units, Some(&camera), freshness)
                .await
            {
                Ok(read) => read,
                // Whatever a held copy led to is decided again from a read.
                Err(_) if hinted => continue,
                Err(e) => return Err(e),
            };
            let mut change = |incident: &mut Incident, brigades: &mut [Brigade]| {
                if incident.units != units || incident.camera != camera {
                    // Units (or the camera) changed since they were chosen: recompute.
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
                    freshness,
                    incident_id,
                    Involved {
                        brigades: &units,
                        camera: Some(&camera),
                    },
                    None,
                    &mut change,
                )
                .await
            {
                Ok(Some(update)) => {
                    count_closed(&update, resolution);
                    return Ok(update);
                }
                Ok(None) | Err(Error::Contention { .. }) => Self::backoff(attempt).await,
                Err(_) if hinted => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// Reads an incident, the named brigades, `camera` (if named) and the incident's button's
    /// open pointer.
    async fn read_incident_with(
        &self,
        incident_id: &IncidentId,
        brigades: &[BrigadeId],
        camera: Option<&CameraId>,
        freshness: Freshness,
    ) -> Result<Read> {
        // The open pointer's key depends on the incident's button. Ids we make start with it
        // (`IncidentId::for_press`), so it is read in the same round trip under the button the
        // id names; if the incident says otherwise, everything is read again with the right one.
        let mut keys = vec![Incident::key_of(incident_id.as_str())];
        keys.extend(brigades.iter().map(|b| Brigade::key_of(b.as_str())));
        keys.extend(camera.map(|c| Camera::key_of(c.as_str())));
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
        Involved {
            brigades: brigade_ids,
            camera: camera_id,
        }: Involved<'_>,
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
        // Closing releases the camera (read with the incident, so guarded) if it is still
        // aimed at this incident: no separate write after the close.
        let mut camera = None;
        if let Some(camera_id) = camera_id
            && original.is_open()
            && !incident.is_open()
        {
            let key = Camera::key_of(camera_id.as_str());
            if let Some(stored) = read.decode::<Camera>(&key)?
                && stored.target.as_ref() == Some(&incident.id)
            {
                let mut released = stored.clone();
                released.release(incident.closed_at.unwrap_or(stored.state_since));
                released.seal(Some(&stored), self.audit_key());
                writes.push((key, Some(encode(&released))));
                camera = Some(released);
            }
        }
        if writes.is_empty() && fence.is_none() {
            if freshness.may_be_stale() {
                return Ok(None);
            }
            return Ok(Some(IncidentUpdate {
                incident,
                brigades,
                camera,
                revision: read.revision(),
            }));
        }
        match self.commit(read, fence, writes).await? {
            Commit::Done(revision) => Ok(Some(IncidentUpdate {
                incident,
                brigades,
                camera,
                revision,
            })),
            Commit::Conflict => Ok(None),
        }
    }
}

fn count_closed(update: &IncidentUpdate, resolution: Resolution) {
    metrics::instruments().incidents_closed.add(
        1,
        &[
            KeyValue::new("kind", update.incident.kind.to_string()),
            KeyValue::new("resolution", resolution_name(resolution)),
        ],
    );
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
    use centinela_core::incident::{Incident, IncidentKind};

    use crate::testing::{NOW, button_id, lima};

    /// A press aims the button's camera in its own write, and closing the incident releases
    /// it in the close's: no camera write of its own on either side.
    #[tokio::test]
    async fn the_camera_is_aimed_by_the_press_and_released_by_the_close() {
        use centinela_core::camera::{Camera, CameraState};
        use centinela_core::incident::{Actor, Resolution};

        let (_embedded, records) = lima().await;
        let button = records.button(&button_id("B01")).await.unwrap().unwrap();
        let camera = |records: crate::Records| {
            let id = button.camera.clone();
            async move { records.camera(&id).await.unwrap().unwrap() }
        };
        let before = records.revision().await.unwrap();
        let press = PressId::new("p-1").unwrap();
        let outcome = records
            .press(&button, &press, NOW, Duration::from_secs(60), None)
            .await
            .unwrap();
        assert_eq!(records.revision().await.unwrap(), before + 1, "one write");
        let aimed: Camera = camera(records.clone()).await;
        assert_eq!(aimed.target.as_ref(), Some(&outcome.incident.id));
        assert_eq!(aimed.state, CameraState::Aiming);
        assert!(
            aimed
                .bookmarks
                .iter()
                .any(|b| b.incident == outcome.incident.id)
        );
        assert_eq!(
            outcome.camera.as_ref(),
            Some(&aimed),
            "the actor is told the camera written"
        );

        let before = records.revision().await.unwrap();
        let update = records
            .close_incident(
                &outcome.incident.id,
                Resolution::Handled,
                Actor::System,
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(records.revision().await.unwrap(), before + 1, "one write");
        let released: Camera = camera(records.clone()).await;
        assert_eq!(released.target, None);
        assert_eq!(released.state, CameraState::Idle);
        assert_eq!(update.camera.as_ref(), Some(&released));

        // A camera aimed elsewhere since is left alone by the close.
        let second = records
            .press(
                &button,
                &PressId::new("p-2").unwrap(),
                NOW,
                Duration::from_secs(60),
                None,
            )
            .await
            .unwrap();
        let other = centinela_core::ids::IncidentId::new("elsewhere").unwrap();
        records
            .update_camera(&button.camera, |c| {
                c.aim(other.clone(), NOW);
                Ok(())
            })
            .await
            .unwrap();
        let update = records
            .close_incident(&second.incident.id, Resolution::Handled, Actor::System, NOW)
            .await
            .unwrap();
        assert!(update.camera.is_none());
        let kept: Camera = camera(records.clone()).await;
        assert_eq!(kept.target.as_ref(), Some(&other));
    }

    /// The dispatcher's path: commit from held copies, guarded on them still being stored.
    #[tokio::test]
    async fn an_update_from_held_copies_commits_unless_they_changed() {
        use super::Known;
        use centinela_core::brigade::Brigade;
        use centinela_core::incident::Actor;

        let (_embedded, records) = lima().await;
        let button = records.button(&button_id("B01")).await.unwrap().unwrap();
        let opened = records
            .press(
                &button,
                &PressId::new("p-1").unwrap(),
                NOW,
                Duration::from_secs(60),
                None,
            )
            .await
            .unwrap();
        let id = opened.incident.id.clone();
        let (brigades, _) = records.snapshot::<Brigade>().await.unwrap();
        let mut free = Vec::new();
        for brigade in brigades.iter().take(2) {
            // Seeded offline (no terminal yet): their terminals come online.
            let online = records
                .update::<Brigade>(brigade.id.as_str(), |b| {
                    if !b.is_available() {
                        b.come_online(NOW)?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
            assert!(online.is_available(), "{online:?}");
            free.push(online);
        }
        fn held<T>((value, revision): (T, i64)) -> Known<T> {
            Known { value, revision }
        }
        let assign = |incident: &mut Incident, brigades: &mut [Brigade]| {
            brigades[0].dispatch(incident.id.clone(), NOW)?;
            incident.assign(brigades[0].id.clone(), Actor::Dispatcher { term: 1 }, NOW)?;
            Ok(())
        };

        // Copies current: committed as they are.
        let incident = held(records.incident_at(&id).await.unwrap().unwrap());
        let first = held(records.brigade_at(&free[0].id).await.unwrap().unwrap());
        let update = records
            .update_incident_known(&incident, std::slice::from_ref(&first), None, assign)
            .await
            .unwrap();
        assert_eq!(update.incident.units, vec![free[0].id.clone()]);
        let stored = records.incident(&id).await.unwrap().unwrap();
        assert_eq!(
            stored, update.incident,
            "the stored record is the one returned"
        );
        let verdict = stored.verify_audit(Some(records.audit_key()));
        assert!(
            verdict.first_break.is_none() && verdict.seal_checked,
            "sealed: {verdict:?}"
        );

        // The incident held is now outdated (the update above, then an operator's
        // classification): the guard refuses the copy, and the change is made on the stored
        // record, keeping both earlier writes.
        records
            .update_incident(&id, |i| {
                i.kind = IncidentKind::Robbery;
                Ok(())
            })
            .await
            .unwrap();
        let second = held(records.brigade_at(&free[1].id).await.unwrap().unwrap());
        let update = records
            .update_incident_known(&incident, std::slice::from_ref(&second), None, assign)
            .await
            .unwrap();
        let stored = records.incident(&id).await.unwrap().unwrap();
        assert_eq!(stored, update.incident);
        assert_eq!(
            stored.kind,
            IncidentKind::Robbery,
            "the classification stays"
        );
        assert_eq!(
            stored.units,
            vec![free[0].id.clone(), free[1].id.clone()],
            "the first assignment stays"
        );
    }

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
