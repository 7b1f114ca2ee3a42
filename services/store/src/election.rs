//! Leader election from KV + lease + watch only (not etcd's Election service, which the embedded
//! store does not have), on the recipe of etcd's `concurrency` package.
//!
//! Each candidate puts `{prefix}/{lease_id:016x}` = its node ID, attached to its lease. The
//! candidates queue by their key's create revision: the lowest leads. A candidate waits by
//! watching only the key just before its own (no thundering herd when the leader goes), and
//! leads once no key created before its own remains. Its **term** is its key's create revision:
//! unique, and increasing from one leader to the next. [`Leadership::fence`] is the compare
//! "my key still has that create revision"; adding it to every write makes a deposed leader's
//! writes fail, however late they reach the store.

use std::collections::BTreeMap;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{
    Compare, EventKind, LeaseId, OpResponse, Revision, Store, Txn, TxnOp, WatchStream,
};
use crate::keys::prefix_end;
use crate::pb::etcdserverpb::{
    RangeRequest, RequestOp, TxnRequest, range_request, request_op, response_op,
};
use crate::{Error, Kv, limits};

/// Who leads, as an observer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The leader's node ID (its election key's value).
    pub node_id: String,
    /// Its term (its election key's create revision).
    pub term: Revision,
    /// Its election key.
    pub key: String,
}

/// The election's entry points (a namespace: elections live in the store, not in this type).
#[derive(Debug)]
pub enum Election {}

impl Election {
    /// Joins the election under `prefix` with `lease` and waits until this node leads.
    ///
    /// Idempotent per lease: campaigning again with the same lease (after an error, say) reuses
    /// the key and its place in the queue. Fails with [`Error::LeaseNotFound`] when the key
    /// disappears while waiting (the lease expired or was revoked): campaign again with a new
    /// lease. Keep the lease alive ([`Store::keep_alive`]) for as long as you campaign and lead,
    /// and race this future against the keeper's loss if you want to stop waiting early.
    pub async fn campaign(
        store: &Store,
        prefix: &str,
        lease: LeaseId,
        node_id: &str,
    ) -> Result<Leadership, Error> {
        let prefix = candidates_prefix(prefix);
        let key = format!("{prefix}{:016x}", lease.0);
        let outcome = store
            .txn(
                Txn::new()
                    .when([Compare::create_revision(key.as_str()).equal(0)])
                    .and_then([TxnOp::put(key.as_str(), node_id, Some(lease))])
                    .or_else([TxnOp::get(key.as_str())]),
            )
            .await?;
        let term = if outcome.succeeded {
            outcome.revision
        } else {
            let existing = match outcome.responses.first() {
                Some(OpResponse::Get(kvs)) => kvs.first().cloned(),
                _ => None,
            };
            // Gone again since the compare: its lease expired. Nothing to adopt.
            let existing = existing.ok_or(Error::LeaseNotFound)?;
            if existing.value != node_id.as_bytes() {
                // Same lease, other node ID: update the value, keep the place in the queue.
                store.put(&key, node_id, Some(lease)).await?;
            }
            existing.create_revision
        };
        tracing::debug!(%key, term, "campaigning");
        let led_at = wait_for_turn(store, &prefix, &key, term).await?;
        tracing::info!(%key, term, "elected");

        let (lost_tx, lost) = watch::channel(false);
        let monitor = tokio::spawn(monitor_key(
            store.clone(),
            key.clone(),
            term,
            led_at,
            lost_tx,
        ));
        Ok(Leadership {
            term,
            key,
            store: store.clone(),
            lost,
            monitor,
        })
    }

    /// Follows who leads the election under `prefix` from a background task: `None` while
    /// nobody campaigns (or before the first read). The task ends when every receiver is
    /// dropped; while the store is unreachable the last known value stays.
    pub fn observe(store: &Store, prefix: &str) -> watch::Receiver<Option<LeaderInfo>> {
        let (tx, rx) = watch::channel(None);
        let store = store.clone();
        let prefix = candidates_prefix(prefix);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tx.closed() => return,
                    result = observe_once(&store, &prefix, &tx) => {
                        if let Err(error) = result {
                            tracing::debug!(%prefix, %error, "election observer restarting");
                        }
                    }
                }
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(limits::OBSERVE_RETRY) => {}
                }
            }
        });
        rx
    }
}

