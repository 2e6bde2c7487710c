//! Generates the tonic/prost code for `sweep/v1/*.proto` with a protoc that
//! comes from a crate, so a fresh machine builds without a system protoc.

use std::path::PathBuf;

const PROTOS: [&str; 3] = [
    "sweep/v1/types.proto",
    "sweep/v1/coordinator.proto",
    "sweep/v1/sweeps.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .codec_path("crate::codec::Codec")
        .file_descriptor_set_path(out_dir.join("sweep_descriptor.bin"))
        .compile_with_config(config, &PROTOS, &["."])?;
    Ok(())
}
