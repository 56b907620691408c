//! The decision for one request, with no host calls: the first host entry that matches, then its first
//! matching rule, else the host's default, else the global default. A request whose host is not a host name
//! (where entries name hosts), or whose path another server would read as a path with another rule, is refused.

use crate::config::{Answer, Config, HeaderCondition, PathCondition, Rewrite, Rule};
use wasmgate_common::host_match::authority_port;
use wasmgate_common::{Denial, GrpcStatus, HeaderMapView, RequestLine, Unreadable};

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
    /// The client's `:authority`, for the port a redirect keeps.
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
    /// Whether the rule applies; headers in `hidden` (the gateway's own) count as absent.
    fn matches(&self, line: &RequestLine<'_>, headers: &dyn Headers, hidden: &[String]) -> bool {
        let c = &self.conditions;
        let path_ok = match &c.path {
            None => true,
            Some(PathCondition::Match(m)) => m.matches(line.path),
            Some(PathCondition::Regex(r)) => r.is_match(line.path),
        };
        let header = |name: &str| if hidden.iter().any(|h| h == name) { None } else { headers.header(name) };
        path_ok
            && (c.methods.is_empty() || c.methods.iter().any(|m| m == line.method))
            && c.headers.iter().all(|(name, cond)| match cond {
                HeaderCondition::Present(want) => header(name).is_some() == *want,
                HeaderCondition::Exact(value) => header(name) == Some(value.as_bytes()),
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
                // Built from the host as read, never from the raw authority (`host:@evil.example` would send
                // the browser elsewhere); the port stays only when the scheme does.
                let host = match (&r.host, req.line.host()) {
                    (Some(host), _) => host.clone(),
                    (None, Ok(host)) => match authority_port(req.authority).filter(|_| !r.https) {
                        Some(port) => format!("{host}:{port}"),
                        None => host.to_string(),
                    },
                    // Refused in `Config::decide` before getting here.
                    (None, Err(_)) => String::new(),
                };
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
    fn select(&self, line: &RequestLine<'_>, headers: &dyn Headers) -> Option<&Rule> {
        let host = self.hosts.iter().find(|h| line.host_in(std::slice::from_ref(&h.pattern)));
        host.and_then(|h| {
            h.rules.iter().find(|r| r.matches(line, headers, &self.gateway_headers)).or(h.default.as_ref())
        })
        .or(self.default.as_ref())
    }

    /// The decision for `req`: `Ok(None)` when no rule and no default applies, `Err` when the request reads
    /// more than one way.
    pub fn decide(&self, req: &Request<'_>) -> Result<Option<Decision<'_>>, Unreadable> {
        let rule_of = |line: &RequestLine<'_>| self.select(line, req.headers).map(|r| r.counter);
        req.line.check_unambiguous(self.host_scoped, |a, b| rule_of(a) == rule_of(b))?;
        let Some(rule) = self.select(&req.line, req.headers) else {
            return Ok(None);
        };
        // A redirect to the request's own host needs a host to redirect to.
        if let (Some(Answer::Redirect(r)), Err(why)) = (&rule.answer, req.line.host())
            && r.host.is_none()
        {
            return Err(Unreadable::Host(*why));
        }
        Ok(Some(rule.decide(req)))
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
        c.decide(&Request::new(host, path, method, "http", &owned)).unwrap()
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
            Some(Response::Redirect { status: 308, location: "https://ml.example.com/login?next=/a".into() })
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
            (r#"{"gateway_headers":["X-Route"]}"#, "gateway_headers[0]"),
            (r#"{"gateway_headers":[":authority"]}"#, "pseudo-header"),
            (
                r#"{"hosts":[{"host":"a","rules":[{"match":{"regex":"("},"deny":{}}]}]}"#,
                "hosts[0].rules[0].match.regex",
            ),
            (r#"{"default":{"teleport":{}}}"#, "unknown field `teleport`"),
            (r#"{"hosts":[{"host":"a","default":{"deny":{}}},{"host":"A","default":{"deny":{}}}]}"#, "listed twice"),
            (r#"{"default":{"redirect":{"status":301}}}"#, "needs a target"),
            (r#"{"default":{"redirect":{"status":200,"https":true}}}"#, "not a redirect"),
            (r#"{"default":{"set_headers":{":authority":"x"}}}"#, "pseudo-header"),
            (r#"{"default":{"set_headers":{"connection":"close"}}}"#, "belongs to the connection"),
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

    fn refusal(c: &Config, host: &str, path: &str) -> Option<Unreadable> {
        let none: Vec<(String, Vec<u8>)> = Vec::new();
        c.decide(&Request::new(host, path, "GET", "http", &none)).err()
    }

    /// `Host: ml.example.com:@evil.example` used to answer `location: https://ml.example.com:@evil.example/login`,
    /// which a browser follows to evil.example.
    #[test]
    fn redirects_never_carry_what_the_client_wrote_as_a_host() {
        let c = config();
        assert!(matches!(refusal(&c, "ml.example.com:@evil.example", "/login"), Some(Unreadable::Host(_))));
        let to = |host: &str| match decide(&c, host, "/login", "GET", &[]).unwrap().response {
            Some(Response::Redirect { location, .. }) => location,
            other => panic!("{other:?}"),
        };
        assert_eq!(to("ML.example.com:8080"), "https://ml.example.com/login", "the port goes with the scheme");
        assert_eq!(to("ml.example.com."), "https://ml.example.com/login");
        let keep_port =
            Config::from_json(br#"{"hosts":[{"host":"a.example.com","default":{"redirect":{"path":"/new"}}}]}"#)
                .unwrap();
        let Some(Response::Redirect { location, .. }) =
            decide(&keep_port, "a.example.com:8080", "/old", "GET", &[]).unwrap().response
        else {
            panic!("no redirect")
        };
        assert_eq!(location, "http://a.example.com:8080/new");
    }

    #[test]
    fn deny_rules_hold_for_every_spelling_of_host_and_path() {
        let c = config();
        for host in ["a:b.ml.example.com:443", "ml.example.com:1:2", "ml.example.com,x", "[x]ml.example.com"] {
            assert!(matches!(refusal(&c, host, "/admin/users"), Some(Unreadable::Host(_))), "{host}");
        }
        for path in ["//admin/users", "/admin%2Fusers", "/admin;x=1", "/admin%5Cusers", "/%2Fadmin", "/%61dmin/users"] {
            assert_eq!(refusal(&c, "ml.example.com", path), Some(Unreadable::AmbiguousPath), "{path}");
        }
        // A path whose readings all land on the same rule is routed as usual.
        assert_eq!(decide(&c, "ml.example.com", "/v1/a%20b", "GET", &[]).unwrap().rule, "old-api");
    }

    #[test]
    fn gateway_headers_from_clients_are_invisible_to_rules() {
        let c = Config::from_json(
            br#"{"gateway_headers": ["x-wasmgate-route"],
                 "hosts": [{"host": "ml.example.com", "rules": [
                   {"name": "already-routed", "match": {"headers": [{"name": "x-wasmgate-route", "exact": "canary"}]}, "deny": {}}]}]}"#,
        )
        .unwrap();
        assert_eq!(c.gateway_headers(), ["x-wasmgate-route"]);
        assert!(decide(&c, "ml.example.com", "/", "GET", &[("x-wasmgate-route", "canary")]).is_none());
        assert!(
            Config::from_json(br#"{"gateway_headers": ["x-wasmgate-route"]}"#).is_ok(),
            "stripping alone is a config"
        );
    }

    #[test]
    fn many_rules_load_in_linear_time() {
        // 40,000 rules took 48 s to load in a VM when names were checked pairwise; the check is now a set.
        let rules: Vec<String> = (0..40_000)
            .map(|i| format!(r#"{{"name":"r{i}","match":{{"exact":"/p{i}"}},"set_headers":{{"x-r":"{i}"}}}}"#))
            .collect();
        let hosts: Vec<String> =
            (0..2_000).map(|i| format!(r#"{{"host":"h{i}.example.com","default":{{"deny":{{}}}}}}"#)).collect();
        let json =
            format!(r#"{{"hosts":[{},{{"host":"ml.example.com","rules":[{}]}}]}}"#, hosts.join(","), rules.join(","));
        let c = Config::from_json(json.as_bytes()).unwrap();
        assert_eq!(c.counter_names().len(), 42_000);
        assert_eq!(decide(&c, "ml.example.com", "/p39999", "GET", &[]).unwrap().rule, "r39999");
    }
}
