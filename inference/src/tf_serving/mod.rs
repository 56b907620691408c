//! TensorFlow Serving's gRPC API: `PredictionService` (Predict, Classify) and `ModelService`, and their tensors.

#[cfg(feature = "app")]
pub mod service;
pub mod tensor;
