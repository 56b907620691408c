//! The suite's `pluginConfig`: `{basic_auth: ..., grpc_limits: ..., host_router: ...}` (the keys of
//! [`SECTIONS`]), each section exactly what the policy's own plugin takes, parsed by that plugin's parser; at
//! least one section, none twice.

use crate::section::{KEYS, Part, SECTIONS};
use serde::Deserialize;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use wasmgate_common::{ConfigError, PluginConfig, parse_config};

/// The parsed sections, in the order they run.
pub struct Config {
    parts: Vec<Box<dyn Part>>,
}

impl Config {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let RawSections(mut raw) = parse_config(bytes)?;
        let mut parts = Vec::with_capacity(raw.len());
        for section in &SECTIONS {
            if let Some(at) = raw.iter().position(|(key, _)| key == section.key) {
                let (_, value) = raw.swap_remove(at);
                parts.push(section.parse(value.get().as_bytes())?);
            }
        }
        if parts.is_empty() {
            let keys = KEYS.map(|key| format!("`{key}`")).join(", ");
            return Err(ConfigError::new("", format!("none of the sections {keys}: the suite would do nothing")));
        }
        Ok(Self { parts })
    }

    /// The config of the `suite-requests` image, which does not see responses: a response limit is refused at load,
    /// never left unenforced.
    pub fn for_requests_only(bytes: &[u8]) -> Result<Self, ConfigError> {
        let parts = Self::from_json(bytes)?
            .parts
            .into_iter()
            .map(|part| part.for_requests_only(crate::SuiteRequests::IMAGE, crate::Suite::IMAGE))
            .collect::<Result<_, _>>()?;
        Ok(Self { parts })
    }

    /// Whether a section acts on responses (only grpc-limits, with a response limit).
    pub fn limits_responses(&self) -> bool {
        self.parts.iter().any(|part| part.sees_responses())
    }

    /// The sections present, in the order they run.
    pub fn sections(&self) -> Vec<&'static str> {
        self.parts.iter().map(|part| part.key()).collect()
    }

    /// What each section holds, as its plugin summarises it.
    #[cfg(test)]
    fn summaries(&self) -> Vec<String> {
        self.parts.iter().map(|part| format!("{}: {}", part.key(), part.summary())).collect()
    }

    pub fn into_parts(self) -> Vec<Box<dyn Part>> {
        self.parts
    }
}

/// The sections as written, each left unparsed for its plugin; an unknown or repeated key is refused (a map
/// would keep the last of two `basic_auth` sections without a word).
struct RawSections(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawSections {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SectionsVisitor)
    }
}

struct SectionsVisitor;

impl<'de> Visitor<'de> for SectionsVisitor {
    type Value = RawSections;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a map with the sections {}", KEYS.join(", "))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSections, A::Error> {
        let mut sections: Vec<(String, Box<RawValue>)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let Some(known) = KEYS.iter().find(|k| **k == key) else {
                return Err(A::Error::unknown_field(&key, &KEYS));
            };
            if sections.iter().any(|(seen, _)| seen == known) {
                return Err(A::Error::duplicate_field(known));
            }
            sections.push((key, map.next_value()?));
        }
        Ok(RawSections(sections))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        Config::from_json(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn sections_are_parsed_by_their_plugins_and_run_in_the_tables_order() {
        let config = Config::from_json(
            br#"{"host_router": {"hosts": [{"host": "x.example.com", "default": {"name": "d", "set_headers": {"x-r": "1"}}}]},
                 "basic_auth": {"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}]}}"#,
        )
        .unwrap();
        assert_eq!(config.sections(), ["basic_auth", "host_router"]);
        assert_eq!(config.summaries(), ["basic_auth: 1 rule(s)", "host_router: 1 host(s)"]);
    }

    #[test]
    fn errors_name_the_section_and_field() {
        let e = error(r#"{"grpc_limits": {"default": {"max_request_bytes": "lots"}}}"#);
        assert!(e.contains("at `grpc_limits.default.max_request_bytes`"), "{e}");
        let e = error(
            r#"{"basic_auth": {"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": []}]}}"#,
        );
        assert!(e.contains("basic_auth.basic_auth_rules[0].credentials"), "{e}");
        let e = error(r#"{"basic-auth": {}}"#);
        assert!(
            e.contains("unknown field `basic-auth`, expected one of `basic_auth`, `grpc_limits`, `host_router`"),
            "{e}"
        );
        assert!(error("{}").contains("the suite would do nothing"));
        assert!(!error("[]").is_empty(), "a list is not a config");
    }

    #[test]
    fn a_section_given_twice_is_refused_not_overwritten() {
        let open = r#"{"basic_auth_rules": [{"prefix": "/open", "request_methods": ["GET"], "credentials": ["a:b"]}]}"#;
        let e = error(&format!(r#"{{"basic_auth": {open}, "host_router": {{"hosts": []}}, "basic_auth": {open}}}"#));
        assert!(e.contains("duplicate field `basic_auth`"), "{e}");
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
