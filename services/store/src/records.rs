//! Typed records: Centinela's entities in the store, and the transactions that change them.
//!
//! # Key layout (under [`ROOT`](crate::keys::ROOT))
//! ```text
//! buttons/{button}              Button (JSON)
//! cameras/{camera}              Camera
//! brigades/{brigade}            Brigade
//! incidents/{incident}          Incident, its audit trail included
//! presses/{button}/{press_id}   incident id: makes a retried press idempotent
//! open/{button}                 incident id of the button's open incident (debounce merging)
//! ```
//! Values are JSON so `etcdctl get --prefix /centinela/` is readable during an incident.
//!
//! # Transactions
//! Every change is optimistic: read the keys involved (one read-only transaction, so they are
//! a consistent snapshot), apply a domain transition in memory, then commit with a
//! compare-and-swap on each key's `mod_revision` — plus, for the dispatcher, the leader's
//! [`Fence`]. A conflicting writer makes the commit fail; the change is recomputed from fresh
//! state, up to [`limits::CAS_ATTEMPTS_MAX`] times. Domain refusals (an illegal transition) are
//! returned as they are and never retried.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::ids::{BrigadeId, ButtonId, IncidentId, PressId};
use centinela_core::incident::{self, Actor, Incident, Resolution};
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_core::{brigade, camera};

use centinela_telemetry::metrics;
use opentelemetry::KeyValue;

use crate::client::{Compare, Kv, OpResponse, Revision, Store, Txn, TxnOp};
use crate::election::Fence;
use crate::keys::ROOT;
use crate::limits;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },
    /// A domain rule refused the change (an illegal transition, say).
    #[error("{0}")]
    Refused(String),
    /// The request itself is invalid (too long a field, say).
    #[error("{0}")]
    Invalid(String),
    /// The dispatcher's term no longer holds: another node leads now.
    #[error("leadership lost: this node's dispatcher term no longer holds")]
    Fenced,
    /// Concurrent writers kept winning; the change was not applied.
    #[error("too much contention on the store: gave up after {attempts} attempts")]
    Contention { attempts: usize },
    #[error("store: {message}")]
    Store { message: String, retryable: bool },
    #[error("corrupt record at {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Contention { .. }
                | Error::Fenced
                | Error::Store {
                    retryable: true,
                    ..
                }
        )
    }

    /// The store's history no longer reaches the requested revision.
    pub fn is_compacted(&self) -> bool {
        matches!(self, Error::Store { message, .. } if message.contains("compacted"))
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Store {
            retryable: e.is_retryable(),
            message: e.to_string(),
        }
    }
}

impl From<incident::Error> for Error {
    fn from(e: incident::Error) -> Self {
        match e {
            incident::Error::CallerFieldTooLong { .. } => Error::Invalid(e.to_string()),
            _ => Error::Refused(e.to_string()),
        }
    }
}

impl From<brigade::Error> for Error {
    fn from(e: brigade::Error) -> Self {
        Error::Refused(e.to_string())
    }
}

impl From<camera::Error> for Error {
    fn from(e: camera::Error) -> Self {
        Error::Refused(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An entity stored as one JSON value under `{ROOT}{PREFIX}{id}`.
pub trait Record: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static {
    const KIND: &'static str;
    /// Below [`ROOT`], with a trailing slash.
    const PREFIX: &'static str;
    fn record_id(&self) -> &str;

    fn key_of(id: &str) -> String {
        format!("{ROOT}{}{id}", Self::PREFIX)
    }
    fn prefix() -> String {
        format!("{ROOT}{}", Self::PREFIX)
    }
}

impl Record for Button {
    const KIND: &'static str = "button";
    const PREFIX: &'static str = "buttons/";
    fn record_id(&self) -> &str {
        self.id.as_str()
    }
}

impl Record for Camera {
    const KIND: &'static str = "camera";
    const PREFIX: &'static str = "cameras/";
    fn record_id(&self) -> &str {
        self.id.as_str()
    }
}

impl Record for Brigade {
    const KIND: &'static str = "brigade";
    const PREFIX: &'static str = "brigades/";
    fn record_id(&self) -> &str {
        self.id.as_str()
    }
}

impl Record for Incident {
    const KIND: &'static str = "incident";
    const PREFIX: &'static str = "incidents/";
    fn record_id(&self) -> &str {
        self.id.as_str()
    }
}

fn press_key(button: &ButtonId, press: &PressId) -> String {
    format!("{ROOT}presses/{button}/{press}")
}

fn open_key(button: &ButtonId) -> String {
    format!("{ROOT}open/{button}")
}

/// A change seen by a watch.
#[derive(Debug, Clone)]
pub enum Change<T> {
    Put { value: T, revision: Revision },
    Deleted { id: String, revision: Revision },
}

/// A change seen by [`Records::watch_incidents_and_brigades`].
#[derive(Debug, Clone)]
pub enum DispatchChange {
    /// Boxed: an incident, with its audit trail, is several times a brigade's size.
    Incident(Box<Change<Incident>>),
    Brigade(Change<Brigade>),
}

impl DispatchChange {
    /// The store revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            DispatchChange::Incident(change) => change.revision(),
            DispatchChange::Brigade(change) => change.revision(),
        }
    }
}

impl<T> Change<T> {
    /// The store revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            Change::Put { revision, .. } | Change::Deleted { revision, .. } => *revision,
        }
    }
}

