//! What the e2e scenarios share: the hosts the committed CRs guard, the credentials whose bcrypt hash they hold,
//! and the model's gRPC paths.

pub const HOST: &str = "ml.example.com";
pub const CANARY_HOST: &str = "canary.ml.example.com";
/// The credentials whose bcrypt hash the committed basic-auth CR holds.
pub const USER: &str = "username";
pub const PASSWORD: &str = "password";

pub const INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
pub const METADATA: &str = "/inference.GRPCInferenceService/ModelMetadata";

/// `authorization` with the committed credentials.
pub fn authorization() -> String {
    crate::http1::basic_authorization(USER, PASSWORD)
}