/// A leader's term as a value: what a leader hands to the code that writes on its behalf (the
/// dispatcher), so every write can carry [`Fence::compare`]. Cheap to clone; equal fences are
/// the same term of the same election. Displays as `term-{term}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    key: String,
    term: Revision,
}

impl Fence {
    /// The fence of the leadership held through election key `key` at term `term`.
    pub fn new(key: impl Into<String>, term: Revision) -> Self {
        Fence {
            key: key.into(),
            term,
        }
    }

    /// The compare that holds only while this term does: `create_revision(key) == term`.
    pub fn compare(&self) -> Compare {
        Compare::create_revision(self.key.as_str()).equal(self.term)
    }

    /// The leader's election key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The term (the election key's create revision).
    pub fn term(&self) -> Revision {
        self.term
    }
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "term-{}", self.term)
    }
}

/// This node's leadership, from [`Election::campaign`].
#[derive(Debug)]
pub struct Leadership {
    /// The term: this node's election key's create revision.
    pub term: Revision,
    /// This node's election key.
    pub key: String,
    store: Store,
    lost: watch::Receiver<bool>,
    monitor: JoinHandle<()>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

impl Leadership {
    /// The compare that holds only while this leadership does: add it to every write made as
    /// leader, so a deposed leader's writes fail.
    pub fn fence(&self) -> Compare {
        self.fence_token().compare()
    }

    /// This leadership's term as a [`Fence`] value, to hand to whoever writes as leader.
    pub fn fence_token(&self) -> Fence {
        Fence::new(self.key.clone(), self.term)
    }

    /// Steps down: deletes this node's key (only if it is still this term's), so the next
    /// candidate leads at once. The lease stays.
    pub async fn resign(self) -> Result<(), Error> {
        self.store
            .txn(
                Txn::new()
                    .when([self.fence()])
                    .and_then([TxnOp::delete(self.key.as_str())]),
            )
            .await?;
        tracing::info!(key = %self.key, term = self.term, "resigned");
        Ok(())
    }

    /// Resolves when the key is gone (lease expired or revoked, key deleted): this node no
    /// longer leads. While the store is unreachable this cannot fire; the lease keeper's loss
    /// (see [`crate::LeaseKeeper`]) covers that case, and the fence keeps writes safe anyway.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Whether the leadership is known to be lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}

/// `"{prefix}/"`, however the caller spelled the prefix.
fn candidates_prefix(prefix: &str) -> String {
    format!("{}/", prefix.trim_end_matches('/'))
}

/// Waits until no candidate key created before ours remains; returns the revision at which
/// that was read.
async fn wait_for_turn(
    store: &Store,
    prefix: &str,
    key: &str,
    term: Revision,
) -> Result<Revision, Error> {
    loop {
        // One snapshot: our own key, and the candidate just before us.
        let own = RangeRequest {
            key: key.as_bytes().to_vec(),
            ..RangeRequest::default()
        };
        let predecessor = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            limit: 1,
            sort_order: range_request::SortOrder::Descend as i32,
            sort_target: range_request::SortTarget::Create as i32,
            max_create_revision: term - 1,
            ..RangeRequest::default()
        };
        let response = store
            .raw_txn(TxnRequest {
                compare: Vec::new(),
                success: vec![range_op(own), range_op(predecessor)],
                failure: Vec::new(),
            })
            .await?;
        let revision = crate::client::header_revision(response.header.as_ref())?;
        let mut ranges = response.responses.into_iter().map(|op| match op.response {
            Some(response_op::Response::ResponseRange(range)) => range.kvs,
            _ => Vec::new(),
        });
        let own = ranges.next().unwrap_or_default();
        let predecessor = ranges.next().unwrap_or_default();
        if !own.iter().any(|kv| kv.create_revision == term) {
            return Err(Error::LeaseNotFound);
        }
        let Some(predecessor) = predecessor.into_iter().next() else {
            return Ok(revision);
        };
        let predecessor = Kv::try_from(predecessor)?;
        tracing::debug!(%key, waits_for = %predecessor.key, "waiting for predecessor");
        let mut predecessor_watch = store
            .watch_key(&predecessor.key, Some(revision + 1))
            .await?;
        let mut own_watch = store.watch_key(key, Some(revision + 1)).await?;
        tokio::select! {
            result = wait_for_delete(&mut predecessor_watch) => result?,
            result = wait_for_delete(&mut own_watch) => {
                result?;
                return Err(Error::LeaseNotFound);
            }
        }
    }
}

fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(range)),
    }
}

