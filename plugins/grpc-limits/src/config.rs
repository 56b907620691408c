//! The plugin's configuration: a default and an ordered list of rules, first match wins.
//!
//! Every field, with an example, is in the plugin's reference, `plugins/grpc-limits/README.md`
//! (cli/tests/plugin_readmes.rs checks that the two agree).
//!
//! A `grpc_method` or `grpc_service` rule is a gRPC rule: it applies whatever the HTTP method and the content
//! type, and counts the body's gRPC messages against `max_message_bytes` even when the client does not say it
//! sends gRPC (tonic, like most gRPC servers, decodes a body on a gRPC path whatever its `content-type` or
//! `:method`). A method list there would leave every other method unlimited, so it is refused.

use serde::Deserialize;
use wasmgate_common::{ByteSize, ConfigError, HostPattern, parse_config, validate_methods};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    default: Option<RawLimits>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_request_bytes: Option<ByteSize>,
    max_message_bytes: Option<ByteSize>,
    max_response_bytes: Option<ByteSize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
    path_prefix: Option<String>,
    grpc_service: Option<String>,
    grpc_method: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    max_request_bytes: Option<ByteSize>,
    max_message_bytes: Option<ByteSize>,
    max_response_bytes: Option<ByteSize>,
}

/// Byte limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub request: Option<u64>,
    /// The largest single gRPC message, without its 5-byte prefix, as gRPC libraries count it.
    pub message: Option<u64>,
    pub response: Option<u64>,
}

impl Limits {
    fn compile(raw: RawLimits) -> Result<Self, ConfigError> {
        let limits = Self {
            request: raw.max_request_bytes.map(|s| s.0),
            message: raw.max_message_bytes.map(|s| s.0),
            response: raw.max_response_bytes.map(|s| s.0),
        };
        for (field, value) in [
            ("max_request_bytes", limits.request),
            ("max_message_bytes", limits.message),
            ("max_response_bytes", limits.response),
        ] {
            if value == Some(0) {
                return Err(ConfigError::new(field, "a limit of 0 refuses every request; leave it out for no limit"));
            }
        }
        if let (Some(message), Some(request)) = (limits.message, limits.request)
            && message > request
        {
            return Err(ConfigError::new(
                "max_message_bytes",
                format!(
                    "{} is above max_request_bytes {}: no message could reach it",
                    ByteSize(message),
                    ByteSize(request)
                ),
            ));
        }
        Ok(limits)
    }

    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// Which paths a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathSelector {
    Any,
    Prefix(String),
    Exact(String),
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) path: PathSelector,
    pub(crate) methods: Vec<String>,
    pub(crate) limits: Limits,
    grpc: bool,
}

impl Rule {
    /// Whether the rule names a gRPC method or service (see the module docs).
    pub(crate) fn is_grpc(&self) -> bool {
        self.grpc
    }
}

#[derive(Debug)]
pub struct Config {
    pub(crate) rules: Vec<Rule>,
    pub(crate) default: Limits,
    /// Whether some rule names hosts: then a request whose authority is not a host name is refused.
    pub(crate) host_scoped: bool,
}

impl Config {
    /// Whether any request can meet a response limit (else nothing needs to see responses).
    pub fn limits_responses(&self) -> bool {
        self.response_limit().is_some()
    }

    /// Where the first response limit is set (`default.max_response_bytes`, `rules[2].max_response_bytes`).
    pub fn response_limit(&self) -> Option<String> {
        let field = "max_response_bytes";
        if self.default.response.is_some() {
            return Some(format!("default.{field}"));
        }
        self.rules.iter().position(|rule| rule.limits.response.is_some()).map(|i| format!("rules[{i}].{field}"))
    }

