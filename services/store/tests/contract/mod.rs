//! The store contract: what Centinela relies on from its coordination store, as cases that run
//! unchanged against any [`Store`]. `contract_embedded.rs` runs them against a fresh
//! [`centinela_store::EmbeddedStore`] each; `contract_etcd.rs` against a fresh real etcd each.
//! Real etcd is the reference: if the two disagree here, the embedded store is wrong.
//!
//! Every case takes the store and a key prefix of its own, and never assumes absolute revision
//! numbers. Waits are on conditions with a generous deadline, never sleep-then-assert, except
//! where the assertion is that something does *not* happen for a while.

use std::time::Duration;

use centinela_store::{
    Compare, Election, Error, EventKind, LeaseId, OpResponse, Store, Txn, TxnOp, WatchEvent,
    WatchStream,
};
use centinela_testkit::wait::Wait;
use futures::StreamExt;
use tokio::time::Instant;

/// Lease TTL for the cases: etcd's practical minimum (it raises anything lower to 2 s).
pub const TTL: Duration = Duration::from_secs(2);

/// How long any awaited condition may take before the case fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// Calls `$runner! { case, ... }` with every case, so no runner can miss one.
macro_rules! for_each_case {
    ($runner:ident) => {
        $runner! {
            put_get_revisions_and_versions,
            get_prefix_and_delete,
            get_prefix_reads_in_pages_at_one_revision,
            get_at_reads_a_past_revision,
            txn_compare_and_swap,
            txn_on_missing_key,
            txn_is_one_revision,
            txn_of_many_records_fails_whole_on_one_compare,
            serializable_txn_reads_what_was_written,
            put_with_unknown_lease_fails,
            lease_grant_attach_ttl_revoke,
            lease_ttl_is_raised_to_minimum,
            lease_expiry_deletes_keys_and_notifies_watchers,
            keep_alive_extends_lease,
            keeper_reports_loss,
            watch_sees_put_and_delete_with_prev_kv,
            watch_replays_from_past_revision,
            watch_delivers_txn_events_together,
            watch_cancel_ends_stream,
            watch_from_compacted_revision_fails,
            watch_from_future_revision_waits,
            election_single_leader,
            election_takeover_on_expiry_fences_old_leader,
            election_resign_hands_over_promptly,
            election_observe_follows_leader,
        }
    };
}

async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn next_event(watch: &mut WatchStream) -> WatchEvent {
    within("a watch event", watch.next())
        .await
        .expect("watch stream ended")
        .expect("watch stream failed")
}

/// Waits for the next event and checks it is a delete of `key`.
async fn expect_delete(watch: &mut WatchStream, key: &str) -> WatchEvent {
    let event = next_event(watch).await;
    assert_eq!(
        (event.kind, event.kv.key.as_str()),
        (EventKind::Delete, key)
    );
    event
}

pub async fn put_get_revisions_and_versions(store: Store, prefix: String) {
    let key = format!("{prefix}k");
    assert_eq!(store.get(&key).await.unwrap(), None);
    let first = store.put(&key, "v1", None).await.unwrap();
    let kv = store.get(&key).await.unwrap().unwrap();
    assert_eq!(kv.value, b"v1");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        (first, first, 1, None)
    );

    let second = store.put(&key, "v2", None).await.unwrap();
    assert!(second > first);
    let kv = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (first, second, 2)
    );
    let status = store.status().await.unwrap();
    assert!(status.revision >= second);
    assert!(status.member_id != 0 && status.leader != 0, "{status:?}");

    // Deleting and re-creating starts a new life: new create revision, version 1.
    assert!(store.delete(&key).await.unwrap());
    let third = store.put(&key, "v3", None).await.unwrap();
    let kv = store.get(&key).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.version), (third, 1));
}

