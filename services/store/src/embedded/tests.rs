//! Unit tests of the embedded store: MVCC edge cases on the pure state machine, then watch flow
//! control end to end through the in-process channel.

use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::mvcc::{ApplyError, Mvcc};
use super::{EmbeddedOptions, EmbeddedStore};
use crate::pb::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest, compare, range_request, request_op, response_op,
};
use crate::pb::mvccpb::KeyValue;
use crate::{Error, Store};

fn put_request(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

fn put(mvcc: &mut Mvcc, key: &str, value: &str) -> i64 {
    mvcc.put(&put_request(key, value)).unwrap();
    mvcc.debug_assert_invariants();
    mvcc.revision()
}

fn delete(mvcc: &mut Mvcc, key: &str) -> i64 {
    mvcc.delete_range(&DeleteRangeRequest {
        key: key.into(),
        ..DeleteRangeRequest::default()
    })
    .unwrap();
    mvcc.debug_assert_invariants();
    mvcc.revision()
}

fn get_at(mvcc: &Mvcc, key: &str, revision: i64) -> Result<Option<KeyValue>, ApplyError> {
    let response = mvcc.range(&RangeRequest {
        key: key.into(),
        revision,
        ..RangeRequest::default()
    })?;
    Ok(response.kvs.into_iter().next())
}

fn value_at(mvcc: &Mvcc, key: &str, revision: i64) -> Option<String> {
    get_at(mvcc, key, revision)
        .unwrap()
        .map(|kv| String::from_utf8(kv.value).unwrap())
}

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

fn compare(
    key: &str,
    target: compare::CompareTarget,
    result: compare::CompareResult,
    operand: compare::TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        target_union: Some(operand),
        range_end: Vec::new(),
    }
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_request(key, value))),
    }
}

#[test]
fn revisions_versions_and_no_op_writes() {
    let mut mvcc = Mvcc::new(100);
    assert_eq!(
        mvcc.revision(),
        1,
        "an empty store is at revision 1, as etcd"
    );
    assert_eq!(put(&mut mvcc, "a", "1"), 2);
    assert_eq!(put(&mut mvcc, "a", "2"), 3);
    let kv = get_at(&mvcc, "a", 0).unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));

    // Deleting nothing does not bump the revision; deleting resets the version.
    assert_eq!(delete(&mut mvcc, "missing"), 3);
    assert_eq!(delete(&mut mvcc, "a"), 4);
    assert_eq!(put(&mut mvcc, "a", "3"), 5);
    let kv = get_at(&mvcc, "a", 0).unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn txn_with_several_writes_is_one_revision_and_reads_its_own_writes() {
    let mut mvcc = Mvcc::new(100);
    let (response, changes) = mvcc
        .txn(&TxnRequest {
            compare: Vec::new(),
            success: vec![
                put_op("a", "1"),
                put_op("b", "2"),
                RequestOp {
                    request: Some(request_op::Request::RequestRange(RangeRequest {
                        key: "a".into(),
                        ..RangeRequest::default()
                    })),
                },
            ],
            failure: Vec::new(),
        })
        .unwrap();
    assert_eq!(mvcc.revision(), 2);
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| c.revision() == 2));
    let Some(response_op::Response::ResponseRange(read)) = &response.responses[2].response else {
        panic!("third response is the range");
    };
    assert_eq!(read.kvs[0].value, b"1");

    // A read-only txn does not bump the revision.
    let (response, changes) = mvcc
        .txn(&TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key: "b".into(),
                    ..RangeRequest::default()
                })),
            }],
            ..TxnRequest::default()
        })
        .unwrap();
    assert!(changes.is_empty());
    assert_eq!(response.header.unwrap().revision, 2);
    assert_eq!(mvcc.revision(), 2);
}

