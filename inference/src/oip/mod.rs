//! The Open Inference Protocol v2 (KServe, Triton): `GRPCInferenceService` and its tensors.

#[cfg(feature = "app")]
pub mod service;
pub mod tensor;
