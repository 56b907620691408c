//! Path matching as in Istio's basic_auth rules (exactly one of `prefix`, `exact`, `suffix`).
//!
//! Matching looks at the path without its query string: Istio's extension compares the raw `:path`, so an
//! `exact: /admin` rule there misses `/admin?x=1` and lets it through unauthenticated. Envoy has already
//! normalised the path (Istio's gateway default) by the time a plugin sees it.

use crate::ConfigError;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Suffix(String),
}

impl PathMatch {
    /// Builds the matcher from the three optional fields of a rule, refusing zero or several.
    pub fn from_fields(
        prefix: Option<String>,
        exact: Option<String>,
        suffix: Option<String>,
    ) -> Result<Self, ConfigError> {
        let matcher = match (prefix, exact, suffix) {
            (Some(p), None, None) => Self::Prefix(p),
            (None, Some(e), None) => Self::Exact(e),
            (None, None, Some(s)) => Self::Suffix(s),
            (None, None, None) => {
                return Err(ConfigError::new("", "needs exactly one of `prefix`, `exact`, `suffix`; none given"));
            }
            _ => {
                return Err(ConfigError::new("", "needs exactly one of `prefix`, `exact`, `suffix`; several given"));
            }
        };
        matcher.validate()?;
        Ok(matcher)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Prefix(p) | Self::Exact(p) if !p.starts_with('/') => {
                Err(ConfigError::new("", format!("path `{p}` must start with `/`")))
            }
            Self::Suffix(s) if s.is_empty() => Err(ConfigError::new("", "empty `suffix`")),
            Self::Prefix(p) | Self::Exact(p) | Self::Suffix(p) if p.contains(['?', '#']) => Err(ConfigError::new(
                "",
                format!("path `{p}` contains `?` or `#`: paths are matched without the query string"),
            )),
            _ => Ok(()),
        }
    }

    /// Matches a path already passed through [`path_without_query`].
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Prefix(p) => path.starts_with(p.as_str()),
            Self::Exact(e) => path == e,
            Self::Suffix(s) => path.ends_with(s.as_str()),
        }
    }
}

/// `:path` up to its query string or fragment.
pub fn path_without_query(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(i) => &path[..i],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_three() {
        assert!(PathMatch::from_fields(None, None, None).is_err());
        assert!(PathMatch::from_fields(Some("/".into()), Some("/a".into()), None).is_err());
        assert!(PathMatch::from_fields(Some("nope".into()), None, None).is_err());
        assert!(PathMatch::from_fields(None, Some("/a?b".into()), None).is_err());
        assert_eq!(
            PathMatch::from_fields(None, None, Some(".json".into())).unwrap(),
            PathMatch::Suffix(".json".into())
        );
    }

    #[test]
    fn matching_ignores_query() {
        let exact = PathMatch::Exact("/admin".into());
        assert!(exact.matches(path_without_query("/admin?x=1")));
        assert!(exact.matches(path_without_query("/admin#frag")));
        assert!(!exact.matches(path_without_query("/admin/")));
        let suffix = PathMatch::Suffix(".json".into());
        assert!(suffix.matches(path_without_query("/a/b.json?c=.txt")));
        assert!(PathMatch::Prefix("/api/".into()).matches("/api/v1"));
        assert!(!PathMatch::Prefix("/api/".into()).matches("/apix"));
    }
}
