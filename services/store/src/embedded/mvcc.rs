//! The embedded store's state machine: keys with their MVCC metadata, the bounded event history,
//! and leases. Pure and synchronous (time comes in as an argument), so every etcd rule is unit
//! tested here without a runtime; [`super::Core`] wraps it in a lock and publishes its changes to
//! watchers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;

use tokio::time::{Duration, Instant};

use crate::limits;
use crate::pb::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
    compare, range_request, request_op, response_op,
};
use crate::pb::mvccpb::{Event, KeyValue, event::EventType};

/// An error the store answers with; [`tonic::Status`] conversion carries etcd's exact codes and
/// messages (etcd's `api/v3rpc/rpctypes`), so clients cannot tell us apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyError {
    Compacted,
    FutureRevision,
    LeaseNotFound,
    LeaseExists,
    LeaseTtlTooLarge,
    KeyNotFound,
    EmptyKey,
    ValueProvided,
    LeaseProvided,
    TooManyOps,
    DuplicateKey,
    NestedTxn,
}

impl From<ApplyError> for tonic::Status {
    fn from(error: ApplyError) -> Self {
        use tonic::Status;
        match error {
            ApplyError::Compacted => {
                Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
            }
            ApplyError::FutureRevision => {
                Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
            }
            ApplyError::LeaseNotFound => Status::not_found("etcdserver: requested lease not found"),
            ApplyError::LeaseExists => {
                Status::failed_precondition("etcdserver: lease already exists")
            }
            ApplyError::LeaseTtlTooLarge => Status::out_of_range("etcdserver: too large lease TTL"),
            ApplyError::KeyNotFound => Status::invalid_argument("etcdserver: key not found"),
            ApplyError::EmptyKey => Status::invalid_argument("etcdserver: key is not provided"),
            ApplyError::ValueProvided => Status::invalid_argument("etcdserver: value is provided"),
            ApplyError::LeaseProvided => Status::invalid_argument("etcdserver: lease is provided"),
            ApplyError::TooManyOps => {
                Status::invalid_argument("etcdserver: too many operations in txn request")
            }
            ApplyError::DuplicateKey => {
                Status::invalid_argument("etcdserver: duplicate key given in txn request")
            }
            ApplyError::NestedTxn => {
                Status::unimplemented("centinela embedded store: nested txn is not supported")
            }
        }
    }
}

/// A set of keys in etcd's `(key, range_end)` notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// `range_end` empty: just `key`.
    Single(Vec<u8>),
    /// `[start, end)`; `end: None` is etcd's `range_end == "\0"`: every key `>= start`.
    Span {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    pub(crate) fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Span {
                start: key.to_vec(),
                end: None,
            },
            end => KeyRange::Span {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(single) => single == key,
            KeyRange::Span { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|end| key < end.as_slice())
            }
        }
    }

    /// The keys of `map` in this range, in key order.
    fn select<'m, V>(&self, map: &'m BTreeMap<Vec<u8>, V>) -> Vec<(&'m Vec<u8>, &'m V)> {
        match self {
            KeyRange::Single(key) => map.get_key_value(key).into_iter().collect(),
            KeyRange::Span { start, end } => {
                let upper = match end {
                    // BTreeMap::range panics on an inverted range; etcd answers "nothing".
                    Some(end) if end <= start => return Vec::new(),
                    Some(end) => Bound::Excluded(end.as_slice()),
                    None => Bound::Unbounded,
                };
                map.range::<[u8], _>((Bound::Included(start.as_slice()), upper))
                    .collect()
            }
        }
    }
}

/// One change of one key at one revision, as kept in the history. `kv.mod_revision` is the
/// revision; a delete's `kv` holds only the key and that revision (as in etcd's events).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) kind: EventType,
    pub(crate) kv: KeyValue,
    /// The key's previous value; kept always, as historical reads undo changes with it.
    pub(crate) prev: Option<KeyValue>,
}

impl Change {
    pub(crate) fn revision(&self) -> i64 {
        self.kv.mod_revision
    }

    pub(crate) fn to_event(&self, with_prev_kv: bool) -> Event {
        Event {
            r#type: self.kind as i32,
            kv: Some(self.kv.clone()),
            prev_kv: if with_prev_kv {
                self.prev.clone()
            } else {
                None
            },
        }
    }
}

