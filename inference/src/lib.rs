//! The model server wasmgate fronts: an ndarray cat / non-cat network served over the Open Inference Protocol v2.

// The BLAS backend ndarray's matrix products link against.
extern crate blas_src;

pub mod blas;
pub mod client;
pub mod data;
pub mod model;
pub mod plot;
pub mod proto;
pub mod server;
pub mod service;
pub mod tensor;
pub mod train;