pub async fn get_prefix_and_delete(store: Store, prefix: String) {
    for name in ["p/c", "p/a", "p/b", "pz", "q"] {
        store
            .put(&format!("{prefix}{name}"), name, None)
            .await
            .unwrap();
    }
    let last = store.status().await.unwrap().revision;
    let (kvs, revision) = store.get_prefix(&format!("{prefix}p/")).await.unwrap();
    let keys: Vec<_> = kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        ["p/a", "p/b", "p/c"].map(|name| format!("{prefix}{name}"))
    );
    assert_eq!(kvs[0].value, b"p/a");
    assert!(revision >= last);

    assert!(store.delete(&format!("{prefix}p/b")).await.unwrap());
    assert!(!store.delete(&format!("{prefix}p/b")).await.unwrap());
    assert_eq!(
        store.delete_prefix(&format!("{prefix}p/")).await.unwrap(),
        2
    );
    let (kvs, _) = store.get_prefix(&format!("{prefix}p/")).await.unwrap();
    assert!(kvs.is_empty());
    assert!(store.get(&format!("{prefix}pz")).await.unwrap().is_some());
}

pub async fn get_prefix_reads_in_pages_at_one_revision(store: Store, prefix: String) {
    // More keys than one page (1000), written 100 per txn.
    let total = 2100;
    for batch in 0..total / 100 {
        let ops = (0..100).map(|i| {
            let n = batch * 100 + i;
            TxnOp::put(format!("{prefix}many/{n:05}"), n.to_string(), None)
        });
        assert!(store.txn(Txn::new().and_then(ops)).await.unwrap().succeeded);
    }
    let (kvs, _) = store.get_prefix(&format!("{prefix}many/")).await.unwrap();
    assert_eq!(kvs.len(), total);
    assert!(kvs.windows(2).all(|pair| pair[0].key < pair[1].key));
    assert_eq!(kvs[1999].value, b"1999");

    // Keys only: the same keys in the same order, no values.
    let (keys, _) = store
        .get_prefix_keys(&format!("{prefix}many/"))
        .await
        .unwrap();
    assert_eq!(keys.len(), total);
    assert!(
        keys.iter().zip(&kvs).all(|(k, kv)| k.key == kv.key
            && k.mod_revision == kv.mod_revision
            && k.value.is_empty())
    );
}

pub async fn get_at_reads_a_past_revision(store: Store, prefix: String) {
    let key = format!("{prefix}k");
    let r1 = store.put(&key, "1", None).await.unwrap();
    let r2 = store.put(&key, "2", None).await.unwrap();
    store.delete(&key).await.unwrap();
    let value = |kv: Option<centinela_store::Kv>| kv.map(|kv| (kv.value, kv.mod_revision));
    assert_eq!(
        value(store.get_at(&key, r1).await.unwrap()),
        Some((b"1".to_vec(), r1))
    );
    assert_eq!(
        value(store.get_at(&key, r2).await.unwrap()),
        Some((b"2".to_vec(), r2))
    );
    assert_eq!(
        store.get_at(&key, r1 - 1).await.unwrap(),
        None,
        "not yet written"
    );
    let now = store.status().await.unwrap().revision;
    assert_eq!(store.get_at(&key, now).await.unwrap(), None, "deleted");
    store.compact(now).await.unwrap();
    assert!(
        matches!(store.get_at(&key, r2).await, Err(Error::Compacted { .. })),
        "a compacted revision is refused, not answered with today's value"
    );
}