#[derive(Debug)]
struct Lease {
    granted_ttl_secs: i64,
    expires_at: Instant,
    keys: BTreeSet<Vec<u8>>,
}

/// What `LeaseTimeToLive` reports about a live lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseInfo {
    pub(crate) remaining_secs: i64,
    pub(crate) granted_secs: i64,
    pub(crate) keys: Vec<Vec<u8>>,
}

/// The first lease ID the store hands out. IDs are deterministic (a simulation replays them),
/// positive and large like etcd's, so `{id:016x}` keys look like etcd's.
const LEASE_ID_FIRST: i64 = 0x3e7a_0000_0000_0001;

/// Revision of an empty store (etcd starts at 1, and the first write is revision 2).
const REVISION_INITIAL: i64 = 1;

/// The embedded store's state. Invariants (checked by `debug_assert_invariants`): `history` is
/// ordered by revision, holds every change with revision `>= compact_revision` up to `revision`,
/// and `kvs` is the state at `revision`; every key with a lease is in that lease's key set.
#[derive(Debug)]
pub(crate) struct Mvcc {
    /// The revision of the last write (etcd's "current revision").
    revision: i64,
    /// Reads at revisions below this fail with "compacted"; watches from below it are canceled.
    compact_revision: i64,
    kvs: BTreeMap<Vec<u8>, KeyValue>,
    history: VecDeque<Change>,
    /// Bound on `history`, see [`limits::HISTORY_EVENTS_MAX`].
    history_events_max: usize,
    leases: HashMap<i64, Lease>,
    /// `(expires_at, id)` of every lease: the expiry task sleeps until the first one.
    expiries: BTreeSet<(Instant, i64)>,
    next_lease_id: i64,
}

impl Mvcc {
    pub(crate) fn new(history_events_max: usize) -> Self {
        Mvcc {
            revision: REVISION_INITIAL,
            compact_revision: 0,
            kvs: BTreeMap::new(),
            history: VecDeque::new(),
            history_events_max: history_events_max.max(1),
            leases: HashMap::new(),
            expiries: BTreeSet::new(),
            next_lease_id: LEASE_ID_FIRST,
        }
    }

    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    pub(crate) fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    pub(crate) fn key_count(&self) -> usize {
        self.kvs.len()
    }

    /// Rough size of the live data, for `Status.dbSize`.
    pub(crate) fn approximate_bytes(&self) -> i64 {
        let bytes: usize = self
            .kvs
            .values()
            .map(|kv| kv.key.len() + kv.value.len() + 48)
            .sum();
        i64::try_from(bytes).unwrap_or(i64::MAX)
    }

    // ---- reads -------------------------------------------------------------------------------

    /// Checks `revision` (`<= 0` = current) against history and returns the one to read at.
    fn readable_revision(&self, revision: i64) -> Result<i64, ApplyError> {
        if revision <= 0 {
            return Ok(self.revision);
        }
        if revision > self.revision {
            return Err(ApplyError::FutureRevision);
        }
        if revision < self.compact_revision {
            return Err(ApplyError::Compacted);
        }
        Ok(revision)
    }

