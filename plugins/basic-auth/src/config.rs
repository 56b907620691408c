//! The plugin's configuration: the `pluginConfig` of Istio's basic_auth extension, unchanged, plus
//! hashed credentials (see [`crate::credentials`]) and `exempt_paths` per rule.
//!
//! ```yaml
//! basic_auth_rules:
//!   - prefix: /                      # exactly one of prefix / exact / suffix
//!     request_methods: [GET, POST]
//!     credentials: ["user:pass", "alice:$2y$10$..."]
//!     hosts: [ml.example.com]        # optional; `*.example.com`, `ml.*`; empty = every host
//!     exempt_paths: [{prefix: /grpc.health.v1.Health/}]   # optional
//! realm: istio                       # optional
//! lockout:                           # optional: refuse an address for a user after repeated wrong passwords
//!   max_failures: 5
//!   window: 1m
//!   duration: 5m
//! ```

use crate::credentials::CredentialSet;
use crate::lockout::{Lockout, RawLockout};
use serde::Deserialize;
use wasmgate_common::{ConfigError, HostPattern, PathMatch, parse_config, validate_methods};

pub const DEFAULT_REALM: &str = "istio";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    basic_auth_rules: Vec<RawRule>,
    realm: Option<String>,
    #[serde(default)]
    lockout: Option<RawLockout>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    prefix: Option<String>,
    exact: Option<String>,
    suffix: Option<String>,
    #[serde(default)]
    request_methods: Vec<String>,
    #[serde(default)]
    credentials: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    exempt_paths: Vec<PathMatch>,
}

/// A validated configuration, ready for the request path.
#[derive(Debug)]
pub struct Config {
    pub(crate) rules: Vec<Rule>,
    /// The `WWW-Authenticate` value, built once.
    pub(crate) challenge: String,
    pub(crate) lockout: Option<Lockout>,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) path: PathMatch,
    pub(crate) methods: Vec<String>,
    /// Empty: every host.
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) exempt: Vec<PathMatch>,
    pub(crate) credentials: CredentialSet,
}

impl Config {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_config(bytes)?;
        let rules = raw
            .basic_auth_rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| Rule::compile(rule).map_err(|e| e.within(&format!("basic_auth_rules[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let realm = raw.realm.unwrap_or_else(|| DEFAULT_REALM.to_string());
        if realm.is_empty() || realm.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(ConfigError::new(
                "realm",
                "must be non-empty, without quotes, backslashes or control characters",
            ));
        }
        let lockout = raw.lockout.map(Lockout::compile).transpose().map_err(|e| e.within("lockout"))?;
        Ok(Self { rules, challenge: format!("Basic realm=\"{realm}\""), lockout })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether failures are counted per client address (the shell then reads the address and the time).
    pub fn has_lockout(&self) -> bool {
        self.lockout.is_some()
    }
}

impl Rule {
    fn compile(raw: RawRule) -> Result<Self, ConfigError> {
        let path = PathMatch::from_fields(raw.prefix, raw.exact, raw.suffix)?;
        if raw.request_methods.is_empty() {
            return Err(ConfigError::new("request_methods", "at least one method is required"));
        }
        validate_methods("request_methods", &raw.request_methods)?;
        let hosts = HostPattern::parse_list("hosts", &raw.hosts)?;
        for (i, exempt) in raw.exempt_paths.iter().enumerate() {
            exempt.validate().map_err(|e| e.within(&format!("exempt_paths[{i}]")))?;
        }
        let credentials = CredentialSet::parse(&raw.credentials).map_err(|e| e.within("credentials"))?;
        Ok(Self { path, methods: raw.request_methods, hosts, exempt: raw.exempt_paths, credentials })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference deployment's config, as it stands in its WasmPlugin.
    pub const REFERENCE: &str = r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET","PUT","POST","PATCH","DELETE"],"credentials":["username:password"],"hosts":["ml.example.com"]}]}"#;

    #[test]
    fn reference_config_loads() {
        let c = Config::from_json(REFERENCE.as_bytes()).unwrap();
        assert_eq!(c.rule_count(), 1);
        assert_eq!(c.challenge, "Basic realm=\"istio\"");
    }

    #[test]
    fn empty_config_allows_everything() {
        assert_eq!(Config::from_json(b"").unwrap().rule_count(), 0);
        assert_eq!(Config::from_json(b"{}").unwrap().rule_count(), 0);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (r#"{"basic_auth_rule":[]}"#, "unknown field `basic_auth_rule`"),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":[]}]}"#,
                "basic_auth_rules[0].credentials",
            ),
            (r#"{"basic_auth_rules":[{"prefix":"/","request_methods":[],"credentials":["a:b"]}]}"#, "request_methods"),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["get"],"credentials":["a:b"]}]}"#,
                "request_methods[0]",
            ),
            (r#"{"basic_auth_rules":[{"request_methods":["GET"],"credentials":["a:b"]}]}"#, "exactly one"),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","exact":"/a","request_methods":["GET"],"credentials":["a:b"]}]}"#,
                "several",
            ),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["a:b"],"hosts":["a:80"]}]}"#,
                "hosts[0]",
            ),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["a:$2y$05$bad"]}]}"#,
                "credentials[0]",
            ),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["a:b"],"exempt_paths":[{"prefix":"x"}]}]}"#,
                "exempt_paths[0]",
            ),
            (r#"{"realm":"a\"b"}"#, "realm"),
            (r#"{"basic_auth_rules":{}}"#, "basic_auth_rules"),
        ];
        for (json, want) in cases {
            let err = Config::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn errors_never_echo_passwords() {
        let err = Config::from_json(br#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["alice:$2y$05$s3cretsecret"]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
