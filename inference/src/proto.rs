//! The Open Inference Protocol v2 types and (with the `app` feature) service, generated from
//! `proto/grpc_predict_v2.proto`.

#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/inference.rs"));

/// The encoded descriptors server reflection serves.
#[cfg(feature = "app")]
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inference_descriptor.bin"));