#[test]
fn reads_at_past_revisions_undo_later_changes() {
    let mut mvcc = Mvcc::new(100);
    let r1 = put(&mut mvcc, "k", "one");
    let r2 = put(&mut mvcc, "k", "two");
    let r3 = delete(&mut mvcc, "k");
    let r4 = put(&mut mvcc, "other", "x");
    assert_eq!(value_at(&mvcc, "k", r1).as_deref(), Some("one"));
    assert_eq!(value_at(&mvcc, "k", r2).as_deref(), Some("two"));
    assert_eq!(value_at(&mvcc, "k", r3), None);
    assert_eq!(value_at(&mvcc, "other", r3), None);
    assert_eq!(value_at(&mvcc, "other", r4).as_deref(), Some("x"));
    assert_eq!(value_at(&mvcc, "k", 1), None, "before any write");
    let old = get_at(&mvcc, "k", r1).unwrap().unwrap();
    assert_eq!(
        (old.create_revision, old.mod_revision, old.version),
        (r1, r1, 1)
    );
    assert_eq!(get_at(&mvcc, "k", r4 + 1), Err(ApplyError::FutureRevision));
}

#[test]
fn range_reads_at_a_past_revision_merge_undone_changes_in_key_order() {
    let mut mvcc = Mvcc::new(100);
    for key in ["a", "b", "c", "d"] {
        put(&mut mvcc, key, "old");
    }
    let then = mvcc.revision();
    put(&mut mvcc, "b", "new");
    delete(&mut mvcc, "c");
    put(&mut mvcc, "bb", "born later");
    put(&mut mvcc, "e", "born later");
    let read = |limit: i64, keys_only: bool| {
        mvcc.range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"f".to_vec(),
            revision: then,
            limit,
            keys_only,
            ..RangeRequest::default()
        })
        .unwrap()
    };
    let all = read(0, false);
    assert_eq!(keys(&all.kvs), ["a", "b", "c", "d"]);
    assert!(all.kvs.iter().all(|kv| kv.value == b"old"));
    assert_eq!((all.count, all.more), (4, false));
    let page = read(2, true);
    assert_eq!(keys(&page.kvs), ["a", "b"]);
    assert!(page.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!((page.count, page.more), (4, true));
}

#[test]
fn compaction_bounds_history() {
    let mut mvcc = Mvcc::new(100);
    for value in ["1", "2", "3", "4"] {
        put(&mut mvcc, "k", value);
    } // revisions 2..=5
    mvcc.compact(&CompactionRequest {
        revision: 4,
        physical: false,
    })
    .unwrap();
    mvcc.debug_assert_invariants();
    assert_eq!(get_at(&mvcc, "k", 3), Err(ApplyError::Compacted));
    assert_eq!(
        value_at(&mvcc, "k", 4).as_deref(),
        Some("3"),
        "the compaction revision itself stays readable"
    );
    assert_eq!(mvcc.history_from(0).next().map(|c| c.revision()), Some(4));
    // etcd: compacting at or below the compaction point, or in the future, is an error.
    let again = CompactionRequest {
        revision: 4,
        physical: false,
    };
    assert_eq!(mvcc.compact(&again), Err(ApplyError::Compacted));
    let future = CompactionRequest {
        revision: 6,
        physical: false,
    };
    assert_eq!(mvcc.compact(&future), Err(ApplyError::FutureRevision));
}

#[test]
fn history_is_bounded_by_whole_revisions() {
    let mut mvcc = Mvcc::new(3);
    for i in 0..10 {
        put(&mut mvcc, &format!("k{i}"), "v");
    } // revisions 2..=11
    assert_eq!(mvcc.history_from(0).count(), 3);
    assert_eq!(mvcc.compact_revision(), 9);
    assert_eq!(get_at(&mvcc, "k0", 8), Err(ApplyError::Compacted));
    assert_eq!(
        value_at(&mvcc, "k8", 9).as_deref(),
        None,
        "k8 was written at 10"
    );
    assert_eq!(value_at(&mvcc, "k7", 9).as_deref(), Some("v"));

    // A revision larger than the bound is kept whole (the newest is never compacted).
    mvcc.txn(&TxnRequest {
        success: (0..5).map(|i| put_op(&format!("t{i}"), "v")).collect(),
        ..TxnRequest::default()
    })
    .unwrap();
    mvcc.debug_assert_invariants();
    assert_eq!(mvcc.history_from(0).count(), 5);
    assert_eq!(mvcc.compact_revision(), 12);
}

