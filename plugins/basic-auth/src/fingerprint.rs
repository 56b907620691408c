//! Keyed fingerprints of what clients send (credential pairs, user names), for comparisons and table keys
//! that must be cheap on every request and that an attacker cannot steer.

use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;
use wasmgate_common::ConfigError;

/// 128 bits of SipHash-2-4 under a [`Fingerprinter`]'s key.
pub type Fingerprint = [u8; 16];

/// Fingerprints byte strings with SipHash-2-4 (128-bit output) under a key drawn at load from the host's
/// randomness (WASI `random_get`; under Envoy its random generator) and never shown anywhere.
///
/// Why this suffices where a SHA-256 was used before: a fingerprint is only compared with other fingerprints
/// under the same key, inside this VM. SipHash is a pseudo-random function: to whoever does not know the key,
/// its outputs on distinct inputs look like independent uniform 128-bit strings. So an attacker's credential
/// pair matches a stored entry, or one of the ≤ 2 × 1024 cached ones, with probability at most 2^-128 each per
/// try, and a header of theirs one of the ≤ 1024 remembered headers (which stand for their pairs, see
/// [`crate::remembered`]) with the same odds: about 2^-116 per request in all, no better than guessing the
/// password's fingerprint blind; nor can two user names be chosen to share a lockout tally. And the key cannot be learned: fingerprints never leave
/// the VM, equality with plaintext entries is tested in constant time, and the hash-table lookups keyed by
/// fingerprints only tell whether a value was seen before, which its sender knows anyway. Collision
/// resistance, what a public unkeyed hash must offer, is not needed: nobody outside can compute the function.
/// It costs a few hundred instructions for a short string, against SHA-256's several thousand.
#[derive(Clone)]
pub struct Fingerprinter {
    key: [u8; 16],
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter { key: <hidden> }")
    }
}

impl Fingerprinter {
    /// A fresh random key; a host without randomness is a configuration error (refused at load).
    pub fn random() -> Result<Self, ConfigError> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key)
            .map_err(|e| ConfigError::new("", format!("no randomness from the host for a fingerprint key: {e}")))?;
        Ok(Self { key })
    }

    pub fn of(&self, bytes: &[u8]) -> Fingerprint {
        let mut hasher = SipHasher24::new_with_key(&self.key);
        hasher.write(bytes);
        hasher.finish128().as_bytes()
    }
}

/// Hashes a [`Fingerprint`] for a hash table by taking 8 of its bytes: they are already uniform to whoever does
/// not know the key, so hashing them again (std's SipHash-1-3 per lookup) buys nothing against hash flooding.
#[derive(Debug, Default, Clone, Copy)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 16]` hashes as its length, then its bytes: keep the last 8 bytes written.
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_usize(&mut self, _length: usize) {}
}

/// A set of fingerprints, hashed by [`FingerprintHasher`].
pub type FingerprintSet = std::collections::HashSet<Fingerprint, std::hash::BuildHasherDefault<FingerprintHasher>>;

#[cfg(test)]
mod tests {
    use super::Fingerprinter;

    #[test]
    fn equal_under_one_key_and_unrelated_under_another() {
        let (a, b) = (Fingerprinter::random().unwrap(), Fingerprinter::random().unwrap());
        assert_eq!(a.of(b"user:pw"), a.of(b"user:pw"));
        assert_ne!(a.of(b"user:pw"), a.of(b"user:pX"));
        assert_ne!(a.of(b"user:pw"), b.of(b"user:pw"), "each load draws its own key");
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.key)), "the key never shows");
    }

    #[test]
    fn a_set_of_fingerprints_hashes_by_their_own_bytes() {
        use std::hash::BuildHasher;
        let fingerprint: super::Fingerprint = core::array::from_fn(|i| i as u8);
        let hashed = std::hash::BuildHasherDefault::<super::FingerprintHasher>::default().hash_one(fingerprint);
        assert_eq!(hashed, u64::from_be_bytes([8, 9, 10, 11, 12, 13, 14, 15]));
        let mut set = super::FingerprintSet::default();
        assert!(set.insert(fingerprint) && !set.insert(fingerprint));
    }
}
