//! What the e2e scenarios share: the hosts the committed CRs guard, the credentials whose bcrypt hash they hold,
//! and the model's gRPC paths.

pub use crate::stack::{CANARY_HOST, HOST, PASSWORD, USER};

pub const INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
pub const METADATA: &str = "/inference.GRPCInferenceService/ModelMetadata";

/// `authorization` with the committed credentials.
pub fn authorization() -> String {
    crate::http1::basic_authorization(USER, PASSWORD)
}