/// Resolves at the first delete on the watch.
async fn wait_for_delete(watch: &mut WatchStream) -> Result<(), Error> {
    while let Some(event) = watch.next().await {
        if event?.kind == EventKind::Delete {
            return Ok(());
        }
    }
    Err(Error::Unavailable("watch ended".to_owned()))
}

/// Watches the leader's own key from `from` and reports when it goes. A broken watch is
/// resumed; if history was compacted meanwhile, the key is checked directly.
async fn monitor_key(
    store: Store,
    key: String,
    term: Revision,
    from: Revision,
    lost: watch::Sender<bool>,
) {
    let mut last_seen = from;
    loop {
        match store.watch_key(&key, Some(last_seen + 1)).await {
            Ok(mut watch) => {
                while let Some(event) = watch.next().await {
                    match event {
                        Ok(event) if event.kind == EventKind::Delete => {
                            tracing::warn!(%key, term, "leadership lost: key deleted");
                            lost.send_replace(true);
                            return;
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::debug!(%key, %error, "leadership watch broke");
                            break;
                        }
                    }
                }
                last_seen = watch.last_revision();
            }
            Err(error) => tracing::debug!(%key, %error, "leadership watch failed"),
        }
        // Before resuming, check the key directly: covers compacted history too.
        match store.get_with_revision(&key).await {
            Ok((Some(kv), revision)) if kv.create_revision == term => last_seen = revision,
            Ok(_) => {
                tracing::warn!(%key, term, "leadership lost: key gone");
                lost.send_replace(true);
                return;
            }
            Err(_) => tokio::time::sleep(limits::OBSERVE_RETRY).await,
        }
    }
}

/// Reads the candidates, publishes the leader, then follows changes until the watch breaks.
async fn observe_once(
    store: &Store,
    prefix: &str,
    leader: &watch::Sender<Option<LeaderInfo>>,
) -> Result<(), Error> {
    let (kvs, revision) = store.get_prefix(prefix).await?;
    let mut candidates: BTreeMap<String, Kv> =
        kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    publish_leader(leader, &candidates);
    let mut watch = store.watch_prefix(prefix, Some(revision + 1)).await?;
    while let Some(event) = watch.next().await {
        let event = event?;
        match event.kind {
            EventKind::Put => {
                candidates.insert(event.kv.key.clone(), event.kv);
            }
            EventKind::Delete => {
                candidates.remove(&event.kv.key);
            }
        }
        publish_leader(leader, &candidates);
    }
    Err(Error::Unavailable("election watch ended".to_owned()))
}

fn publish_leader(leader: &watch::Sender<Option<LeaderInfo>>, candidates: &BTreeMap<String, Kv>) {
    let current = candidates
        .values()
        .min_by_key(|kv| kv.create_revision)
        .map(|kv| LeaderInfo {
            node_id: String::from_utf8_lossy(&kv.value).into_owned(),
            term: kv.create_revision,
            key: kv.key.clone(),
        });
    leader.send_if_modified(|known| {
        if *known == current {
            return false;
        }
        *known = current;
        true
    });
}
