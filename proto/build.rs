//! Generates the gRPC code from `switchyard/**.proto` with a vendored `protoc`: builds need no system
//! protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "switchyard/admin/v1/admin.proto",
        "switchyard/raft/v1/raft.proto",
        "switchyard/stream/v1/stream.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("switchyard_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
