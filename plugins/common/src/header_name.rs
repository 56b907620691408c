//! Header names a plugin's config asks the gateway to set or remove, checked at load: lower-case tokens (what
//! HTTP/2 requires and Envoy stores), never a pseudo-header or a header that belongs to the connection rather
//! than the request.

use crate::ConfigError;

/// Headers no config may set or remove: `host` is the authority (pseudo-header actions change it), the rest are
/// hop-by-hop or frame the body.
const CONNECTION_HEADERS: [&str; 9] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
];

/// Whether `name` is a header a plugin may set or remove; the error says why not.
pub fn check_settable(name: &str) -> Result<(), ConfigError> {
    if name.starts_with(':') {
        return Err(ConfigError::new("", format!("`{name}` is a pseudo-header")));
    }
    if CONNECTION_HEADERS.contains(&name) {
        return Err(ConfigError::new("", format!("`{name}` belongs to the connection, not the request")));
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::new("", format!("`{name}` is not a lower-case header name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers_pass_and_the_rest_say_why_not() {
        for ok in ["x-wasmgate-user", "x_tenant", "x-route-2"] {
            check_settable(ok).unwrap();
        }
        for (bad, why) in [
            (":path", "pseudo-header"),
            ("host", "connection"),
            ("Transfer-Encoding", "lower-case"),
            ("content-length", "connection"),
            ("", "lower-case"),
            ("x user", "lower-case"),
        ] {
            let e = check_settable(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
