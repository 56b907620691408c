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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert!(validate_methods("m", &["GET".into(), "M-SEARCH".into()]).is_ok());
        assert_eq!(validate_methods("m", &["GET".into(), "post".into()]).unwrap_err().path, "m[1]");
        assert!(validate_methods("m", &[String::new()]).is_err());
    }
}
