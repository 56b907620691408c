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

/// The form bodies a cross-site page can make a browser send, each with the signed-in user's credentials.
pub fn cross_site_forms() -> Vec<(&'static str, Option<&'static str>)> {
    vec![
        ("text/plain", Some("text/plain")),
        ("urlencoded", Some("application/x-www-form-urlencoded")),
        ("multipart", Some("multipart/form-data; boundary=wasmgate")),
        ("no content type", None),
    ]
}

/// `127.0.0.<last>`: a client address of its own on loopback.
pub fn loopback(last: u8) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, last])
}
