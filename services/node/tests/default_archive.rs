//! The embedded default archive beside a real etcd: a node started on etcd with a data
//! directory and no `--archive` archives closed incidents into an SQLite file there and
//! removes them from etcd past retention, and answers `incidents --closed` from that file.
//! Needs Debian's etcd (`centinela_testkit::etcd`; it fails, never skips, without it).

use std::time::Duration;

use centinela_node::StoreConfig;
use centinela_proto::v1;
use centinela_testkit::etcd::{self, EtcdCluster};
use centinela_testkit::node::NodeBuilder;
use centinela_testkit::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_etcd_archives_into_its_data_dir_without_archive_settings() {
    // Declared first, dropped last: etcd outlives the node and is killed even on a panic.
    let cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let store = etcd::connect(&cluster.endpoints()).await;
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("node-data");

    let node = NodeBuilder::new("single")
        .store(StoreConfig::Etcd(cluster.endpoints()))
        .history(centinela_archive::Settings {
            archive: None,
            retention: Duration::ZERO,
            data_dir: Some(data_dir.clone()),
        })
        .start()
        .await;
    node.wait_for_dispatcher().await;
    let press = node.press("B01", "press-1").await;
    let incident = press.incident_id.clone();
    node.operator()
        .resolve(v1::ResolveRequest {
            incident_id: incident.clone(),
            operator_id: "ana".into(),
            resolution: v1::Resolution::Handled as i32,
        })
        .await
        .unwrap();

    // Archived, then removed from etcd (retention zero).
    let key = format!("/centinela/incidents/{incident}");
    wait::until("the closed incident to leave etcd", || {
        let (store, key) = (store.clone(), key.clone());
        async move { store.get(&key).await.is_ok_and(|kv| kv.is_none()) }
    })
    .await;
    assert!(
        data_dir
            .join(centinela_archive::DEFAULT_ARCHIVE_FILE)
            .is_file(),
        "the archive is a file in the data dir"
    );
    let closed = node
        .operator()
        .list_closed_incidents(v1::ListClosedIncidentsRequest {
            since_ms: 0,
            limit: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    let ids: Vec<&str> = closed.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, vec![incident.as_str()], "answered from the archive");
    node.shutdown().await;
}
