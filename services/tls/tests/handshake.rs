//! Real handshakes over loopback with certificates made by the test: what a client sees when
//! the server is not what it trusts, what a server sees of a client's certificate, and
//! rotation.

use std::sync::Arc;
use std::time::Duration;

use centinela_testkit::pki::{self, Pki};
use centinela_tls::names::{self, Kind};
use centinela_tls::{ClientTls, Files, Protocol, ServerName, ServerTls, TlsConnection, TlsInfo};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tower::ServiceExt;

const DEADLINE: Duration = Duration::from_secs(60);

/// A TLS echo server on a loopback port: each accepted connection's client certificate is
/// sent on `seen`, then its bytes are echoed.
async fn echo_server(
    tls: ServerTls,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<TlsInfo<TcpConnectInfo>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(socket, _)| socket);
        Some((accepted, listener))
    });
    let (seen, seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut incoming = Box::pin(tls.incoming(plain));
    tokio::spawn(async move {
        while let Some(Ok(connection)) = incoming.next().await {
            let connection: TlsConnection<TcpStream> = connection;
            let _ = seen.send(connection.connect_info());
            tokio::spawn(async move {
                let (mut read, mut write) = tokio::io::split(connection);
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    (addr, seen_rx)
}

async fn dial(
    client: &ClientTls,
    addr: std::net::SocketAddr,
    name: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();
    let connected = tokio::time::timeout(DEADLINE, client.connector(server_name).oneshot(uri))
        .await
        .expect("the handshake ends");
    match connected {
        Ok(io) => Ok(io.into_inner()),
        Err(e) => Err(centinela_tls::describe(&e)),
    }
}

async fn echoes(mut stream: tokio_rustls::client::TlsStream<TcpStream>) {
    stream.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"ping");
}

fn node_server(pki: &Pki, id: &str) -> ServerTls {
    ServerTls::from_files(pki.node(id), Some(&pki.ca()), Protocol::Grpc).unwrap()
}

#[tokio::test]
async fn a_client_trusting_the_ca_talks_and_its_certificate_names_it() {
    let pki = Pki::new("city CA");
    let (addr, mut seen) = echo_server(node_server(&pki, "n1")).await;

    // No client certificate: allowed (tokens authenticate those), and the server sees none.
    let anonymous = ClientTls::from_files(&pki.ca(), None).unwrap();
    echoes(dial(&anonymous, addr, "127.0.0.1").await.unwrap()).await;
    assert!(seen.recv().await.unwrap().client_certificate().is_none());

    // The node's own name works as the server name too (how peers dial each other).
    let peer = ClientTls::from_files(&pki.ca(), Some(pki.node("n2"))).unwrap();
    echoes(dial(&peer, addr, "n1.node.centinela").await.unwrap()).await;
    let info = seen.recv().await.unwrap();
    let certificate = info.client_certificate().expect("a client certificate");
    assert!(names::names(certificate, Kind::Node, "n2"));
    assert!(!names::names(certificate, Kind::Node, "n1"));
    assert!(!names::names(certificate, Kind::Button, "n2"));

    let button = ClientTls::from_files(&pki.ca(), Some(pki.device(Kind::Button, "B01"))).unwrap();
    echoes(dial(&button, addr, "127.0.0.1").await.unwrap()).await;
    let info = seen.recv().await.unwrap();
    let certificate = info.client_certificate().unwrap();
    assert!(names::names(certificate, Kind::Button, "b01"));
    assert!(!names::names(certificate, Kind::Node, "B01"));
}

#[tokio::test]
async fn a_plaintext_client_is_refused() {
    let pki = Pki::new("city CA");
    let (addr, _seen) = echo_server(node_server(&pki, "n1")).await;
    let mut plain = TcpStream::connect(addr).await.unwrap();
    // An HTTP/2 preface, as a plaintext gRPC client sends.
    plain
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, plain.read_to_end(&mut buffer))
        .await
        .expect("the server closes the connection");
    // Closed, with at most a TLS alert: never an HTTP/2 answer.
    assert!(
        read.is_err() || !buffer.starts_with(b"\x00\x00"),
        "{buffer:?}"
    );
    assert!(buffer.len() < 16, "{buffer:?}");
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_told_unknown_ca() {
    let city = Pki::new("city CA");
    let other = Pki::new("other CA");
    let (addr, _seen) = echo_server(node_server(&city, "n1")).await;
    let client = ClientTls::from_files(&other.ca(), None).unwrap();
    let error = dial(&client, addr, "127.0.0.1").await.unwrap_err();
    assert!(error.contains("unknown CA"), "{error}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_by_the_server() {
    let city = Pki::new("city CA");
    let other = Pki::new("other CA");
    let (addr, mut seen) = echo_server(node_server(&city, "n1")).await;
    // Trusts the city (so the server is fine) but presents another CA's certificate.
    let client = ClientTls::new(
        &city.ca(),
        Some(centinela_tls::Pair::load(other.node("n2"), centinela_tls::provider()).unwrap()),
    )
    .unwrap();
    // TLS 1.3: the client's handshake may finish before the server's verdict arrives; the
    // refusal then shows on the first read.
    match dial(&client, addr, "127.0.0.1").await {
        Err(error) => assert!(error.contains("refused"), "{error}"),
        Ok(mut stream) => {
            let _ = stream.write_all(b"ping").await;
            let mut got = [0u8; 4];
            let read = tokio::time::timeout(DEADLINE, stream.read_exact(&mut got))
                .await
                .unwrap();
            assert!(read.is_err(), "the server refused the certificate");
        }
    }
    assert!(seen.try_recv().is_err(), "no connection reached the server");
}

#[tokio::test]
async fn a_wrong_name_is_told_as_such() {
    let pki = Pki::new("city CA");
    let (addr, _seen) = echo_server(node_server(&pki, "n1")).await;
    let client = ClientTls::from_files(&pki.ca(), None).unwrap();
    let error = dial(&client, addr, "n2.node.centinela").await.unwrap_err();
    assert!(error.contains("wrong name"), "{error}");
    assert!(error.contains("n2.node.centinela"), "{error}");
}

#[tokio::test]
async fn an_expired_certificate_is_told_as_such() {
    let pki = Pki::new("city CA");
    let expired = pki.expired(&[pki::identity(Kind::Node, "n1")]);
    let tls = ServerTls::from_files(expired, Some(&pki.ca()), Protocol::Grpc).unwrap();
    let (addr, _seen) = echo_server(tls).await;
    let client = ClientTls::from_files(&pki.ca(), None).unwrap();
    let error = dial(&client, addr, "127.0.0.1").await.unwrap_err();
    assert!(error.contains("expired"), "{error}");
}

#[tokio::test]
async fn missing_and_mismatched_files_are_named() {
    let pki = Pki::new("city CA");
    let missing = Files {
        certificate: pki.dir().join("nope.pem"),
        key: pki.dir().join("nope.key"),
    };
    let error = ServerTls::from_files(missing, None, Protocol::Grpc)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("nope.pem") && error.contains("missing"),
        "{error}"
    );

    let a = pki.node("n1");
    let b = pki.node("n2");
    let mismatched = Files {
        certificate: a.certificate,
        key: b.key.clone(),
    };
    let error = ServerTls::from_files(mismatched, None, Protocol::Grpc)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("does not go with"), "{error}");

    let error = ClientTls::from_files(&b.key, None).unwrap_err().to_string();
    assert!(error.contains("no PEM certificate"), "{error}");
}

#[tokio::test]
async fn rotated_files_are_used_by_new_connections_without_a_restart() {
    let pki = Pki::new("city CA");
    let live = pki.node("n1");
    let tls = ServerTls::from_files(live.clone(), Some(&pki.ca()), Protocol::Grpc).unwrap();
    let pair: Arc<centinela_tls::Pair> = tls.pair().clone();
    let (addr, _seen) = echo_server(tls).await;
    let client = ClientTls::from_files(&pki.ca(), None).unwrap();

    let before = dial(&client, addr, "n1.node.centinela").await.unwrap();
    let first = before.get_ref().1.peer_certificates().unwrap()[0].clone();

    // The renewed certificate names the node under a second name too, so it can be told
    // from the first by what it accepts.
    let renewed = pki.leaf(&[
        pki::identity(Kind::Node, "n1"),
        "renewed.example".to_string(),
    ]);
    pki::replace(&renewed, &live);
    pair.check_now();

    let after = dial(&client, addr, "renewed.example").await.unwrap();
    let second = after.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_ne!(first, second);
    // The connection opened before the rotation still works.
    echoes(before).await;
    echoes(after).await;
}
