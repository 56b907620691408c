//! Host patterns and path matchers from config, against request authorities and paths: no panics; an authority
//! is read as a host name or refused, and a port or letter case never change whether a pattern matches; every
//! other reading of a path is an absolute path.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasmgate_common::host_match::{HostPattern, normalize_host};
use wasmgate_common::path_match::{PathMatch, other_readings};

#[derive(Arbitrary, Debug)]
struct Input {
    pattern: String,
    authority: String,
    port: u16,
    path_kind: u8,
    path_pattern: String,
    path: String,
}

fuzz_target!(|input: Input| {
    if let Ok(pattern) = HostPattern::parse(&input.pattern)
        && let Ok(host) = normalize_host(&input.authority)
    {
        assert!(host.starts_with('[') || !host.contains(':'), "a colon left in {host:?}");
        let plain = pattern.matches(&host);
        if !input.authority.contains(':') && !input.authority.starts_with('[') {
            let with_port = format!("{}:{}", input.authority, input.port);
            assert_eq!(Ok(plain), normalize_host(&with_port).map(|h| pattern.matches(&h)), "port changed the match");
            let upper = input.authority.to_ascii_uppercase();
            assert_eq!(Ok(plain), normalize_host(&upper).map(|h| pattern.matches(&h)), "case changed the match");
        }
    }
    let (prefix, exact, suffix) = match input.path_kind % 3 {
        0 => (Some(input.path_pattern), None, None),
        1 => (None, Some(input.path_pattern), None),
        _ => (None, None, Some(input.path_pattern)),
    };
    if let Ok(matcher) = PathMatch::from_fields(prefix, exact, suffix) {
        let _ = matcher.matches(&input.path);
    }
    for reading in other_readings(&input.path) {
        assert!(reading.starts_with('/'), "{:?} read as {reading:?}", input.path);
    }
});
