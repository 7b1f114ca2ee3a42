//! An upgraded cluster keeps working: a node of this version started on a real etcd whose
//! keyspace was written before the index of open incidents existed (incident records only)
//! builds the index as it takes the lead, once, and its dispatcher and listings find the old
//! open incidents through it. Needs Debian's etcd (`centinela_testkit::etcd`; it fails, never
//! skips, without it).

use centinela_core::geo::Position;
use centinela_core::ids::IncidentId;
use centinela_core::incident::{Actor, Incident, Resolution};
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_node::StoreConfig;
use centinela_proto::v1;
use centinela_records::Record;
use centinela_testkit::etcd::{self, EtcdCluster};
use centinela_testkit::node::NodeBuilder;
use centinela_testkit::wait;

const INDEX: &str = "/centinela/open-incidents/";
const MARKER: &str = "/centinela/layout/open-incidents";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_keyspace_without_the_index_builds_it_and_finds_the_old_incidents() {
    // Declared first, dropped last: etcd outlives the node and is killed even on a panic.
    let cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let store = etcd::connect(&cluster.endpoints()).await;

    // What the previous version left: two open incidents and a closed one, records only.
    let scenario = Scenario::lima_centro();
    let now = Timestamp::from_millis(1_795_817_112_345);
    let mut expected = Vec::new();
    for (n, button) in scenario.buttons.iter().take(3).enumerate() {
        let id = IncidentId::new(format!("old-{n}")).unwrap();
        let mut incident = Incident::open(
            id,
            button.id.clone(),
            button.camera.id.clone(),
            Position::new(button.lat, button.lon).unwrap(),
            now,
        );
        if n == 1 {
            incident
                .close(Resolution::Handled, Actor::System, now)
                .unwrap();
        } else {
            expected.push(incident.id.to_string());
        }
        incident.seal(None, &centinela_core::seal::AuditKey::public());
        let key = Incident::key_of(incident.id.as_str());
        store
            .put(&key, serde_json::to_vec(&incident).unwrap(), None)
            .await
            .unwrap();
    }
    assert!(store.get(MARKER).await.unwrap().is_none());

    let node = NodeBuilder::new("upgraded")
        .store(StoreConfig::Etcd(cluster.endpoints()))
        .start()
        .await;
    node.wait_for_dispatcher().await;
    wait::until("the leader to build the index", || {
        let store = store.clone();
        async move { store.get(MARKER).await.is_ok_and(|m| m.is_some()) }
    })
    .await;
    let (entries, _) = store.get_prefix_keys(INDEX).await.unwrap();
    let indexed: Vec<String> = entries
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(INDEX).map(str::to_owned))
        .collect();
    assert_eq!(indexed, expected, "one entry per old open incident");

    // The dispatcher rebuilt from the index: it knows the old open incidents (an unknown
    // incident is NOT_FOUND), and the listing shows them.
    let mut operator = node.operator();
    for id in &expected {
        operator
            .recommend(v1::RecommendRequest {
                incident_id: id.clone(),
                limit: 1,
            })
            .await
            .unwrap_or_else(|status| panic!("the dispatcher does not know {id}: {status}"));
    }
    let listed = operator
        .list_incidents(v1::ListIncidentsRequest {
            include_closed: false,
        })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    let listed: Vec<String> = listed.into_iter().map(|i| i.id).collect();
    for id in &expected {
        assert!(listed.contains(id), "{id} listed: {listed:?}");
    }
    assert!(!listed.contains(&"old-1".to_owned()), "closed: {listed:?}");
    node.shutdown().await;
}
