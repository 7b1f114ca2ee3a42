//! Floods of connections and streams against a real node over real sockets
//! (docs/security.md, "Connections and streams").
//!
//! Each test starts its own node with caps lowered through `Options::bounds`, so a handful of
//! sockets reaches them (production's caps are in the thousands; the code path is the same).
//! Nothing asserts on timing: waits poll under a generous deadline. Memory figures are
//! printed; what is asserted is what the node holds (connections, streams), which is what
//! its memory follows.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::Channel;

use centinela_api::auth::Device;
use centinela_api::{Security, StreamLimits};
use centinela_core::ids::ButtonId;
use centinela_node::{Bounds, ConsoleConfig, Node};
use centinela_proto::client::{AuthChannel, Credentials};
use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::unit_gateway_client::UnitGatewayClient;
use centinela_testkit::node::{NodeBuilder, TestNode, grpc_url};
use centinela_testkit::process::rss_mib;
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::wait;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const DEADLINE: Duration = Duration::from_secs(60);
const FLEET_TOKEN: &str = "fleet-token-for-the-bounds-tests";
const CLUSTER_SECRET: &str = "cluster-secret-of-the-bounds-tests";
/// Both accounts' password, hashed with weak argon2id parameters so debug builds check it fast.
const PASSWORD: &str = "cluster-test-password";
const PASSWORD_HASH: &str = "$argon2id$v=19$m=1024,t=1,p=1$Y2VudGluZWxhLXRlc3Rz$mN+QVYUd29B41cBTGyVzSaqJUpE1GEFKg8CcfB5CkV0";

fn small_bounds() -> Bounds {
    Bounds {
        grpc_connections_max: 6,
        http_connections_max: 4,
        ..Bounds::default()
    }
}

async fn start(bounds: Bounds) -> (Node, Channel) {
    let accounts = centinela_console::config::parse_inline(&format!(
        "ana:operator:{PASSWORD_HASH} sara:supervisor:{PASSWORD_HASH}"
    ))
    .expect("valid accounts");
    let security = Security::enforced()
        .with_shared_device_token(FLEET_TOKEN)
        .unwrap()
        .with_device_token(
            Device::Button(ButtonId::new("B01").unwrap()),
            "token-of-button-b01-0123",
        )
        .unwrap()
        .with_cluster_secret(CLUSTER_SECRET)
        .unwrap();
    let scenario = ScenarioBuilder::new("bounds")
        .buttons(
            (1..=3)
                .map(|i| Button::new(format!("B{i:02}"), -12.0464 + 0.001 * f64::from(i), -77.03)),
        )
        .brigades([Brigade::new("U1", "foot", -12.0464, -77.031)])
        .build();
    let TestNode { node, channel } = NodeBuilder::new("node-bounds")
        .scenario(scenario)
        .console(ConsoleConfig::default().with_operators(accounts).unwrap())
        .security(security)
        .bounds(bounds)
        .start()
        .await;
    (node, channel)
}

fn presses(channel: &Channel) -> ButtonGatewayClient<AuthChannel> {
    ButtonGatewayClient::with_interceptor(
        channel.clone(),
        Credentials::new(Some(FLEET_TOKEN)).unwrap(),
    )
}

fn operator(channel: &Channel, id: &str) -> OperatorClient<AuthChannel> {
    OperatorClient::with_interceptor(
        channel.clone(),
        Credentials::default()
            .with_operator(id, Some(PASSWORD))
            .unwrap(),
    )
}

async fn press(
    channel: &Channel,
    button: &str,
    press_id: &str,
) -> Result<v1::PressReply, tonic::Status> {
    presses(channel)
        .press(v1::PressRequest {
            button_id: button.into(),
            press_id: press_id.into(),
        })
        .await
        .map(|reply| reply.into_inner())
}