#[test]
fn range_options() {
    let mut mvcc = Mvcc::new(100);
    for key in ["a", "b/1", "b/2", "b/3", "c"] {
        put(&mut mvcc, key, key);
    }
    let range = |request: RangeRequest| mvcc.range(&request).unwrap();
    let prefix = RangeRequest {
        key: "b/".into(),
        range_end: "b0".into(),
        ..RangeRequest::default()
    };
    let all = range(prefix.clone());
    assert_eq!(keys(&all.kvs), ["b/1", "b/2", "b/3"]);
    assert_eq!((all.count, all.more), (3, false));

    let limited = range(RangeRequest {
        limit: 2,
        ..prefix.clone()
    });
    assert_eq!(keys(&limited.kvs), ["b/1", "b/2"]);
    assert_eq!((limited.count, limited.more), (3, true));

    let counted = range(RangeRequest {
        count_only: true,
        ..prefix.clone()
    });
    assert!(counted.kvs.is_empty());
    assert_eq!(counted.count, 3);

    let keys_only = range(RangeRequest {
        keys_only: true,
        ..prefix.clone()
    });
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));

    // "\0" as range_end: every key >= key.
    let from_b = range(RangeRequest {
        key: "b/2".into(),
        range_end: vec![0],
        ..RangeRequest::default()
    });
    assert_eq!(keys(&from_b.kvs), ["b/2", "b/3", "c"]);
    let everything = range(RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..RangeRequest::default()
    });
    assert_eq!(everything.count, 5);

    // An inverted range is empty, not a panic.
    let inverted = range(RangeRequest {
        key: "c".into(),
        range_end: "a".into(),
        ..RangeRequest::default()
    });
    assert_eq!(inverted.count, 0);

    // The election's query: newest create revision below a bound.
    let predecessor = range(RangeRequest {
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Create as i32,
        max_create_revision: 4,
        limit: 1,
        ..prefix
    });
    assert_eq!(keys(&predecessor.kvs), ["b/2"]);

    assert_eq!(
        mvcc.range(&RangeRequest::default()),
        Err(ApplyError::EmptyKey)
    );
}

#[test]
fn compares_follow_etcd() {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let mut mvcc = Mvcc::new(100);
    put(&mut mvcc, "p/a", "x");
    put(&mut mvcc, "p/b", "y");
    let holds = |mvcc: &mut Mvcc, compare: Compare| {
        mvcc.txn(&TxnRequest {
            compare: vec![compare],
            ..TxnRequest::default()
        })
        .unwrap()
        .0
        .succeeded
    };
    // A missing key: create revision 0, version 0; any VALUE compare fails.
    assert!(holds(
        &mut mvcc,
        compare("nope", T::Create, R::Equal, U::CreateRevision(0))
    ));
    assert!(holds(
        &mut mvcc,
        compare("nope", T::Version, R::Equal, U::Version(0))
    ));
    assert!(!holds(
        &mut mvcc,
        compare("nope", T::Value, R::NotEqual, U::Value(b"z".to_vec()))
    ));

    assert!(holds(
        &mut mvcc,
        compare("p/a", T::Value, R::Equal, U::Value(b"x".to_vec()))
    ));
    assert!(holds(
        &mut mvcc,
        compare("p/a", T::Value, R::Less, U::Value(b"y".to_vec()))
    ));
    assert!(holds(
        &mut mvcc,
        compare("p/a", T::Mod, R::Equal, U::ModRevision(2))
    ));
    assert!(holds(
        &mut mvcc,
        compare("p/b", T::Create, R::Greater, U::CreateRevision(2))
    ));
    assert!(holds(
        &mut mvcc,
        compare("p/a", T::Version, R::NotEqual, U::Version(2))
    ));
    assert!(holds(
        &mut mvcc,
        compare("p/a", T::Lease, R::Equal, U::Lease(0))
    ));

    // With range_end, every key in the range must satisfy the compare.
    let mut over_range = compare("p/", T::Version, R::Equal, U::Version(1));
    over_range.range_end = b"p0".to_vec();
    assert!(holds(&mut mvcc, over_range.clone()));
    put(&mut mvcc, "p/b", "z");
    assert!(!holds(&mut mvcc, over_range));
}

