//! Which limits apply to a request (first matching rule, else the default) and the meter that enforces them as
//! headers and body chunks go by. No host calls: the shell hands in sizes and a way to read prefix bytes.

use crate::config::{Config, Limits, PathSelector, Rule};
use crate::frames::{FrameCounter, FrameError};
use wasmgate_common::{ByteSize, ClientKind, Denial, GrpcStatus, RequestLine, Unreadable};

/// A limit that was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// `content-length` already above the request limit: refused before any body moves.
    ContentLength {
        declared: u64,
        limit: u64,
    },
    RequestBytes {
        limit: u64,
    },
    MessageBytes {
        size: u64,
        limit: u64,
    },
    ResponseBytes {
        limit: u64,
    },
    /// The host or path can be read more than one way, and the readings get different limits.
    Unreadable(Unreadable),
    /// A gRPC rule's path with a content type that is not gRPC's: what a browser can send cross-site without a
    /// preflight (a form, `text/plain`, none at all), carrying a signed-in user's cached credentials. The server
    /// would decode its body as gRPC all the same.
    NotGrpc,
}

wasmgate_common::counters! {
    pub enum Counter {
        Accepted = "accepted",
        RefusedContentLength = "refused.content_length",
        RefusedRequestBytes = "refused.request_bytes",
        RefusedMessageBytes = "refused.message_bytes",
        RefusedResponseBytes = "refused.response_bytes",
        /// Request body bytes seen, accepted or not.
        RequestBytes = "request_bytes",
        /// gRPC messages whose prefix was read.
        Messages = "messages",
        /// Request bodies that ended inside a gRPC message.
        Truncated = "truncated",
        RefusedBadRequest = "refused.bad_request",
        RefusedContentType = "refused.content_type",
    }
}

impl Violation {
    pub fn counter(self) -> Counter {
        match self {
            Self::ContentLength { .. } => Counter::RefusedContentLength,
            Self::RequestBytes { .. } => Counter::RefusedRequestBytes,
            Self::MessageBytes { .. } => Counter::RefusedMessageBytes,
            Self::ResponseBytes { .. } => Counter::RefusedResponseBytes,
            Self::Unreadable(_) => Counter::RefusedBadRequest,
            Self::NotGrpc => Counter::RefusedContentType,
        }
    }

    /// The answer, naming the limit and the rule that set it.
    pub fn denial(self, rule: &str) -> Denial {
        let (status, message) = match self {
            Self::ContentLength { declared, limit } => (
                413,
                format!("request body of {declared} bytes is over the limit of {} (rule {rule})", ByteSize(limit)),
            ),
            Self::RequestBytes { limit } => {
                (413, format!("request body is over the limit of {} (rule {rule})", ByteSize(limit)))
            }
            // The wording gRPC libraries use for the same refusal, so clients and dashboards recognise it.
            Self::MessageBytes { size, limit } => {
                (413, format!("received message larger than max ({size} vs. {limit}) (rule {rule})"))
            }
            Self::ResponseBytes { limit } => {
                (502, format!("response body is over the limit of {} (rule {rule})", ByteSize(limit)))
            }
            Self::Unreadable(why) => return why.denial(),
            Self::NotGrpc => {
                let message = format!("a gRPC method takes application/grpc or gRPC-Web content only (rule {rule})");
                return Denial::new(415, GrpcStatus::InvalidArgument, message);
            }
        };
        Denial::new(status, GrpcStatus::ResourceExhausted, message)
    }
}

/// The limits chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected<'c> {
    pub rule: &'c str,
    pub limits: Limits,
    /// Count gRPC messages whatever the content type: the rule names a gRPC method or service.
    pub grpc_rule: bool,
}

impl Selected<'_> {
    /// Whether a request from `client` may go on under this rule: a gRPC rule takes gRPC and gRPC-Web only.
    pub fn admit(&self, client: ClientKind) -> Result<(), Violation> {
        if self.grpc_rule && !client.is_grpc_family() { Err(Violation::NotGrpc) } else { Ok(()) }
    }
}

