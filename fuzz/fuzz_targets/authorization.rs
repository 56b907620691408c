//! The `authorization` header as a client sends it: parsing never panics, and what it accepts is a real
//! `Basic` credential whose parts rebuild the decoded pair.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &[u8]| {
    if let Ok(credentials) = basic_auth::authorization::parse_basic(value) {
        assert_eq!(format!("{}:{}", credentials.user(), credentials.password()), credentials.pair());
        assert!(!credentials.user().is_empty(), "an empty user is refused");
    }
});
