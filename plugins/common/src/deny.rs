//! Denials that suit the client: HTTP clients get a status and a short text body; gRPC clients
//! (`content-type: application/grpc*`) get a gRPC status they can act on instead of an HTML page they cannot parse.

/// gRPC status codes the plugins answer with (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum GrpcStatus {
    InvalidArgument = 3,
    NotFound = 5,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unavailable = 14,
    Unauthenticated = 16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Http,
    Grpc,
}

impl ClientKind {
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        match content_type {
            Some(ct) if ct.trim_start().get(..16).is_some_and(|p| p.eq_ignore_ascii_case("application/grpc")) => {
                Self::Grpc
            }
            _ => Self::Http,
        }
    }
}

/// What a policy decided to refuse with, before knowing how the client wants to hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub http_status: u32,
    pub grpc_status: GrpcStatus,
    pub message: String,
    /// Extra response headers, e.g. `www-authenticate`.
    pub headers: Vec<(String, String)>,
}

/// A local reply as the proxy sends it (`proxy_send_local_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    /// For gRPC replies Envoy turns this into `grpc-message`.
    pub body: String,
    pub grpc_status: Option<u32>,
}

impl Denial {
    pub fn new(http_status: u32, grpc_status: GrpcStatus, message: impl Into<String>) -> Self {
        Self { http_status, grpc_status, message: message.into(), headers: Vec::new() }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn render(self, client: ClientKind) -> LocalResponse {
        match client {
            ClientKind::Http => {
                let mut headers = self.headers;
                headers.push(("content-type".into(), "text/plain; charset=utf-8".into()));
                LocalResponse { status: self.http_status, headers, body: self.message, grpc_status: None }
            }
            // Envoy answers a gRPC request's local reply as trailers-only with `:status 200`, the given
            // `grpc-status` and the body as `grpc-message`.
            ClientKind::Grpc => LocalResponse {
                status: self.http_status,
                headers: self.headers,
                body: self.message,
                grpc_status: Some(self.grpc_status as u32),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        for ct in ["application/grpc", "application/grpc+proto", "Application/GRPC-web", " application/grpc"] {
            assert_eq!(ClientKind::from_content_type(Some(ct)), ClientKind::Grpc, "{ct}");
        }
        for ct in [None, Some("application/json"), Some("application/grp"), Some("")] {
            assert_eq!(ClientKind::from_content_type(ct), ClientKind::Http, "{ct:?}");
        }
    }

    #[test]
    fn renders_per_client() {
        let denial = Denial::new(401, GrpcStatus::Unauthenticated, "no").with_header("www-authenticate", "Basic");
        let http = denial.clone().render(ClientKind::Http);
        assert_eq!((http.status, http.grpc_status), (401, None));
        assert!(http.headers.iter().any(|(k, _)| k == "www-authenticate"));
        let grpc = denial.render(ClientKind::Grpc);
        assert_eq!(grpc.grpc_status, Some(16));
        assert_eq!(grpc.body, "no");
    }
}