/// Opens `count` sockets to `addr` and says nothing on them.
async fn idle_sockets(addr: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(TcpStream::connect(addr).await.expect("the kernel accepts"));
    }
    sockets
}

/// Reads until the peer closes (EOF or reset); `false` if it is still open at the deadline.
async fn closed_by_peer(socket: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(DEADLINE, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // the gRPC server's SETTINGS frame
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_socket_floods_are_refused_past_each_listeners_cap_and_presses_go_on() {
    let (node, channel) = start(small_bounds()).await;
    let grpc = node.grpc_gate().expect("a gRPC gate").clone();
    let http = node.http_gate().expect("an HTTP gate").clone();
    press(&channel, "B01", "before-the-flood")
        .await
        .expect("a press on the quiet node");
    let rss_before = rss_mib();

    // 1. The HTTP port flooded with idle sockets (the issue: 1,100 of them starved presses).
    let flood = 20;
    let mut http_flood = idle_sockets(node.http_addr(), flood).await;
    wait::until(
        "the HTTP gate to refuse the sockets past its cap",
        || async { http.refused() >= (flood - 4) as u64 },
    )
    .await;
    assert_eq!(http.open(), 4, "the HTTP port holds its cap, no more");
    // A refused socket is closed at once, not left hanging.
    let mut refused = http_flood.pop().unwrap();
    assert!(
        closed_by_peer(&mut refused).await,
        "a refused HTTP socket is closed"
    );

    // The gRPC port is untouched: a new client connects and its press is acknowledged.
    let fresh = Channel::from_shared(grpc_url(&node))
        .unwrap()
        .connect()
        .await
        .expect("a new gRPC connection during the HTTP flood");
    let reply = press(&fresh, "B02", "during-the-http-flood")
        .await
        .expect("a press during the HTTP flood is acknowledged");
    assert!(!reply.incident_id.is_empty());

    // 2. The gRPC port flooded too: past its cap new sockets are closed, while the
    // connections it holds keep being served.
    let mut grpc_flood = idle_sockets(node.grpc_addr(), flood).await;
    wait::until("the gRPC gate to be full and refusing", || async {
        grpc.open() == 6 && grpc.refused() >= 1
    })
    .await;
    let mut refused = grpc_flood.pop().unwrap();
    assert!(
        closed_by_peer(&mut refused).await,
        "a refused gRPC socket is closed"
    );
    press(&channel, "B03", "during-the-grpc-flood")
        .await
        .expect("a press on a held connection during the gRPC flood is acknowledged");
    let rss_flood = rss_mib();
    eprintln!(
        "grpc_open={} grpc_refused={} http_open={} http_refused={} rss_before_mib={rss_before:.1} rss_flood_mib={rss_flood:.1}",
        grpc.open(),
        grpc.refused(),
        http.open(),
        http.refused()
    );
    assert!(grpc.open() <= 6 && http.open() <= 4);

    // 3. The flood gone, the slots come back: a new client is served again.
    drop(grpc_flood);
    drop(http_flood);
    wait::until("the flood's slots to be freed", || async {
        grpc.open() <= 2 && http.open() == 0
    })
    .await;
    let after = Channel::from_shared(grpc_url(&node))
        .unwrap()
        .connect()
        .await
        .expect("a new gRPC connection after the flood");
    press(&after, "B01", "after-the-flood")
        .await
        .expect("a press after the flood");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_connections_are_closed() {
    let bounds = Bounds {
        connection_idle: Duration::from_secs(2),
        http_header_read_timeout: Duration::from_secs(1),
        ..small_bounds()
    };
    let (node, channel) = start(bounds).await;
    let http = node.http_gate().unwrap().clone();
    let grpc = node.grpc_gate().unwrap().clone();

    // Sockets that connect and say nothing are closed after the idle timeout, on both ports.
    let mut silent_http = TcpStream::connect(node.http_addr()).await.unwrap();
    let mut silent_grpc = TcpStream::connect(node.grpc_addr()).await.unwrap();
    assert!(
        closed_by_peer(&mut silent_http).await,
        "a silent HTTP socket is closed"
    );
    assert!(
        closed_by_peer(&mut silent_grpc).await,
        "a silent gRPC socket is closed"
    );

    // A client trickling its headers (a byte every 100 ms keeps it from being idle) is cut
    // off by the header read timeout.
    let mut trickle = TcpStream::connect(node.http_addr()).await.unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = trickle.into_split();
    let dribble = tokio::spawn(async move {
        for _ in 0..600 {
            if writer.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let cut = tokio::time::timeout(DEADLINE, async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a 408, if hyper sends one
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "a trickling client is cut off");
    dribble.abort();

    // A live gRPC connection is not idle (keep-alive pings): the test's channel still serves.
    wait::until("the closed sockets' slots to be freed", || async {
        http.open() == 0 && grpc.open() <= 1
    })
    .await;
    press(&channel, "B01", "after-the-silence")
        .await
        .expect("the live channel still serves");
    // An ordinary request is still served.
    let mut client = TcpStream::connect(node.http_addr()).await.unwrap();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_health_floods_stop_at_their_caps_and_presses_go_on() {
    let bounds = Bounds {
        streams: StreamLimits {
            watch_per_operator: 3,
            watch_total: 5,
            health_watches: 4,
        },
        ..Bounds::default()
    };
    let (node, channel) = start(bounds).await;
    let streams = node.streams().clone();
    let rss_before = rss_mib();

    // One operator floods Watch: the first 3 are served, the rest refused with a status that
    // names the cap.
    let mut ana = operator(&channel, "ana");
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        match ana.watch(v1::WatchRequest::default()).await {
            Ok(stream) => held.push(stream.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status
                        .message()
                        .contains("operator ana has 3 live watch streams"),
                    "{status:?}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((held.len(), refused), (3, 37));
    // The streams that were let through work: each starts with the snapshot.
    for stream in &mut held {
        let first = tokio::time::timeout(DEADLINE, stream.message())
            .await
            .expect("a snapshot in time")
            .expect("a live stream")
            .expect("an event");
        assert!(first.event.is_some());
    }

    // Another operator has their own cap, under the node's total (5).
    let mut sara = operator(&channel, "sara");
    for _ in 0..2 {
        held.push(
            sara.watch(v1::WatchRequest::default())
                .await
                .expect("sara's watch")
                .into_inner(),
        );
    }
    let total = sara.watch(v1::WatchRequest::default()).await.unwrap_err();
    assert_eq!(total.code(), Code::ResourceExhausted);
    assert!(total.message().contains("this node has 5"), "{total:?}");
    assert_eq!(streams.open("watch"), 5);

    // Anonymous health watches: 4, then refused.
    let mut health = HealthClient::new(channel.clone());
    let mut health_held = Vec::new();
    let mut health_refused = 0;
    for _ in 0..20 {
        match health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(stream) => health_held.push(stream.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                health_refused += 1;
            }
        }
    }
    assert_eq!((health_held.len(), health_refused), (4, 16));
    // Probes use Check, which is never capped.
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a health check during the flood");

    // Presses are acknowledged throughout.
    press(&channel, "B01", "during-the-stream-flood")
        .await
        .expect("a press during the stream flood");
    let rss_flood = rss_mib();
    eprintln!(
        "watch_open={} health_open={} rss_before_mib={rss_before:.1} rss_flood_mib={rss_flood:.1}",
        streams.open("watch"),
        streams.open("health")
    );

    // A stream that ends gives its slot back: ana may watch again.
    held.remove(0);
    wait::until("ana's closed stream to free its slot", || async {
        streams.open("watch:operator:ana") == 2
    })
    .await;
    ana.watch(v1::WatchRequest::default())
        .await
        .expect("a watch after one closed");
    node.shutdown().await;
}

/// One `GET` over a fresh connection: status, headers (lowercase names), body.
async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut client = TcpStream::connect(addr)
        .await
        .expect("connect to the console");
    client
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = String::new();
    tokio::time::timeout(DEADLINE, client.read_to_string(&mut raw))
        .await
        .expect("a reply in time")
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_map_is_served_from_a_cache_with_an_etag() {
    let (node, channel) = start(Bounds::default()).await;
    let map = node.public_map().clone();
    let path = "/public/buttons.geojson";

    let (status, headers, body) = http_get(node.http_addr(), path, "").await;
    assert_eq!(status, 200);
    let etag = header(&headers, "etag").to_string();
    assert!(
        etag.starts_with('"') && etag.len() > 2,
        "a strong ETag: {etag}"
    );
    assert!(header(&headers, "cache-control").contains("max-age="));
    assert!(body.contains("\"B02\""));
    let builds = map.builds();
    assert_eq!(builds, 1);

    // Many requests, plain and conditional, cost no store read while no button changes.
    let changes = map.changes();
    let requests = 60;
    for i in 0..requests {
        if i % 2 == 0 {
            let (status, headers, body) = http_get(
                node.http_addr(),
                path,
                &format!("If-None-Match: {etag}\r\n"),
            )
            .await;
            assert_eq!(status, 304);
            assert_eq!(header(&headers, "etag"), etag);
            assert!(body.is_empty());
        } else {
            let (status, headers, again) = http_get(node.http_addr(), path, "").await;
            assert_eq!(status, 200);
            assert_eq!(header(&headers, "etag"), etag);
            assert_eq!(again, body);
        }
    }
    // (A button the node marks offline meanwhile would be a change, worth one read.)
    let changed = map.changes() - changes;
    eprintln!(
        "public_map_requests={requests} store_reads={} changes={changed}",
        map.builds() - builds
    );
    assert!(map.builds() - builds <= changed, "reads only for changes");

    // A change to a button changes the tag and the body.
    presses(&channel)
        .report_tamper(v1::TamperReport {
            button_id: "B02".into(),
            detail: "door forced".into(),
        })
        .await
        .expect("a tamper report");
    let (fresh_tag, fresh_body) = wait::until("the map to show the tampered button", || async {
        let (status, headers, body) = http_get(
            node.http_addr(),
            path,
            &format!("If-None-Match: {etag}\r\n"),
        )
        .await;
        let tag = header(&headers, "etag").to_string();
        (status == 200 && tag != etag).then_some((tag, body))
    })
    .await;
    let feed: serde_json::Value = serde_json::from_str(&fresh_body).unwrap();
    let b02 = feed["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "B02")
        .expect("B02 on the map");
    assert_eq!(b02["properties"]["working"], false, "{b02}");
    assert_ne!(fresh_body, body);
    let (status, _, _) = http_get(
        node.http_addr(),
        path,
        &format!("If-None-Match: {fresh_tag}\r\n"),
    )
    .await;
    assert_eq!(status, 304);
    node.shutdown().await;
}

fn units(channel: &Channel) -> UnitGatewayClient<AuthChannel> {
    UnitGatewayClient::with_interceptor(
        channel.clone(),
        Credentials::new(Some(FLEET_TOKEN)).unwrap(),
    )
}

async fn new_channel(node: &Node) -> Channel {
    Channel::from_shared(grpc_url(node))
        .unwrap()
        .connect()
        .await
        .expect("a new connection")
}

/// The incident of the next assignment on `stream`.
async fn next_assignment(stream: &mut tonic::Streaming<v1::AssignmentEvent>) -> String {
    loop {
        let event = tokio::time::timeout(DEADLINE, stream.message())
            .await
            .expect("an assignment in time")
            .expect("a live stream")
            .expect("an event");
        if let Some(v1::assignment_event::Event::Assignment(assignment)) = event.event {
            return assignment.incident_id;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_has_one_live_terminal_stream_and_a_reconnect_takes_it_back() {
    let (node, channel) = start(Bounds::default()).await;
    let subscribe = || v1::UnitSubscribe {
        unit_id: "U1".into(),
    };

    // The real terminal subscribes; a second subscriber for the same unit is refused.
    let terminal = new_channel(&node).await;
    let mut real = units(&terminal)
        .assignments(subscribe())
        .await
        .expect("the terminal's stream")
        .into_inner();
    let intruder = new_channel(&node).await;
    let refused = units(&intruder).assignments(subscribe()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("unit U1 already has a live terminal stream"),
        "{refused:?}"
    );

    // The real terminal keeps its assignments.
    let incident = press(&channel, "B01", "one-terminal")
        .await
        .expect("a press")
        .incident_id;
    assert_eq!(next_assignment(&mut real).await, incident);

    // The terminal's connection drops; its reconnect is served (not locked out by its own
    // dead stream) and gets its job again.
    drop(real);
    drop(terminal);
    let mut back = wait::until("the reconnecting terminal to be let in", || async {
        units(&intruder)
            .assignments(subscribe())
            .await
            .map(|stream| stream.into_inner())
    })
    .await;
    assert_eq!(next_assignment(&mut back).await, incident);
    node.shutdown().await;
}

/// Sends raw bytes as a request body: what a broken or hostile client puts on the wire.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = v1::PressReply;
    type Encoder = RawEncoder;
    type Decoder =
        <tonic_prost::ProstCodec<v1::PressRequest, v1::PressReply> as tonic::codec::Codec>::Decoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<v1::PressRequest, v1::PressReply>::default().decoder()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_protobuf_body_is_invalid_argument() {
    let (node, channel) = start(Bounds::default()).await;
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    // Field 1 (button_id) announced as 255 bytes long, with one; then a truncated varint; then
    // a field number 0, which protobuf forbids.
    for body in [
        vec![0x0a, 0xff, 0x01, b'B'],
        vec![0x10, 0xff],
        vec![0x00, 0x01],
    ] {
        grpc.ready().await.expect("the channel is ready");
        let mut request = tonic::Request::new(body.clone());
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {FLEET_TOKEN}").parse().unwrap(),
        );
        let status = grpc
            .unary(
                request,
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/centinela.v1.ButtonGateway/Press",
                ),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{body:?}: {status:?}");
        assert!(
            status
                .message()
                .starts_with("malformed PressRequest message"),
            "{status:?}"
        );
    }
    // The node keeps serving.
    press(&channel, "B01", "after-malformed")
        .await
        .expect("a press");
    node.shutdown().await;
}

/// What the process logged, as the node's log output would show it.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_codes_in_a_tamper_detail_do_not_reach_the_log() {
    // Each test runs in its own process (nextest), so this subscriber sees this node only.
    let captured = Captured::default();
    let writer = captured.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("the only subscriber");
    let (node, channel) = start(Bounds::default()).await;
    let hostile = "door\u{1b}[2J\u{1b}]0;owned\u{7}\r\nINFO fake: all clear";
    presses(&channel)
        .report_tamper(v1::TamperReport {
            button_id: "B02".into(),
            detail: hostile.into(),
        })
        .await
        .expect("the tamper report is taken");
    let log = wait::until("the tamper to be logged", || async {
        let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        log.contains("tamper reported").then_some(log)
    })
    .await;
    let line = log
        .lines()
        .find(|line| line.contains("tamper reported"))
        .unwrap();
    eprintln!("logged: {line}");
    assert!(
        line.contains(r"door\u{1b}[2J\u{1b}]0;owned\u{7}\u{d}\u{a}INFO fake: all clear"),
        "{line}"
    );
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{7}'),
        "no raw escape codes"
    );
    assert!(!log.contains("\nINFO fake"), "no forged log line");
    node.shutdown().await;
}
