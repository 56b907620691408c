//! Host patterns and path matchers from config, against request authorities and paths: no panics, and the
//! port, a trailing dot or letter case never change whether an exact host pattern matches.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasmgate_common::host_match::{HostPattern, normalize_host};
use wasmgate_common::path_match::PathMatch;

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
    if let Ok(pattern) = HostPattern::parse(&input.pattern) {
        let host = normalize_host(&input.authority);
        let plain = pattern.matches(&host);
        if !input.authority.contains(':') && !input.authority.contains('[') && !input.authority.is_empty() {
            let with_port = format!("{}:{}", input.authority, input.port);
            assert_eq!(plain, pattern.matches(&normalize_host(&with_port)), "port changed the match");
            let upper = input.authority.to_ascii_uppercase();
            assert_eq!(plain, pattern.matches(&normalize_host(&upper)), "case changed the match");
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
});
