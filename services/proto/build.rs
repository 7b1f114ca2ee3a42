//! Compiles `proto/centinela/v1/*.proto` in pure Rust (protox): no protoc on the machine, ever.

use prost::Message;
use std::path::PathBuf;

const PROTO_ROOT: &str = "../../proto";
const FILES: &[&str] = &[
    "centinela/v1/types.proto",
    "centinela/v1/devices.proto",
    "centinela/v1/operator.proto",
    "centinela/v1/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }
    let descriptors = protox::compile(FILES, [PROTO_ROOT])?;
    // The encoded descriptor set is served by gRPC reflection so grpcurl works without files.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("centinela_v1_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        // Malformed messages are the caller's fault: INVALID_ARGUMENT, not prost's INTERNAL.
        .codec_path("crate::codec::Codec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