    /// This config for `image`, a module that does not see responses: a response limit is refused at load, never
    /// left unenforced, and the error names `full_image`, which takes it.
    pub fn for_requests_only(self, image: &str, full_image: &str) -> Result<Self, ConfigError> {
        match self.response_limit() {
            Some(field) => Err(ConfigError::new(
                field,
                format!(
                    "the {image} image does not see responses, so it cannot hold them to a limit: use the \
                     `{full_image}` image (requests and responses) for this config"
                ),
            )),
            None => Ok(self),
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_config(bytes)?;
        let default = Limits::compile(raw.default.unwrap_or_default()).map_err(|e| e.within("default"))?;
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| Rule::compile(r, i).map_err(|e| e.within(&format!("rules[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        if default.is_unlimited() && rules.is_empty() {
            return Err(ConfigError::new("", "no `default` limits and no `rules`: the plugin would do nothing"));
        }
        let host_scoped = rules.iter().any(|r| !r.hosts.is_empty());
        Ok(Self { rules, default, host_scoped })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

fn grpc_name_ok(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

impl Rule {
    fn compile(raw: RawRule, index: usize) -> Result<Self, ConfigError> {
        let grpc = raw.grpc_service.is_some() || raw.grpc_method.is_some();
        if grpc && !raw.methods.is_empty() {
            return Err(ConfigError::new(
                "methods",
                "a grpc_method / grpc_service rule applies to every HTTP method (a gRPC server may not check it); \
                 a list would leave the others unlimited",
            ));
        }
        let path = match (raw.path_prefix, raw.grpc_service, raw.grpc_method) {
            (None, None, None) => PathSelector::Any,
            (Some(p), None, None) if p.starts_with('/') => PathSelector::Prefix(p),
            (Some(p), None, None) => return Err(ConfigError::new("path_prefix", format!("`{p}` must start with `/`"))),
            (None, Some(s), None) if grpc_name_ok(&s) => PathSelector::Prefix(format!("/{s}/")),
            (None, Some(s), None) => {
                return Err(ConfigError::new(
                    "grpc_service",
                    format!("`{s}` is not a service name like `pkg.Service`"),
                ));
            }
            (None, None, Some(m)) => {
                let trimmed = m.strip_prefix('/').unwrap_or(&m);
                match trimmed.split_once('/') {
                    Some((service, method)) if grpc_name_ok(service) && grpc_name_ok(method) => {
                        PathSelector::Exact(format!("/{trimmed}"))
                    }
                    _ => {
                        return Err(ConfigError::new(
                            "grpc_method",
                            format!("`{m}` is not a method like `pkg.Service/Method`"),
                        ));
                    }
                }
            }
            _ => return Err(ConfigError::new("", "at most one of `path_prefix`, `grpc_service`, `grpc_method`")),
        };
        let hosts = HostPattern::parse_list("hosts", &raw.hosts)?;
        validate_methods("methods", &raw.methods)?;
        let limits = Limits::compile(RawLimits {
            max_request_bytes: raw.max_request_bytes,
            max_message_bytes: raw.max_message_bytes,
            max_response_bytes: raw.max_response_bytes,
        })?;
        if limits.is_unlimited() {
            return Err(ConfigError::new(
                "",
                "a rule needs at least one of max_request_bytes, max_message_bytes, max_response_bytes",
            ));
        }
        Ok(Self {
            name: raw.name.unwrap_or_else(|| format!("rules[{index}]")),
            hosts,
            path,
            methods: raw.methods,
            limits,
            grpc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_full_config() {
        let c = Config::from_json(
            br#"{"default":{"max_request_bytes":"4Mi","max_message_bytes":"4Mi"},
                 "rules":[{"name":"infer","hosts":["ml.example.com"],"grpc_method":"inference.GRPCInferenceService/ModelInfer",
                           "max_request_bytes":"130Mi","max_message_bytes":"128Mi","max_response_bytes":"16MB"},
                          {"grpc_service":"grpc.health.v1.Health","max_request_bytes":1024},
                          {"path_prefix":"/upload","methods":["POST","PUT"],"max_request_bytes":"1Gi"}]}"#,
        )
        .unwrap();
        assert_eq!(c.rule_count(), 3);
        assert_eq!(c.default, Limits { request: Some(4 << 20), message: Some(4 << 20), response: None });
        assert_eq!(c.rules[0].path, PathSelector::Exact("/inference.GRPCInferenceService/ModelInfer".into()));
        assert_eq!(c.rules[0].limits.response, Some(16_000_000));
        assert_eq!(c.rules[1].path, PathSelector::Prefix("/grpc.health.v1.Health/".into()));
        assert_eq!(c.rules[1].name, "rules[1]");
        assert!(c.limits_responses());
        assert_eq!(c.response_limit().as_deref(), Some("rules[0].max_response_bytes"));
        let requests_only = Config::from_json(br#"{"default":{"max_request_bytes":"4Mi"}}"#).unwrap();
        assert!(!requests_only.limits_responses());
        let by_default = Config::from_json(br#"{"default":{"max_response_bytes":"1Mi"}}"#).unwrap();
        assert_eq!(by_default.response_limit().as_deref(), Some("default.max_response_bytes"));
    }

    #[test]
    fn contradictions_are_refused() {
        let cases = [
            (r#"{}"#, "would do nothing"),
            (r#"{"default":{"max_request_bytes":0}}"#, "default.max_request_bytes"),
            (r#"{"default":{"max_request_bytes":"1Mi","max_message_bytes":"2Mi"}}"#, "above max_request_bytes 1Mi"),
            (r#"{"default":{"max_request":"1Mi"}}"#, "unknown field `max_request`"),
            (r#"{"rules":[{"max_request_bytes":"1Mi","grpc_service":"a.B","path_prefix":"/x"}]}"#, "at most one"),
            (r#"{"rules":[{"grpc_method":"a.B"}]}"#, "rules[0].grpc_method"),
            (r#"{"rules":[{"grpc_method":"a.B/C/D","max_request_bytes":1}]}"#, "not a method"),
            (r#"{"rules":[{"path_prefix":"x","max_request_bytes":1}]}"#, "must start with"),
            (r#"{"rules":[{"hosts":["a:1"],"max_request_bytes":1}]}"#, "rules[0].hosts[0]"),
            (r#"{"rules":[{"hosts":["a"]}]}"#, "at least one of"),
            (r#"{"rules":[{"methods":["post"],"max_request_bytes":1}]}"#, "rules[0].methods[0]"),
            (
                r#"{"rules":[{"grpc_service":"a.B","methods":["POST"],"max_request_bytes":1}]}"#,
                "rules[0].methods`: a grpc_method",
            ),
            (r#"{"default":{"max_request_bytes":"10 parsecs"}}"#, "unknown unit"),
            (r#"{"default":{"max_request_bytes":-1}}"#, "negative"),
        ];
        for (json, want) in cases {
            let err = Config::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
