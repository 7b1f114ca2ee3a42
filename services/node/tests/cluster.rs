//! Three nodes in one process on one store served over TCP (the embedded store speaking
//! etcd's API on a loopback port): membership, ownership by rendezvous hashing, cross-node
//! delivery over the Peer service, proxied device channels, and leadership handover on a
//! graceful stop. Fast and deterministic enough for every run; the multi-process tests with a
//! real etcd and kill -9 live in `services/cli/tests/cluster.rs`.

use std::collections::HashSet;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_stream::StreamExt;

use centinela_node::{Node, StoreConfig};
use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::unit_gateway_client::UnitGatewayClient;
use centinela_store::EmbeddedStore;
use centinela_testkit::node::{NodeBuilder, radio_all_available};
use centinela_testkit::wait::{self, DEADLINE};

struct Cluster {
    nodes: Vec<Option<Node>>,
    store_url: String,
    _stop_store: tokio::sync::oneshot::Sender<()>,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let store = EmbeddedStore::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let store_url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = store
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        let mut cluster = Cluster {
            nodes: Vec::new(),
            store_url,
            _stop_store: stop,
        };
        for i in 0..n {
            let site = if i < 2 { "site-a" } else { "site-b" };
            let node = cluster.node(&format!("n{}", i + 1), site).await;
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    /// A node of Lima's scenario on ports 0, on the shared store.
    async fn node(&self, id: &str, site: &str) -> Node {
        NodeBuilder::new(id)
            .site(site)
            .store(StoreConfig::Etcd(vec![self.store_url.clone()]))
            .start_node()
            .await
    }

    fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    fn addr(&self, i: usize) -> String {
        format!("http://{}", self.nodes[i].as_ref().unwrap().grpc_addr())
    }

    async fn operator(&self, i: usize) -> OperatorClient<tonic::transport::Channel> {
        OperatorClient::connect(self.addr(i)).await.unwrap()
    }

    async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    async fn stop_all(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}

/// Waits until every live node owns a disjoint share and the shares cover every entity.
async fn wait_for_full_placement(cluster: &Cluster) {
    wait::until("every entity placed exactly once", || async {
        let counts: Vec<(usize, usize, usize)> = cluster
            .live()
            .map(|n| n.context().router.local_counts())
            .collect();
        let total = counts
            .iter()
            .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        total == (15, 15, 12)
            && cluster
                .live()
                .all(|n| n.context().router.topology().members().len() == cluster.live().count())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_entities_and_serve_presses_through_any_node() {
    let cluster = Cluster::start(3).await;
    wait_for_full_placement(&cluster).await;
    // No terminals here: the units (offline until heard from) are set available by radio.
    radio_all_available(&mut cluster.operator(0).await).await;

    // Every button is owned by exactly one node (its actor running there, or passivated
    // there: an idle button's actor stops, the entity stays owned), and no actor runs on a
    // node that does not own it.
    let mut seen = HashSet::new();
    for node in cluster.live() {
        let router = &node.context().router;
        for i in 1..=15 {
            let id = format!("B{i:02}");
            if router.owns("button", &id) {
                assert!(seen.insert(id.clone()), "{id} owned by two nodes");
            } else {
                assert!(
                    router.actor_of("button", &id).is_none(),
                    "{id} runs on a node that does not own it"
                );
            }
        }
    }
    assert_eq!(seen.len(), 15);

    // Cluster status from any node: three members over two sites, one leader.
    let status = cluster
        .operator(2)
        .await
        .cluster_status(v1::ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut sites: Vec<(String, String)> = status
        .members
        .iter()
        .map(|m| (m.id.clone(), m.site.clone()))
        .collect();
    sites.sort();
    assert_eq!(
        sites,
        [
            ("n1".to_string(), "site-a".to_string()),
            ("n2".to_string(), "site-a".to_string()),
            ("n3".to_string(), "site-b".to_string())
        ]
    );
    assert!(["n1", "n2", "n3"].contains(&status.leader.as_str()));
    assert!(status.term > 0);

    // A press of every button through every node: each is durable, merged per button, and
    // assigned by the one dispatcher wherever it runs.
    let mut incidents = HashSet::new();
    for i in 0..3 {
        let mut buttons = ButtonGatewayClient::connect(cluster.addr(i)).await.unwrap();
        for b in 1..=15 {
            let reply = buttons
                .press(v1::PressRequest {
                    button_id: format!("B{b:02}"),
                    press_id: format!("p-{i}-{b}"),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(reply.duplicate, i > 0, "B{b:02} through node {i}");
            incidents.insert(reply.incident_id);
        }
    }
    assert_eq!(incidents.len(), 15);
    let mut operator = cluster.operator(1).await;
    wait::until("twelve brigades assigned (three incidents queue)", || {
        let mut operator = operator.clone();
        async move {
            let list = operator
                .list_incidents(v1::ListIncidentsRequest {
                    include_closed: false,
                })
                .await
                .unwrap()
                .into_inner()
                .incidents;
            list.iter().filter(|i| !i.units.is_empty()).count() == 12
        }
    })
    .await;
    let list = operator
        .list_incidents(v1::ListIncidentsRequest {
            include_closed: false,
        })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    let mut units = HashSet::new();
    for incident in &list {
        assert_eq!(incident.press_count, 3);
        for unit in &incident.units {
            assert!(units.insert(unit.clone()), "{unit} sent to two incidents");
        }
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_on_a_non_owner_node_gets_its_assignment_through_the_owner() {
    let cluster = Cluster::start(3).await;
    wait_for_full_placement(&cluster).await;

    // A foot patrol's terminal connects to a node that does not own it (U01's actor may be
    // passivated there: the terminal's channel is a message that starts it).
    let unit = "U01";
    let owner = cluster
        .live()
        .position(|n| n.context().router.owns("brigade", unit))
        .expect("someone owns U01");
    // Offline with no terminal, it has nothing to do: its actor stops once started.
    let owner_router = cluster.nodes[owner]
        .as_ref()
        .unwrap()
        .context()
        .router
        .clone();
    wait::until("U01 passivated on its owner", || {
        let router = owner_router.clone();
        async move { router.owns("brigade", unit) && router.actor_of("brigade", unit).is_none() }
    })
    .await;
    let other = (owner + 1) % 3;
    let mut terminal = UnitGatewayClient::connect(cluster.addr(other))
        .await
        .unwrap();
    let mut assignments = terminal
        .assignments(v1::UnitSubscribe {
            unit_id: unit.into(),
        })
        .await
        .unwrap()
        .into_inner();
    // Make U01 the only brigade available, then press next to it.
    let mut operator = cluster.operator(0).await;
    for u in 2..=12 {
        let mut t = UnitGatewayClient::connect(cluster.addr(u % 3))
            .await
            .unwrap();
        t.update_status(v1::UnitStatusUpdate {
            unit_id: format!("U{u:02}"),
            status: v1::UnitStatus::OutOfService as i32,
            incident_id: None,
            outcome: None,
            note: None,
        })
        .await
        .unwrap();
    }
    let mut buttons = ButtonGatewayClient::connect(cluster.addr(owner))
        .await
        .unwrap();
    let reply = buttons
        .press(v1::PressRequest {
            button_id: "B01".into(),
            press_id: "only-u01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(DEADLINE, assignments.next())
        .await
        .expect("an assignment arrives")
        .expect("the stream is open")
        .expect("no error");
    match event.event {
        Some(v1::assignment_event::Event::Assignment(a)) => {
            assert_eq!(a.incident_id, reply.incident_id)
        }
        other => panic!("expected an assignment, got {other:?}"),
    }
    assert!(
        owner_router.actor_of("brigade", unit).is_some(),
        "the terminal's channel started U01 again, and it stays while attached"
    );
    // The ack goes back through the same non-owner node.
    terminal
        .acknowledge(v1::AssignmentAck {
            unit_id: unit.into(),
            incident_id: reply.incident_id.clone(),
        })
        .await
        .unwrap();
    let incident = operator
        .get_incident(v1::GetIncidentRequest {
            incident_id: reply.incident_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        incident
            .audit
            .iter()
            .any(|a| a.action == "unit_acknowledged")
    );
    drop(assignments);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_leadership_and_entities_over() {
    let mut cluster = Cluster::start(3).await;
    wait_for_full_placement(&cluster).await;
    // No terminals here: the units (offline until heard from) are set available by radio.
    radio_all_available(&mut cluster.operator(0).await).await;
    let mut operator = cluster.operator(0).await;
    let before = operator
        .cluster_status(v1::ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let leader = before.leader.clone();
    let leader_index = ["n1", "n2", "n3"]
        .iter()
        .position(|n| *n == leader)
        .unwrap();
    let survivor = (leader_index + 1) % 3;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader_index).collect();

    let stopped_at = Instant::now();
    cluster.stop(leader_index).await;
    let mut survivor_operator = cluster.operator(survivor).await;
    wait::until("a new leader with a higher term", || {
        let mut operator = survivor_operator.clone();
        let (old_leader, old_term) = (leader.clone(), before.term);
        async move {
            let status = operator
                .cluster_status(v1::ClusterStatusRequest {})
                .await
                .unwrap()
                .into_inner();
            !status.leader.is_empty() && status.leader != old_leader && status.term > old_term
        }
    })
    .await;
    eprintln!(
        "FIGURE graceful_handover_ms={}",
        stopped_at.elapsed().as_millis()
    );
    wait_for_full_placement(&cluster).await;
    assert!(survivors.iter().all(|i| {
        cluster.nodes[*i]
            .as_ref()
            .unwrap()
            .context()
            .router
            .topology()
            .members()
            .len()
            == 2
    }));
    // The survivors still take presses of every button and assign them.
    let mut buttons = ButtonGatewayClient::connect(cluster.addr(survivor))
        .await
        .unwrap();
    let reply = buttons
        .press(v1::PressRequest {
            button_id: "B07".into(),
            press_id: "after-handover".into(),
        })
        .await
        .unwrap()
        .into_inner();
    wait::until("the press after the handover to be assigned", || {
        let mut operator = survivor_operator.clone();
        let id = reply.incident_id.clone();
        async move {
            let incident = operator
                .get_incident(v1::GetIncidentRequest { incident_id: id })
                .await
                .unwrap()
                .into_inner();
            !incident.units.is_empty()
        }
    })
    .await;
    let _ = &mut survivor_operator;
    cluster.stop_all().await;
}
