//! gRPC server reflection over real sockets, against an in-process node: both versions of the
//! protocol, `grpc.reflection.v1` and the older `grpc.reflection.v1alpha`, which many tools
//! still speak (Python's grpcio-reflection, Evans, older grpcurl). A v1-only server answers
//! those `UNIMPLEMENTED`.
//!
//! The node enforces credentials, as `centinela start` does: reflection, like health, stays
//! open (docs/security.md), so every call here goes without any.
//!
//! The last test asks with an independent client, Python's `grpcio-reflection` (v1alpha):
//! `scripts/test.sh` installs it; without it the test skips, except under CI (`CI` set),
//! where it fails.

use std::process::Command;

use tonic::transport::Channel;

use centinela_api::Security;
use centinela_testkit::node::{NodeBuilder, TestNode};

/// What every listing must hold: the services an operator's tool looks for first, and both
/// versions of reflection itself.
const EXPECTED: &[&str] = &[
    "centinela.v1.ButtonGateway",
    "centinela.v1.CameraGateway",
    "centinela.v1.UnitGateway",
    "centinela.v1.Operator",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// A node that refuses every centinela.v1 call without credentials.
async fn enforced_node() -> TestNode {
    let security = Security::enforced()
        .with_cluster_secret("cluster-secret-of-the-reflection-tests")
        .unwrap();
    NodeBuilder::new("node-reflection")
        .security(security)
        .start()
        .await
}

#[track_caller]
fn assert_lists_all(version: &str, names: &[String]) {
    for expected in EXPECTED {
        assert!(
            names.iter().any(|n| n == expected),
            "{version}: {expected} missing from {names:?}"
        );
    }
}

/// Service names through `grpc.reflection.v1alpha`, and the descriptor of the file that
/// defines `symbol` (its name).
async fn v1alpha(channel: Channel, symbol: &str) -> (Vec<String>, String) {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol(symbol.to_string()),
    ]
    .map(|request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    });
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("v1alpha reflection is served")
        .into_inner();
    let mut names = None;
    let mut file = None;
    while let Some(reply) = replies.message().await.expect("a v1alpha reply") {
        match reply.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                names = Some(list.service.into_iter().map(|s| s.name).collect());
            }
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                file = Some(files.file_descriptor_proto);
            }
            other => panic!("unexpected v1alpha reply: {other:?}"),
        }
    }
    let files = file.unwrap_or_else(|| panic!("no file descriptor for {symbol}"));
    (names.expect("a service list"), file_name(&files))
}

/// The same through `grpc.reflection.v1`.
async fn v1(channel: Channel, symbol: &str) -> (Vec<String>, String) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol(symbol.to_string()),
    ]
    .map(|request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    });
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("v1 reflection is served")
        .into_inner();
    let mut names = None;
    let mut file = None;
    while let Some(reply) = replies.message().await.expect("a v1 reply") {
        match reply.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                names = Some(list.service.into_iter().map(|s| s.name).collect());
            }
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                file = Some(files.file_descriptor_proto);
            }
            other => panic!("unexpected v1 reply: {other:?}"),
        }
    }
    let files = file.unwrap_or_else(|| panic!("no file descriptor for {symbol}"));
    (names.expect("a service list"), file_name(&files))
}

/// The name of the first encoded `FileDescriptorProto` of a reply (the file that defines the
/// symbol asked for; its dependencies may follow).
fn file_name(files: &[Vec<u8>]) -> String {
    use prost::Message as _;
    let first = files.first().expect("at least one file descriptor");
    prost_types::FileDescriptorProto::decode(first.as_slice())
        .expect("a valid file descriptor")
        .name
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_and_v1_list_the_services_without_credentials() {
    let node = enforced_node().await;

    let (names, file) = v1alpha(node.channel.clone(), "centinela.v1.ButtonGateway").await;
    assert_lists_all("v1alpha", &names);
    assert!(file.starts_with("centinela/v1/"), "v1alpha: {file}");

    let (names, file) = v1(node.channel.clone(), "centinela.v1.Operator").await;
    assert_lists_all("v1", &names);
    assert!(file.starts_with("centinela/v1/"), "v1: {file}");

    node.shutdown().await;
}

/// Python's grpcio-reflection, a v1alpha client written by gRPC's authors: it lists the
/// services and resolves `ButtonGateway.Press` and its request type through reflection alone.
const PYTHON_CLIENT: &str = r#"
import sys
import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

with grpc.insecure_channel(sys.argv[1]) as channel:
    database = ProtoReflectionDescriptorDatabase(channel)
    for name in database.get_services():
        print("service", name)
    press = descriptor_pool.DescriptorPool(database).FindMethodByName(
        "centinela.v1.ButtonGateway.Press"
    )
    print("method", press.full_name, press.input_type.full_name)
"#;

/// `python3` with grpcio-reflection, or `None` (skip, saying why) outside CI; under CI a
/// missing client fails the test.
fn python_with_grpc_reflection() -> Option<&'static str> {
    let found = Command::new("python3")
        .args(["-c", "import grpc_reflection.v1alpha"])
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return Some("python3");
    }
    let how = "python3 -m pip install grpcio-reflection (scripts/test.sh does)";
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but Python's grpcio-reflection is missing: {how}");
    }
    eprintln!("SKIPPED: no Python grpcio-reflection ({how})");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_reflection_a_v1alpha_client_lists_the_services() {
    let Some(python) = python_with_grpc_reflection() else {
        return;
    };
    let node = enforced_node().await;
    let target = node.grpc_addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", PYTHON_CLIENT, &target])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("service "))
        .map(str::to_string)
        .collect();
    assert_lists_all("python v1alpha", &names);
    assert!(
        stdout.contains("method centinela.v1.ButtonGateway.Press centinela.v1.PressRequest"),
        "{stdout}"
    );
    node.shutdown().await;
}
