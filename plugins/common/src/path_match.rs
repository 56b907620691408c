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

    /// Whether every path `other` matches is also matched by this one (so exempting it would leave nothing).
    pub fn covers(&self, other: &PathMatch) -> bool {
        match (self, other) {
            (Self::Prefix(p), Self::Prefix(o) | Self::Exact(o)) => o.starts_with(p.as_str()),
            (Self::Prefix(p), Self::Suffix(_)) => p == "/",
            (Self::Exact(e), Self::Exact(o)) => e == o,
            (Self::Suffix(s), Self::Suffix(o) | Self::Exact(o)) => o.ends_with(s.as_str()),
            _ => false,
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

/// The paths a backend may end up serving for `path` (already without its query) when they differ from `path`
/// itself: percent-escapes decoded (repeatedly, as a decoding proxy in front of a decoding server would), `\\`
/// read as `/`, `;parameters` dropped from each segment, and dot segments resolved either as RFC 3986 does
/// (`/a//../b` is `/a/b`) or after merging slashes (`/b`), the two orders servers use. Empty when the path has
/// nothing a server could read another way, so the common path costs one scan.
///
/// Envoy under Istio's default `BASE` normalisation resolves dot segments but keeps `//`, `%2F`, `%5C` and `;`;
/// servers behind it differ in what they do with those. A policy compares its decision for the path and for
/// each of these readings, and refuses the request when they differ instead of guessing which one the backend
/// takes.
pub fn other_readings(path: &str) -> Vec<String> {
    // Envoy only forwards origin-form paths (and `*` for OPTIONS), so anything else has no other reading.
    if !may_read_otherwise(path) || !path.starts_with('/') {
        return Vec::new();
    }
    let mut decoded = path.to_string();
    // Three rounds undo `%25252F`-style layers; a path that still decodes further after that is left as it is,
    // and differs from the raw path anyway.
    for _ in 0..3 {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let decoded = path_without_query(&decoded).replace('\\', "/");
    let segments: Vec<&str> = decoded.split('/').skip(1).map(|s| s.split(';').next().unwrap_or_default()).collect();
    let mut readings: Vec<String> = Vec::with_capacity(2);
    for merge in [false, true] {
        let reading = resolve_dots(&segments, merge);
        if reading != path && !readings.contains(&reading) {
            readings.push(reading);
        }
    }
    readings
}

/// Whether the path holds `%`, `\`, `;`, `//` or `/.`, the only things another reading can come from: one pass
/// over the bytes, since nearly every request has none.
fn may_read_otherwise(path: &str) -> bool {
    let mut before = 0;
    for b in path.bytes() {
        if matches!(b, b'%' | b'\\' | b';') || (before == b'/' && matches!(b, b'/' | b'.')) {
            return true;
        }
        before = b;
    }
    false
}

/// Joins path segments (those after the leading `/`), resolving `.` and `..`; `merge` drops empty segments
/// first, as a server that merges slashes does.
fn resolve_dots(segments: &[&str], merge: bool) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "" if merge && i != last => {}
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    if merge {
        // Only a trailing empty segment (the final `/`) is kept.
        let trailing = out.last() == Some(&"");
        out.retain(|s| !s.is_empty());
        if trailing {
            out.push("");
        }
    }
    let mut path = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
    for segment in &out {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// `%XX` escapes decoded (lossy for bytes that are not UTF-8); malformed escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `:path` up to its query string or fragment.
pub fn path_without_query(path: &str) -> &str {
    match path.bytes().position(|b| b == b'?' || b == b'#') {
        Some(i) => &path[..i],
        None => path,
    }
}

/// [`path_without_query`] and [`may_read_otherwise`] of what it leaves, in one pass over `:path`: every policy
/// needs both for every request, and nearly every path has nothing another reading can come from.
pub(crate) fn split_path(path: &str) -> (&str, bool) {
    let mut otherwise = false;
    let mut before = 0;
    for (i, b) in path.bytes().enumerate() {
        match b {
            b'?' | b'#' => return (&path[..i], otherwise),
            b'%' | b'\\' | b';' => otherwise = true,
            b'/' | b'.' if before == b'/' => otherwise = true,
            _ => {}
        }
        before = b;
    }
    (path, otherwise)
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
    fn other_readings_of_a_path() {
        let cases: [(&str, &[&str]); 21] = [
            ("//admin/users", &["/admin/users"]),
            ("/admin%2Fusers", &["/admin/users"]),
            ("/admin%2fusers", &["/admin/users"]),
            ("/admin;x=1", &["/admin"]),
            ("/admin;x=1/users", &["/admin/users"]),
            ("/admin%5Cusers", &["/admin/users"]),
            ("/admin\\users", &["/admin/users"]),
            ("/%2Fadmin", &["//admin", "/admin"]),
            ("/%252Fadmin", &["//admin", "/admin"]),
            ("/admin%3Fdebug", &["/admin"]),
            ("/grpc.health.v1.Health/..%2FModelInfer", &["/ModelInfer"]),
            ("/grpc.health.v1.Health//../ModelInfer", &["/grpc.health.v1.Health/ModelInfer", "/ModelInfer"]),
            ("/a/./b/", &["/a/b/"]),
            ("/a/..", &["/"]),
            ("/a//", &["/a/"]),
            ("/%", &[]),
            ("/a%2", &[]),
            ("/admin/users", &[]),
            ("/inference.GRPCInferenceService/ModelInfer", &[]),
            ("/", &[]),
            ("/a%20b", &["/a b"]),
        ];
        for (path, want) in cases {
            assert_eq!(other_readings(path), want, "{path}");
        }
    }

    proptest::proptest! {
        /// The one-pass check agrees with plain searches for each thing that reads another way.
        #[test]
        fn the_one_pass_check_finds_what_the_searches_find(path in r"[a-z/.%;\\]{0,12}") {
            let searched = path.contains(['%', '\\', ';']) || path.contains("//") || path.contains("/.");
            proptest::prop_assert_eq!(may_read_otherwise(&path), searched, "{}", path);
        }

        /// The fused pass gives what the two it stands for give.
        #[test]
        fn splitting_a_path_is_cutting_its_query_then_the_one_pass_check(path in r"[a-z/.%;\\?#]{0,14}") {
            let without_query = path_without_query(&path);
            proptest::prop_assert_eq!(split_path(&path), (without_query, may_read_otherwise(without_query)), "{}", path);
        }

        #[test]
        fn readings_never_panic_and_are_absolute(path in "/[a-z/.;%0-9A-F\\\\]{0,30}") {
            for reading in other_readings(&path) {
                proptest::prop_assert!(reading.starts_with('/'), "{} -> {}", path, reading);
            }
        }
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