pub async fn txn_compare_and_swap(store: Store, prefix: String) {
    let key = format!("{prefix}cas");
    let created = store.put(&key, "a", None).await.unwrap();

    // Success path: the compare holds, the success branch runs.
    let outcome = store
        .txn(
            Txn::new()
                .when([
                    Compare::mod_revision(key.as_str()).equal(created),
                    Compare::value(key.as_str()).equal(b"a"),
                    Compare::version(key.as_str()).equal(1),
                ])
                .and_then([
                    TxnOp::put(key.as_str(), "b", None),
                    TxnOp::get(key.as_str()),
                ])
                .or_else([TxnOp::get(key.as_str())]),
        )
        .await
        .unwrap();
    assert!(outcome.succeeded);
    assert!(outcome.revision > created);
    let OpResponse::Get(kvs) = &outcome.responses[1] else {
        panic!("second response is the get: {outcome:?}");
    };
    assert_eq!(kvs[0].value, b"b", "a txn reads its own writes");

    // Failure path: a stale mod revision; the failure branch runs, nothing is written.
    let outcome = store
        .txn(
            Txn::new()
                .when([Compare::mod_revision(key.as_str()).equal(created)])
                .and_then([TxnOp::put(key.as_str(), "c", None)])
                .or_else([TxnOp::get(key.as_str())]),
        )
        .await
        .unwrap();
    assert!(!outcome.succeeded);
    match outcome.responses.as_slice() {
        [OpResponse::Get(kvs)] => assert_eq!(kvs[0].value, b"b"),
        other => panic!("unexpected responses {other:?}"),
    }
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, b"b");

    // The other comparisons.
    let holds = |compare: Compare| {
        let store = store.clone();
        async move {
            store
                .txn(Txn::new().when([compare]))
                .await
                .unwrap()
                .succeeded
        }
    };
    assert!(holds(Compare::version(key.as_str()).greater(1)).await);
    assert!(holds(Compare::version(key.as_str()).less(3)).await);
    assert!(holds(Compare::value(key.as_str()).not_equal(b"a")).await);
    assert!(holds(Compare::create_revision(key.as_str()).equal(created)).await);
    assert!(holds(Compare::lease(key.as_str()).equal(None)).await);
    assert!(!holds(Compare::mod_revision(key.as_str()).less(created)).await);
}

/// What a group commit of presses relies on (`Records::press_groups`): a transaction over
/// many records, each guarded, at etcd's limit of operations, writes all or nothing; one
/// stale guard among them fails it whole; and a read of the guards tells which one failed.
pub async fn txn_of_many_records_fails_whole_on_one_compare(store: Store, prefix: String) {
    // 60 records: a guard and a put each, plus 60 absent keys guarded and created: 120
    // compares and 120 puts, under etcd's default --max-txn-ops (128).
    let records: Vec<String> = (0..60).map(|i| format!("{prefix}rec/{i:02}")).collect();
    let fresh: Vec<String> = (0..60).map(|i| format!("{prefix}new/{i:02}")).collect();
    let mut revisions = Vec::new();
    for key in &records {
        revisions.push(store.put(key, "0", None).await.unwrap());
    }
    let batch = |revisions: &[i64], value: &'static str| {
        let compares = records
            .iter()
            .zip(revisions)
            .map(|(key, rev)| Compare::mod_revision(key.as_str()).equal(*rev))
            .chain(
                fresh
                    .iter()
                    .map(|key| Compare::create_revision(key.as_str()).equal(0)),
            );
        let puts = records
            .iter()
            .chain(&fresh)
            .map(|key| TxnOp::put(key.as_str(), value, None));
        Txn::new().when(compares).and_then(puts)
    };
    // Someone changes one record after it was read: the batch fails, nothing is written.
    let changed = store.put(&records[37], "other", None).await.unwrap();
    let revision = || async { store.get_prefix(&prefix).await.unwrap().1 };
    let before = revision().await;
    let outcome = store.txn(batch(&revisions, "1")).await.unwrap();
    assert!(!outcome.succeeded, "one stale guard fails the whole batch");
    assert_eq!(revision().await, before, "nothing written");
    assert!(store.get(&fresh[0]).await.unwrap().is_none());
    // Reading the guarded keys again names the culprit: the only one whose revision moved.
    let mut moved = Vec::new();
    for (key, revision) in records.iter().zip(&revisions) {
        if store.get(key).await.unwrap().unwrap().mod_revision != *revision {
            moved.push(key);
        }
    }
    assert_eq!(moved, [&records[37]]);
    // With that guard refreshed the same batch commits, in one revision.
    revisions[37] = changed;
    let outcome = store.txn(batch(&revisions, "1")).await.unwrap();
    assert!(outcome.succeeded);
    assert_eq!(outcome.revision, before + 1, "one revision for 120 writes");
    for key in records.iter().chain(&fresh) {
        assert_eq!(store.get(key).await.unwrap().unwrap().value, b"1", "{key}");
    }
}

