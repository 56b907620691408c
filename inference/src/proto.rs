//! The Open Inference Protocol v2 types and service, generated from `proto/grpc_predict_v2.proto`.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("inference");

/// The encoded descriptors server reflection serves.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("inference_descriptor");
