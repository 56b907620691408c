//! Generates the Open Inference Protocol v2 and TensorFlow Serving types and services, plus the descriptor set
//! server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build finds protoc through PROTOC; the vendored one means no system package is needed.
    // SAFETY: nothing else runs in this single-threaded build script yet.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Without the `app` feature only the messages are generated (no tonic service code).
    let services = std::env::var_os("CARGO_FEATURE_APP").is_some();
    // Every message knows its protobuf name, which the services' codec looks its decode cost up by.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(services)
        .build_client(services)
        // Tensor payloads reach 100 MB: `Bytes` fields slice the receive buffer instead of copying it.
        .bytes(".")
        .file_descriptor_set_path(out_dir.join("inference_descriptor.bin"))
        // Messages are decoded only once what they would allocate is known to fit (src/codec.rs).
        .codec_path("crate::codec::BoundedCodec")
        .compile_with_config(
            config,
            &[
                "proto/grpc_predict_v2.proto",
                "proto/tensorflow_serving/apis/prediction_service.proto",
                "proto/tensorflow_serving/apis/model_service.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