pub async fn txn_on_missing_key(store: Store, prefix: String) {
    let key = format!("{prefix}absent");
    // create_revision == 0 is "does not exist": create-if-absent succeeds once.
    let create_if_absent = || {
        Txn::new()
            .when([Compare::create_revision(key.as_str()).equal(0)])
            .and_then([TxnOp::put(key.as_str(), "first", None)])
            .or_else([TxnOp::get(key.as_str())])
    };
    let outcome = store.txn(create_if_absent()).await.unwrap();
    assert!(outcome.succeeded);
    let outcome = store.txn(create_if_absent()).await.unwrap();
    assert!(!outcome.succeeded);

    // A value compare on a missing key fails whatever the operator; version compares to 0.
    let missing = format!("{prefix}missing");
    let holds = |compare: Compare| {
        let store = store.clone();
        async move {
            store
                .txn(Txn::new().when([compare]))
                .await
                .unwrap()
                .succeeded
        }
    };
    assert!(!holds(Compare::value(missing.as_str()).not_equal(b"x")).await);
    assert!(holds(Compare::version(missing.as_str()).equal(0)).await);
    assert!(holds(Compare::mod_revision(missing.as_str()).less(1)).await);
}

/// A read-only transaction marked serializable is accepted and, on one member (or with no
/// lag), reads the latest write; a serializable mark on a transaction that writes is harmless.
pub async fn serializable_txn_reads_what_was_written(store: Store, prefix: String) {
    let key = format!("{prefix}k");
    let written = store
        .txn(
            Txn::new()
                .and_then([TxnOp::put(key.clone(), "1", None), TxnOp::get(key.clone())])
                .serializable(),
        )
        .await
        .unwrap();
    assert!(written.succeeded);
    let read = store
        .txn(
            Txn::new()
                .and_then([TxnOp::get(key.clone())])
                .serializable(),
        )
        .await
        .unwrap();
    match &read.responses[..] {
        [OpResponse::Get(kvs)] => {
            assert_eq!(kvs.len(), 1);
            assert_eq!(kvs[0].value, b"1");
            assert_eq!(kvs[0].mod_revision, written.revision);
        }
        other => panic!("unexpected responses {other:?}"),
    }
}

pub async fn txn_is_one_revision(store: Store, prefix: String) {
    let before = store.status().await.unwrap().revision;
    let outcome = store
        .txn(Txn::new().and_then([
            TxnOp::put(format!("{prefix}a"), "1", None),
            TxnOp::put(format!("{prefix}b"), "2", None),
            TxnOp::put(format!("{prefix}c"), "3", None),
        ]))
        .await
        .unwrap();
    assert!(outcome.succeeded);
    assert_eq!(outcome.revision, before + 1);
    for name in ["a", "b", "c"] {
        let kv = store
            .get(&format!("{prefix}{name}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kv.mod_revision, outcome.revision);
    }

    // Read-only txns and deletes of nothing do not bump the revision.
    let outcome = store
        .txn(Txn::new().and_then([TxnOp::get_prefix(prefix.as_str())]))
        .await
        .unwrap();
    assert_eq!(outcome.revision, before + 1);
    let OpResponse::Get(kvs) = &outcome.responses[0] else {
        panic!("a get response");
    };
    assert_eq!(kvs.len(), 3);
    assert!(!store.delete(&format!("{prefix}nothing")).await.unwrap());
    assert_eq!(store.status().await.unwrap().revision, before + 1);

    // A delete in a txn reports how many keys it removed.
    let outcome = store
        .txn(Txn::new().and_then([TxnOp::delete_prefix(prefix.as_str())]))
        .await
        .unwrap();
    assert_eq!(outcome.responses, [OpResponse::Delete { deleted: 3 }]);
    assert_eq!(outcome.revision, before + 2);
}

pub async fn put_with_unknown_lease_fails(store: Store, prefix: String) {
    let bogus = LeaseId(0x0123_4567_89ab_cdef);
    let error = store
        .put(&format!("{prefix}k"), "v", Some(bogus))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::LeaseNotFound), "{error:?}");
    assert!(error.is_retryable());
    let error = store
        .txn(Txn::new().and_then([
            TxnOp::put(format!("{prefix}a"), "v", None),
            TxnOp::put(format!("{prefix}b"), "v", Some(bogus)),
        ]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::LeaseNotFound), "{error:?}");
    assert_eq!(
        store.get(&format!("{prefix}a")).await.unwrap(),
        None,
        "all or nothing"
    );
    assert!(matches!(
        store.revoke(bogus).await,
        Err(Error::LeaseNotFound)
    ));
    assert_eq!(store.lease_ttl(bogus).await.unwrap(), None);
    assert!(matches!(
        store.keep_alive(bogus).await,
        Err(Error::LeaseNotFound)
    ));
}

