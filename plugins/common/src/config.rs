//! Loading a plugin's JSON configuration into its serde types, with errors that name the offending field.

use serde::de::DeserializeOwned;
use std::fmt;

/// Why a configuration was refused. `path` points at the field (`basic_auth_rules[0].credentials`), so the
/// message a user reads in the Envoy log or from `wasmgate check` says where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }

    /// The same error, located inside a parent field (`rules[2]` + `hosts[0]` → `rules[2].hosts[0]`).
    pub fn within(self, parent: &str) -> Self {
        let path = match (parent.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => parent.to_string(),
            (false, false) if self.path.starts_with('[') => format!("{parent}{}", self.path),
            (false, false) => format!("{parent}.{}", self.path),
        };
        Self { path, message: self.message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(f, "invalid configuration at `{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses JSON into `T`. An empty configuration (Istio sends none when `pluginConfig` is absent) parses as
/// `{}`, so each plugin decides through its serde defaults what "no config" means.
pub fn parse_config<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let trimmed = bytes.trim_ascii();
    let input: &[u8] = if trimmed.is_empty() { b"{}" } else { trimmed };
    let mut de = serde_json::Deserializer::from_slice(input);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ConfigError::new(e.path().to_string(), e.inner().to_string()))?;
    de.end().map_err(|e| ConfigError::new("", e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
    }

    #[test]
    fn empty_input_is_an_empty_object() {
        assert_eq!(parse_config::<Sample>(b"  ").unwrap(), Sample { items: vec![] });
    }

    #[test]
    fn error_names_the_field() {
        let err = parse_config::<Sample>(br#"{"items":[{"name":"a"},{"nam":"b"}]}"#).unwrap_err();
        assert_eq!(err.path, "items[1].nam");
        assert!(err.message.contains("unknown field `nam`"), "{err}");
        assert!(err.to_string().contains("`items[1].nam`"), "{err}");
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(parse_config::<Sample>(br#"{} x"#).is_err());
    }

    #[test]
    fn within_joins_paths() {
        assert_eq!(ConfigError::new("hosts[0]", "m").within("rules[2]").path, "rules[2].hosts[0]");
        assert_eq!(ConfigError::new("[0]", "m").within("hosts").path, "hosts[0]");
        assert_eq!(ConfigError::new("", "m").within("hosts").path, "hosts");
    }
}