impl Rule {
    fn matches(&self, req: &RequestLine<'_>) -> bool {
        let path_ok = match &self.path {
            PathSelector::Any => true,
            PathSelector::Prefix(p) => req.path.starts_with(p.as_str()),
            PathSelector::Exact(e) => req.path == e,
        };
        path_ok && (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method)) && req.host_in(&self.hosts)
    }
}

impl Config {
    fn first_match(&self, req: &RequestLine<'_>) -> Option<usize> {
        self.rules.iter().position(|r| r.matches(req))
    }

    /// The first matching rule's limits, else the default; `Ok(None)` when nothing limits this request. A
    /// request whose host (where rules name hosts) or path reads more than one way, with different limits, is
    /// refused.
    pub fn select(&self, req: &RequestLine<'_>) -> Result<Option<Selected<'_>>, Violation> {
        req.check_unambiguous(self.host_scoped, |a, b| self.first_match(a) == self.first_match(b))
            .map_err(Violation::Unreadable)?;
        let selected = match self.first_match(req).and_then(|i| self.rules.get(i)) {
            Some(rule) => Selected { rule: &rule.name, limits: rule.limits, grpc_rule: rule.is_grpc() },
            None => Selected { rule: "default", limits: self.default, grpc_rule: false },
        };
        Ok((!selected.limits.is_unlimited()).then_some(selected))
    }
}

/// Why metering stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop<E> {
    Limit(Violation),
    /// The host could not give the bytes of a gRPC prefix.
    Host(E),
}

/// How a request body carries its messages, which decides how the message limit is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Not gRPC: only the byte limits apply.
    Opaque,
    /// gRPC's (and binary gRPC-Web's) length-prefixed messages: each prefix is read and checked.
    Frames,
    /// `application/grpc-web-text`: the same frames in base64. gRPC-Web has no client streaming, so the body is
    /// one message and its decoded size (at most 3/4 of the bytes on the wire) bounds that message: the limit is
    /// checked against it without decoding, and may refuse a message within 2 bytes of the limit.
    Base64Frames,
}

impl Framing {
    /// How to read a request's body: as the client says it is framed, and as gRPC frames under a gRPC rule whatever
    /// the client says (the server decodes them anyway).
    pub fn of(client: ClientKind, grpc_rule: bool) -> Self {
        match client {
            ClientKind::GrpcWeb { text: true } => Self::Base64Frames,
            _ if client.is_grpc_family() || grpc_rule => Self::Frames,
            _ => Self::Opaque,
        }
    }
}

/// gRPC's message prefix: a flag byte and a 4-byte length.
const PREFIX_BYTES: u64 = 5;

/// Enforces one request's limits as it streams.
#[derive(Debug, Clone)]
pub struct Meter {
    limits: Limits,
    request_bytes: u64,
    response_bytes: u64,
    /// Present for gRPC requests with a message limit.
    frames: Option<FrameCounter>,
    /// The message limit a base64 body's decoded size is held to (gRPC-Web text).
    base64_message_limit: Option<u64>,
}

/// `content-length` as a number, if present and well-formed (Envoy has already refused malformed ones).
pub fn content_length(value: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(value?).ok()?.trim().parse().ok()
}

impl Meter {
    pub fn new(limits: Limits, framing: Framing) -> Self {
        let frames = (framing == Framing::Frames && limits.message.is_some()).then(FrameCounter::default);
        let base64_message_limit = limits.message.filter(|_| framing == Framing::Base64Frames);
        Self { limits, request_bytes: 0, response_bytes: 0, frames, base64_message_limit }
    }

    pub fn check_request_headers(&self, content_length: Option<u64>) -> Result<(), Violation> {
        match (content_length, self.limits.request) {
            (Some(declared), Some(limit)) if declared > limit => Err(Violation::ContentLength { declared, limit }),
            _ => content_length.map_or(Ok(()), |declared| self.check_base64_message(declared)),
        }
    }