pub async fn lease_grant_attach_ttl_revoke(store: Store, prefix: String) {
    let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    let key = format!("{prefix}leased");
    store.put(&key, "v", Some(lease)).await.unwrap();
    store
        .put(&format!("{prefix}free"), "v", None)
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().lease, Some(lease));

    let ttl = store.lease_ttl(lease).await.unwrap().unwrap();
    assert_eq!(ttl.granted, Duration::from_secs(30));
    assert!(ttl.remaining <= ttl.granted && ttl.remaining >= Duration::from_secs(20));
    assert_eq!(ttl.keys, std::slice::from_ref(&key));

    let before = store.status().await.unwrap().revision;
    store.revoke(lease).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert!(store.get(&format!("{prefix}free")).await.unwrap().is_some());
    assert_eq!(store.status().await.unwrap().revision, before + 1);
    assert_eq!(store.lease_ttl(lease).await.unwrap(), None);
}

pub async fn lease_ttl_is_raised_to_minimum(store: Store, _prefix: String) {
    // etcd raises a TTL below its minimum (2 s with default timing) instead of refusing it.
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let ttl = store.lease_ttl(lease).await.unwrap().unwrap();
    assert_eq!(ttl.granted, TTL);
    let lease = store
        .grant_lease(Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!(store.lease_ttl(lease).await.unwrap().unwrap().granted, TTL);
}

pub async fn lease_expiry_deletes_keys_and_notifies_watchers(store: Store, prefix: String) {
    let lease = store.grant_lease(TTL).await.unwrap();
    let granted_at = Instant::now();
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    store.put(&a, "v", Some(lease)).await.unwrap();
    store.put(&b, "v", Some(lease)).await.unwrap();
    let mut watch = store.watch_prefix(&prefix, None).await.unwrap();

    let first = expect_delete(&mut watch, &a).await;
    let second = expect_delete(&mut watch, &b).await;
    assert_eq!(
        first.revision, second.revision,
        "one revision for the whole lease"
    );
    assert!(
        granted_at.elapsed() >= TTL - Duration::from_millis(100),
        "not before the TTL"
    );
    assert_eq!(first.prev_kv.unwrap().lease, Some(lease));
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.lease_ttl(lease).await.unwrap(), None);
    assert!(matches!(
        store.put(&a, "v", Some(lease)).await,
        Err(Error::LeaseNotFound)
    ));
}

pub async fn keep_alive_extends_lease(store: Store, prefix: String) {
    let lease = store.grant_lease(TTL).await.unwrap();
    let key = format!("{prefix}kept");
    store.put(&key, "v", Some(lease)).await.unwrap();
    let keeper = store.keep_alive(lease).await.unwrap();
    assert_eq!(keeper.granted_ttl(), TTL);
    // Asserting that nothing happens takes time: well past two TTLs.
    tokio::time::sleep(TTL * 2 + TTL / 2).await;
    assert!(keeper.is_alive());
    assert!(store.get(&key).await.unwrap().is_some());
    assert!(store.lease_ttl(lease).await.unwrap().is_some());

    // Dropping the keeper stops the refreshes: the lease then expires.
    let mut watch = store.watch_prefix(&prefix, None).await.unwrap();
    drop(keeper);
    expect_delete(&mut watch, &key).await;
}

