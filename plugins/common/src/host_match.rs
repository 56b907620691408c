//! Host patterns as users write them in configs (`ml.example.com`, `*.example.com`, `ml.*`, `*`) and the
//! reading of a request's `:authority` before matching, as Envoy's router reads it: port removed after the last
//! colon (IPv6-aware), trailing dot removed, lower-cased. Hosts are case-insensitive (RFC 9110), so an auth rule
//! for `ML.example.com` covers every spelling; a value that is not a host name is an error for the caller to
//! refuse.

use crate::ConfigError;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// Why an `:authority` is not a host a rule can be matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadAuthority {
    Empty,
    /// A character no DNS name or IP address has (`,` from joined duplicate headers, `@`, `:` left after the
    /// port, spaces, `%`, ...).
    Character(char),
    /// `[...]` that is not an IPv6 literal optionally followed by `:port`.
    IpLiteral,
}

impl std::fmt::Display for BadAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("empty host"),
            Self::Character(c) => write!(f, "host contains {c:?}"),
            Self::IpLiteral => f.write_str("malformed IPv6 literal"),
        }
    }
}

/// The host part of an `:authority` / `Host` value, ready for [`HostPattern::matches`], read the way Envoy's
/// router reads it: the port is what follows the *last* colon when it is numeric (or empty), `[...]` is an IPv6
/// literal, then the trailing dot goes and letters are lower-cased. What is left must be a host name (letters,
/// digits, `-`, `.`, `_`) or an IPv6 literal; anything else is an error, never a guess: Envoy picks a virtual
/// host for `a:b.ml.example.com:443` or `ml.example.com:1:2` by its own rules, and a plugin that read such a
/// value differently from Envoy would skip rules Envoy's route then applies.
pub fn normalize_host(authority: &str) -> Result<Cow<'_, str>, BadAuthority> {
    let host = strip_port(authority)?;
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(BadAuthority::Empty);
    }
    // One pass: the first byte a host name may not hold (an IP literal's were checked), and whether any is upper
    // case.
    let literal = host.starts_with('[');
    let mut upper = false;
    for (at, b) in host.bytes().enumerate() {
        if !(literal || b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) {
            // Every byte before it is ASCII, so `at` starts a character.
            return Err(BadAuthority::Character(host[at..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER)));
        }
        upper |= b.is_ascii_uppercase();
    }
    Ok(if upper { Cow::Owned(host.to_ascii_lowercase()) } else { Cow::Borrowed(host) })
}

/// The authority without its port, as Envoy's `HeaderUtility::getPortStart` finds the port: after the last
/// colon, unless that colon sits inside an IPv6 literal's brackets.
fn strip_port(authority: &str) -> Result<&str, BadAuthority> {
    if let Some(literal) = authority.strip_prefix('[') {
        let end = literal.find(']').ok_or(BadAuthority::IpLiteral)?;
        let (address, rest) = (&literal[..end], &literal[end + 1..]);
        let valid_port = rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port);
        if address.is_empty() || !address.contains(':') || !valid_port {
            return Err(BadAuthority::IpLiteral);
        }
        if !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(BadAuthority::IpLiteral);
        }
        return Ok(&authority[..end + 2]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if is_port(port) => Ok(host),
        // A colon with no port after it is the host's own character: refused with the rest.
        _ => Ok(authority),
    }
}

/// Digits of a port number, or nothing (`host:` means the default port).
fn is_port(text: &str) -> bool {
    text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u32>().map_or(text.is_empty(), |p| p <= 65535)
}

/// The port of an authority that [`normalize_host`] accepted, if it names one.
pub fn authority_port(authority: &str) -> Option<u16> {
    let (_, port) = authority.rsplit_once(':')?;
    if authority.starts_with('[') && !authority[..authority.len() - port.len()].ends_with("]:") {
        return None;
    }
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, authority: &str) -> bool {
        HostPattern::parse(pattern).unwrap().matches(&normalize_host(authority).unwrap())
    }

    #[test]
    fn exact_and_port() {
        assert!(m("ml.example.com", "ml.example.com"));
        assert!(m("ml.example.com", "ml.example.com:8080"));
        assert!(m("ml.example.com", "ml.example.com:"));
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
        assert_eq!(normalize_host("[::1]:8080").unwrap(), "[::1]");
        assert_eq!(normalize_host("[::1]").unwrap(), "[::1]");
        assert_eq!(normalize_host("[2001:DB8::1]:443").unwrap(), "[2001:db8::1]");
        assert_eq!(authority_port("[::1]:8080"), Some(8080));
        assert_eq!(authority_port("[::1]"), None);
        assert_eq!(authority_port("ml.example.com:8443"), Some(8443));
        assert_eq!(authority_port("ml.example.com"), None);
    }

    /// Spellings an outside attack used to reach an upstream without the credentials a host rule asks for,
    /// and others Envoy reads in ways a plugin cannot follow: each is refused, not read as some other host.
    #[test]
    fn what_is_not_a_host_is_an_error() {
        let cases = [
            ("a:b.ml.example.com:443", BadAuthority::Character(':')),
            ("ml.example.com:1:2", BadAuthority::Character(':')),
            ("[x]a.ml.example.com", BadAuthority::IpLiteral),
            ("[::1]a", BadAuthority::IpLiteral),
            ("[::1", BadAuthority::IpLiteral),
            ("[]", BadAuthority::IpLiteral),
            ("[v1.x]", BadAuthority::IpLiteral),
            ("ml.example.com,x", BadAuthority::Character(',')),
            ("ml.example.com:@evil.example", BadAuthority::Character(':')),
            ("user@ml.example.com", BadAuthority::Character('@')),
            ("ml.example.com:99999", BadAuthority::Character(':')),
            ("ml example.com", BadAuthority::Character(' ')),
            ("ml%2eexample.com", BadAuthority::Character('%')),
            ("", BadAuthority::Empty),
            (":443", BadAuthority::Empty),
            (".", BadAuthority::Empty),
            ("::1", BadAuthority::Character(':')),
        ];
        for (authority, want) in cases {
            assert_eq!(normalize_host(authority), Err(want), "{authority:?}");
        }
        assert_eq!(normalize_host("z\n:10"), Err(BadAuthority::Character('\n')));
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
            prop_assert!(pattern.matches(&normalize_host(&spelled).unwrap()), "{} vs {}", host, spelled);
        }

        #[test]
        fn exact_host_never_matches_a_longer_name(host in "[a-z]{1,10}\\.[a-z]{2,5}", extra in "[a-z0-9-]{1,8}") {
            let pattern = HostPattern::parse(&host).unwrap();
            let other_suffix = format!("{host}{extra}");
            let other_prefix = format!("{extra}{host}");
            prop_assert!(!pattern.matches(&normalize_host(&other_suffix).unwrap()));
            prop_assert!(!pattern.matches(&normalize_host(&other_prefix).unwrap()));
        }

        /// Whatever the authority, the host a rule sees is one Envoy's router sees too: a plain host name or an
        /// IPv6 literal, and never a value with a colon outside brackets.
        #[test]
        fn accepted_hosts_are_host_names(s in "\\PC{0,40}") {
            if let Ok(host) = normalize_host(&s) {
                prop_assert!(!host.is_empty());
                prop_assert!(host.starts_with('[') || !host.contains(':'));
                prop_assert!(host.starts_with('[') || host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
            }
        }
    }
}
