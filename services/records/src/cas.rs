//! The compare-and-swap engine every change goes through: read a set of keys at one revision,
//! decide in memory, commit guarded on what was read.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId};
use centinela_store::{Compare, Fence, Kv, LeaseId, OpResponse, Revision, Txn, TxnOp, TxnOutcome};
use centinela_telemetry::metrics;
use opentelemetry::KeyValue;

use crate::error::{Error, Result};
use crate::record::{Record, decode, encode};
use crate::{Records, limits};

/// Keys read for a transaction, with what they held.
pub(crate) struct Read {
    pub(crate) kvs: BTreeMap<String, Option<Kv>>,
}

impl Read {
    /// Guards that `keys` are still absent.
    pub(crate) fn absent<'a>(keys: impl IntoIterator<Item = &'a String>) -> Self {
        Self {
            kvs: keys.into_iter().map(|key| (key.clone(), None)).collect(),
        }
    }

    pub(crate) fn kv(&self, key: &str) -> Option<&Kv> {
        self.kvs.get(key).and_then(Option::as_ref)
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.kv(key).map(|kv| decode(kv)).transpose()
    }

    /// Adds `key`, as `other` read it, to the keys this read guards.
    pub(crate) fn guard_as_read(&mut self, key: &str, other: &Read) {
        self.kvs.insert(key.to_string(), other.kv(key).cloned());
    }

    /// The newest revision among the keys read (0 if none exists).
    pub(crate) fn revision(&self) -> Revision {
        self.kvs
            .values()
            .flatten()
            .map(|kv| kv.mod_revision)
            .max()
            .unwrap_or_default()
    }

    /// Whether every key guarded is, in `current`, still as this read saw it.
    pub(crate) fn still_holds(&self, current: &Read) -> bool {
        self.kvs.iter().all(|(key, kv)| {
            kv.as_ref().map(|kv| kv.mod_revision) == current.kv(key).map(|kv| kv.mod_revision)
        })
    }

    /// Compare-and-swap guards: each key still at the revision read (0: still absent).
    pub(crate) fn guards(&self) -> impl Iterator<Item = Compare> + '_ {
        self.kvs.iter().map(|(key, kv)| {
            Compare::mod_revision(key.clone()).equal(kv.as_ref().map_or(0, |kv| kv.mod_revision))
        })
    }
}

/// How a guarded commit ended.
pub(crate) enum Commit {
    Done(Revision),
    Conflict,
}

/// How a batch's guarded commit ([`Records::commit_known_traced`]) ended.
pub(crate) enum KnownCommit {
    Done(Revision),
    /// A guard failed: every guarded key as stored when it did.
    Conflict(BTreeMap<String, Option<Kv>>),
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
pub(crate) enum Freshness {
    /// Linearizable: the latest committed state.
    Current,
    /// Serializable: possibly stale.
    MaybeStale,
}

impl Freshness {
    pub(crate) fn for_attempt(attempt: usize) -> Self {
        if attempt == 0 {
            Freshness::MaybeStale
        } else {
            Freshness::Current
        }
    }

    pub(crate) fn may_be_stale(self) -> bool {
        self == Freshness::MaybeStale
    }

