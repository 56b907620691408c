//! The decision for one request, with no host calls: the first host entry that matches, then its first
//! matching rule, else the host's default, else the global default.

use crate::config::{Answer, Config, HeaderCondition, PathCondition, Rewrite, Rule};
use wasmgate_common::{Denial, GrpcStatus, HeaderMapView, RequestLine};

/// Request headers by (lower-case) name.
pub trait Headers {
    fn header(&self, name: &str) -> Option<&[u8]>;
}

impl Headers for HeaderMapView<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }
}

impl Headers for Vec<(String, Vec<u8>)> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
}

/// A request as the policy needs it: the raw request line and its headers.
pub struct Request<'a> {
    line: RequestLine<'a>,
    authority: &'a str,
    /// `:path` with its query string.
    raw_path: &'a str,
    scheme: &'a str,
    headers: &'a dyn Headers,
}

impl<'a> Request<'a> {
    pub fn new(
        authority: &'a str,
        raw_path: &'a str,
        method: &'a str,
        scheme: &'a str,
        headers: &'a dyn Headers,
    ) -> Self {
        Self { line: RequestLine::new(authority, raw_path, method), authority, raw_path, scheme, headers }
    }
}

/// An answer instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Redirect { status: u32, location: String },
    Direct { status: u32, body: String, content_type: String },
    Deny(Denial),
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'c> {
    pub rule: &'c str,
    pub counter: usize,
    pub set_headers: &'c [(String, String)],
    pub append_headers: &'c [(String, String)],
    pub remove_headers: &'c [String],
    /// The new `:path` (query kept), if it changes.
    pub path: Option<String>,
    /// The new `:authority`, if it changes.
    pub authority: Option<&'c str>,
    pub response: Option<Response>,
}

impl Decision<'_> {
    /// Whether the request headers change, so Envoy must pick the route again.
    pub fn changes_route_inputs(&self) -> bool {
        !self.set_headers.is_empty()
            || !self.append_headers.is_empty()
            || !self.remove_headers.is_empty()
            || self.path.is_some()
            || self.authority.is_some()
    }
}

impl Rule {
    fn matches(&self, req: &Request<'_>) -> bool {
        let c = &self.conditions;
        let path_ok = match &c.path {
            None => true,
            Some(PathCondition::Match(m)) => m.matches(req.line.path),
            Some(PathCondition::Regex(r)) => r.is_match(req.line.path),
        };
        path_ok
            && (c.methods.is_empty() || c.methods.iter().any(|m| m == req.line.method))
            && c.headers.iter().all(|(name, cond)| match cond {
                HeaderCondition::Present(want) => req.headers.header(name).is_some() == *want,
                HeaderCondition::Exact(value) => req.headers.header(name) == Some(value.as_bytes()),
            })
    }

