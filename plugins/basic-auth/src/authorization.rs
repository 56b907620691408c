//! Decoding an `Authorization: Basic ...` header (RFC 7617) from untrusted bytes. Every failure is a value
//! naming the reason; the reason is logged, the credentials never are.

use crate::fingerprint::{Fingerprint, Fingerprinter};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::fmt;

/// Longer headers are refused before any decoding: real Basic credentials are far shorter.
pub const MAX_HEADER_LEN: usize = 4096;

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    TooLong,
    NotBasic,
    NoCredentials,
    BadBase64,
    NotUtf8,
    MissingColon,
    EmptyUser,
    ControlCharacter,
    /// More than one `authorization` header.
    Duplicate,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "authorization header too long",
            Self::NotBasic => "authorization scheme is not Basic",
            Self::NoCredentials => "no credentials after `Basic`",
            Self::BadBase64 => "credentials are not valid base64",
            Self::NotUtf8 => "decoded credentials are not UTF-8",
            Self::MissingColon => "decoded credentials have no `:`",
            Self::EmptyUser => "empty user name",
            Self::ControlCharacter => "control character in credentials",
            Self::Duplicate => "several authorization headers",
        })
    }
}

/// A decoded `user:password`, kept together so it can be hashed in one piece.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pair: String,
    colon: usize,
}

impl BasicCredentials {
    /// Builds credentials from an already decoded `user:password`, with the same checks as a header.
    pub fn from_pair(pair: String) -> Result<Self, Malformed> {
        let colon = pair.find(':').ok_or(Malformed::MissingColon)?;
        if colon == 0 {
            return Err(Malformed::EmptyUser);
        }
        // Unicode's control characters are U+0000–U+001F and U+007F–U+009F; the last 32 are C2 80–C2 9F in
        // UTF-8. Looked for in one pass over the bytes: a char-by-char walk costs more on every request.
        let mut before = 0;
        let control = pair.bytes().any(|b| {
            let c1 = before == 0xC2 && (0x80..=0x9F).contains(&b);
            before = b;
            c1 || b < 0x20 || b == 0x7F
        });
        if control {
            return Err(Malformed::ControlCharacter);
        }
        Ok(Self { pair, colon })
    }

    pub fn user(&self) -> &str {
        &self.pair[..self.colon]
    }

    pub fn password(&self) -> &str {
        &self.pair[self.colon + 1..]
    }

    /// `user:password` as sent.
    pub fn pair(&self) -> &str {
        &self.pair
    }

    /// The pair's fingerprint: what credential sets store and compare instead of the password.
    pub fn fingerprint(&self, fingerprinter: &Fingerprinter) -> Fingerprint {
        fingerprinter.of(self.pair.as_bytes())
    }
}

// Never print the password, not even in a debug log.
impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials").field("user", &self.user()).finish_non_exhaustive()
    }
}

/// Decodes base64 of `user:password` (config credentials and headers share this).
pub fn decode_token(token: &[u8]) -> Result<BasicCredentials, Malformed> {
    let bytes = BASE64.decode(token).map_err(|_| Malformed::BadBase64)?;
    let pair = String::from_utf8(bytes).map_err(|_| Malformed::NotUtf8)?;
    BasicCredentials::from_pair(pair)
}

/// Parses a whole `Authorization` header value. The scheme is case-insensitive (RFC 9110); spaces or tabs
/// may separate it from the token and trail it.
pub fn parse_basic(value: &[u8]) -> Result<BasicCredentials, Malformed> {
    if value.len() > MAX_HEADER_LEN {
        return Err(Malformed::TooLong);
    }
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let value = value.trim_ascii();
    let split = value.iter().position(is_space);
    let (scheme, rest) = match split {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &value[value.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(Malformed::NotBasic);
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(Malformed::NoCredentials);
    }
    // Spaces and other bytes outside the alphabet are refused by the decoder (`BadBase64`).
    decode_token(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(pair: &str) -> String {
        format!("Basic {}", BASE64.encode(pair))
    }

    #[test]
    fn decodes_a_plain_header() {
        let c = parse_basic(header("username:password").as_bytes()).unwrap();
        assert_eq!((c.user(), c.password()), ("username", "password"));
    }

    #[test]
    fn password_may_contain_colons_and_be_empty() {
        let c = parse_basic(header("u:a:b").as_bytes()).unwrap();
        assert_eq!((c.user(), c.password()), ("u", "a:b"));
        assert_eq!(parse_basic(header("u:").as_bytes()).unwrap().password(), "");
    }

    #[test]
    fn scheme_case_and_spacing() {
        let token = BASE64.encode("u:p");
        for v in [
            format!("basic {token}"),
            format!("BASIC\t{token}"),
            format!("Basic   {token}  "),
            format!(" Basic {token}"),
        ] {
            assert!(parse_basic(v.as_bytes()).is_ok(), "{v:?}");
        }
        let unpadded = BASE64.encode("ab:c").trim_end_matches('=').to_string();
        assert!(parse_basic(format!("Basic {unpadded}").as_bytes()).is_ok());
    }

    #[test]
    fn every_malformation_has_its_reason() {
        let cases: Vec<(Vec<u8>, Malformed)> = vec![
            (format!("Basic {}", "A".repeat(MAX_HEADER_LEN)).into_bytes(), Malformed::TooLong),
            (b"Bearer abc".to_vec(), Malformed::NotBasic),
            (b"Basicabc".to_vec(), Malformed::NotBasic),
            (b"Basic".to_vec(), Malformed::NoCredentials),
            (b"Basic    ".to_vec(), Malformed::NoCredentials),
            (b"Basic !!!".to_vec(), Malformed::BadBase64),
            (b"Basic dTpw dTpw".to_vec(), Malformed::BadBase64),
            (format!("Basic {}", BASE64.encode([0xff, 0xfe, b':', b'x'])).into_bytes(), Malformed::NotUtf8),
            (header("nocolon").into_bytes(), Malformed::MissingColon),
            (header(":password").into_bytes(), Malformed::EmptyUser),
            (header("u\u{0}:p").into_bytes(), Malformed::ControlCharacter),
            (b"Basic \xff\xfe".to_vec(), Malformed::BadBase64),
        ];
        for (value, want) in cases {
            assert_eq!(parse_basic(&value).unwrap_err(), want, "{:?}", String::from_utf8_lossy(&value));
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = parse_basic(header("alice:s3cret").as_bytes()).unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("alice") && !shown.contains("s3cret"), "{shown}");
    }

    proptest! {
        #[test]
        fn any_bytes_give_a_value_never_a_panic(value in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_basic(&value);
        }

        /// The byte-wise control check refuses exactly what a char-by-char walk would.
        #[test]
        fn control_characters_are_found_by_byte(user in "[^:]{1,8}", password in "\\PC{0,8}[\\p{Cc}]?\\PC{0,8}") {
            let pair = format!("{user}:{password}");
            let has_control = pair.chars().any(char::is_control);
            let refused = BasicCredentials::from_pair(pair) == Err(Malformed::ControlCharacter);
            prop_assert_eq!(refused, has_control);
        }

        #[test]
        fn encoded_pairs_round_trip(user in "[^:\\p{Cc}]{1,20}", password in "[^\\p{Cc}]{0,20}") {
            let c = parse_basic(header(&format!("{user}:{password}")).as_bytes()).unwrap();
            prop_assert_eq!(c.user(), user.as_str());
            prop_assert_eq!(c.password(), password.as_str());
        }
    }
}
