//! Nodes on etcd as production runs it (issue 20): TLS with client certificates required,
//! RBAC on, the nodes a user whose role reads and writes under `/centinela/` only; node to
//! node mutual TLS. And the start-up errors an operator gets when the etcd TLS is wrong.

use std::net::SocketAddr;

use tonic::transport::{Channel, Endpoint};

use centinela_node::{EtcdTls, Node, Security, StoreConfig, TlsOptions};
use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_testkit::etcd::EtcdCluster;
use centinela_testkit::node::NodeBuilder;
use centinela_testkit::pki::Pki;
use centinela_testkit::wait;
use centinela_tls::{ClientTls, ServerName};

const SECRET: &str = "a-cluster-secret-of-at-least-32-bytes!!";

/// The etcd user and role of the nodes, and what it may touch.
const NODE_USER: &str = "centinela-node";
const NODE_PREFIX: &str = "/centinela/";

async fn tls_channel(tls: &ClientTls, addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tls.connector(ServerName::try_from("127.0.0.1").unwrap()))
        .await
        .unwrap_or_else(|e| panic!("TLS channel to {addr}: {e}"))
}

async fn secure_etcd() -> (EtcdCluster, centinela_tls::Files) {
    tokio::task::spawn_blocking(|| {
        let etcd = EtcdCluster::start_tls(1);
        let identity = etcd.user(NODE_USER, NODE_PREFIX);
        (etcd, identity)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn etcd_store(
    etcd: &EtcdCluster,
    ca: std::path::PathBuf,
    identity: centinela_tls::Files,
) -> StoreConfig {
    StoreConfig::EtcdTls {
        endpoints: etcd.endpoints(),
        tls: EtcdTls {
            ca,
            identity: Some(identity),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_an_etcd_with_client_certificates_and_rbac_record_every_press() {
    let (etcd, identity) = secure_etcd().await;
    assert!(etcd.endpoints()[0].starts_with("https://"));
    let pki = Pki::new("city CA");
    let mut nodes = Vec::new();
    for (id, site) in [("n1", "site-a"), ("n2", "site-b")] {
        nodes.push(
            NodeBuilder::new(id)
                .site(site)
                .store(etcd_store(&etcd, etcd.ca(), identity.clone()))
                .security(Security::open().with_cluster_secret(SECRET).unwrap())
                .tls(TlsOptions {
                    files: pki.node(id),
                    ca: Some(pki.ca()),
                })
                .start_node()
                .await,
        );
    }
    wait::until("both nodes see each other", || async {
        nodes
            .iter()
            .all(|node| node.context().router.topology().members().len() == 2)
    })
    .await;
    // Presses land on both nodes, so some are forwarded over the nodes' mutual TLS.
    let client = ClientTls::from_files(&pki.ca(), None).unwrap();
    let mut incidents = Vec::new();
    for (i, button) in (1..=10).map(|n| format!("B{n:02}")).enumerate() {
        let channel = tls_channel(&client, nodes[i % 2].grpc_addr()).await;
        let reply = ButtonGatewayClient::new(channel)
            .press(v1::PressRequest {
                button_id: button.clone(),
                press_id: format!("etcd-tls-{button}"),
            })
            .await
            .unwrap_or_else(|status| panic!("press {button}: {status}"))
            .into_inner();
        incidents.push((button, reply.incident_id));
    }
    let mut operator = OperatorClient::new(tls_channel(&client, nodes[1].grpc_addr()).await);
    for (button, incident_id) in &incidents {
        let incident = operator
            .get_incident(v1::GetIncidentRequest {
                incident_id: incident_id.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("incident of {button}: {status}"))
            .into_inner();
        assert_eq!(&incident.button, button);
    }
    // The incidents are in etcd, under the nodes' prefix.
    let stored = etcd.etcdctl(&["get", "--prefix", "--keys-only", NODE_PREFIX]);
    assert!(stored.contains("/centinela/"), "{stored}");
    for node in nodes {
        node.shutdown().await;
    }
}

async fn start_error(store: StoreConfig) -> String {
    let options = NodeBuilder::new("n1").store(store).options();
    match Node::start_secured(options, Default::default(), Security::open()).await {
        Ok(_) => panic!("the node started"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_etcd_ca_or_a_refused_certificate_stops_the_node_with_a_clear_error() {
    let (etcd, identity) = secure_etcd().await;
    let elsewhere = Pki::new("another CA");

    // The node does not trust etcd's certificate.
    let error = start_error(etcd_store(&etcd, elsewhere.ca(), identity.clone())).await;
    assert!(error.contains("unknown CA"), "{error}");

    // etcd does not trust the node's certificate.
    let stranger = elsewhere.leaf(&[NODE_USER.to_string()]);
    let error = start_error(etcd_store(&etcd, etcd.ca(), stranger)).await;
    assert!(error.contains("refused our client certificate"), "{error}");

    // A certificate etcd trusts, for a user whose role is elsewhere: refused by RBAC.
    let other = etcd.user("another-city", "/another-city/");
    let error = start_error(etcd_store(&etcd, etcd.ca(), other)).await;
    assert!(error.contains("permission denied"), "{error}");

    // `https://` without the CA: refused, not spoken in clear.
    let error = start_error(StoreConfig::Etcd(etcd.endpoints())).await;
    assert!(error.contains("CENTINELA_ETCD_CA"), "{error}");
}