    /// The keys of `range` as of `revision`: today's `kvs`, with every later change undone
    /// (newest first). `pending` are changes of an open write txn, already applied to `kvs`
    /// but not yet in `history` (all newer than any readable revision).
    ///
    /// Borrowed, not cloned: a paged read of a large prefix copies only the page it returns
    /// (cloning the whole range for every page made reading 210k records quadratic:
    /// docs/benchmarks.md, "Scale").
    fn kvs_at<'a>(
        &'a self,
        range: &KeyRange,
        revision: i64,
        pending: &'a [Change],
    ) -> Vec<&'a KeyValue> {
        let current = range.select(&self.kvs);
        if revision >= self.revision && pending.is_empty() {
            return current.into_iter().map(|(_, kv)| kv).collect();
        }
        // Each key changed since `revision` as it was then: the oldest later change's `prev`
        // (changes are visited newest first, so the oldest overwrites).
        let later_history = self
            .history
            .iter()
            .rev()
            .take_while(|c| c.revision() > revision);
        let mut then: BTreeMap<&[u8], Option<&KeyValue>> = BTreeMap::new();
        for change in pending.iter().rev().chain(later_history) {
            if range.contains(&change.kv.key) {
                then.insert(change.kv.key.as_slice(), change.prev.as_ref());
            }
        }
        // Merge today's keys with the undone ones, in key order.
        let mut kvs = Vec::with_capacity(current.len());
        let mut now = current.into_iter().peekable();
        let mut undone = then.into_iter().peekable();
        loop {
            match (now.peek(), undone.peek()) {
                (None, None) => break,
                (Some((key, _)), Some((changed, _))) if key.as_slice() == *changed => {
                    now.next();
                    kvs.extend(undone.next().and_then(|(_, kv)| kv));
                }
                (Some((key, _)), Some((changed, _))) if key.as_slice() < *changed => {
                    kvs.extend(now.next().map(|(_, kv)| kv));
                }
                (Some(_), None) => kvs.extend(now.next().map(|(_, kv)| kv)),
                (_, Some(_)) => kvs.extend(undone.next().and_then(|(_, kv)| kv)),
            }
        }
        kvs
    }

    pub(crate) fn range(&self, request: &RangeRequest) -> Result<RangeResponse, ApplyError> {
        check_range(request)?;
        self.range_in_txn(request, &[])
    }

    fn range_in_txn(
        &self,
        request: &RangeRequest,
        pending: &[Change],
    ) -> Result<RangeResponse, ApplyError> {
        let revision = self.readable_revision(request.revision)?;
        let range = KeyRange::new(&request.key, &request.range_end);
        let mut kvs = if request.revision <= 0 {
            // The latest state, including this txn's own writes so far.
            self.kvs_at(&range, i64::MAX, &[])
        } else {
            self.kvs_at(&range, revision, pending)
        };
        // As etcd: `count` is every key in the range, before filters and limit.
        let count = i64::try_from(kvs.len()).unwrap_or(i64::MAX);
        if request.count_only {
            return Ok(RangeResponse {
                header: Some(super::header(self.revision)),
                kvs: Vec::new(),
                more: false,
                count,
            });
        }
        kvs.retain(|kv| passes_revision_filters(request, kv));
        sort_kvs(&mut kvs, request);
        let mut more = false;
        if let Ok(limit) = usize::try_from(request.limit)
            && limit > 0
            && kvs.len() > limit
        {
            kvs.truncate(limit);
            more = true;
        }
        let kvs = kvs
            .into_iter()
            .map(|kv| {
                if request.keys_only {
                    KeyValue {
                        key: kv.key.clone(),
                        create_revision: kv.create_revision,
                        mod_revision: kv.mod_revision,
                        version: kv.version,
                        value: Vec::new(),
                        lease: kv.lease,
                    }
                } else {
                    kv.clone()
                }
            })
            .collect();
        Ok(RangeResponse {
            header: Some(super::header(self.revision)),
            kvs,
            more,
            count,
        })
    }

    /// Whether `compare` holds now (etcd's `applyCompare`): every key in the range must satisfy
    /// it; a missing key compares as an all-zero key, except that a VALUE compare fails.
    fn compare(&self, compare: &Compare) -> bool {
        let range = KeyRange::new(&compare.key, &compare.range_end);
        let selected = range.select(&self.kvs);
        if selected.is_empty() {
            if compare.target == compare::CompareTarget::Value as i32 {
                return false;
            }
            return compare_kv(compare, &KeyValue::default());
        }
        selected.into_iter().all(|(_, kv)| compare_kv(compare, kv))
    }

    // ---- writes ------------------------------------------------------------------------------

    fn begin(&mut self) -> WriteTxn<'_> {
        let revision = self.revision + 1;
        WriteTxn {
            mvcc: self,
            revision,
            changes: Vec::new(),
        }
    }

    /// Dynamic checks of a put against the current state (static ones are in `check_put`).
    fn check_put_applies(&self, request: &PutRequest) -> Result<(), ApplyError> {
        if (request.ignore_value || request.ignore_lease) && !self.kvs.contains_key(&request.key) {
            return Err(ApplyError::KeyNotFound);
        }
        if request.lease != 0 && !self.leases.contains_key(&request.lease) {
            return Err(ApplyError::LeaseNotFound);
        }
        Ok(())
    }

    pub(crate) fn put(
        &mut self,
        request: &PutRequest,
    ) -> Result<(PutResponse, Vec<Change>), ApplyError> {
        check_put(request)?;
        self.check_put_applies(request)?;
        let mut txn = self.begin();
        let mut response = txn.put(request);
        let changes = txn.commit();
        response.header = Some(super::header(self.revision));
        Ok((response, changes))
    }

    pub(crate) fn delete_range(
        &mut self,
        request: &DeleteRangeRequest,
    ) -> Result<(DeleteRangeResponse, Vec<Change>), ApplyError> {
        check_delete(request)?;
        let mut txn = self.begin();
        let mut response = txn.delete_range(request);
        let changes = txn.commit();
        response.header = Some(super::header(self.revision));
        Ok((response, changes))
    }

    pub(crate) fn txn(
        &mut self,
        request: &TxnRequest,
    ) -> Result<(TxnResponse, Vec<Change>), ApplyError> {
        check_txn(request)?;
        let succeeded = request.compare.iter().all(|compare| self.compare(compare));
        let ops = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        // Everything that can fail is checked before the first op is applied: a txn is all or
        // nothing, and the apply phase below cannot fail.
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestPut(put)) => self.check_put_applies(put)?,
                Some(request_op::Request::RequestRange(range)) => {
                    self.readable_revision(range.revision)?;
                }
                Some(request_op::Request::RequestDeleteRange(_)) | None => {}
                Some(request_op::Request::RequestTxn(_)) => return Err(ApplyError::NestedTxn),
            }
        }
        let revision_before = self.revision;
        let mut txn = self.begin();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let mut response = match &op.request {
                Some(request_op::Request::RequestRange(range)) => {
                    let pending = txn.changes.as_slice();
                    let result = txn.mvcc.range_in_txn(range, pending);
                    debug_assert!(result.is_ok(), "range revision was checked before apply");
                    response_op::Response::ResponseRange(result.unwrap_or_default())
                }
                Some(request_op::Request::RequestPut(put)) => {
                    response_op::Response::ResponsePut(txn.put(put))
                }
                Some(request_op::Request::RequestDeleteRange(delete)) => {
                    response_op::Response::ResponseDeleteRange(txn.delete_range(delete))
                }
                Some(request_op::Request::RequestTxn(_)) | None => continue,
            };
            // As etcd: a nested response carries only the revision the txn had reached at that
            // op (the old one until its first change, the txn's own after).
            let header = Some(ResponseHeader {
                revision: if txn.changes.is_empty() {
                    revision_before
                } else {
                    txn.revision
                },
                ..ResponseHeader::default()
            });
            match &mut response {
                response_op::Response::ResponseRange(r) => r.header = header,
                response_op::Response::ResponsePut(r) => r.header = header,
                response_op::Response::ResponseDeleteRange(r) => r.header = header,
                response_op::Response::ResponseTxn(_) => {}
            }
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        let changes = txn.commit();
        Ok((
            TxnResponse {
                header: Some(super::header(self.revision)),
                succeeded,
                responses,
            },
            changes,
        ))
    }

    /// Forgets history before `request.revision` (etcd: compacting at the current compaction
    /// revision or below is an error, and so is compacting the future).
    pub(crate) fn compact(&mut self, request: &CompactionRequest) -> Result<(), ApplyError> {
        if request.revision > self.revision {
            return Err(ApplyError::FutureRevision);
        }
        if request.revision <= self.compact_revision {
            return Err(ApplyError::Compacted);
        }
        self.compact_to(request.revision);
        Ok(())
    }

    fn compact_to(&mut self, revision: i64) {
        debug_assert!(revision > self.compact_revision && revision <= self.revision + 1);
        while self
            .history
            .front()
            .is_some_and(|change| change.revision() < revision)
        {
            self.history.pop_front();
        }
        self.compact_revision = revision;
    }

    /// Keeps `history` within its bound by compacting whole revisions, never the newest one.
    fn bound_history(&mut self) {
        while self.history.len() > self.history_events_max {
            let Some(oldest) = self.history.front().map(Change::revision) else {
                break;
            };
            if oldest >= self.revision {
                break;
            }
            self.compact_to(oldest + 1);
        }
    }

    /// Changes with revision `>= from`, oldest first.
    pub(crate) fn history_from(&self, from: i64) -> impl Iterator<Item = &Change> {
        let start = self
            .history
            .partition_point(|change| change.revision() < from);
        self.history.range(start..)
    }

    // ---- leases ------------------------------------------------------------------------------

    /// Grants a lease of `ttl_secs` (raised to the minimum as etcd does); `id == 0` lets the
    /// store choose the ID.
    pub(crate) fn lease_grant(
        &mut self,
        id: i64,
        ttl_secs: i64,
        now: Instant,
    ) -> Result<(i64, i64), ApplyError> {
        if ttl_secs > limits::LEASE_TTL_MAX_SECS {
            return Err(ApplyError::LeaseTtlTooLarge);
        }
        let ttl_secs = ttl_secs.max(limits::LEASE_TTL_MIN_SECS);
        let id = if id == 0 {
            while self.leases.contains_key(&self.next_lease_id) {
                self.next_lease_id += 1;
            }
            let id = self.next_lease_id;
            self.next_lease_id += 1;
            id
        } else if self.leases.contains_key(&id) {
            return Err(ApplyError::LeaseExists);
        } else {
            id
        };
        let expires_at = now + ttl(ttl_secs);
        self.leases.insert(
            id,
            Lease {
                granted_ttl_secs: ttl_secs,
                expires_at,
                keys: BTreeSet::new(),
            },
        );
        self.expiries.insert((expires_at, id));
        Ok((id, ttl_secs))
    }

    /// Extends a live lease by its granted TTL; `None` when it does not exist or has expired.
    pub(crate) fn lease_renew(&mut self, id: i64, now: Instant) -> Option<i64> {
        let lease = self.leases.get_mut(&id)?;
        if lease.expires_at <= now {
            return None;
        }
        self.expiries.remove(&(lease.expires_at, id));
        lease.expires_at = now + ttl(lease.granted_ttl_secs);
        self.expiries.insert((lease.expires_at, id));
        Some(lease.granted_ttl_secs)
    }

    /// Deletes the lease and, in one revision, every key attached to it.
    pub(crate) fn lease_revoke(&mut self, id: i64) -> Result<Vec<Change>, ApplyError> {
        let lease = self.leases.remove(&id).ok_or(ApplyError::LeaseNotFound)?;
        self.expiries.remove(&(lease.expires_at, id));
        let mut txn = self.begin();
        for key in &lease.keys {
            txn.delete_key(key);
        }
        Ok(txn.commit())
    }

    pub(crate) fn lease_time_to_live(
        &self,
        id: i64,
        with_keys: bool,
        now: Instant,
    ) -> Option<LeaseInfo> {
        let lease = self.leases.get(&id)?;
        if lease.expires_at <= now {
            return None;
        }
        // Whole seconds left, truncated, as etcd reports them.
        let remaining = lease.expires_at.saturating_duration_since(now).as_secs();
        Some(LeaseInfo {
            remaining_secs: i64::try_from(remaining).unwrap_or(i64::MAX),
            granted_secs: lease.granted_ttl_secs,
            keys: if with_keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    pub(crate) fn lease_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn next_lease_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// A lease whose deadline has passed, if any (the expiry task revokes them one by one, each
    /// in its own revision, as etcd does).
    pub(crate) fn expired_lease(&self, now: Instant) -> Option<i64> {
        self.expiries
            .first()
            .filter(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
    }

    #[cfg(test)]
    pub(crate) fn debug_assert_invariants(&self) {
        assert!(
            self.history
                .iter()
                .zip(self.history.iter().skip(1))
                .all(|(a, b)| a.revision() <= b.revision())
        );
        assert!(
            self.history
                .front()
                .is_none_or(|c| c.revision() >= self.compact_revision)
        );
        assert!(
            self.history
                .back()
                .is_none_or(|c| c.revision() <= self.revision)
        );
        for (key, kv) in &self.kvs {
            assert_eq!(key, &kv.key);
            if kv.lease != 0 {
                assert!(self.leases[&kv.lease].keys.contains(key));
            }
        }
        for (id, lease) in &self.leases {
            assert!(self.expiries.contains(&(lease.expires_at, *id)));
            for key in &lease.keys {
                assert_eq!(self.kvs[key].lease, *id);
            }
        }
        assert_eq!(self.expiries.len(), self.leases.len());
    }
}

fn ttl(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// One write transaction: every change gets the same revision, which becomes current (and the
/// changes enter history) only if something changed.
struct WriteTxn<'m> {
    mvcc: &'m mut Mvcc,
    revision: i64,
    changes: Vec<Change>,
}

impl WriteTxn<'_> {
    /// Applies a checked put (see `check_put` and `Mvcc::check_put_applies`).
    fn put(&mut self, request: &PutRequest) -> PutResponse {
        let prev = self.mvcc.kvs.get(&request.key).cloned();
        let value = match (&prev, request.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => request.value.clone(),
        };
        let lease = match (&prev, request.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => request.lease,
        };
        let kv = KeyValue {
            key: request.key.clone(),
            create_revision: prev.as_ref().map_or(self.revision, |p| p.create_revision),
            mod_revision: self.revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        let prev_lease = prev.as_ref().map_or(0, |p| p.lease);
        if prev_lease != lease {
            self.detach(prev_lease, &request.key);
            if let Some(attached) = self.mvcc.leases.get_mut(&lease) {
                attached.keys.insert(request.key.clone());
            }
        }
        self.mvcc.kvs.insert(request.key.clone(), kv.clone());
        self.changes.push(Change {
            kind: EventType::Put,
            kv,
            prev: prev.clone(),
        });
        PutResponse {
            header: None,
            prev_kv: if request.prev_kv { prev } else { None },
        }
    }

    fn delete_range(&mut self, request: &DeleteRangeRequest) -> DeleteRangeResponse {
        let range = KeyRange::new(&request.key, &request.range_end);
        let keys: Vec<Vec<u8>> = range
            .select(&self.mvcc.kvs)
            .into_iter()
            .map(|(key, _)| key.clone())
            .collect();
        let mut prev_kvs = Vec::new();
        for key in &keys {
            if let Some(prev) = self.delete_key(key)
                && request.prev_kv
            {
                prev_kvs.push(prev);
            }
        }
        DeleteRangeResponse {
            header: None,
            deleted: i64::try_from(keys.len()).unwrap_or(i64::MAX),
            prev_kvs,
        }
    }

    fn delete_key(&mut self, key: &[u8]) -> Option<KeyValue> {
        let prev = self.mvcc.kvs.remove(key)?;
        self.detach(prev.lease, key);
        self.changes.push(Change {
            kind: EventType::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                mod_revision: self.revision,
                ..KeyValue::default()
            },
            prev: Some(prev.clone()),
        });
        Some(prev)
    }

    fn detach(&mut self, lease: i64, key: &[u8]) {
        if lease != 0
            && let Some(lease) = self.mvcc.leases.get_mut(&lease)
        {
            lease.keys.remove(key);
        }
    }

    fn commit(self) -> Vec<Change> {
        if self.changes.is_empty() {
            return Vec::new();
        }
        self.mvcc.revision = self.revision;
        self.mvcc.history.extend(self.changes.iter().cloned());
        self.mvcc.bound_history();
        self.changes
    }
}

// ---- request checks (etcd's API-layer validation) ----------------------------------------------

fn check_range(request: &RangeRequest) -> Result<(), ApplyError> {
    if request.key.is_empty() {
        return Err(ApplyError::EmptyKey);
    }
    Ok(())
}

fn check_put(request: &PutRequest) -> Result<(), ApplyError> {
    if request.key.is_empty() {
        return Err(ApplyError::EmptyKey);
    }
    if request.ignore_value && !request.value.is_empty() {
        return Err(ApplyError::ValueProvided);
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(ApplyError::LeaseProvided);
    }
    Ok(())
}

fn check_delete(request: &DeleteRangeRequest) -> Result<(), ApplyError> {
    if request.key.is_empty() {
        return Err(ApplyError::EmptyKey);
    }
    Ok(())
}

fn check_txn(request: &TxnRequest) -> Result<(), ApplyError> {
    if request.compare.len() > limits::TXN_OPS_MAX
        || request.success.len() > limits::TXN_OPS_MAX
        || request.failure.len() > limits::TXN_OPS_MAX
    {
        return Err(ApplyError::TooManyOps);
    }
    for branch in [&request.success, &request.failure] {
        for op in branch {
            match &op.request {
                Some(request_op::Request::RequestRange(range)) => check_range(range)?,
                Some(request_op::Request::RequestPut(put)) => check_put(put)?,
                Some(request_op::Request::RequestDeleteRange(delete)) => check_delete(delete)?,
                Some(request_op::Request::RequestTxn(_)) => return Err(ApplyError::NestedTxn),
                None => {}
            }
        }
        check_no_duplicate_writes(branch)?;
    }
    Ok(())
}

/// etcd refuses a txn branch that writes one key twice: two puts of a key, or a put of a key that
/// a delete in the same branch covers.
fn check_no_duplicate_writes(ops: &[RequestOp]) -> Result<(), ApplyError> {
    let mut put_keys: HashSet<&[u8]> = HashSet::new();
    for op in ops {
        if let Some(request_op::Request::RequestPut(put)) = &op.request
            && !put_keys.insert(put.key.as_slice())
        {
            return Err(ApplyError::DuplicateKey);
        }
    }
    for op in ops {
        if let Some(request_op::Request::RequestDeleteRange(delete)) = &op.request {
            let range = KeyRange::new(&delete.key, &delete.range_end);
            if put_keys.iter().any(|key| range.contains(key)) {
                return Err(ApplyError::DuplicateKey);
            }
        }
    }
    Ok(())
}

fn compare_kv(compare: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let Ok(target) = CompareTarget::try_from(compare.target) else {
        return false;
    };
    let Ok(result) = CompareResult::try_from(compare.result) else {
        return false;
    };
    let ordering = match target {
        CompareTarget::Value => {
            let wanted: &[u8] = match &compare.target_union {
                Some(TargetUnion::Value(value)) => value,
                _ => &[],
            };
            kv.value.as_slice().cmp(wanted)
        }
        CompareTarget::Version | CompareTarget::Create | CompareTarget::Mod => {
            let (actual, wanted) = match (target, &compare.target_union) {
                (CompareTarget::Version, Some(TargetUnion::Version(v))) => (kv.version, *v),
                (CompareTarget::Version, _) => (kv.version, 0),
                (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => {
                    (kv.create_revision, *v)
                }
                (CompareTarget::Create, _) => (kv.create_revision, 0),
                (_, Some(TargetUnion::ModRevision(v))) => (kv.mod_revision, *v),
                _ => (kv.mod_revision, 0),
            };
            actual.cmp(&wanted)
        }
        CompareTarget::Lease => {
            let wanted = match &compare.target_union {
                Some(TargetUnion::Lease(lease)) => *lease,
                _ => 0,
            };
            kv.lease.cmp(&wanted)
        }
    };
    match result {
        CompareResult::Equal => ordering.is_eq(),
        CompareResult::NotEqual => ordering.is_ne(),
        CompareResult::Greater => ordering.is_gt(),
        CompareResult::Less => ordering.is_lt(),
    }
}

fn passes_revision_filters(request: &RangeRequest, kv: &KeyValue) -> bool {
    (request.min_mod_revision == 0 || kv.mod_revision >= request.min_mod_revision)
        && (request.max_mod_revision == 0 || kv.mod_revision <= request.max_mod_revision)
        && (request.min_create_revision == 0 || kv.create_revision >= request.min_create_revision)
        && (request.max_create_revision == 0 || kv.create_revision <= request.max_create_revision)
}

/// etcd's sort: `kvs` arrive in key order; a non-key target with order NONE sorts ascending.
fn sort_kvs(kvs: &mut [&KeyValue], request: &RangeRequest) {
    use range_request::{SortOrder, SortTarget};
    let target = SortTarget::try_from(request.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(request.sort_order).unwrap_or(SortOrder::None);
    if order == SortOrder::None && target != SortTarget::Key {
        order = SortOrder::Ascend;
    }
    if order == SortOrder::None {
        return;
    }
    match target {
        SortTarget::Key => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
        SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
        SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
        SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
        SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
    }
    if order == SortOrder::Descend {
        kvs.reverse();
    }
}