#[test]
fn txn_checks_refuse_before_applying() {
    let mut mvcc = Mvcc::new(100);
    let txn = |success: Vec<RequestOp>| TxnRequest {
        success,
        ..TxnRequest::default()
    };
    assert_eq!(
        mvcc.txn(&txn(vec![put_op("a", "1"), put_op("a", "2")]))
            .unwrap_err(),
        ApplyError::DuplicateKey
    );
    let delete_all = RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: "a".into(),
                range_end: vec![0],
                ..DeleteRangeRequest::default()
            },
        )),
    };
    assert_eq!(
        mvcc.txn(&txn(vec![delete_all, put_op("b", "1")]))
            .unwrap_err(),
        ApplyError::DuplicateKey
    );
    assert_eq!(
        mvcc.txn(&txn((0..129)
            .map(|i| put_op(&format!("k{i}"), "v"))
            .collect()))
            .unwrap_err(),
        ApplyError::TooManyOps
    );
    let nested = RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest::default())),
    };
    assert_eq!(
        mvcc.txn(&txn(vec![nested])).unwrap_err(),
        ApplyError::NestedTxn
    );

    // A put with an unknown lease fails the whole txn: its first op is not applied either.
    let mut leased = put_request("b", "1");
    leased.lease = 42;
    let with_bad_lease = vec![
        put_op("a", "1"),
        RequestOp {
            request: Some(request_op::Request::RequestPut(leased)),
        },
    ];
    assert_eq!(
        mvcc.txn(&txn(with_bad_lease.clone())).unwrap_err(),
        ApplyError::LeaseNotFound
    );
    assert_eq!(mvcc.revision(), 1);
    assert_eq!(value_at(&mvcc, "a", 0), None);
    // ... but only the branch that runs is checked against the state.
    let (response, _) = mvcc
        .txn(&TxnRequest {
            success: vec![put_op("a", "1")],
            failure: with_bad_lease,
            ..TxnRequest::default()
        })
        .unwrap();
    assert!(response.succeeded);
}

#[test]
fn put_options() {
    let mut mvcc = Mvcc::new(100);
    let now = Instant::now();
    let (lease, _) = mvcc.lease_grant(0, 10, now).unwrap();
    let mut request = put_request("k", "v1");
    request.lease = lease;
    mvcc.put(&request).unwrap();

    // ignore_value keeps the value, ignore_lease keeps the lease.
    let keep_both = PutRequest {
        key: "k".into(),
        ignore_value: true,
        ignore_lease: true,
        prev_kv: true,
        ..PutRequest::default()
    };
    let (response, _) = mvcc.put(&keep_both).unwrap();
    assert_eq!(response.prev_kv.unwrap().value, b"v1");
    let kv = get_at(&mvcc, "k", 0).unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v1"[..], lease, 2)
    );

    // A plain put detaches the key from its lease.
    mvcc.put(&put_request("k", "v2")).unwrap();
    mvcc.debug_assert_invariants();
    let info = mvcc.lease_time_to_live(lease, true, now).unwrap();
    assert!(info.keys.is_empty());

    let errors = [
        (
            PutRequest {
                key: Vec::new(),
                ..put_request("", "v")
            },
            ApplyError::EmptyKey,
        ),
        (
            PutRequest {
                ignore_value: true,
                ..put_request("k", "v")
            },
            ApplyError::ValueProvided,
        ),
        (
            PutRequest {
                ignore_lease: true,
                lease: 7,
                ..put_request("k", "")
            },
            ApplyError::LeaseProvided,
        ),
        (
            PutRequest {
                ignore_value: true,
                ..put_request("missing", "")
            },
            ApplyError::KeyNotFound,
        ),
        (
            PutRequest {
                lease: 7,
                ..put_request("k", "v")
            },
            ApplyError::LeaseNotFound,
        ),
    ];
    for (request, expected) in errors {
        assert_eq!(mvcc.put(&request).unwrap_err(), expected, "{request:?}");
    }
}

