//! The model server wasmgate fronts: an ndarray cat / non-cat network served over the Open Inference Protocol v2 and
//! TensorFlow Serving's gRPC API.

// The BLAS backend ndarray's matrix products link against.
extern crate blas_src;

pub mod blas;
pub mod budget;
pub mod data;
pub mod echo;
pub mod encoded;
pub mod http2_settings;
pub mod input_error;
pub mod model;
pub mod oip;
pub mod proto;
pub mod tf_serving;
pub mod wire_cost;

#[cfg(feature = "app")]
pub mod client;
#[cfg(feature = "app")]
pub mod codec;
#[cfg(feature = "app")]
pub mod plot;
#[cfg(feature = "app")]
pub mod server;
#[cfg(feature = "app")]
pub mod train;
#[cfg(feature = "app")]
pub mod web;