    fn apply(self, txn: Txn) -> Txn {
        match self {
            Freshness::Current => txn,
            Freshness::MaybeStale => txn.serializable(),
        }
    }
}

/// Guards that each `(key, revision)` a watcher holds is still the stored record: it exists
/// and has not changed since `revision` (its `mod_revision` at most that).
pub(crate) fn known_compares(known: &[(String, Revision)]) -> Vec<Compare> {
    known
        .iter()
        .flat_map(|(key, revision)| {
            [
                Compare::version(key.clone()).greater(0),
                Compare::mod_revision(key.clone()).less(revision + 1),
            ]
        })
        .collect()
}

/// `items` in order, cut into consecutive chunks whose `weight`s add up to at most `max` (a
/// transaction's share of etcd's `--max-txn-ops`); an item heavier than `max` alone.
pub(crate) fn chunks_under<T>(
    items: impl IntoIterator<Item = T>,
    max: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut total = 0;
    for item in items {
        let w = weight(&item);
        match chunks.last_mut() {
            Some(chunk) if total + w <= max => {
                chunk.push(item);
                total += w;
            }
            _ => {
                chunks.push(vec![item]);
                total = w;
            }
        }
    }
    chunks
}

/// The value of a read's `Get`, or an error naming what came instead.
fn got(response: Option<OpResponse>) -> Result<Vec<Kv>> {
    match response {
        Some(OpResponse::Get(found)) => Ok(found),
        other => Err(Error::unexpected(format!(
            "unexpected response to a read: {other:?}"
        ))),
    }
}

impl Records {
    /// One transaction on the store, counting those that fail (the store unreachable, too
    /// slow, or refusing): what the store-errors alert watches.
    pub(crate) async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        self.store.txn(txn).await.map_err(|e| {
            metrics::instruments()
                .store_txn_errors
                .add(1, &[KeyValue::new("retryable", e.is_retryable())]);
            e.into()
        })
    }

    /// Reads `keys` in one read-only transaction: a consistent snapshot, current unless
    /// `freshness` allows a stale one.
    pub(crate) async fn read(&self, keys: &[String], freshness: Freshness) -> Result<Read> {
        Ok(self.read_with_prefixes(keys, &[], freshness).await?.0)
    }

    /// [`Records::read`] plus every key under each of `prefixes`, in one transaction (one
    /// revision): the listings come in the order of `prefixes`.
    pub(crate) async fn read_with_prefixes(
        &self,
        keys: &[String],
        prefixes: &[&str],
        freshness: Freshness,
    ) -> Result<(Read, Vec<Vec<Kv>>)> {
        let ops = keys
            .iter()
            .map(|k| TxnOp::get(k.clone()))
            .chain(prefixes.iter().map(|prefix| TxnOp::get_prefix(*prefix)));
        let outcome = self.txn(freshness.apply(Txn::new().and_then(ops))).await?;
        let mut responses = outcome.responses.into_iter();
        let mut kvs = BTreeMap::new();
        for key in keys {
            kvs.insert(key.clone(), got(responses.next())?.pop());
        }
        let listed = prefixes
            .iter()
            .map(|_| got(responses.next()))
            .collect::<Result<Vec<_>>>()?;
        Ok((Read { kvs }, listed))
    }