#[test]
fn leases_expire_in_deadline_order_and_revoke_in_one_revision() {
    let mut mvcc = Mvcc::new(100);
    let now = Instant::now();
    let (short, ttl) = mvcc.lease_grant(0, 1, now).unwrap();
    assert_eq!(ttl, 2, "raised to etcd's minimum");
    let (long, _) = mvcc.lease_grant(0, 30, now).unwrap();
    assert_ne!(short, long);
    assert_eq!(mvcc.lease_grant(long, 5, now), Err(ApplyError::LeaseExists));
    assert_eq!(
        mvcc.lease_grant(0, crate::limits::LEASE_TTL_MAX_SECS + 1, now),
        Err(ApplyError::LeaseTtlTooLarge)
    );
    for key in ["a", "b"] {
        let mut request = put_request(key, "v");
        request.lease = short;
        mvcc.put(&request).unwrap();
    }
    let revision = mvcc.revision();

    assert_eq!(mvcc.next_lease_expiry(), Some(now + Duration::from_secs(2)));
    assert_eq!(mvcc.expired_lease(now + Duration::from_secs(1)), None);
    // Renewal at t=1 moves the deadline to t=3.
    assert_eq!(
        mvcc.lease_renew(short, now + Duration::from_secs(1)),
        Some(2)
    );
    assert_eq!(mvcc.expired_lease(now + Duration::from_secs(2)), None);
    let at = now + Duration::from_secs(3);
    assert_eq!(mvcc.expired_lease(at), Some(short));
    assert_eq!(
        mvcc.lease_renew(short, at),
        None,
        "an expired lease cannot be renewed"
    );
    assert_eq!(mvcc.lease_time_to_live(short, false, at), None);

    let changes = mvcc.lease_revoke(short).unwrap();
    mvcc.debug_assert_invariants();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        mvcc.revision(),
        revision + 1,
        "both keys deleted in one revision"
    );
    assert_eq!(value_at(&mvcc, "a", 0), None);
    assert_eq!(mvcc.lease_ids(), vec![long]);
    assert_eq!(mvcc.lease_revoke(short), Err(ApplyError::LeaseNotFound));

    // Revoking a lease without keys does not bump the revision.
    mvcc.lease_revoke(long).unwrap();
    assert_eq!(mvcc.revision(), revision + 1);
    assert_eq!(mvcc.next_lease_expiry(), None);
}

// ---- end to end through the in-process channel -------------------------------------------------

