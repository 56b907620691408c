//! The credentials of one rule, stored so that no plaintext password stays in memory and every comparison is
//! constant-time. Accepted forms, per entry of `credentials`:
//! - `user:password` or base64 of it (Istio's forms): kept as the SHA-256 of `user:password`;
//! - `user:$2y$...` / `$2b$` / `$2a$` (htpasswd -B, bcrypt);
//! - `user:{SHA}base64` (htpasswd -s, as Envoy's native basic_auth).

use crate::authorization::{BasicCredentials, decode_token};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashSet;
use subtle::{Choice, ConstantTimeEq};
use wasmgate_common::ConfigError;

/// bcrypt costs tens of milliseconds per check in a Wasm VM; a credential that verified once is remembered
/// (by its SHA-256) so later requests cost a hash. Bounded: the set is emptied when full.
const VERIFIED_CACHE_LIMIT: usize = 1024;

#[derive(Debug)]
enum Hashed {
    Bcrypt(String),
    Sha1([u8; 20]),
}

#[derive(Debug, Default)]
pub struct CredentialSet {
    plain: Vec<[u8; 32]>,
    hashed: Vec<(String, Hashed)>,
    verified: RefCell<HashSet<[u8; 32]>>,
}

/// SHA-256 of `user:password`: what plaintext credentials and the verified cache are compared by.
pub fn digest(credentials: &BasicCredentials) -> [u8; 32] {
    Sha256::digest(credentials.pair().as_bytes()).into()
}

impl CredentialSet {
    pub fn parse(entries: &[String]) -> Result<Self, ConfigError> {
        if entries.is_empty() {
            return Err(ConfigError::new("", "at least one credential is required"));
        }
        let mut set = Self::default();
        for (i, entry) in entries.iter().enumerate() {
            set.add(entry).map_err(|e| e.within(&format!("[{i}]")))?;
        }
        Ok(set)
    }