    /// Commits `writes` (`None` deletes) if every key read is unchanged and the fence holds.
    pub(crate) async fn commit(
        &self,
        read: &Read,
        fence: Option<&Fence>,
        writes: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Commit> {
        self.commit_leased(read, fence, writes, None, Vec::new())
            .await
    }

    /// [`Records::commit`] plus `leased` puts attached to `lease`.
    pub(crate) async fn commit_leased(
        &self,
        read: &Read,
        fence: Option<&Fence>,
        writes: Vec<(String, Option<Vec<u8>>)>,
        lease: Option<LeaseId>,
        leased: Vec<(String, Vec<u8>)>,
    ) -> Result<Commit> {
        self.commit_guarded(read.guards().collect(), fence, writes, lease, leased)
            .await
    }

    /// [`Records::commit`] guarded on records a watcher holds rather than on a read: each
    /// `(key, revision)` must still exist and be unchanged since `revision` (its
    /// `mod_revision` at most that), which holds exactly when the copy seen at `revision` is
    /// still the stored one. No read before it: the watch already brought the record.
    pub(crate) async fn commit_known(
        &self,
        known: &[(String, Revision)],
        fence: Option<&Fence>,
        writes: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Commit> {
        self.commit_guarded(known_compares(known), fence, writes, None, Vec::new())
            .await
    }

    /// [`Records::commit_known`] under `fence`, for a batch: when a guard fails, the same
    /// transaction reads back every guarded key (its failure branch), so the caller learns
    /// which copies moved without another round trip. A lost term is [`Error::Fenced`].
    pub(crate) async fn commit_known_traced(
        &self,
        known: &[(String, Revision)],
        fence: &Fence,
        writes: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<KnownCommit> {
        let mut compares = known_compares(known);
        compares.push(fence.compare());
        let keys: Vec<String> = std::iter::once(fence.key().to_string())
            .chain(known.iter().map(|(key, _)| key.clone()))
            .collect();
        match self.commit_or_read_back(compares, writes, &keys).await? {
            KnownCommit::Conflict(mut stored) => {
                let holds = stored
                    .remove(fence.key())
                    .flatten()
                    .is_some_and(|kv| kv.create_revision == fence.term());
                if !holds {
                    return Err(Error::Fenced);
                }
                Ok(KnownCommit::Conflict(stored))
            }
            done => Ok(done),
        }
    }

    /// Commits `writes` if every compare holds; if one fails, the same transaction reads `keys`
    /// (its failure branch) and they come back as stored.
    pub(crate) async fn commit_or_read_back(
        &self,
        compares: Vec<Compare>,
        writes: Vec<(String, Option<Vec<u8>>)>,
        keys: &[String],
    ) -> Result<KnownCommit> {
        let ops = writes.into_iter().map(|(key, value)| match value {
            Some(value) => TxnOp::put(key, value, None),
            None => TxnOp::delete(key),
        });
        let reads = keys.iter().map(|key| TxnOp::get(key.clone()));
        let txn = Txn::new().when(compares).and_then(ops).or_else(reads);
        let started = std::time::Instant::now();
        let outcome = self.txn(txn).await;
        metrics::instruments()
            .store_txn
            .record(started.elapsed().as_secs_f64() * 1000.0, &[]);
        let outcome = outcome?;
        if outcome.succeeded {
            return Ok(KnownCommit::Done(outcome.revision));
        }
        let mut responses = outcome.responses.into_iter();
        let mut stored = BTreeMap::new();
        for key in keys {
            stored.insert(key.clone(), got(responses.next())?.pop());
        }
        Ok(KnownCommit::Conflict(stored))
    }

    pub(crate) async fn commit_guarded(
        &self,
        mut compares: Vec<Compare>,
        fence: Option<&Fence>,
        writes: Vec<(String, Option<Vec<u8>>)>,
        lease: Option<LeaseId>,
        leased: Vec<(String, Vec<u8>)>,
    ) -> Result<Commit> {
        if let Some(fence) = fence {
            compares.push(fence.compare());
        }
        let ops = writes
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => TxnOp::put(key, value, None),
                None => TxnOp::delete(key),
            })
            .chain(
                leased
                    .into_iter()
                    .map(|(key, value)| TxnOp::put(key, value, lease)),
            );
        let mut txn = Txn::new().when(compares).and_then(ops);
        if let Some(fence) = fence {
            // On failure, read the fence key to tell a lost term from a conflict.
            txn = txn.or_else([TxnOp::get(fence.key().to_string())]);
        }
        let started = std::time::Instant::now();
        let outcome = self.txn(txn).await;
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
    pub(crate) async fn backoff(attempt: usize) {
        let pause = limits::CAS_BACKOFF_FIRST * 2u32.pow(attempt.min(6) as u32);
        tokio::time::sleep(pause.min(limits::CAS_BACKOFF_MAX)).await;
    }

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
            value.seal(Some(&original), self.audit_key());
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
    /// [`limits::UPDATE_BATCH_MAX`] ids; ids with no record, and repeats, are skipped. Returns
    /// the stored result of each record found, in the order of `ids`.
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
                    value.seal(Some(&original), self.audit_key());
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
        id: &CameraId,
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
}

#[cfg(test)]
mod tests {
    use centinela_core::button::ButtonHealth;

    use super::*;
    use crate::testing::{NOW, button_id, lima};

    #[tokio::test]
    async fn a_stale_first_read_never_decides_without_a_write() {
        let (embedded, records) = lima().await;
        let now = NOW;
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
    async fn update_many_changes_a_batch_in_one_transaction() {
        let (_embedded, records) = lima().await;
        let now = NOW;
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
            let b = records.button(&button_id(id)).await.unwrap().unwrap();
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
}