pub async fn keeper_reports_loss(store: Store, _prefix: String) {
    let lease = store.grant_lease(TTL).await.unwrap();
    let keeper = store.keep_alive(lease).await.unwrap();
    let mut alive = keeper.alive();
    assert!(*alive.borrow_and_update());
    store.revoke(lease).await.unwrap();
    within("the keeper to report the loss", keeper.lost()).await;
    assert!(!keeper.is_alive());
    assert!(alive.has_changed().unwrap_or(true));
}

pub async fn watch_sees_put_and_delete_with_prev_kv(store: Store, prefix: String) {
    let key = format!("{prefix}w");
    let mut watch = store.watch_prefix(&prefix, None).await.unwrap();
    let created_at = watch.last_revision();
    // A key just outside the prefix ("/p" + "other" for prefix "/p/") is not seen.
    let outside = format!("{}other", prefix.trim_end_matches('/'));
    store.put(&outside, "x", None).await.unwrap();
    let r1 = store.put(&key, "v1", None).await.unwrap();
    let r2 = store.put(&key, "v2", None).await.unwrap();
    store.delete(&key).await.unwrap();

    let put1 = next_event(&mut watch).await;
    assert_eq!(put1.kv.key, key);
    assert_eq!(
        (put1.kind, put1.revision, put1.prev_kv),
        (EventKind::Put, r1, None)
    );
    assert!(r1 > created_at);
    assert_eq!((put1.kv.version, put1.kv.create_revision), (1, r1));

    let put2 = next_event(&mut watch).await;
    assert_eq!((put2.kind, put2.revision), (EventKind::Put, r2));
    assert_eq!(put2.kv.value, b"v2");
    assert_eq!(put2.prev_kv.unwrap().value, b"v1");

    let delete = expect_delete(&mut watch, &key).await;
    assert!(delete.revision > r2);
    assert_eq!(delete.kv.mod_revision, delete.revision);
    assert!(delete.kv.value.is_empty());
    assert_eq!(delete.prev_kv.unwrap().value, b"v2");
    assert_eq!(watch.last_revision(), delete.revision);
}

pub async fn watch_replays_from_past_revision(store: Store, prefix: String) {
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    let r1 = store.put(&a, "1", None).await.unwrap();
    let r2 = store.put(&b, "2", None).await.unwrap();
    store.delete(&a).await.unwrap();

    let mut watch = store.watch_prefix(&prefix, Some(r1)).await.unwrap();
    assert_eq!(watch.last_revision(), r1 - 1);
    let event = next_event(&mut watch).await;
    assert_eq!(
        (event.kind, event.kv.key.as_str(), event.revision),
        (EventKind::Put, a.as_str(), r1)
    );
    let event = next_event(&mut watch).await;
    assert_eq!((event.kv.key.as_str(), event.revision), (b.as_str(), r2));
    let deleted = expect_delete(&mut watch, &a).await;
    assert_eq!(deleted.prev_kv.unwrap().value, b"1");

    // ... and then goes on live.
    let r4 = store.put(&b, "3", None).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!((event.revision, event.kv.version), (r4, 2));

    // From the middle of history: only what came after.
    let mut watch = store.watch_prefix(&prefix, Some(r2 + 1)).await.unwrap();
    expect_delete(&mut watch, &a).await;
}

pub async fn watch_delivers_txn_events_together(store: Store, prefix: String) {
    let mut watch = store.watch_prefix(&prefix, None).await.unwrap();
    let outcome = store
        .txn(Txn::new().and_then([
            TxnOp::put(format!("{prefix}x"), "1", None),
            TxnOp::put(format!("{prefix}y"), "2", None),
        ]))
        .await
        .unwrap();
    let first = next_event(&mut watch).await;
    assert_eq!(first.revision, outcome.revision);
    assert!(
        watch.last_revision() < outcome.revision,
        "a revision is complete only after its last event"
    );
    let second = next_event(&mut watch).await;
    assert_eq!(second.revision, outcome.revision);
    assert_eq!(watch.last_revision(), outcome.revision);
}