    fn add(&mut self, entry: &str) -> Result<(), ConfigError> {
        let Some((user, secret)) = entry.split_once(':') else {
            // No colon: Istio's base64 form of `user:password`.
            let pair = decode_token(entry.trim().as_bytes())
                .map_err(|e| ConfigError::new("", format!("neither `user:password` nor its base64: {e}")))?;
            self.plain.push(digest(&pair));
            return Ok(());
        };
        if user.is_empty() {
            return Err(ConfigError::new("", "empty user name"));
        }
        if let Some(b64) = secret.strip_prefix("{SHA}") {
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| ConfigError::new("", format!("user `{user}`: {{SHA}} hash is not base64")))?;
            let hash: [u8; 20] = raw
                .try_into()
                .map_err(|_| ConfigError::new("", format!("user `{user}`: {{SHA}} hash is not 20 bytes")))?;
            self.hashed.push((user.to_string(), Hashed::Sha1(hash)));
        } else if ["$2a$", "$2b$", "$2x$", "$2y$"].iter().any(|p| secret.starts_with(p)) {
            let bad = || {
                ConfigError::new(
                    "",
                    format!("user `{user}`: bad bcrypt hash (want `$2y$<cost 04-31>$` and 53 characters)"),
                )
            };
            let parts = secret.parse::<bcrypt::HashParts>().map_err(|_| bad())?;
            // A cost bcrypt cannot run would refuse every login at request time instead of at load.
            if !(4..=31).contains(&parts.get_cost()) {
                return Err(bad());
            }
            self.hashed.push((user.to_string(), Hashed::Bcrypt(secret.to_string())));
        } else if secret.starts_with("$apr1$")
            || secret.starts_with("$1$")
            || secret.starts_with("$5$")
            || secret.starts_with("$6$")
        {
            return Err(ConfigError::new(
                "",
                format!("user `{user}`: unsupported hash scheme; use bcrypt (`htpasswd -nbB user pass`) or {{SHA}}"),
            ));
        } else {
            let pair = BasicCredentials::from_pair(entry.to_string())
                .map_err(|e| ConfigError::new("", format!("user `{user}`: {e}")))?;
            self.plain.push(digest(&pair));
        }
        Ok(())
    }

    /// Whether `credentials` (whose SHA-256 is `pair_digest`) are in this set. Plaintext entries are all
    /// compared, in constant time, whatever matches; hashed entries are looked up by user name.
    pub fn verify(&self, credentials: &BasicCredentials, pair_digest: &[u8; 32]) -> bool {
        let plain = self.plain.iter().fold(Choice::from(0), |acc, d| acc | d.ct_eq(pair_digest));
        if bool::from(plain) {
            return true;
        }
        if self.hashed.is_empty() {
            return false;
        }
        if self.verified.borrow().contains(pair_digest) {
            return true;
        }
        let ok = self.hashed.iter().filter(|(user, _)| user == credentials.user()).any(|(_, hash)| match hash {
            Hashed::Sha1(want) => {
                let got: [u8; 20] = Sha1::digest(credentials.password().as_bytes()).into();
                bool::from(got.ct_eq(want))
            }
            Hashed::Bcrypt(hash) => bcrypt::verify(credentials.password(), hash).unwrap_or(false),
        });
        if ok {
            let mut cache = self.verified.borrow_mut();
            if cache.len() >= VERIFIED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(*pair_digest);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(pair: &str) -> BasicCredentials {
        BasicCredentials::from_pair(pair.to_string()).unwrap()
    }

    fn check(set: &CredentialSet, pair: &str) -> bool {
        let c = creds(pair);
        set.verify(&c, &digest(&c))
    }

    #[test]
    fn plain_and_base64_forms() {
        let set = CredentialSet::parse(&["username:password".into(), STANDARD.encode("bob:b:2")]).unwrap();
        assert!(check(&set, "username:password"));
        assert!(check(&set, "bob:b:2"));
        assert!(!check(&set, "username:passwore"));
        assert!(!check(&set, "bob:b"));
    }

    #[test]
    fn bcrypt_and_sha() {
        let bcrypt_hash =
            bcrypt::hash_with_salt("s3cret", 4, [7u8; 16]).unwrap().format_for_version(bcrypt::Version::TwoY);
        let sha = STANDARD.encode(Sha1::digest(b"hunter2"));
        let set = CredentialSet::parse(&[format!("alice:{bcrypt_hash}"), format!("carol:{{SHA}}{sha}")]).unwrap();
        assert!(check(&set, "alice:s3cret"));
        assert!(check(&set, "alice:s3cret"), "second check from the cache");
        assert!(!check(&set, "alice:s3creT"));
        assert!(!check(&set, "carol:s3cret"));
        assert!(check(&set, "carol:hunter2"));
        assert!(!check(&set, "alice:hunter2"));
    }

    #[test]
    fn bad_entries_are_refused() {
        let cases = [
            (vec![], "at least one"),
            (vec![":pw".to_string()], "empty user"),
            (vec!["not base64!".to_string()], "neither"),
            (vec![STANDARD.encode("nocolon")], "no `:`"),
            (vec!["u:{SHA}zzz".to_string()], "{SHA}"),
            (vec!["u:$2y$10$short".to_string()], "bcrypt"),
            (
                vec![format!(
                    "u:{}",
                    bcrypt::hash_with_salt("p", 4, [1u8; 16])
                        .unwrap()
                        .format_for_version(bcrypt::Version::TwoY)
                        .replacen("$04$", "$99$", 1)
                )],
                "cost 04-31",
            ),
            (vec!["u:$apr1$abc$def".to_string()], "unsupported hash"),
        ];
        for (entries, want) in cases {
            let err = CredentialSet::parse(&entries).unwrap_err();
            assert!(err.to_string().contains(want), "{entries:?}: {err}");
        }
        let err = CredentialSet::parse(&["ok:pw".into(), ":x".into()]).unwrap_err();
        assert_eq!(err.path, "[1]");
    }
}
