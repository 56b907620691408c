//! Denials that suit the client: HTTP clients get a status and a short text body; gRPC clients
//! (`content-type: application/grpc*`) get a gRPC status they can act on instead of an HTML page they cannot parse;
//! gRPC-Web clients (browsers, `application/grpc-web*`) get it in the form their libraries read.

/// gRPC status codes the plugins answer with (<https://grpc.github.io/grpc/core/md_doc_statuscodes.html>).
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
    /// `application/grpc-web[+proto]` (binary frames, like gRPC's) or, with `text`, `application/grpc-web-text`
    /// (the same frames in base64).
    GrpcWeb {
        text: bool,
    },
}

/// The content types gRPC-Web servers (tonic-web, Envoy's `grpc_web` filter) decode as base64: exactly these, in
/// this letter case. Any other spelling (`+json`, `; charset=`, capitals) reaches the server's binary reader.
const GRPC_WEB_TEXT: [&str; 2] = ["application/grpc-web-text", "application/grpc-web-text+proto"];

impl ClientKind {
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let Some(ct) = content_type.map(str::trim_start) else { return Self::Http };
        let starts = |prefix: &str| ct.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix));
        if GRPC_WEB_TEXT.contains(&ct) {
            Self::GrpcWeb { text: true }
        } else if starts("application/grpc-web") {
            Self::GrpcWeb { text: false }
        } else if starts("application/grpc") {
            Self::Grpc
        } else {
            Self::Http
        }
    }

    /// A request's kind from all its `content-type` values, the way the server will read its body. The most
    /// gRPC of them counts: the server may take any one for gRPC. Base64 only when every value says base64: a
    /// server that reads the first value as binary would otherwise get a message a third larger than the one
    /// measured; read as frames, base64 gives prefixes far above any limit, never a way past it.
    pub fn from_content_types<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut kind = None;
        for value in values {
            let this = Self::from_content_type(std::str::from_utf8(value).ok());
            kind = Some(match (kind, this) {
                (None, this) => this,
                (Some(text @ Self::GrpcWeb { text: true }), Self::GrpcWeb { text: true }) => text,
                (Some(Self::Grpc), _) | (_, Self::Grpc) => Self::Grpc,
                (Some(Self::Http), Self::Http) => Self::Http,
                _ => Self::GrpcWeb { text: false },
            });
        }
        kind.unwrap_or(Self::Http)
    }

    /// A request's kind from its headers: what every shell answers a refusal by, so all plugins agree.
    pub fn of(headers: &crate::HeaderMapView<'_>) -> Self {
        Self::from_content_types(headers.values("content-type"))
    }

    /// Whether the body is gRPC's length-prefixed messages (gRPC, or gRPC-Web in either form).
    pub fn is_grpc_family(self) -> bool {
        self != Self::Http
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
            // Envoy does not take gRPC-Web for gRPC, so the plugin writes gRPC-Web's trailers-only answer itself:
            // HTTP 200 with `grpc-status`/`grpc-message` in the headers, which gRPC-Web libraries read as the call's
            // status first. (No `content-type`: Envoy drops it from a local reply without a body.) No
            // `www-authenticate`: a browser would pop its sign-in prompt over the page for a background call; the
            // page tells the user to sign in again instead.
            ClientKind::GrpcWeb { .. } => {
                let mut headers: Vec<(String, String)> =
                    self.headers.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("www-authenticate")).collect();
                headers.push(("grpc-status".into(), (self.grpc_status as u32).to_string()));
                headers.push(("grpc-message".into(), percent_encode(&self.message)));
                LocalResponse { status: 200, headers, body: String::new(), grpc_status: None }
            }
        }
    }
}

/// `grpc-message`'s encoding: bytes outside printable ASCII, and `%`, as `%XX` (gRPC over HTTP/2 spec).
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        for ct in ["application/grpc", "application/grpc+proto", " application/grpc"] {
            assert_eq!(ClientKind::from_content_type(Some(ct)), ClientKind::Grpc, "{ct}");
        }
        // What tonic-web and Envoy's grpc_web filter read as binary frames, the text spellings they do not
        // decode as base64 among them.
        for ct in [
            "application/grpc-web",
            "Application/GRPC-web+proto",
            "application/grpc-web+json",
            "application/GRPC-WEB-TEXT+proto",
            "application/grpc-web-text+json",
            "application/grpc-web-text; charset=utf-8",
            "application/grpc-web-textual",
        ] {
            assert_eq!(ClientKind::from_content_type(Some(ct)), ClientKind::GrpcWeb { text: false }, "{ct}");
        }
        for ct in ["application/grpc-web-text", "application/grpc-web-text+proto"] {
            assert_eq!(ClientKind::from_content_type(Some(ct)), ClientKind::GrpcWeb { text: true }, "{ct}");
        }
        for ct in [None, Some("application/json"), Some("application/grp"), Some("")] {
            assert_eq!(ClientKind::from_content_type(ct), ClientKind::Http, "{ct:?}");
        }
    }

    #[test]
    fn several_values_read_as_the_server_may_read_them() {
        let kind = |values: &[&str]| ClientKind::from_content_types(values.iter().map(|v| v.as_bytes()));
        assert_eq!(kind(&[]), ClientKind::Http);
        assert_eq!(kind(&["text/plain", "application/json"]), ClientKind::Http);
        assert_eq!(kind(&["application/grpc-web-text"]), ClientKind::GrpcWeb { text: true });
        assert_eq!(
            kind(&["application/grpc-web-text", "application/grpc-web-text+proto"]),
            ClientKind::GrpcWeb { text: true }
        );
        // Base64 only when every value says so.
        for values in [
            ["text/plain", "application/grpc-web-text"],
            ["application/grpc-web-text", "application/grpc-web"],
            ["application/grpc-web-text", "application/grpc-web-text, application/grpc-web"],
        ] {
            assert_eq!(kind(&values), ClientKind::GrpcWeb { text: false }, "{values:?}");
        }
        assert_eq!(kind(&["application/grpc-web-text", "application/grpc"]), ClientKind::Grpc);
        assert_eq!(kind(&["text/plain", "application/grpc+proto"]), ClientKind::Grpc);
    }

    #[test]
    fn renders_per_client() {
        let denial = Denial::new(401, GrpcStatus::Unauthenticated, "no").with_header("www-authenticate", "Basic");
        let http = denial.clone().render(ClientKind::Http);
        assert_eq!((http.status, http.grpc_status), (401, None));
        assert!(http.headers.iter().any(|(k, _)| k == "www-authenticate"));
        let grpc = denial.clone().render(ClientKind::Grpc);
        assert_eq!(grpc.grpc_status, Some(16));
        assert_eq!(grpc.body, "no");
        let web = denial.render(ClientKind::GrpcWeb { text: false });
        assert_eq!((web.status, web.grpc_status, web.body.as_str()), (200, None, ""));
        let header = |name: &str| web.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(header("grpc-status"), Some("16"));
        assert_eq!(header("grpc-message"), Some("no"));
        assert_eq!(header("www-authenticate"), None);
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("over 100% of 128 MiB: ü\n"), "over 100%25 of 128 MiB: %C3%BC%0A");
    }
}