    /// The one message a gRPC-Web text body of `wire_bytes` can hold, against the message limit.
    fn check_base64_message(&self, wire_bytes: u64) -> Result<(), Violation> {
        let Some(limit) = self.base64_message_limit else { return Ok(()) };
        let size = (wire_bytes / 4 * 3 + (wire_bytes % 4).saturating_sub(1)).saturating_sub(PREFIX_BYTES);
        if size > limit { Err(Violation::MessageBytes { size, limit }) } else { Ok(()) }
    }

    /// Accounts for a request body chunk of `len` bytes; `read(offset, len)` gives bytes of that chunk.
    pub fn on_request_chunk<E>(
        &mut self,
        len: usize,
        read: impl FnMut(usize, usize) -> Result<Vec<u8>, E>,
    ) -> Result<(), Stop<E>> {
        self.request_bytes = self.request_bytes.saturating_add(len as u64);
        if let Some(limit) = self.limits.request.filter(|limit| self.request_bytes > *limit) {
            return Err(Stop::Limit(Violation::RequestBytes { limit }));
        }
        self.check_base64_message(self.request_bytes).map_err(Stop::Limit)?;
        if let Some(frames) = &mut self.frames {
            frames.advance(len, self.limits.message, read).map_err(|e| match e {
                FrameError::Oversized(o) => Stop::Limit(Violation::MessageBytes { size: o.size, limit: o.limit }),
                FrameError::Read(e) => Stop::Host(e),
            })?;
        }
        Ok(())
    }

    pub fn check_response_headers(&self, content_length: Option<u64>) -> Result<(), Violation> {
        match (content_length, self.limits.response) {
            (Some(declared), Some(limit)) if declared > limit => Err(Violation::ResponseBytes { limit }),
            _ => Ok(()),
        }
    }

    pub fn on_response_chunk(&mut self, len: usize) -> Result<(), Violation> {
        self.response_bytes = self.response_bytes.saturating_add(len as u64);
        match self.limits.response {
            Some(limit) if self.response_bytes > limit => Err(Violation::ResponseBytes { limit }),
            _ => Ok(()),
        }
    }

    pub fn request_bytes(&self) -> u64 {
        self.request_bytes
    }

    pub fn messages(&self) -> u64 {
        self.frames.as_ref().map_or(0, FrameCounter::messages)
    }

    /// Whether the request body ended inside a gRPC message (truncated or lying prefix).
    pub fn ended_mid_message(&self) -> bool {
        self.frames.as_ref().is_some_and(FrameCounter::is_mid_message)
    }

    pub fn limits_response(&self) -> bool {
        self.limits.response.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::encode;
    use std::convert::Infallible;

    const CONFIG: &str = r#"{"default":{"max_request_bytes":"4Mi","max_message_bytes":"4Mi"},
        "rules":[{"name":"infer","hosts":["ml.example.com"],"grpc_method":"inference.GRPCInferenceService/ModelInfer",
                  "max_request_bytes":"130Mi","max_message_bytes":"128Mi","max_response_bytes":"1Mi"},
                 {"name":"internal","hosts":["*.internal"],"max_request_bytes":"1Gi"}]}"#;