/// A watcher that does not read while the store writes far more than every buffer on the way
/// (outbox, HTTP/2 windows, pipe) holds is canceled with a reason, after every event it was
/// sent, with no gap; resuming from its last revision + 1 misses nothing.
#[tokio::test]
async fn slow_watcher_is_canceled_not_silently_dropped() {
    let embedded = EmbeddedStore::with_options(EmbeddedOptions {
        watch_outbox_responses_max: 4,
        ..EmbeddedOptions::default()
    });
    let store = Store::embedded(&embedded);
    let mut slow = store.watch_prefix("/w/", None).await.unwrap();
    let first = embedded.revision() + 1;
    let value = vec![b'x'; 128 * 1024];
    let writes = 120;
    for i in 0..writes {
        store
            .put(&format!("/w/{i}"), value.clone(), None)
            .await
            .unwrap();
    }
    let last = embedded.revision();

    let mut expected = first;
    let error = loop {
        match slow.next().await {
            Some(Ok(event)) => {
                assert_eq!(
                    event.revision, expected,
                    "events arrive in order with no gap"
                );
                expected += 1;
            }
            Some(Err(error)) => break error,
            None => panic!("stream ended without an error"),
        }
    };
    assert!(
        matches!(&error, Error::WatchCanceled { reason } if reason.contains("too slow")),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(expected <= last, "the watcher was canceled before the end");
    assert_eq!(slow.last_revision(), expected - 1);
    assert!(slow.next().await.is_none());

    let mut resumed = store
        .watch_prefix("/w/", Some(slow.last_revision() + 1))
        .await
        .unwrap();
    while expected <= last {
        let event = resumed.next().await.unwrap().unwrap();
        assert_eq!(event.revision, expected);
        expected += 1;
    }
}

/// Replay from a revision older than the bounded history is refused like etcd's compaction.
#[tokio::test]
async fn watch_from_compacted_revision_is_canceled_with_compact_revision() {
    let embedded = EmbeddedStore::with_options(EmbeddedOptions {
        history_events_max: 2,
        ..EmbeddedOptions::default()
    });
    let store = Store::embedded(&embedded);
    for i in 0..5 {
        store.put(&format!("/h/{i}"), "v", None).await.unwrap();
    } // revisions 2..=6, history keeps 5 and 6
    let mut watch = store.watch_prefix("/h/", Some(2)).await.unwrap();
    match watch.next().await {
        Some(Err(Error::Compacted { compact_revision })) => assert_eq!(compact_revision, 5),
        other => panic!("expected compaction, got {other:?}"),
    }
    let mut watch = store.watch_prefix("/h/", Some(5)).await.unwrap();
    let event = watch.next().await.unwrap().unwrap();
    assert_eq!((event.kv.key.as_str(), event.revision), ("/h/3", 5));
}

/// The expiry task follows tokio's clock: with paused time, a lease expires exactly at its
/// deadline and watchers see the delete.
#[tokio::test(start_paused = true)]
async fn lease_expiry_follows_tokio_time() {
    let embedded = EmbeddedStore::new();
    let store = Store::embedded(&embedded);
    let lease = store.grant_lease(Duration::from_secs(3)).await.unwrap();
    store.put("/l/k", "v", Some(lease)).await.unwrap();
    let mut watch = store.watch_prefix("/l/", None).await.unwrap();
    let granted_at = Instant::now();
    let event = watch.next().await.unwrap().unwrap();
    assert_eq!(event.kind, crate::EventKind::Delete);
    let waited = granted_at.elapsed();
    assert!(
        waited >= Duration::from_millis(2900) && waited <= Duration::from_millis(3100),
        "{waited:?}"
    );
    assert_eq!(store.lease_ttl(lease).await.unwrap(), None);
}

/// A link to an embedded store that the test can cut: every connection goes through a proxy
/// task; cutting aborts them (both ends see the pipe close) and refuses new connections.
struct CuttableLink {
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    proxies: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    store: Store,
}

impl CuttableLink {
    fn new(embedded: &EmbeddedStore) -> Self {
        use super::transport::{IN_PROCESS_PIPE_BYTES, InProcessConnection};
        use std::sync::atomic::Ordering;
        let (connections, accepted) =
            tokio::sync::mpsc::channel::<std::io::Result<InProcessConnection>>(4);
        let server = embedded.clone();
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::ReceiverStream::new(accepted);
            let _ = server
                .serve_incoming(incoming, std::future::pending())
                .await;
        });
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let proxies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (connector_cut, connector_proxies) = (cut.clone(), proxies.clone());
        let connector = tower::service_fn(move |_: tonic::transport::Uri| {
            let connections = connections.clone();
            let cut = connector_cut.clone();
            let proxies = connector_proxies.clone();
            async move {
                if cut.load(Ordering::SeqCst) {
                    return Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
                }
                let (client, mut client_side) = tokio::io::duplex(IN_PROCESS_PIPE_BYTES);
                let (mut server_side, server) = tokio::io::duplex(IN_PROCESS_PIPE_BYTES);
                connections
                    .send(Ok(InProcessConnection(server)))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::ConnectionRefused))?;
                proxies.lock().unwrap().push(tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client_side, &mut server_side).await;
                }));
                Ok(hyper_util::rt::TokioIo::new(client))
            }
        });
        let channel = tonic::transport::Endpoint::from_static("http://cuttable.invalid")
            .connect_with_connector_lazy(connector);
        CuttableLink {
            cut,
            proxies,
            store: Store::from_channel(channel).with_request_timeout(Duration::from_millis(500)),
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for proxy in self.proxies.lock().unwrap().drain(..) {
            proxy.abort();
        }
    }
}