/// A watch event on a key under `prefix` as a typed change.
fn change_of<T: DeserializeOwned>(
    event: crate::client::WatchEvent,
    prefix: &str,
) -> Result<Change<T>> {
    match event.kind {
        crate::client::EventKind::Put => Ok(Change::Put {
            value: decode(&event.kv)?,
            revision: event.revision,
        }),
        crate::client::EventKind::Delete => Ok(Change::Deleted {
            id: event
                .kv
                .key
                .strip_prefix(prefix)
                .unwrap_or(&event.kv.key)
                .to_string(),
            revision: event.revision,
        }),
    }
}

/// What a press did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PressOutcome {
    pub incident: Incident,
    /// The press joined an open incident, or repeated a known press id.
    pub duplicate: bool,
}

/// An incident and the brigades changed with it in one transaction.
#[derive(Debug, Clone)]
pub struct IncidentUpdate {
    pub incident: Incident,
    pub brigades: Vec<Brigade>,
    /// The store revision of the change.
    pub revision: Revision,
}

/// What seeding a scenario did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub created: usize,
    pub existing: usize,
}

/// Keys read for a transaction, with what they held.
struct Read {
    kvs: BTreeMap<String, Option<Kv>>,
}

impl Read {
    fn kv(&self, key: &str) -> Option<&Kv> {
        self.kvs.get(key).and_then(Option::as_ref)
    }

    fn decode<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.kv(key).map(|kv| decode(kv)).transpose()
    }

    /// Compare-and-swap guards: each key still at the revision read (0: still absent).
    fn guards(&self) -> impl Iterator<Item = Compare> + '_ {
        self.kvs.iter().map(|(key, kv)| {
            Compare::mod_revision(key.clone()).equal(kv.as_ref().map_or(0, |kv| kv.mod_revision))
        })
    }
}

fn decode<T: DeserializeOwned>(kv: &Kv) -> Result<T> {
    serde_json::from_slice(&kv.value).map_err(|e| Error::Corrupt {
        key: kv.key.clone(),
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("domain records always serialize")
}

enum Commit {
    Done(Revision),
    Conflict,
}

/// How current a compare-and-swap's read must be.
///
/// The first attempt reads serializably ([`Txn::serializable`]): on etcd, the member the
/// client talks to answers from its own copy, without a ReadIndex round through the leader
/// and a quorum, which across two sites is a round trip between sites off the press's path
/// (docs/benchmarks.md, "Serializable pre-reads"). That copy may lag. The write
/// is guarded on the revisions read, so a stale read costs a conflict and a retry, never a
/// wrong write; but a conclusion drawn *without* writing must be checked on a current read
/// before it is returned, and later attempts (after a conflict) read current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Freshness {
    /// Linearizable: the latest committed state.
    Current,
    /// Serializable: possibly stale.
    MaybeStale,
}

impl Freshness {
    fn for_attempt(attempt: usize) -> Self {
        if attempt == 0 {
            Freshness::MaybeStale
        } else {
            Freshness::Current
        }
    }

    fn may_be_stale(self) -> bool {
        self == Freshness::MaybeStale
    }

    fn apply(self, txn: Txn) -> Txn {
        match self {
            Freshness::Current => txn,
            Freshness::MaybeStale => txn.serializable(),
        }
    }
}

/// Typed access to Centinela's records; cheap to clone.
#[derive(Clone, Debug)]
pub struct Records {
    store: Store,
    /// A bug planted on purpose (simulation tests prove their invariants catch it); never set
    /// outside them.
    planted: Option<PlantedBug>,
}

/// A deliberate bug, switched on only by the simulation's tests (`centinela-sim`), which
/// assert that their invariant checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Dispatcher writes are committed without the fence compare: a deposed leader's
    /// assignments land after its successor's.
    UnfencedDispatch,
    /// A press is acknowledged whether or not the write that records it committed (a commit
    /// that failed or conflicted counts as done): the acknowledgement runs ahead of the durable
    /// write, and a press whose write was lost is acknowledged anyway.
    AckBeforeDurable,
}