    fn select<'c>(c: &'c Config, host: &str, path: &str) -> Option<Selected<'c>> {
        c.select(&RequestLine::new(host, path, "POST")).unwrap()
    }

    #[test]
    fn first_match_then_default() {
        let c = Config::from_json(CONFIG.as_bytes()).unwrap();
        let infer = "/inference.GRPCInferenceService/ModelInfer";
        assert_eq!(select(&c, "ml.example.com:443", infer).unwrap().rule, "infer");
        assert_eq!(select(&c, "ML.example.com", &format!("{infer}?x")).unwrap().rule, "infer");
        assert_eq!(select(&c, "other.example.com", infer).unwrap().rule, "default");
        assert_eq!(
            select(&c, "ml.example.com", "/inference.GRPCInferenceService/ModelMetadata").unwrap().rule,
            "default"
        );
        assert_eq!(select(&c, "db.internal", "/").unwrap().rule, "internal");
        let no_default = Config::from_json(br#"{"rules":[{"hosts":["a"],"max_request_bytes":1}]}"#).unwrap();
        assert!(select(&no_default, "b", "/").is_none());
    }

    #[test]
    fn a_grpc_rule_takes_grpc_and_grpc_web_only() {
        let c = Config::from_json(CONFIG.as_bytes()).unwrap();
        let infer = select(&c, "ml.example.com", "/inference.GRPCInferenceService/ModelInfer").unwrap();
        for client in [ClientKind::Grpc, ClientKind::GrpcWeb { text: false }, ClientKind::GrpcWeb { text: true }] {
            assert_eq!(infer.admit(client), Ok(()), "{client:?}");
        }
        assert_eq!(infer.admit(ClientKind::Http), Err(Violation::NotGrpc));
        let denial = Violation::NotGrpc.denial("infer");
        assert_eq!((denial.http_status, denial.grpc_status), (415, GrpcStatus::InvalidArgument));
        // Elsewhere any content type goes on.
        assert_eq!(select(&c, "db.internal", "/").unwrap().admit(ClientKind::Http), Ok(()));
    }

    fn meter(c: &Config, host: &str, path: &str, grpc: bool) -> Meter {
        Meter::new(select(c, host, path).unwrap().limits, if grpc { Framing::Frames } else { Framing::Opaque })
    }

    fn stream(m: &mut Meter, body: &[u8], chunk: usize) -> Result<(), Stop<Infallible>> {
        for piece in body.chunks(chunk.max(1)) {
            m.on_request_chunk(piece.len(), |off, len| Ok(piece[off..off + len].to_vec()))?;
        }
        Ok(())
    }

    #[test]
    fn content_length_is_refused_at_the_headers() {
        let c = Config::from_json(CONFIG.as_bytes()).unwrap();
        let m = meter(&c, "x", "/", false);
        assert_eq!(m.check_request_headers(Some(4 << 20)), Ok(()));
        assert_eq!(
            m.check_request_headers(Some((4 << 20) + 1)),
            Err(Violation::ContentLength { declared: (4 << 20) + 1, limit: 4 << 20 })
        );
        assert_eq!(content_length(Some(b" 12 ")), Some(12));
        assert_eq!(content_length(Some(b"x")), None);
    }

    #[test]
    fn streaming_request_bytes() {
        let c = Config::from_json(br#"{"default":{"max_request_bytes":100}}"#).unwrap();
        let mut m = meter(&c, "x", "/", false);
        assert_eq!(stream(&mut m, &[0u8; 100], 7), Ok(()));
        assert_eq!(stream(&mut m, &[0u8; 1], 1), Err(Stop::Limit(Violation::RequestBytes { limit: 100 })));
    }

    #[test]
    fn grpc_messages_are_limited_by_their_prefix() {
        let c = Config::from_json(br#"{"default":{"max_request_bytes":"1Mi","max_message_bytes":1000}}"#).unwrap();
        let ok = encode(&[&[1u8; 1000], &[2u8; 10]]);
        let mut m = meter(&c, "x", "/", true);
        assert_eq!(stream(&mut m, &ok, 3), Ok(()));
        assert_eq!((m.messages(), m.ended_mid_message()), (2, false));
        let big = encode(&[&[1u8; 1001]]);
        let mut m = meter(&c, "x", "/", true);
        assert_eq!(stream(&mut m, &big, 64), Err(Stop::Limit(Violation::MessageBytes { size: 1001, limit: 1000 })));
        let mut plain = meter(&c, "x", "/", false);
        assert_eq!(stream(&mut plain, &big, 64), Ok(()), "non-gRPC bodies have no messages");
    }

    #[test]
    fn framing_follows_the_client_and_the_rule() {
        let text = ClientKind::GrpcWeb { text: true };
        let binary = ClientKind::GrpcWeb { text: false };
        assert_eq!(Framing::of(text, false), Framing::Base64Frames);
        assert_eq!(Framing::of(text, true), Framing::Base64Frames);
        assert_eq!(Framing::of(binary, false), Framing::Frames);
        assert_eq!(Framing::of(ClientKind::Grpc, false), Framing::Frames);
        assert_eq!(Framing::of(ClientKind::Http, true), Framing::Frames);
        assert_eq!(Framing::of(ClientKind::Http, false), Framing::Opaque);
    }

    #[test]
    fn grpc_web_text_is_limited_by_its_decoded_size() {
        use base64::Engine;
        let c = Config::from_json(br#"{"default":{"max_request_bytes":"1Mi","max_message_bytes":1000}}"#).unwrap();
        let limits = select(&c, "x", "/").unwrap().limits;
        let text = |size: usize| base64::engine::general_purpose::STANDARD.encode(encode(&[&vec![7u8; size]]));
        for size in [0, 1, 998, 1000] {
            let body = text(size);
            let mut m = Meter::new(limits, Framing::Base64Frames);
            assert_eq!(m.check_request_headers(Some(body.len() as u64)), Ok(()), "{size}");
            assert_eq!(stream(&mut m, body.as_bytes(), 7), Ok(()), "{size}");
        }
        let body = text(1003);
        let mut m = Meter::new(limits, Framing::Base64Frames);
        let refused = Err(Violation::MessageBytes { size: 1003, limit: 1000 });
        assert_eq!(m.check_request_headers(Some(body.len() as u64)), refused);
        assert_eq!(stream(&mut m, body.as_bytes(), 7), refused.map_err(Stop::Limit));
    }

    #[test]
    fn responses() {
        let c = Config::from_json(CONFIG.as_bytes()).unwrap();
        let mut m = meter(&c, "ml.example.com", "/inference.GRPCInferenceService/ModelInfer", true);
        assert!(m.limits_response());
        assert_eq!(m.check_response_headers(Some(2 << 20)), Err(Violation::ResponseBytes { limit: 1 << 20 }));
        assert_eq!(m.on_response_chunk(1 << 20), Ok(()));
        assert_eq!(m.on_response_chunk(1), Err(Violation::ResponseBytes { limit: 1 << 20 }));
    }

    #[test]
    fn denials_name_the_limit() {
        let d = Violation::MessageBytes { size: 136314880, limit: 134217728 }.denial("infer");
        assert_eq!((d.http_status, d.grpc_status), (413, GrpcStatus::ResourceExhausted));
        assert_eq!(d.message, "received message larger than max (136314880 vs. 134217728) (rule infer)");
        assert!(Violation::RequestBytes { limit: 130 << 20 }.denial("infer").message.contains("130Mi"));
    }

    #[test]
    fn grpc_rules_apply_to_every_method_and_say_so() {
        let c = Config::from_json(CONFIG.as_bytes()).unwrap();
        let infer = "/inference.GRPCInferenceService/ModelInfer";
        for method in ["POST", "post", "OPTIONS", "GET", "FOO"] {
            let selected = c.select(&RequestLine::new("ml.example.com", infer, method)).unwrap().unwrap();
            assert_eq!((selected.rule, selected.grpc_rule), ("infer", true), "{method}");
        }
        assert!(!select(&c, "db.internal", "/").unwrap().grpc_rule);
    }

    #[test]
    fn unreadable_hosts_and_ambiguous_paths_are_refused() {
        let c = Config::from_json(CONFIG.as_bytes()).unwrap();
        for host in ["a:b.ml.example.com:443", "ml.example.com,x", "[x]ml.example.com"] {
            let refused = c.select(&RequestLine::new(host, "/", "POST")).unwrap_err();
            assert!(matches!(refused, Violation::Unreadable(Unreadable::Host(_))), "{host}");
            assert_eq!(refused.denial("-").http_status, 400);
        }
        let refused =
            c.select(&RequestLine::new("ml.example.com", "/inference.GRPCInferenceService%2FModelInfer", "POST"));
        assert_eq!(refused.unwrap_err(), Violation::Unreadable(Unreadable::AmbiguousPath));
        // Both readings under the default: no difference, no refusal.
        assert_eq!(select(&c, "ml.example.com", "//other/x").unwrap().rule, "default");
    }
}
