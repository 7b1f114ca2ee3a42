//! Compiles the vendored etcd protos (`/proto/etcd`) into Rust, client and server, in pure Rust:
//! `protox` parses them, so no `protoc` is needed anywhere (`PROTOC=/nonexistent` builds).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto/etcd");
    let files = [
        proto_root.join("etcdserverpb/rpc.proto"),
        proto_root.join("mvccpb/kv.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [&proto_root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