pub async fn watch_cancel_ends_stream(store: Store, prefix: String) {
    let mut watch = store.watch_prefix(&prefix, None).await.unwrap();
    store
        .put(&format!("{prefix}before"), "", None)
        .await
        .unwrap();
    watch.cancel().await.unwrap();
    store
        .put(&format!("{prefix}after"), "", None)
        .await
        .unwrap();
    // The event sent before the cancel may still arrive; nothing after it; then the end.
    loop {
        match within("the canceled stream to end", watch.next()).await {
            None => break,
            Some(Ok(event)) => assert!(event.kv.key.ends_with("before"), "{event:?}"),
            Some(Err(error)) => panic!("cancel is not an error: {error:?}"),
        }
    }
}

pub async fn watch_from_compacted_revision_fails(store: Store, prefix: String) {
    let key = format!("{prefix}c");
    let r1 = store.put(&key, "1", None).await.unwrap();
    store.put(&key, "2", None).await.unwrap();
    let r3 = store.put(&key, "3", None).await.unwrap();
    store.compact(r3).await.unwrap();
    assert!(matches!(
        store.compact(r3).await,
        Err(Error::Compacted { .. })
    ));

    let mut watch = store.watch_prefix(&prefix, Some(r1)).await.unwrap();
    match within("the compaction error", watch.next()).await {
        Some(Err(Error::Compacted { compact_revision })) => assert_eq!(compact_revision, r3),
        other => panic!("expected a compaction error, got {other:?}"),
    }
    assert!(watch.next().await.is_none());

    // From the compaction revision itself, history is still there.
    let mut watch = store.watch_prefix(&prefix, Some(r3)).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!((event.revision, event.kv.value.as_slice()), (r3, &b"3"[..]));
}

pub async fn watch_from_future_revision_waits(store: Store, prefix: String) {
    let now = store.status().await.unwrap().revision;
    let mut watch = store.watch_prefix(&prefix, Some(now + 3)).await.unwrap();
    for value in ["1", "2", "3"] {
        store.put(&format!("{prefix}f"), value, None).await.unwrap();
    }
    let event = next_event(&mut watch).await;
    assert_eq!(
        (event.revision, event.kv.value.as_slice()),
        (now + 3, &b"3"[..])
    );
}

pub async fn election_single_leader(store: Store, prefix: String) {
    let election = format!("{prefix}election");
    let (lease_a, lease_b) = (
        store.grant_lease(Duration::from_secs(30)).await.unwrap(),
        store.grant_lease(Duration::from_secs(30)).await.unwrap(),
    );
    let a = within(
        "a to lead",
        Election::campaign(&store, &election, lease_a, "node-a"),
    )
    .await
    .unwrap();
    assert_eq!(a.key, format!("{election}/{lease_a:016x}"));
    assert_eq!(
        store.get(&a.key).await.unwrap().unwrap().create_revision,
        a.term
    );

    let b_store = store.clone();
    let b_election = election.clone();
    let mut b =
        tokio::spawn(
            async move { Election::campaign(&b_store, &b_election, lease_b, "node-b").await },
        );
    // While a leads, b must not: this takes waiting.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut b)
            .await
            .is_err(),
        "two leaders"
    );
    // Campaigning again with the same lease is idempotent: same key, same term.
    let again = Election::campaign(&store, &election, lease_a, "node-a")
        .await
        .unwrap();
    assert_eq!((again.key.as_str(), again.term), (a.key.as_str(), a.term));
    b.abort();
    store.revoke(lease_b).await.unwrap();
}

