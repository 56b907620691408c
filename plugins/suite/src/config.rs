//! The suite's `pluginConfig`: `{basic_auth: ..., grpc_limits: ..., host_router: ...}`, each section exactly what
//! the policy's own plugin takes, parsed by that plugin's parser; at least one section.

use serde::Deserialize;
use serde_json::value::RawValue;
use wasmgate_common::{ConfigError, PluginConfig, parse_config};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    basic_auth: Option<Box<RawValue>>,
    #[serde(default)]
    grpc_limits: Option<Box<RawValue>>,
    #[serde(default)]
    host_router: Option<Box<RawValue>>,
}

pub struct Config {
    pub basic_auth: Option<basic_auth::Config>,
    pub grpc_limits: Option<grpc_limits::Config>,
    pub host_router: Option<host_router::Config>,
}

/// Parses one section with its plugin's parser, locating errors under the section's name.
fn section<T>(
    raw: Option<Box<RawValue>>,
    name: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    raw.map(|value| parse(value.get().as_bytes()).map_err(|e| e.within(name))).transpose()
}

impl Config {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_config(bytes)?;
        let config = Self {
            basic_auth: section(raw.basic_auth, "basic_auth", basic_auth::Config::from_json)?,
            grpc_limits: section(raw.grpc_limits, "grpc_limits", grpc_limits::Config::from_json)?,
            host_router: section(raw.host_router, "host_router", host_router::Config::from_json)?,
        };
        if config.sections().is_empty() {
            return Err(ConfigError::new(
                "",
                "no `basic_auth`, `grpc_limits` or `host_router` section: the suite would do nothing",
            ));
        }
        Ok(config)
    }

    /// The config of the `suite-requests` image, which does not see responses: a response limit is refused at load,
    /// never left unenforced.
    pub fn for_requests_only(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut config = Self::from_json(bytes)?;
        config.grpc_limits = config
            .grpc_limits
            .map(|c| c.for_requests_only(crate::SuiteRequests::IMAGE, crate::Suite::IMAGE))
            .transpose()
            .map_err(|e| e.within("grpc_limits"))?;
        Ok(config)
    }

    /// Whether a section acts on responses (only grpc-limits, with a response limit).
    pub fn limits_responses(&self) -> bool {
        self.grpc_limits.as_ref().is_some_and(grpc_limits::Config::limits_responses)
    }

    /// The sections present, in the order they run.
    pub fn sections(&self) -> Vec<&'static str> {
        [
            self.basic_auth.as_ref().map(|_| "basic_auth"),
            self.grpc_limits.as_ref().map(|_| "grpc_limits"),
            self.host_router.as_ref().map(|_| "host_router"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        Config::from_json(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn sections_are_parsed_by_their_plugins() {
        let config = Config::from_json(
            br#"{"basic_auth": {"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}]},
                 "host_router": {"hosts": [{"host": "x.example.com", "default": {"name": "d", "set_headers": {"x-r": "1"}}}]}}"#,
        )
        .unwrap();
        assert_eq!(config.sections(), ["basic_auth", "host_router"]);
        assert_eq!(config.basic_auth.unwrap().rule_count(), 1);
    }

    #[test]
    fn errors_name_the_section_and_field() {
        let e = error(r#"{"grpc_limits": {"default": {"max_request_bytes": "lots"}}}"#);
        assert!(e.contains("at `grpc_limits.default.max_request_bytes`"), "{e}");
        let e = error(
            r#"{"basic_auth": {"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": []}]}}"#,
        );
        assert!(e.contains("basic_auth.basic_auth_rules[0].credentials"), "{e}");
        assert!(error(r#"{"basic-auth": {}}"#).contains("unknown field `basic-auth`"));
        assert!(error("{}").contains("the suite would do nothing"));
        assert!(!error("[]").is_empty(), "a list is not a config");
    }

    #[test]
    fn the_requests_only_image_refuses_response_limits() {
        let requests = br#"{"grpc_limits": {"default": {"max_request_bytes": "1Mi"}}}"#;
        assert!(!Config::for_requests_only(requests).unwrap().limits_responses());
        let responses = br#"{"grpc_limits": {"rules": [{"max_request_bytes": "1Mi"}, {"max_response_bytes": "1Mi"}]}}"#;
        assert!(Config::from_json(responses).unwrap().limits_responses(), "the `suite` image takes it");
        let e = Config::for_requests_only(responses).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("at `grpc_limits.rules[1].max_response_bytes`"), "{e}");
        assert!(e.contains("use the `suite` image"), "{e}");
        // Its other errors are the suite's own.
        let e = Config::for_requests_only(b"{}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("the suite would do nothing"), "{e}");
    }
}