/// The keeper reports the loss when it cannot refresh before the lease's expiry, and no later
/// than the store expires the lease.
#[tokio::test(start_paused = true)]
async fn keeper_reports_loss_when_the_store_is_unreachable() {
    let embedded = EmbeddedStore::new();
    let direct = Store::embedded(&embedded);
    let link = CuttableLink::new(&embedded);
    let lease = link
        .store
        .grant_lease(Duration::from_secs(2))
        .await
        .unwrap();
    link.store.put("/k", "v", Some(lease)).await.unwrap();
    let keeper = link.store.keep_alive(lease).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(keeper.is_alive(), "refreshes work while connected");

    link.cut();
    let cut_at = Instant::now();
    let mut watch = direct.watch_prefix("/k", None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), keeper.lost())
        .await
        .expect("loss reported");
    let lost_after = cut_at.elapsed();
    assert!(lost_after <= Duration::from_secs(2), "{lost_after:?}");
    // The store expires the lease at (about) the same moment, not before.
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.kind, crate::EventKind::Delete);
    assert!(cut_at.elapsed() >= lost_after);
}

/// A watch broken by a lost connection yields a retryable error; a new watch from its last
/// revision + 1 delivers exactly what was missed.
#[tokio::test(start_paused = true)]
async fn watch_resumes_after_connection_loss_without_gap() {
    let embedded = EmbeddedStore::new();
    let direct = Store::embedded(&embedded);
    let link = CuttableLink::new(&embedded);
    let mut watch = link.store.watch_prefix("/r/", None).await.unwrap();
    let first = direct.put("/r/1", "a", None).await.unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().revision, first);

    link.cut();
    let missed = direct.put("/r/2", "b", None).await.unwrap();
    let error = loop {
        match watch.next().await {
            Some(Ok(event)) => assert!(event.revision <= missed),
            Some(Err(error)) => break error,
            None => panic!("a broken watch ends with an error"),
        }
    };
    assert!(error.is_retryable(), "{error:?}");
    assert!(watch.next().await.is_none());

    let resumed_from = watch.last_revision() + 1;
    let mut resumed = direct
        .watch_prefix("/r/", Some(resumed_from))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let latest = direct.put("/r/3", "c", None).await.unwrap();
    while seen.last() != Some(&latest) {
        seen.push(resumed.next().await.unwrap().unwrap().revision);
    }
    assert!(seen.first().copied() <= Some(missed));
    assert!(seen.contains(&missed) || watch.last_revision() >= missed);
}

/// `serve` on a real listener: a client works over TCP, and shutdown returns even while a
/// watch stream is open.
#[tokio::test]
async fn serve_over_tcp_and_shut_down_with_open_streams() {
    let embedded = EmbeddedStore::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let embedded = embedded.clone();
        async move {
            embedded
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let store = Store::connect(&[address.to_string()], crate::ConnectOptions::default())
        .await
        .unwrap();
    let mut watch = store.watch_prefix("/t/", None).await.unwrap();
    let revision = store.put("/t/k", "v", None).await.unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().revision, revision);
    assert_eq!(store.status().await.unwrap().member_id, super::MEMBER_ID);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returned despite the open watch")
        .unwrap()
        .unwrap();
}