pub async fn election_takeover_on_expiry_fences_old_leader(store: Store, prefix: String) {
    let election = format!("{prefix}election");
    let fenced_key = format!("{prefix}dispatch");
    let lease_a = store.grant_lease(TTL).await.unwrap();
    let keeper_a = store.keep_alive(lease_a).await.unwrap();
    let a = Election::campaign(&store, &election, lease_a, "node-a")
        .await
        .unwrap();

    let lease_b = store.grant_lease(TTL).await.unwrap();
    let _keeper_b = store.keep_alive(lease_b).await.unwrap();
    let b_store = store.clone();
    let b_election = election.clone();
    let b =
        tokio::spawn(
            async move { Election::campaign(&b_store, &b_election, lease_b, "node-b").await },
        );

    // While a leads, its fenced writes succeed.
    let fenced_write = |leader_fence: Compare, value: &'static str| {
        Txn::new()
            .when([leader_fence])
            .and_then([TxnOp::put(fenced_key.as_str(), value, None)])
    };
    assert!(
        store
            .txn(fenced_write(a.fence(), "by-a"))
            .await
            .unwrap()
            .succeeded
    );

    // a stops refreshing (a paused or partitioned process): its lease expires, b takes over.
    drop(keeper_a);
    let b = within("b to take over", b).await.unwrap().unwrap();
    assert!(
        b.term > a.term,
        "terms increase: {} then {}",
        a.term,
        b.term
    );
    within("a to notice it lost", a.lost()).await;
    assert!(a.is_lost());

    // The deposed leader's late write fails its fence (also as a handed-out Fence value); the
    // new leader's succeeds.
    let a_token = a.fence_token();
    assert_eq!((a_token.key(), a_token.term()), (a.key.as_str(), a.term));
    let late = store.txn(fenced_write(a_token.compare(), "late-a")).await;
    assert!(!late.unwrap().succeeded);
    assert!(
        !store
            .txn(fenced_write(a.fence(), "late-a"))
            .await
            .unwrap()
            .succeeded
    );
    assert!(
        store
            .txn(fenced_write(b.fence(), "by-b"))
            .await
            .unwrap()
            .succeeded
    );
    assert_eq!(
        store.get(&fenced_key).await.unwrap().unwrap().value,
        b"by-b"
    );
}

pub async fn election_resign_hands_over_promptly(store: Store, prefix: String) {
    let election = format!("{prefix}election");
    let lease_a = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    let lease_b = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    let lease_c = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    let a = Election::campaign(&store, &election, lease_a, "node-a")
        .await
        .unwrap();
    let spawn_campaign = |lease: LeaseId, node: &'static str| {
        let store = store.clone();
        let election = election.clone();
        tokio::spawn(async move { Election::campaign(&store, &election, lease, node).await })
    };
    let b = spawn_campaign(lease_b, "node-b");
    // Let b queue before c, so c waits on b (not on a).
    Wait::up_to(DEADLINE)
        .until("b to queue", || async {
            let (kvs, _) = store.get_prefix(&format!("{election}/")).await.unwrap();
            kvs.len() == 2
        })
        .await;
    let mut c = spawn_campaign(lease_c, "node-c");

    let resigned_at = Instant::now();
    let a_term = a.term;
    a.resign().await.unwrap();
    let b = within("b to lead", b).await.unwrap().unwrap();
    assert!(
        resigned_at.elapsed() < Duration::from_secs(1),
        "handover took {:?}, as if waiting for a lease to expire",
        resigned_at.elapsed()
    );
    assert!(b.term > a_term);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut c)
            .await
            .is_err()
    );

    b.resign().await.unwrap();
    let c = within("c to lead", c).await.unwrap().unwrap();
    assert!(!c.is_lost());
}

pub async fn election_observe_follows_leader(store: Store, prefix: String) {
    let election = format!("{prefix}election");
    let mut observed = Election::observe(&store, &election);
    let lease_a = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    let lease_b = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    let a = Election::campaign(&store, &election, lease_a, "node-a")
        .await
        .unwrap();
    let leader = within("the observer to see a", observed.wait_for(|l| l.is_some()))
        .await
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!((leader.node_id.as_str(), leader.term), ("node-a", a.term));

    let b_store = store.clone();
    let b_election = election.clone();
    let b =
        tokio::spawn(
            async move { Election::campaign(&b_store, &b_election, lease_b, "node-b").await },
        );
    store.revoke(lease_a).await.unwrap();
    let b = within("b to lead", b).await.unwrap().unwrap();
    let leader = within(
        "the observer to see b",
        observed.wait_for(|l| l.as_ref().is_some_and(|l| l.node_id == "node-b")),
    )
    .await
    .unwrap()
    .clone()
    .unwrap();
    assert_eq!(leader.term, b.term);

    b.resign().await.unwrap();
    within(
        "the observer to see nobody",
        observed.wait_for(|l| l.is_none()),
    )
    .await
    .unwrap();
}
