//! Compiles `proto/herald/v1/*.proto` with protox, a pure-Rust protobuf
//! compiler, so building Herald never needs a system `protoc`.

use std::{env, fs, io, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto_dir = proto_root.join("herald/v1");
    let mut protos = fs::read_dir(&proto_dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, io::Error>>()?;
    protos.retain(|path| path.extension().is_some_and(|ext| ext == "proto"));
    protos.sort();

    println!("cargo:rerun-if-changed={}", proto_dir.display());
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let descriptors = protox::compile(&protos, [&proto_root])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("herald_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    // Messages and clients first, with tonic's own codec.
    tonic_prost_build::configure()
        .bytes(".herald.v1")
        .build_server(false)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors.clone())?;
    // Then the servers alone, over the messages above, with the codec that
    // answers an undecodable request InvalidArgument (tonic's says Internal).
    let servers = out_dir.join("servers");
    fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".herald.v1", "crate::v1")
        .codec_path("crate::codec::RequestCodec")
        .out_dir(&servers)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;
    Ok(())
}
