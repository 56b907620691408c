//! The generated protocol types and (with the `app` feature) services: the Open Inference Protocol v2 from
//! `proto/grpc_predict_v2.proto`, and TensorFlow Serving's API from `proto/tensorflow*` (upstream's packages).

#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/inference.rs"));

/// TensorFlow's `tensorflow` package: tensors, signatures, examples.
pub mod tensorflow {
    include!(concat!(env!("OUT_DIR"), "/tensorflow.rs"));

    /// `tensorflow.error`: the error codes a model status carries.
    pub mod error {
        include!(concat!(env!("OUT_DIR"), "/tensorflow.error.rs"));
    }

    /// `tensorflow.serving`: TensorFlow Serving's requests, responses and services.
    pub mod serving {
        include!(concat!(env!("OUT_DIR"), "/tensorflow.serving.rs"));
    }
}

/// The encoded descriptors server reflection serves, and the decode cost's schema ([`crate::wire_cost`]).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inference_descriptor.bin"));