    fn decide(&self, req: &Request<'_>) -> Decision<'_> {
        let query = &req.raw_path[req.line.path.len()..];
        let path = self.rewrite.as_ref().and_then(|rewrite| {
            let rewritten = match rewrite {
                Rewrite::Prefix { from, to } => {
                    req.line.path.strip_prefix(from.as_str()).map(|rest| format!("{to}{rest}"))
                }
                Rewrite::Regex { pattern, substitution } => {
                    Some(pattern.replace_all(req.line.path, substitution.as_str()).into_owned())
                }
            }?;
            Some(format!("{rewritten}{query}"))
        });
        let response = self.answer.as_ref().map(|answer| match answer {
            Answer::Redirect(r) => {
                let scheme = if r.https { "https" } else { req.scheme };
                let host = r.host.as_deref().unwrap_or(req.authority);
                let target = r.path.as_deref().unwrap_or(req.line.path);
                Response::Redirect { status: r.status, location: format!("{scheme}://{host}{target}{query}") }
            }
            Answer::Direct { status, body, content_type } => {
                Response::Direct { status: *status, body: body.clone(), content_type: content_type.clone() }
            }
            Answer::Deny { status, message } => {
                let grpc = if *status == 401 { GrpcStatus::Unauthenticated } else { GrpcStatus::PermissionDenied };
                Response::Deny(Denial::new(*status, grpc, message.clone()))
            }
        });
        Decision {
            rule: &self.name,
            counter: self.counter,
            set_headers: &self.set_headers,
            append_headers: &self.append_headers,
            remove_headers: &self.remove_headers,
            path,
            authority: self.host.as_deref(),
            response,
        }
    }
}

impl Config {
    /// The decision for `req`, or `None` when no rule and no default applies.
    pub fn decide(&self, req: &Request<'_>) -> Option<Decision<'_>> {
        let host = self.hosts.iter().find(|h| h.pattern.matches(&req.line.host));
        let rule = host
            .and_then(|h| h.rules.iter().find(|r| r.matches(req)).or(h.default.as_ref()))
            .or(self.default.as_ref())?;
        Some(rule.decide(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
      "hosts": [
        {"host": "canary.ml.example.com", "default": {"name": "canary", "set_headers": {"x-wasmgate-route": "canary"}}},
        {"host": "ml.example.com", "rules": [
          {"name": "old-api", "match": {"prefix": "/v1/"}, "rewrite": {"prefix": {"from": "/v1/", "to": "/v2/"}}},
          {"name": "infer-b", "match": {"exact": "/inference.GRPCInferenceService/ModelInfer", "headers": [{"name": "x-model", "exact": "b"}]},
           "set_headers": {"x-wasmgate-route": "canary"}, "append_headers": {"x-via": "gw"}, "remove_headers": ["x-model"]},
          {"name": "http-to-https", "match": {"prefix": "/login"}, "redirect": {"status": 308, "https": true}},
          {"name": "health", "match": {"exact": "/healthz", "methods": ["GET"]}, "direct_response": {"status": 200, "body": "ok"}},
          {"name": "no-admin", "match": {"regex": "^/admin(/|$)"}, "deny": {}},
          {"name": "ids", "match": {"regex": "^/items/[0-9]+$"}, "rewrite": {"regex": {"pattern": "^/items/([0-9]+)$", "substitution": "/v2/items?id=$1"}}}
        ]},
        {"host": "*.internal", "rules": [{"name": "debug-only", "match": {"headers": [{"name": "x-debug"}]}, "host": "debug.internal"}]}
      ],
      "default": {"name": "stable", "set_headers": {"x-wasmgate-route": "stable"}}
    }"#;

    fn config() -> Config {
        Config::from_json(CONFIG.as_bytes()).unwrap()
    }

    fn decide<'c>(
        c: &'c Config,
        host: &str,
        path: &str,
        method: &str,
        headers: &[(&str, &str)],
    ) -> Option<Decision<'c>> {
        let owned: Vec<(String, Vec<u8>)> =
            headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        // The decision borrows only the config, so it outlives the request.
        c.decide(&Request::new(host, path, method, "http", &owned))
    }

    #[test]
    fn hosts_then_rules_then_defaults() {
        let c = config();
        assert_eq!(decide(&c, "canary.ml.example.com:443", "/x", "GET", &[]).unwrap().rule, "canary");
        assert_eq!(decide(&c, "ML.example.com", "/v1/models", "GET", &[]).unwrap().rule, "old-api");
        assert_eq!(
            decide(&c, "ml.example.com", "/other", "GET", &[]).unwrap().rule,
            "stable",
            "no rule, no host default"
        );
        assert_eq!(decide(&c, "elsewhere.example.com", "/", "GET", &[]).unwrap().rule, "stable");
        let none =
            Config::from_json(br#"{"hosts":[{"host":"a","rules":[{"match":{"prefix":"/a"},"deny":{}}]}]}"#).unwrap();
        assert!(decide(&none, "a", "/b", "GET", &[]).is_none());
        assert!(decide(&none, "b", "/a", "GET", &[]).is_none());
    }

    #[test]
    fn header_actions_and_conditions() {
        let c = config();
        let infer = "/inference.GRPCInferenceService/ModelInfer";
        let d = decide(&c, "ml.example.com", infer, "POST", &[("x-model", "b")]).unwrap();
        assert_eq!(d.rule, "infer-b");
        assert_eq!(d.set_headers, &[("x-wasmgate-route".to_string(), "canary".to_string())]);
        assert_eq!(d.append_headers.len(), 1);
        assert_eq!(d.remove_headers, &["x-model".to_string()]);
        assert!(d.changes_route_inputs());
        assert_eq!(decide(&c, "ml.example.com", infer, "POST", &[("x-model", "a")]).unwrap().rule, "stable");
        assert_eq!(
            decide(&c, "db.internal", "/", "GET", &[("x-debug", "")]).unwrap().authority,
            Some("debug.internal")
        );
        assert!(decide(&c, "db.internal", "/", "GET", &[]).unwrap().rule == "stable");
    }

    #[test]
    fn rewrites_keep_the_query() {
        let c = config();
        assert_eq!(
            decide(&c, "ml.example.com", "/v1/models?x=1", "GET", &[]).unwrap().path.as_deref(),
            Some("/v2/models?x=1")
        );
        assert_eq!(
            decide(&c, "ml.example.com", "/items/42", "GET", &[]).unwrap().path.as_deref(),
            Some("/v2/items?id=42")
        );
    }

    #[test]
    fn answers() {
        let c = config();
        let redirect = decide(&c, "ml.example.com:8080", "/login?next=/a", "GET", &[]).unwrap().response;
        assert_eq!(
            redirect,
            Some(Response::Redirect { status: 308, location: "https://ml.example.com:8080/login?next=/a".into() })
        );
        let direct = decide(&c, "ml.example.com", "/healthz", "GET", &[]).unwrap().response;
        assert!(matches!(direct, Some(Response::Direct { status: 200, ref body, .. }) if body == "ok"));
        assert_eq!(decide(&c, "ml.example.com", "/healthz", "POST", &[]).unwrap().rule, "stable");
        let Some(Response::Deny(denial)) = decide(&c, "ml.example.com", "/admin/users", "GET", &[]).unwrap().response
        else {
            panic!("not denied");
        };
        assert_eq!((denial.http_status, denial.grpc_status), (403, GrpcStatus::PermissionDenied));
        assert_eq!(decide(&c, "ml.example.com", "/administrator", "GET", &[]).unwrap().rule, "stable");
    }

    #[test]
    fn counters_are_per_rule() {
        let c = config();
        let names = c.counter_names();
        assert!(names.contains(&"rules.infer-b".to_string()) && names.contains(&"rules.stable".to_string()));
        let d = decide(&c, "ml.example.com", "/healthz", "GET", &[]).unwrap();
        assert_eq!(names[d.counter], "rules.health");
    }

    #[test]
    fn refusals() {
        let cases = [
            (r#"{}"#, "would do nothing"),
            (
                r#"{"hosts":[{"host":"a","rules":[{"match":{"regex":"("},"deny":{}}]}]}"#,
                "hosts[0].rules[0].match.regex",
            ),
            (r#"{"default":{"teleport":{}}}"#, "unknown field `teleport`"),
            (r#"{"hosts":[{"host":"a","default":{"deny":{}}},{"host":"A","default":{"deny":{}}}]}"#, "listed twice"),
            (r#"{"default":{"redirect":{"status":301}}}"#, "needs a target"),
            (r#"{"default":{"redirect":{"status":200,"https":true}}}"#, "not a redirect"),
            (r#"{"default":{"set_headers":{":authority":"x"}}}"#, "pseudo-header"),
            (r#"{"default":{"set_headers":{"connection":"close"}}}"#, "may not be changed"),
            (r#"{"default":{"remove_headers":["transfer-encoding"]}}"#, "remove_headers[0]"),
            (r#"{"default":{"set_headers":{"X-Upper":"v"}}}"#, "lower-case"),
            (r#"{"default":{"set_headers":{"x":"a\nb"}}}"#, "control characters"),
            (r#"{"default":{}}"#, "needs an action"),
            (r#"{"default":{"deny":{},"set_headers":{"x":"y"}}}"#, "cannot also change"),
            (r#"{"default":{"deny":{},"direct_response":{"status":200}}}"#, "at most one"),
            (r#"{"hosts":[{"host":"a","rules":[{"name":"x","deny":{}},{"name":"x","deny":{}}]}]}"#, "used twice"),
            (r#"{"default":{"host":"*.x"}}"#, "not a host name"),
            (r#"{"default":{"rewrite":{"prefix":{"from":"a","to":"/b"}}}}"#, "must start with"),
            (r#"{"default":{"direct_response":{"status":99}}}"#, "200 to 599"),
        ];
        for (json, want) in cases {
            let err = Config::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
