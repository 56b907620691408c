//! `Authorization` headers seen before, by their keyed fingerprint: the configured user each names and the
//! fingerprint of its `user:password`. A client sends the same header on every request; decoding and checking
//! it again (base64, UTF-8, the control-character scan, the pair's fingerprint) cost more than fingerprinting
//! the header and one table lookup. Nothing here says whether the password is right: that stays with the
//! credential sets, which answer from the pair's fingerprint.
//!
//! Every well-formed header is remembered, an unknown user's too: a header seen before then takes the same
//! path whoever it names, so the time of an answer does not tell a guesser which names exist. The table is
//! bounded: emptied when full, as the credential caches are. No password is kept, only fingerprints (see
//! [`Fingerprinter`] for why an attacker, who does not know the key, can neither forge an entry nor learn from
//! one).

use crate::fingerprint::{Fingerprint, FingerprintHasher, Fingerprinter};
use crate::user_id::UserId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Enough for every client of a gateway worker; a flood of distinct headers only empties it now and then.
const LIMIT: usize = 1024;

/// What a remembered header decoded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// `None`: a user no rule has.
    pub user: Option<UserId>,
    /// The fingerprint of `user:password`, under the config's key (the one the credential sets use).
    pub pair: Fingerprint,
    /// The fingerprint the lockout tallies the user by (zero without a lockout).
    pub lockout_user: Fingerprint,
}

#[derive(Debug)]
pub struct RememberedHeaders {
    fingerprinter: Fingerprinter,
    seen: RefCell<HashMap<Fingerprint, Remembered, BuildHasherDefault<FingerprintHasher>>>,
}

impl RememberedHeaders {
    pub fn new(fingerprinter: Fingerprinter) -> Self {
        Self { fingerprinter, seen: RefCell::default() }
    }

    /// The table's key for a header value.
    pub fn key(&self, header: &[u8]) -> Fingerprint {
        self.fingerprinter.of(header)
    }

    pub fn get(&self, key: &Fingerprint) -> Option<Remembered> {
        self.seen.borrow().get(key).copied()
    }

    pub fn remember(&self, key: Fingerprint, remembered: Remembered) {
        let mut seen = self.seen.borrow_mut();
        if seen.len() >= LIMIT {
            seen.clear();
        }
        seen.insert(key, remembered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_remembered_by_its_exact_bytes_and_the_table_stays_bounded() {
        let headers = RememberedHeaders::new(Fingerprinter::random().unwrap());
        let entry = Remembered { user: Some(UserId(3)), pair: [7; 16], lockout_user: [0; 16] };
        let key = headers.key(b"Basic dTpw");
        headers.remember(key, entry);
        assert_eq!(headers.get(&headers.key(b"Basic dTpw")), Some(entry));
        assert_eq!(headers.get(&headers.key(b"basic dTpw")), None, "another spelling is another header");
        for i in 0..LIMIT as u32 {
            headers.remember(headers.key(&i.to_le_bytes()), entry);
        }
        assert!(headers.seen.borrow().len() <= LIMIT);
    }
}
