//! Host patterns as users write them in configs (`ml.example.com`, `*.example.com`, `ml.*`, `*`) and the
//! normalisation of a request's `:authority` before matching: port removed (IPv6-aware), trailing dot removed,
//! lower-cased. Hosts are case-insensitive (RFC 9110), so an auth rule for `ML.example.com` covers every spelling.

use crate::ConfigError;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every host.
    Any,
    Exact(String),
    /// `*.example.com`: stored as `.example.com`; matches `a.example.com`, `a.b.example.com`, not `example.com`.
    Suffix(String),
    /// `ml.*` or `ml-*`: stored as `ml.` / `ml-`.
    Prefix(String),
}

impl HostPattern {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let pattern = raw.trim().to_ascii_lowercase();
        if pattern.is_empty() {
            return Err(ConfigError::new("", "empty host pattern"));
        }
        if pattern == "*" {
            return Ok(Self::Any);
        }
        let stars = pattern.matches('*').count();
        let parsed = if stars == 0 {
            Self::Exact(pattern.trim_end_matches('.').to_string())
        } else if stars == 1 && pattern.starts_with("*.") && pattern.len() > 2 {
            Self::Suffix(pattern[1..].trim_end_matches('.').to_string())
        } else if stars == 1 && pattern.ends_with('*') && pattern.len() > 1 {
            Self::Prefix(pattern[..pattern.len() - 1].to_string())
        } else {
            return Err(ConfigError::new(
                "",
                format!("host pattern `{raw}`: `*` may only stand alone, as `*.suffix` or as `prefix*`"),
            ));
        };
        let text = match &parsed {
            Self::Exact(s) | Self::Suffix(s) | Self::Prefix(s) => s.as_str(),
            Self::Any => "",
        };
        if let Some(bad) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))) {
            let hint = if bad == ':' { " (hosts match on every port: leave the port out)" } else { "" };
            return Err(ConfigError::new("", format!("host pattern `{raw}` contains `{bad}`{hint}")));
        }
        Ok(parsed)
    }

    /// Parses each entry of a config list, errors located at `field[i]`.
    pub fn parse_list(field: &str, patterns: &[String]) -> Result<Vec<Self>, ConfigError> {
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| Self::parse(p).map_err(|e| e.within(&format!("{field}[{i}]"))))
            .collect()
    }

    /// Matches a host already passed through [`normalize_host`].
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(h) => host == h,
            Self::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            Self::Prefix(p) => host.len() > p.len() && host.starts_with(p.as_str()),
        }
    }
}

/// The host part of an `:authority` / `Host` value, ready for [`HostPattern::matches`].
pub fn normalize_host(authority: &str) -> Cow<'_, str> {
    // Trimmed before and after the port comes off, so `h :80` and `h:80` name the same host.
    let host = strip_port(authority.trim()).trim_end();
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        // IPv6 literal: the port, if any, follows the closing bracket.
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rfind(':') {
        // More than one colon without brackets is not host:port; leave it for the patterns to refuse.
        Some(i) if !authority[..i].contains(':') => &authority[..i],
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_before_the_port_does_not_change_the_host() {
        // Found by the host_path_match fuzz target: `z\n` matched `z`, but `z\n:10` did not.
        let pattern = HostPattern::parse("z").unwrap();
        for authority in ["z\n", "z\n:10", "z :10", " z:10 "] {
            assert_eq!(normalize_host(authority), "z", "{authority:?}");
            assert!(pattern.matches(&normalize_host(authority)));
        }
    }
    use proptest::prelude::*;

    fn m(pattern: &str, authority: &str) -> bool {
        HostPattern::parse(pattern).unwrap().matches(&normalize_host(authority))
    }

    #[test]
    fn exact_and_port() {
        assert!(m("ml.example.com", "ml.example.com"));
        assert!(m("ml.example.com", "ml.example.com:8080"));
        assert!(m("ml.example.com", "ML.Example.COM"));
        assert!(m("ml.example.com", "ml.example.com."));
        assert!(m("ml.example.com", "ml.example.com.:443"));
        assert!(!m("ml.example.com", "ml.example.com.evil"));
        assert!(!m("ml.example.com", "xml.example.com"));
    }

    #[test]
    fn wildcards() {
        assert!(m("*.example.com", "a.example.com"));
        assert!(m("*.example.com", "a.b.example.com:80"));
        assert!(!m("*.example.com", "example.com"));
        assert!(!m("*.example.com", "aexample.com"));
        assert!(m("ml.*", "ml.example.org"));
        assert!(!m("ml.*", "ml"));
        assert!(m("ml-*", "ml-canary"));
        assert!(m("*", "anything:1"));
    }

    #[test]
    fn ipv6() {
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host("::1"), "::1");
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "a*b.com", "*.*.com", "**", "ml.example.com:8080", "ml example.com", "*."] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = HostPattern::parse("ml.example.com:8080").unwrap_err();
        assert!(err.message.contains("leave the port out"), "{err}");
    }

    proptest! {
        #[test]
        fn exact_host_matches_every_spelling(
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
            port in proptest::option::of(1u16..),
            upper in proptest::collection::vec(any::<bool>(), 0..48),
            dot in any::<bool>(),
        ) {
            let pattern = HostPattern::parse(&host).unwrap();
            let mut spelled: String = host.chars().zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c }).collect();
            if dot { spelled.push('.'); }
            if let Some(p) = port { spelled.push_str(&format!(":{p}")); }
            prop_assert!(pattern.matches(&normalize_host(&spelled)), "{} vs {}", host, spelled);
        }

        #[test]
        fn exact_host_never_matches_a_longer_name(host in "[a-z]{1,10}\\.[a-z]{2,5}", extra in "[a-z0-9-]{1,8}") {
            let pattern = HostPattern::parse(&host).unwrap();
            let other_suffix = format!("{host}{extra}");
            let other_prefix = format!("{extra}{host}");
            prop_assert!(!pattern.matches(&normalize_host(&other_suffix)));
            prop_assert!(!pattern.matches(&normalize_host(&other_prefix)));
        }

        #[test]
        fn normalize_never_panics(s in "\\PC{0,40}") {
            let _ = normalize_host(&s);
        }
    }
}
