//! Transport security with certificates made by the test (issue 20): TLS on both ports of a
//! node, mutual TLS between nodes, and the planted-member attack.
//!
//! The attack: anyone who can write to the store plants a member record pointing at their
//! own process. Nodes then place a share of the buttons on it and forward those presses to
//! it, with the cluster secret. With TLS between nodes a peer is dialed by its node name, so
//! an impostor without that node's certificate never completes a handshake: it gets no
//! press and no secret, and the presses are recorded by the node that took them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;

use centinela_node::{Node, Security, StoreConfig, TlsOptions};
use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::peer_client::PeerClient;
use centinela_store::{EmbeddedStore, Store};
use centinela_testkit::node::NodeBuilder;
use centinela_testkit::pki::Pki;
use centinela_testkit::wait;
use centinela_tls::names::Kind;
use centinela_tls::{ClientTls, Files, Protocol, ServerName, ServerTls};

const SECRET: &str = "a-cluster-secret-of-at-least-32-bytes!!";

/// A TLS channel to `addr`, checking that its certificate names `name`.
async fn tls_channel(
    tls: &ClientTls,
    addr: SocketAddr,
    name: &str,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tls.connector(ServerName::try_from(name.to_string()).unwrap()))
        .await
}

fn node_tls(pki: &Pki, id: &str) -> TlsOptions {
    TlsOptions {
        files: pki.node(id),
        ca: Some(pki.ca()),
    }
}

