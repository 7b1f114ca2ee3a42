//! Rotation under load (issue 20): a running node's certificate and key files are replaced
//! while a steady stream of presses arrives over TLS, each on a new connection of a new
//! client. New
//! connections get the new certificate (checked on the certificate each handshake served), a
//! connection opened before the rotation keeps working, no press is lost (every press id is
//! acknowledged into an incident that exists), and the node is never restarted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tonic::transport::{Channel, Endpoint};

use centinela_node::{Node, Security, TlsOptions};
use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_testkit::node::NodeBuilder;
use centinela_testkit::pki::{self, Pki};
use centinela_testkit::wait;
use centinela_tls::{ClientTls, ServerName};

/// Presses sent after the new certificate was first served: enough connections to show that
/// every new one gets it.
const PRESSES_AFTER_ROTATION: usize = 10;

/// The certificates served so far, one per handshake, in order (DER bytes).
type Served = Arc<Mutex<Vec<Vec<u8>>>>;

/// A channel over a new TLS connection to `node`, recording the certificate it served.
async fn channel(tls: &ClientTls, node: &Node, served: &Served) -> Channel {
    let connector = tls.connector(ServerName::try_from("127.0.0.1").unwrap());
    let served = served.clone();
    let recording = tower::ServiceExt::map_response(connector, move |io| {
        let (_, connection) = io.inner().get_ref();
        let leaf = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.as_ref().to_vec())
            .expect("the node served a certificate");
        served.lock().unwrap().push(leaf);
        io
    });
    Endpoint::from_shared(format!("http://{}", node.grpc_addr()))
        .unwrap()
        .connect_with_connector(recording)
        .await
        .unwrap_or_else(|e| panic!("TLS channel: {}", centinela_tls::describe(&e)))
}

async fn press(channel: Channel, button: &str, press_id: &str) -> v1::PressReply {
    ButtonGatewayClient::new(channel)
        .press(v1::PressRequest {
            button_id: button.to_string(),
            press_id: press_id.to_string(),
        })
        .await
        .unwrap_or_else(|status| panic!("press {press_id}: {status}"))
        .into_inner()
}

/// The certificate (DER) of a PEM file.
fn pem_der(path: &std::path::Path) -> Vec<u8> {
    centinela_tls::pem::certificates("certificate", path)
        .expect("the test's certificate")
        .first()
        .expect("a certificate")
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_running_nodes_certificate_under_presses_loses_none() {
    let pki = Pki::new("city CA");
    let files = pki.node("n1");
    let node = NodeBuilder::new("n1")
        .security(Security::open())
        .tls(TlsOptions {
            files: files.clone(),
            ca: Some(pki.ca()),
        })
        .start_node()
        .await;
    let old = pem_der(&files.certificate);
    // The replacement: same CA, same names, another key and serial.
    let replacement = pki.node("n1");
    let new = pem_der(&replacement.certificate);
    assert_ne!(old, new);

    let tls = ClientTls::from_files(&pki.ca(), None).unwrap();
    let served: Served = Arc::default();
    // A connection opened before the rotation, used again after it.
    let before = channel(&tls, &node, &served).await;
    press(before.clone(), "B01", "before-1").await;

    // The steady stream: one press per new connection, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = async {
        let mut replies = Vec::new();
        let mut i = 0usize;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let button = format!("B{:02}", 1 + i % 15);
            let press_id = format!("steady-{i}");
            // A new client each time: one client's later connections resume its TLS session
            // (no certificate is sent then) and would show the first certificate it saw.
            let fresh = ClientTls::from_files(&pki.ca(), None).unwrap();
            let channel = channel(&fresh, &node, &served).await;
            replies.push((press_id.clone(), press(channel, &button, &press_id).await));
        }
        replies
    };
    let (replies, ()) = tokio::join!(stream, async {
        wait::until("ten presses over the old certificate", || async {
            served.lock().unwrap().len() > 10
        })
        .await;
        pki::replace(&replacement, &files);
        wait::until("a new connection served the new certificate", || async {
            served.lock().unwrap().contains(&new)
        })
        .await;
        let seen = served.lock().unwrap().len();
        wait::until("more presses over the new certificate", || async {
            served.lock().unwrap().len() >= seen + PRESSES_AFTER_ROTATION
        })
        .await;
        stop.store(true, Ordering::SeqCst);
    });

    // The connection from before the rotation still works.
    let late = press(before, "B02", "before-2").await;

    let served = served.lock().unwrap().clone();
    let first_new = served
        .iter()
        .position(|leaf| *leaf == new)
        .expect("the new certificate was served");
    assert!(first_new > 0 && served[..first_new].iter().all(|leaf| *leaf == old));
    assert!(
        served[first_new..].iter().all(|leaf| *leaf == new),
        "once rotated, every new connection gets the new certificate"
    );
    assert!(served.len() - first_new >= PRESSES_AFTER_ROTATION);

    // No press lost: every acknowledged press's incident exists and is that button's.
    let mut operator = OperatorClient::new(channel(&tls, &node, &Arc::default()).await);
    for (press_id, reply) in replies
        .iter()
        .chain([("before-2".to_string(), late)].iter())
    {
        assert!(!reply.incident_id.is_empty(), "{press_id} has no incident");
        operator
            .get_incident(v1::GetIncidentRequest {
                incident_id: reply.incident_id.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("incident of {press_id}: {status}"));
    }
    node.shutdown().await;
}