impl Records {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            planted: None,
        }
    }

    /// The same records with `bug` planted (simulation tests only; see [`PlantedBug`]).
    pub fn with_planted_bug(mut self, bug: Option<PlantedBug>) -> Self {
        self.planted = bug;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store's current revision.
    pub async fn revision(&self) -> Result<Revision> {
        Ok(self.store.status().await?.revision)
    }

    // ---- reads -------------------------------------------------------------------------

    pub async fn get<T: Record>(&self, id: &str) -> Result<Option<T>> {
        match self.store.get(&T::key_of(id)).await? {
            Some(kv) => decode(&kv).map(Some),
            None => Ok(None),
        }
    }

    pub async fn button(&self, id: &ButtonId) -> Result<Option<Button>> {
        self.get(id.as_str()).await
    }

    pub async fn camera(&self, id: &centinela_core::ids::CameraId) -> Result<Option<Camera>> {
        self.get(id.as_str()).await
    }

    pub async fn brigade(&self, id: &BrigadeId) -> Result<Option<Brigade>> {
        self.get(id.as_str()).await
    }

    /// The button's open incident, if it has one (its `open/{button}` pointer).
    pub async fn open_incident_of(&self, button: &ButtonId) -> Result<Option<IncidentId>> {
        let Some(kv) = self.store.get(&open_key(button)).await? else {
            return Ok(None);
        };
        let corrupt = |reason: String| Error::Corrupt {
            key: kv.key.clone(),
            reason,
        };
        let id = std::str::from_utf8(&kv.value).map_err(|e| corrupt(e.to_string()))?;
        IncidentId::new(id)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    pub async fn incident(&self, id: &IncidentId) -> Result<Option<Incident>> {
        self.get(id.as_str()).await
    }

    /// A record with the revision of its last change.
    pub async fn get_at<T: Record>(&self, id: &str) -> Result<Option<(T, Revision)>> {
        match self.store.get(&T::key_of(id)).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    pub async fn incident_at(&self, id: &IncidentId) -> Result<Option<(Incident, Revision)>> {
        self.get_at(id.as_str()).await
    }

    pub async fn brigade_at(&self, id: &BrigadeId) -> Result<Option<(Brigade, Revision)>> {
        self.get_at(id.as_str()).await
    }

    /// Every record of a kind, and the revision they were read at.
    pub async fn snapshot<T: Record>(&self) -> Result<(Vec<T>, Revision)> {
        let (kvs, revision) = self.store.get_prefix(&T::prefix()).await?;
        let values = kvs.iter().map(decode).collect::<Result<Vec<T>>>()?;
        Ok((values, revision))
    }

    /// The ids of every record of kind `T`, in key order, without reading the records (a
    /// keys-only read: what the ownership reconciler needs to place entities).
    pub async fn ids<T: Record>(&self) -> Result<Vec<String>> {
        let prefix = T::prefix();
        let (kvs, _) = self.store.get_prefix_keys(&prefix).await?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    pub async fn brigades_snapshot(&self) -> Result<(Vec<Brigade>, Revision)> {
        self.snapshot().await
    }

    pub async fn open_incidents_snapshot(&self) -> Result<(Vec<Incident>, Revision)> {
        let (mut incidents, revision) = self.snapshot::<Incident>().await?;
        incidents.retain(Incident::is_open);
        Ok((incidents, revision))
    }

    /// Incidents oldest first; closed ones too when asked.
    pub async fn incidents(&self, include_closed: bool) -> Result<Vec<Incident>> {
        let (mut incidents, _) = self.snapshot::<Incident>().await?;
        if !include_closed {
            incidents.retain(Incident::is_open);
        }
        incidents.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(incidents)
    }

    /// Changes to records of kind `T` from `from_revision` on. The stream ends after its first
    /// error; resume from the last revision seen + 1.
    pub async fn watch<T: Record>(
        &self,
        from_revision: Revision,
    ) -> Result<impl Stream<Item = Result<Change<T>>> + Send + Unpin + 'static> {
        let prefix = T::prefix();
        let stream = self
            .store
            .watch_prefix(&prefix, Some(from_revision))
            .await?;
        Ok(stream.map(move |event| change_of(event?, &prefix)))
    }

    /// Changes to incidents and brigades from `from_revision` on, on **one** watch: unlike two
    /// [`Records::watch`]es, which each keep their own order but not one against the other,
    /// this yields every change in store revision order across both kinds, with the changes of
    /// one revision (one transaction) consecutive. The dispatcher relies on it: a brigade freed
    /// at revision 12 must not be handed out before the classification written at revision 11
    /// is seen. Other records under the root are skipped. Ends after its first error, as
    /// [`Records::watch`].
    pub async fn watch_incidents_and_brigades(
        &self,
        from_revision: Revision,
    ) -> Result<impl Stream<Item = Result<DispatchChange>> + Send + Unpin + 'static> {
        let incidents = Incident::prefix();
        let brigades = Brigade::prefix();
        let stream = self.store.watch_prefix(ROOT, Some(from_revision)).await?;
        Ok(stream.filter_map(move |event| {
            let change = match event {
                Err(e) => Some(Err(e.into())),
                Ok(event) if event.kv.key.starts_with(&incidents) => Some(
                    change_of(event, &incidents).map(|c| DispatchChange::Incident(Box::new(c))),
                ),
                Ok(event) if event.kv.key.starts_with(&brigades) => {
                    Some(change_of(event, &brigades).map(DispatchChange::Brigade))
                }
                Ok(_) => None,
            };
            futures::future::ready(change)
        }))
    }

    // ---- scenario ----------------------------------------------------------------------

    /// Writes the scenario's buttons, cameras and brigades that the store does not hold yet.
    /// Existing records are left alone: a restarted node must not reset live state.
    pub async fn seed(&self, scenario: &Scenario, now: Timestamp) -> Result<SeedReport> {
        let invalid = |e: centinela_core::scenario::Error| Error::Invalid(e.to_string());
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for button in scenario.buttons(now).map_err(invalid)? {
            entries.push((Button::key_of(button.record_id()), encode(&button)));
        }
        for camera in scenario.cameras(now).map_err(invalid)? {
            entries.push((Camera::key_of(camera.record_id()), encode(&camera)));
        }
        for brigade in scenario.brigades(now).map_err(invalid)? {
            entries.push((Brigade::key_of(brigade.record_id()), encode(&brigade)));
        }
        let mut report = SeedReport::default();
        for chunk in entries.chunks(limits::SEED_BATCH) {
            let txn = Txn::new()
                .when(
                    chunk
                        .iter()
                        .map(|(key, _)| Compare::create_revision(key.clone()).equal(0)),
                )
                .and_then(
                    chunk
                        .iter()
                        .map(|(key, value)| TxnOp::put(key.clone(), value.clone(), None)),
                );
            if self.store.txn(txn).await?.succeeded {
                report.created += chunk.len();
                continue;
            }
            // Some exist already: create the missing ones one by one.
            for (key, value) in chunk {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone()).equal(0)])
                    .and_then([TxnOp::put(key.clone(), value.clone(), None)]);
                if self.store.txn(txn).await?.succeeded {
                    report.created += 1;
                } else {
                    report.existing += 1;
                }
            }
        }
        Ok(report)
    }

    // ---- transaction machinery ---------------------------------------------------------

    /// Reads `keys` in one read-only transaction: a consistent snapshot, current unless
    /// `freshness` allows a stale one.
    async fn read(&self, keys: &[String], freshness: Freshness) -> Result<Read> {
        let txn = freshness.apply(Txn::new().and_then(keys.iter().map(|k| TxnOp::get(k.clone()))));
        let outcome = self.store.txn(txn).await?;
        let mut kvs = BTreeMap::new();
        for (key, response) in keys.iter().zip(outcome.responses) {
            let kv = match response {
                OpResponse::Get(mut found) => found.pop(),
                other => {
                    return Err(Error::Store {
                        message: format!("unexpected response to a read: {other:?}"),
                        retryable: false,
                    });
                }
            };
            kvs.insert(key.clone(), kv);
        }
        Ok(Read { kvs })
    }

    /// [`Records::read`] plus every key under `prefix`, in one transaction (one revision).
    async fn read_with_prefix(
        &self,
        keys: &[String],
        prefix: &str,
        freshness: Freshness,
    ) -> Result<(Read, Vec<Kv>)> {
        let ops = keys
            .iter()
            .map(|k| TxnOp::get(k.clone()))
            .chain(std::iter::once(TxnOp::get_prefix(prefix)));
        let outcome = self
            .store
            .txn(freshness.apply(Txn::new().and_then(ops)))
            .await?;
        let mut responses = outcome.responses.into_iter();
        let mut kvs = BTreeMap::new();
        let unexpected = |other: &OpResponse| Error::Store {
            message: format!("unexpected response to a read: {other:?}"),
            retryable: false,
        };
        for key in keys {
            match responses.next() {
                Some(OpResponse::Get(mut found)) => {
                    kvs.insert(key.clone(), found.pop());
                }
                Some(other) => return Err(unexpected(&other)),
                None => return Err(unexpected(&OpResponse::Put)),
            }
        }
        let listed = match responses.next() {
            Some(OpResponse::Get(found)) => found,
            Some(other) => return Err(unexpected(&other)),
            None => return Err(unexpected(&OpResponse::Put)),
        };
        Ok((Read { kvs }, listed))
    }

    /// Commits `writes` (`None` deletes) if every key read is unchanged and the fence holds.
    async fn commit(
        &self,
        read: &Read,
        fence: Option<&Fence>,
        writes: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Commit> {
        let fence = fence.filter(|_| self.planted != Some(PlantedBug::UnfencedDispatch));
        let mut compares: Vec<Compare> = read.guards().collect();
        if let Some(fence) = fence {
            compares.push(fence.compare());
        }
        let ops = writes.into_iter().map(|(key, value)| match value {
            Some(value) => TxnOp::put(key, value, None),
            None => TxnOp::delete(key),
        });
        let mut txn = Txn::new().when(compares).and_then(ops);
        if let Some(fence) = fence {
            // On failure, read the fence key to tell a lost term from a conflict.
            txn = txn.or_else([TxnOp::get(fence.key().to_string())]);
        }
        let started = std::time::Instant::now();
        let outcome = self.store.txn(txn).await;
        metrics::instruments()
            .store_txn
            .record(started.elapsed().as_secs_f64() * 1000.0, &[]);
        let outcome = outcome?;
        if outcome.succeeded {
            return Ok(Commit::Done(outcome.revision));
        }
        if let Some(fence) = fence {
            let holds = matches!(
                outcome.responses.first(),
                Some(OpResponse::Get(kvs))
                    if kvs.first().is_some_and(|kv| kv.create_revision == fence.term())
            );
            if !holds {
                return Err(Error::Fenced);
            }
        }
        Ok(Commit::Conflict)
    }

    /// Backoff between attempts of a conflicting transaction: short, growing, deterministic.
    async fn backoff(attempt: usize) {
        let millis = (1u64 << attempt.min(6)).min(50);
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }

    // ---- single-record updates ---------------------------------------------------------

    /// Applies `change` to one record with compare-and-swap; returns the stored result.
    pub async fn update<T: Record>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut T) -> Result<()>,
    ) -> Result<T> {
        let key = T::key_of(id);
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let freshness = Freshness::for_attempt(attempt);
            let read = self.read(std::slice::from_ref(&key), freshness).await?;
            // Every conclusion drawn without a write (no such record, a refused change, no
            // change needed) may be an artefact of a stale read: check it on a current one.
            let Some(original) = read.decode::<T>(&key)? else {
                if freshness.may_be_stale() {
                    continue;
                }
                return Err(Error::NotFound {
                    kind: T::KIND,
                    id: id.to_string(),
                });
            };
            let mut value = original.clone();
            match change(&mut value) {
                Err(_) if freshness.may_be_stale() => continue,
                refused => refused?,
            }
            if value == original {
                if freshness.may_be_stale() {
                    continue;
                }
                return Ok(value);
            }
            match self
                .commit(&read, None, vec![(key.clone(), Some(encode(&value)))])
                .await?
            {
                Commit::Done(_) => return Ok(value),
                Commit::Conflict => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// Applies `change` to several records of one kind in one read and one compare-and-swap
    /// commit: what a node's background bookkeeping uses (a wave of buttons going offline at
    /// once) so that it costs the store one transaction per batch, not one per record. At most
    /// [`limits::UPDATE_BATCH_MAX`] ids; ids with no record, and repeats, are skipped. Returns the stored
    /// result of each record found, in the order of `ids`.
    pub async fn update_many<T: Record>(
        &self,
        ids: &[String],
        mut change: impl FnMut(&mut T) -> Result<()>,
    ) -> Result<Vec<T>> {
        if ids.len() > limits::UPDATE_BATCH_MAX {
            return Err(Error::Invalid(format!(
                "{} {} records in one batch; at most {}",
                ids.len(),
                T::KIND,
                limits::UPDATE_BATCH_MAX
            )));
        }
        // A key twice in one transaction is refused by etcd ("duplicate key given in txn").
        let mut keys: Vec<String> = Vec::with_capacity(ids.len());
        for key in ids.iter().map(|id| T::key_of(id)) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        'attempts: for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let freshness = Freshness::for_attempt(attempt);
            let read = self.read(&keys, freshness).await?;
            let mut stored = Vec::with_capacity(keys.len());
            let mut writes = Vec::new();
            for key in &keys {
                // As in `update`: what is concluded without a write is checked on a current read.
                let Some(original) = read.decode::<T>(key)? else {
                    if freshness.may_be_stale() {
                        continue 'attempts;
                    }
                    continue;
                };
                let mut value = original.clone();
                match change(&mut value) {
                    Err(_) if freshness.may_be_stale() => continue 'attempts,
                    refused => refused?,
                }
                if value != original {
                    writes.push((key.clone(), Some(encode(&value))));
                }
                stored.push(value);
            }
            if writes.is_empty() {
                if freshness.may_be_stale() {
                    continue;
                }
                return Ok(stored);
            }
            match self.commit(&read, None, writes).await? {
                Commit::Done(_) => return Ok(stored),
                Commit::Conflict => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    pub async fn update_button(
        &self,
        id: &ButtonId,
        change: impl FnMut(&mut Button) -> Result<()>,
    ) -> Result<Button> {
        self.update(id.as_str(), change).await
    }

    pub async fn update_camera(
        &self,
        id: &centinela_core::ids::CameraId,
        change: impl FnMut(&mut Camera) -> Result<()>,
    ) -> Result<Camera> {
        self.update(id.as_str(), change).await
    }

    pub async fn update_brigade(
        &self,
        id: &BrigadeId,
        change: impl FnMut(&mut Brigade) -> Result<()>,
    ) -> Result<Brigade> {
        self.update(id.as_str(), change).await
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

    // ---- incident + brigades -----------------------------------------------------------

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
                    kind: "incident",
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

    async fn read_incident_with(
        &self,
        incident_id: &IncidentId,
        brigades: &[BrigadeId],
        freshness: Freshness,
    ) -> Result<Read> {
        // The open pointer's key depends on the incident's button. Ids we make start with it
        // (`incident_id_base`), so it is read in the same round trip under the button the id
        // names; if the incident says otherwise, everything is read again with the right one.
        let mut keys = vec![Incident::key_of(incident_id.as_str())];
        keys.extend(brigades.iter().map(|b| Brigade::key_of(b.as_str())));
        let guess = button_of_incident_id(incident_id.as_str());
        if let Some(button) = guess {
            keys.push(format!("{ROOT}open/{button}"));
        }
        let first = self.read(&keys, freshness).await?;
        let Some(incident) = first.decode::<Incident>(&keys[0])? else {
            return Err(Error::NotFound {
                kind: "incident",
                id: incident_id.to_string(),
            });
        };
        if guess == Some(incident.button.as_str()) {
            return Ok(first);
        }
        if guess.is_some() {
            keys.pop();
        }
        keys.push(open_key(&incident.button));
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
            kind: "incident",
            id: incident_id.to_string(),
        })?;
        let mut originals = Vec::with_capacity(brigade_ids.len());
        for id in brigade_ids {
            let brigade: Brigade =
                read.decode(&Brigade::key_of(id.as_str()))?
                    .ok_or_else(|| Error::NotFound {
                        kind: "brigade",
                        id: id.to_string(),
                    })?;
            originals.push(brigade);
        }
        let mut incident = original.clone();
        let mut brigades = originals.clone();
        change(&mut incident, &mut brigades)?;

        let mut writes = Vec::new();
        if incident != original {
            writes.push((incident_key, Some(encode(&incident))));
        }
        for (brigade, before) in brigades.iter().zip(&originals) {
            if brigade != before {
                writes.push((Brigade::key_of(brigade.id.as_str()), Some(encode(brigade))));
            }
        }
        let open = open_key(&incident.button);
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
            let revision = read
                .kvs
                .values()
                .flatten()
                .map(|kv| kv.mod_revision)
                .max()
                .unwrap_or_default();
            return Ok(Some(IncidentUpdate {
                incident,
                brigades,
                revision,
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

    // ---- the press ---------------------------------------------------------------------

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
        outcomes.pop().ok_or_else(|| Error::Store {
            message: "a press recorded no outcome".into(),
            retryable: false,
        })
    }

    /// Records several presses of `button` in **one** transaction, each exactly as
    /// [`Records::press`] would (a flood of presses costs one store write, not one per press):
    /// presses already recorded return their incident; the others open an incident (the first
    /// of them) or join the open one, and every one of them gets its `presses/` record, so
    /// each acknowledged press id keeps resolving to its incident. Outcomes come in the order
    /// of `press_ids`. At most [`limits::PRESS_BATCH_MAX`] presses.
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
        let open = open_key(&button.id);
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            // One round trip reads the press keys, the open pointer and the incident ids this
            // button already has in this second: a press that opens an incident (no open
            // pointer) needs nothing more before its write.
            let base = incident_id_base(&button.id, now);
            let mut keys = press_keys.clone();
            keys.push(open.clone());
            // A stale first read is safe here: every write below is guarded on what was read
            // (press keys absent, the open pointer and the open incident unchanged, the new id
            // absent), and the only conclusion drawn without a write, "already recorded",
            // holds for good once true (press keys are never removed).
            let freshness = Freshness::for_attempt(attempt);
            let (pointers, taken) = self
                .read_with_prefix(&keys, &Incident::key_of(&base), freshness)
                .await?;
            // Presses already recorded (retries), and the ones to record now.
            let mut recorded: BTreeMap<&PressId, IncidentId> = BTreeMap::new();
            let mut fresh: Vec<(&PressId, &String)> = Vec::new();
            for (id, key) in unique.iter().zip(&press_keys) {
                match pointers.kv(key) {
                    Some(kv) => {
                        recorded.insert(id, self.incident_id_in(kv)?);
                    }
                    None => fresh.push((id, key)),
                }
            }
            let Some((opener, _)) = fresh.first().copied() else {
                return self.press_outcomes(press_ids, &recorded, None).await;
            };
            // Guards for the write: every press key still absent, the open pointer unchanged.
            let mut guarded = Read {
                kvs: fresh
                    .iter()
                    .map(|(_, key)| ((*key).clone(), None))
                    .collect(),
            };
            guarded
                .kvs
                .insert(open.clone(), pointers.kv(&open).cloned());
            // The button's open incident, if the last press was recent enough to join it.
            if let Some(kv) = pointers.kv(&open) {
                let id = self.incident_id_in(kv)?;
                let key = Incident::key_of(id.as_str());
                let read = self.read(std::slice::from_ref(&key), freshness).await?;
                guarded.kvs.insert(key.clone(), read.kv(&key).cloned());
                if let Some(mut incident) = read.decode::<Incident>(&key)?
                    && incident.within_debounce(now, debounce)
                {
                    for _ in &fresh {
                        incident.merge_press(now)?;
                    }
                    let mut writes = vec![(key, Some(encode(&incident)))];
                    for (_, press) in &fresh {
                        writes.push(((*press).clone(), Some(id.as_str().as_bytes().to_vec())));
                    }
                    match self.commit(&guarded, None, writes).await? {
                        Commit::Done(_) => {
                            for (press, _) in &fresh {
                                recorded.insert(press, id.clone());
                            }
                            return self
                                .press_outcomes(press_ids, &recorded, Some((incident, None)))
                                .await;
                        }
                        Commit::Conflict => {
                            Self::backoff(attempt).await;
                            continue;
                        }
                    }
                }
            }
            // A new incident, under the first free id of this button and second (the listing
            // was read with the pointers, so "absent" is guarded at that read).
            let id = incident_id(&base, taken.len())?;
            let incident_key = Incident::key_of(id.as_str());
            if taken.iter().any(|kv| kv.key == incident_key) {
                Self::backoff(attempt).await;
                continue; // the suffixes are not dense (should not happen): list again
            }
            guarded.kvs.insert(incident_key.clone(), None);
            let mut incident = Incident::open(
                id.clone(),
                button.id.clone(),
                button.camera.clone(),
                button.position,
                now,
            );
            incident.trace = trace.clone();
            for _ in 1..fresh.len() {
                incident.merge_press(now)?;
            }
            let mut writes = vec![(incident_key, Some(encode(&incident)))];
            for (_, press) in &fresh {
                writes.push(((*press).clone(), Some(id.as_str().as_bytes().to_vec())));
            }
            writes.push((open.clone(), Some(id.as_str().as_bytes().to_vec())));
            let committed = self.commit(&guarded, None, writes).await;
            let committed = match committed {
                Err(_) | Ok(Commit::Conflict)
                    if self.planted == Some(PlantedBug::AckBeforeDurable) =>
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
                        .press_outcomes(press_ids, &recorded, Some((incident, Some(opener))))
                        .await;
                }
                Commit::Conflict => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
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
            let incident_id = recorded.get(press).ok_or_else(|| Error::Store {
                message: format!("press {press} was not recorded"),
                retryable: false,
            })?;
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

    fn incident_id_in(&self, kv: &Kv) -> Result<IncidentId> {
        let text = std::str::from_utf8(&kv.value).map_err(|e| Error::Corrupt {
            key: kv.key.clone(),
            reason: e.to_string(),
        })?;
        IncidentId::new(text).map_err(|e| Error::Corrupt {
            key: kv.key.clone(),
            reason: e.to_string(),
        })
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

/// `B01-261127-220512`: the button and the UTC date and time of the press, unique per button
/// and second and readable over the radio.
fn incident_id_base(button: &ButtonId, now: Timestamp) -> String {
    let (year, month, day, hour, minute, second) = civil_utc(now);
    format!(
        "{button}-{:02}{month:02}{day:02}-{hour:02}{minute:02}{second:02}",
        year % 100
    )
}

/// The button an incident id made by [`incident_id`] names: what precedes `-YYMMDD-HHMMSS`
/// (and a `-N` suffix). A guess: ids are not parsed for anything that matters.
fn button_of_incident_id(id: &str) -> Option<&str> {
    let six_digits = |part: &str| part.len() == 6 && part.bytes().all(|b| b.is_ascii_digit());
    let mut rest = id;
    for _ in 0..2 {
        let (head, last) = rest.rsplit_once('-')?;
        if six_digits(last) {
            // Expect exactly the time, then the date.
            let (button, date) = head.rsplit_once('-')?;
            return six_digits(date).then_some(button).filter(|b| !b.is_empty());
        }
        if !last.bytes().all(|b| b.is_ascii_digit()) || !rest.eq(id) {
            return None;
        }
        rest = head; // a `-N` suffix
    }
    None
}

/// The id after `taken` incidents already use `base`: `base`, then `base-2`, `base-3`... (more
/// than one incident of a button in one second happens only under load tests, and incidents
/// are never deleted, so the count of ids under `base` is the last suffix used).
fn incident_id(base: &str, taken: usize) -> Result<IncidentId> {
    let id = if taken == 0 {
        base.to_string()
    } else {
        format!("{base}-{}", taken + 1)
    };
    IncidentId::new(id).map_err(|e| Error::Invalid(e.to_string()))
}

/// UTC calendar date and time of a timestamp (Howard Hinnant's days-from-civil, inverted).
fn civil_utc(at: Timestamp) -> (i64, u32, u32, u32, u32, u32) {
    let secs = (at.as_millis() / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (of_day / 3600) as u32,
        (of_day % 3600 / 60) as u32,
        (of_day % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use centinela_core::button::ButtonHealth;

    /// A seeded Lima and its records, on an embedded store whose serializable reads can be
    /// made to lag (an etcd follower that is behind).
    async fn lima() -> (crate::EmbeddedStore, Records, Timestamp) {
        let embedded = crate::EmbeddedStore::new();
        let records = Records::new(Store::embedded(&embedded));
        let now = Timestamp::from_millis(1_795_817_112_345);
        records.seed(&Scenario::lima_centro(), now).await.unwrap();
        (embedded, records, now)
    }

    fn button_id(id: &str) -> ButtonId {
        ButtonId::new(id).unwrap()
    }

    #[tokio::test]
    async fn a_stale_first_read_never_decides_without_a_write() {
        let (embedded, records, now) = lima().await;
        let b01 = button_id("B01");
        records
            .update_button(&b01, |b| {
                b.tamper(now);
                Ok(())
            })
            .await
            .unwrap();
        // From here on a serializable read sees the store before that tamper.
        embedded.lag_serializable_reads(1);
        let key = Button::key_of("B01");
        let stale = records.read(std::slice::from_ref(&key), Freshness::MaybeStale);
        let stale: Button = stale.await.unwrap().decode(&key).unwrap().unwrap();
        assert_eq!(stale.health, ButtonHealth::Online, "the lag is in effect");

        // Set B01 online: no change at all on the stale copy (online), a real one on the
        // current record (tampered). It must be written.
        let returned = records
            .update_button(&b01, |b| {
                b.health = ButtonHealth::Online;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(returned.health, ButtonHealth::Online);
        let stored = records.button(&b01).await.unwrap().unwrap();
        assert_eq!(stored.health, ButtonHealth::Online, "written, not skipped");

        // A change the stale copy refuses but the current one allows is made.
        records
            .update_button(&b01, |b| {
                b.tamper(now);
                Ok(())
            })
            .await
            .unwrap();
        let made = records
            .update_button(&b01, |b| {
                if b.health == ButtonHealth::Tampered {
                    b.health = ButtonHealth::Offline;
                    Ok(())
                } else {
                    Err(Error::Invalid("only a tampered button".into()))
                }
            })
            .await
            .unwrap();
        assert_eq!(made.health, ButtonHealth::Offline);

        // A record the stale copy does not have yet is found: here the lag reaches back to
        // before the seeding, so every stale read sees an empty store.
        embedded.lag_serializable_reads(embedded.revision());
        let found = records
            .update_button(&button_id("B02"), |b| {
                b.tamper(now);
                Ok(())
            })
            .await;
        assert_eq!(found.unwrap().health, ButtonHealth::Tampered);
        let batch = ["B03", "B04"].map(String::from);
        let stored: Vec<Button> = records
            .update_many(&batch, |b: &mut Button| {
                b.tamper(now);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 2, "no record skipped as missing: {stored:?}");
        // Still refused, and still not found, on a current read.
        let missing = records.update_button(&button_id("B99"), |_| Ok(())).await;
        assert!(
            matches!(missing, Err(Error::NotFound { .. })),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn incident_changes_on_a_stale_first_read_are_rechecked() {
        use centinela_core::incident::IncidentKind;
        let (embedded, records, now) = lima().await;
        let button = records.button(&button_id("B01")).await.unwrap().unwrap();
        let press = PressId::new("p-1").unwrap();
        let opened = records
            .press(&button, &press, now, Duration::from_secs(60), None)
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

    #[tokio::test]
    async fn presses_on_stale_reads_still_make_one_incident() {
        let (embedded, records, now) = lima().await;
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

    #[tokio::test]
    async fn update_many_changes_a_batch_in_one_transaction() {
        let embedded = crate::EmbeddedStore::new();
        let records = Records::new(Store::embedded(&embedded));
        let now = Timestamp::from_millis(1_795_817_112_345);
        records.seed(&Scenario::lima_centro(), now).await.unwrap();
        let before = records.revision().await.unwrap();

        // A repeat and an unknown id are skipped; a record `change` leaves alone is returned
        // as stored and costs no write.
        let ids = ["B01", "B02", "B03", "B02", "nope", "B04"].map(String::from);
        let stored: Vec<Button> = records
            .update_many(&ids, |b: &mut Button| {
                if b.id.as_str() != "B04" {
                    b.tamper(now);
                }
                Ok(())
            })
            .await
            .unwrap();
        let got: Vec<_> = stored.iter().map(|b| (b.id.as_str(), b.health)).collect();
        use centinela_core::button::ButtonHealth::{Online, Tampered};
        assert_eq!(
            got,
            [
                ("B01", Tampered),
                ("B02", Tampered),
                ("B03", Tampered),
                ("B04", Online)
            ]
        );
        assert_eq!(
            records.revision().await.unwrap(),
            before + 1,
            "one transaction"
        );
        for id in ["B01", "B02", "B03"] {
            let b = records
                .button(&ButtonId::new(id).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(b.health, Tampered, "{id} stored");
        }

        // Nothing to change: no transaction at all.
        records
            .update_many(&ids, |_: &mut Button| Ok(()))
            .await
            .unwrap();
        assert_eq!(records.revision().await.unwrap(), before + 1);

        let too_many: Vec<String> = (0..=limits::UPDATE_BATCH_MAX)
            .map(|i| format!("B{i}"))
            .collect();
        let refused = records
            .update_many(&too_many, |_: &mut Button| Ok(()))
            .await;
        assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
    }

    #[test]
    fn the_button_is_read_back_from_an_incident_id() {
        assert_eq!(button_of_incident_id("B01-261127-220512"), Some("B01"));
        assert_eq!(button_of_incident_id("B01-261127-220512-3"), Some("B01"));
        assert_eq!(
            button_of_incident_id("av-9-x-261127-220512"),
            Some("av-9-x")
        );
        assert_eq!(button_of_incident_id("av-9-261127-220512-12"), Some("av-9"));
        assert_eq!(button_of_incident_id("261127-220512"), None);
        assert_eq!(button_of_incident_id("B01"), None);
        assert_eq!(button_of_incident_id("B01-2611-220512"), None);
        assert_eq!(button_of_incident_id("B01-x-3"), None);
    }

    #[test]
    fn incident_ids_read_as_button_date_time() {
        // 2026-11-27T22:05:12.345Z
        let at = Timestamp::from_millis(1_795_817_112_345);
        let button = ButtonId::new("B01").unwrap();
        assert_eq!(civil_utc(at), (2026, 11, 27, 22, 5, 12));
        let base = incident_id_base(&button, at);
        assert_eq!(incident_id(&base, 0).unwrap().as_str(), "B01-261127-220512");
        assert_eq!(
            incident_id(&base, 1).unwrap().as_str(),
            "B01-261127-220512-2"
        );
        assert_eq!(
            incident_id(&base, 2).unwrap().as_str(),
            "B01-261127-220512-3"
        );
    }

    #[test]
    fn civil_dates_cross_leap_days_and_epochs() {
        assert_eq!(civil_utc(Timestamp::from_millis(0)), (1970, 1, 1, 0, 0, 0));
        // 2024-02-29T23:59:59Z
        assert_eq!(
            civil_utc(Timestamp::from_millis(1_709_251_199_000)),
            (2024, 2, 29, 23, 59, 59)
        );
    }
}