/// The embedded store served on a loopback port (etcd's API), as several nodes share it.
async fn shared_store() -> (String, tokio::sync::oneshot::Sender<()>, EmbeddedStore) {
    let store = EmbeddedStore::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = store.clone();
    tokio::spawn(async move {
        let _ = serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    (url, stop, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ports_speak_tls_and_a_plaintext_client_is_refused() {
    let pki = Pki::new("city CA");
    let node = NodeBuilder::new("n1")
        .tls(node_tls(&pki, "n1"))
        .start_node()
        .await;
    let client = ClientTls::from_files(&pki.ca(), None).unwrap();

    // gRPC over TLS: a press becomes an incident.
    let channel = tls_channel(&client, node.grpc_addr(), "127.0.0.1")
        .await
        .expect("a TLS client connects");
    let reply = wait::until("a press over TLS", || {
        let channel = channel.clone();
        async move {
            ButtonGatewayClient::new(channel)
                .press(v1::PressRequest {
                    button_id: "B01".into(),
                    press_id: "tls-press-1".into(),
                })
                .await
                .map(|reply| reply.into_inner())
                .map_err(|status| status.to_string())
        }
    })
    .await;
    assert!(!reply.incident_id.is_empty());
    let incident = OperatorClient::new(channel)
        .get_incident(v1::GetIncidentRequest {
            incident_id: reply.incident_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(incident.button, "B01");

    // A plaintext gRPC client gets no answer from the TLS port.
    let plaintext = OperatorClient::connect(format!("http://{}", node.grpc_addr())).await;
    let refused = match plaintext {
        Err(_) => true,
        Ok(mut operator) => operator
            .list_buttons(v1::ListButtonsRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext client was served on the TLS port");

    // The console over TLS, with HSTS.
    let http = client.for_http1();
    let uri: http::Uri = format!("http://{}", node.http_addr()).parse().unwrap();
    let io = http
        .connector(ServerName::try_from("127.0.0.1".to_string()).unwrap())
        .oneshot(uri)
        .await
        .expect("a TLS connection to the console");
    let mut stream = io.into_inner();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("strict-transport-security: max-age="),
        "{answer}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_with_a_certificate_that_does_not_name_it() {
    let pki = Pki::new("city CA");
    let error = Node::start(
        NodeBuilder::new("n1")
            .tls(TlsOptions {
                files: pki.node("n2"),
                ca: Some(pki.ca()),
            })
            .options(),
    )
    .await
    .err()
    .expect("the node refuses to start");
    let error = error.to_string();
    assert!(error.contains("n1.node.centinela"), "{error}");
}

/// A process that plants itself as a member: it serves TLS with a certificate of the city's
/// CA that does not name the member it pretends to be, and counts what it gets.
struct Impostor {
    addr: SocketAddr,
    /// Connections whose first byte opened a TLS handshake: the nodes did try to reach it.
    hellos: Arc<AtomicUsize>,
    /// Connections that started with anything else (plaintext HTTP/2, with the secret).
    plaintext: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

async fn impostor(files: Files, pki: &Pki) -> Impostor {
    let tls = ServerTls::from_files(files, Some(&pki.ca()), Protocol::Grpc).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hellos = Arc::new(AtomicUsize::new(0));
    let plaintext = Arc::new(AtomicUsize::new(0));
    let counters = (hellos.clone(), plaintext.clone());
    let plain = futures::stream::unfold(
        (listener, counters),
        |(listener, (hellos, plaintext))| async move {
            let accepted = listener.accept().await.map(|(socket, _)| socket);
            if let Ok(socket) = &accepted {
                let mut first = [0u8; 1];
                match tokio::time::timeout(wait::DEADLINE, socket.peek(&mut first)).await {
                    // 0x16: a TLS handshake record.
                    Ok(Ok(1)) if first[0] == 0x16 => hellos.fetch_add(1, Ordering::SeqCst),
                    _ => plaintext.fetch_add(1, Ordering::SeqCst),
                };
            }
            Some((accepted, (listener, (hellos, plaintext))))
        },
    );
    let handshakes = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let mut incoming = Box::pin(tls.incoming(plain));
    let (counted_handshakes, counted_bytes) = (handshakes.clone(), bytes.clone());
    tokio::spawn(async move {
        while let Some(Ok(mut connection)) = incoming.next().await {
            counted_handshakes.fetch_add(1, Ordering::SeqCst);
            let counted_bytes = counted_bytes.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = connection.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    counted_bytes.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    Impostor {
        addr,
        hellos,
        plaintext,
        handshakes,
        bytes,
    }
}

/// Writes a member record straight into the store, without a lease: what an attacker with
/// write access to etcd does.
async fn plant(store: &Store, id: &str, addr: SocketAddr) {
    let record = serde_json::json!({
        "id": id,
        "site": "site-x",
        "grpc_addr": addr.to_string(),
        "http_addr": addr.to_string(),
    });
    store
        .put(
            &format!("{}{id}", centinela_cluster::membership::MEMBERS_PREFIX),
            serde_json::to_vec(&record).unwrap(),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_member_gets_no_press_and_no_secret_and_every_press_is_an_incident() {
    let pki = Pki::new("city CA");
    let (store_url, _stop_store, embedded) = shared_store().await;
    let mut nodes = Vec::new();
    for (id, site) in [("n1", "site-a"), ("n2", "site-b")] {
        let security = Security::open().with_cluster_secret(SECRET).unwrap();
        nodes.push(
            NodeBuilder::new(id)
                .site(site)
                .store(StoreConfig::Etcd(vec![store_url.clone()]))
                .security(security)
                .tls(node_tls(&pki, id))
                .start_node()
                .await,
        );
    }
    // Two impostors, both with certificates of the city's CA: a device's, and another
    // node's (n9) planted under the name n4.
    let device = impostor(pki.device(Kind::Button, "B01"), &pki).await;
    let other_node = impostor(pki.node("n9"), &pki).await;
    let store = Store::embedded(&embedded);
    plant(&store, "n3", device.addr).await;
    plant(&store, "n4", other_node.addr).await;
    wait::until("both nodes see four members", || async {
        nodes
            .iter()
            .all(|node| node.context().router.topology().members().len() == 4)
    })
    .await;
    // The attack has a target: some buttons are placed on the planted members (once the
    // nodes have given them up: a rebalance follows the member set, it is not part of it).
    wait::until("some buttons placed on the planted members", || async {
        let local: usize = nodes
            .iter()
            .map(|node| node.context().router.local_counts().0)
            .sum();
        local < 15
    })
    .await;

    let client = ClientTls::from_files(&pki.ca(), None).unwrap();
    let mut incidents = Vec::new();
    for (i, button) in (1..=15).map(|n| format!("B{n:02}")).enumerate() {
        let node = &nodes[i % 2];
        let channel = tls_channel(&client, node.grpc_addr(), "127.0.0.1")
            .await
            .unwrap();
        let reply = ButtonGatewayClient::new(channel)
            .press(v1::PressRequest {
                button_id: button.clone(),
                press_id: format!("planted-{button}"),
            })
            .await
            .unwrap_or_else(|status| panic!("press {button}: {status}"))
            .into_inner();
        incidents.push((button, reply.incident_id));
    }
    let channel = tls_channel(&client, nodes[0].grpc_addr(), "127.0.0.1")
        .await
        .unwrap();
    let mut operator = OperatorClient::new(channel);
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
    for (what, impostor) in [("device", &device), ("other node", &other_node)] {
        assert!(
            impostor.hellos.load(Ordering::SeqCst) > 0,
            "nobody tried to reach the {what} impostor: the test proves nothing"
        );
        assert_eq!(
            impostor.plaintext.load(Ordering::SeqCst),
            0,
            "the {what} impostor was spoken to in plaintext"
        );
        assert_eq!(
            impostor.handshakes.load(Ordering::SeqCst),
            0,
            "the {what} impostor completed a handshake"
        );
        assert_eq!(
            impostor.bytes.load(Ordering::SeqCst),
            0,
            "the {what} impostor received bytes"
        );
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_service_takes_only_the_certificate_of_the_node_that_calls() {
    let pki = Pki::new("city CA");
    let node = NodeBuilder::new("n1")
        .security(Security::open().with_cluster_secret(SECRET).unwrap())
        .tls(node_tls(&pki, "n1"))
        .start_node()
        .await;
    let call = |files: Option<Files>, claimed: &'static str| {
        let pki_ca = pki.ca();
        let addr = node.grpc_addr();
        async move {
            let tls = ClientTls::from_files(&pki_ca, files).unwrap();
            let channel = tls_channel(&tls, addr, "n1.node.centinela").await.unwrap();
            let mut request = tonic::Request::new(v1::PeerMessage {
                from_node: claimed.into(),
                body: b"not a message".to_vec(),
                revision: 0,
            });
            request
                .metadata_mut()
                .insert("centinela-node", claimed.parse().unwrap());
            request.metadata_mut().insert(
                "authorization",
                format!("Node {claimed} {SECRET}").parse().unwrap(),
            );
            PeerClient::new(channel).deliver(request).await
        }
    };
    // A device's certificate, the secret, and a node's name: refused before any handler.
    let status = call(Some(pki.device(Kind::Button, "B01")), "n2")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("does not name node n2"),
        "{status:?}"
    );
    // No certificate at all.
    let status = call(None, "n2").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("node certificate"), "{status:?}");
    // Node n2's certificate claiming to be n3.
    let status = call(Some(pki.node("n2")), "n3").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Node n2's own certificate: past the edge (the body is then refused as malformed).
    let result = call(Some(pki.node("n2")), "n2").await;
    if let Err(status) = &result {
        assert_ne!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_certificate_acts_as_that_device_only_and_tokens_keep_working() {
    const TOKEN: &str = "a-shared-device-token-for-tests";
    let pki = Pki::new("city CA");
    let security = Security::enforced()
        .with_cluster_secret(SECRET)
        .unwrap()
        .with_shared_device_token(TOKEN)
        .unwrap();
    let node = NodeBuilder::new("n1")
        .security(security)
        .tls(node_tls(&pki, "n1"))
        .start_node()
        .await;
    let press = |files: Option<Files>, button: &'static str, token: Option<&'static str>| {
        let ca = pki.ca();
        let addr = node.grpc_addr();
        async move {
            let tls = ClientTls::from_files(&ca, files).unwrap();
            let channel = tls_channel(&tls, addr, "127.0.0.1").await.unwrap();
            let mut request = tonic::Request::new(v1::PressRequest {
                button_id: button.into(),
                press_id: format!("certificate-{button}-{}", token.is_some()),
            });
            if let Some(token) = token {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            ButtonGatewayClient::new(channel).press(request).await
        }
    };
    // B01's certificate, no token: B01's press is an incident.
    let reply = wait::until("B01 presses with its certificate", || async {
        press(Some(pki.device(Kind::Button, "B01")), "B01", None)
            .await
            .map(|reply| reply.into_inner())
            .map_err(|status| status.to_string())
    })
    .await;
    assert!(!reply.incident_id.is_empty());
    // B01's certificate cannot press B02.
    let status = press(Some(pki.device(Kind::Button, "B01")), "B02", None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("does not name button B02"),
        "{status:?}"
    );
    // A node's certificate is no device's.
    let status = press(Some(pki.node("n2")), "B02", None).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Neither certificate nor token: unauthenticated, as before.
    let status = press(None, "B02", None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // The token keeps working without a certificate.
    press(None, "B02", Some(TOKEN))
        .await
        .expect("a token still presses");
    node.shutdown().await;
}
