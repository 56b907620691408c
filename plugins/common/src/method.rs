//! HTTP method lists in configs.

use crate::ConfigError;

/// Checks that every entry is an upper-case method token (`GET`, `POST`, `M-SEARCH`): methods are
/// case-sensitive, so `get` in a config would silently never match.
pub fn validate_methods(field: &str, methods: &[String]) -> Result<(), ConfigError> {
    for (i, method) in methods.iter().enumerate() {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_') {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("`{method}` is not an upper-case HTTP method"),
            ));
        }
    }
    Ok(())
}

/// The methods a rule covers: a list, matched exactly, or every method (`["*"]`). A list leaves every other
/// spelling open: Envoy forwards `OPTIONS`, `TRACE`, extension methods and, over HTTP/2, lower-case `post`,
/// and a gRPC server may never look at the method. A rule that must hold for a path whatever the method uses `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSet {
    Any,
    Listed(Vec<String>),
}

impl MethodSet {
    /// Reads a config list: `["*"]` is every method; otherwise upper-case method tokens.
    pub fn parse(field: &str, methods: Vec<String>) -> Result<Self, ConfigError> {
        if methods.iter().any(|m| m == "*") {
            if methods.len() > 1 {
                return Err(ConfigError::new(field, "`*` covers every method: list it alone"));
            }
            return Ok(Self::Any);
        }
        validate_methods(field, &methods)?;
        Ok(Self::Listed(methods))
    }

    pub fn contains(&self, method: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Listed(methods) => methods.iter().any(|m| m == method),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert!(validate_methods("m", &["GET".into(), "M-SEARCH".into()]).is_ok());
        assert_eq!(validate_methods("m", &["GET".into(), "post".into()]).unwrap_err().path, "m[1]");
        assert!(validate_methods("m", &[String::new()]).is_err());
    }

    #[test]
    fn a_star_covers_every_spelling() {
        let any = MethodSet::parse("m", vec!["*".into()]).unwrap();
        for method in ["POST", "post", "OPTIONS", "FOO", "TRACE", ""] {
            assert!(any.contains(method), "{method}");
        }
        let listed = MethodSet::parse("m", vec!["POST".into()]).unwrap();
        assert!(listed.contains("POST") && !listed.contains("post") && !listed.contains("OPTIONS"));
        assert!(MethodSet::parse("m", vec!["*".into(), "GET".into()]).unwrap_err().message.contains("alone"));
        assert_eq!(MethodSet::parse("m", vec!["get".into()]).unwrap_err().path, "m[0]");
    }
}
