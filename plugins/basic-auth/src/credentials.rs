//! The credentials of one rule, stored so that no plaintext password stays in memory and every comparison is
//! constant-time. Accepted forms, per entry of `credentials`:
//! - `user:password` or base64 of it (Istio's forms): kept as the keyed fingerprint of `user:password`
//!   ([`Fingerprinter`]);
//! - `user:$2y$...` / `$2b$` / `$2a$` (htpasswd -B, bcrypt);
//! - `user:{SHA}base64` (htpasswd -s, as Envoy's native basic_auth).

use crate::authorization::{BasicCredentials, decode_token};
use crate::fingerprint::{Fingerprint, FingerprintSet, Fingerprinter};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use std::cell::RefCell;
use subtle::{Choice, ConstantTimeEq};
use wasmgate_common::ConfigError;

/// bcrypt costs tens of milliseconds per check in a Wasm VM; a credential that verified once is remembered
/// (by its fingerprint) so later requests cost a hash, and so is one that failed, so a guesser repeating a
/// password costs no bcrypt work. Each set is bounded: emptied when full.
const CACHE_LIMIT: usize = 1024;

/// The highest bcrypt cost accepted. Each step doubles the work: at 10 one check already holds a gateway worker
/// for ~150 ms under V8, at 12 ~0.6 s, at 31 over a day, and every request with a wrong password pays it.
pub const MAX_BCRYPT_COST: u32 = 12;

#[derive(Debug)]
enum Hashed {
    /// The hash and its cost.
    Bcrypt(String, u32),
    Sha1([u8; 20]),
}

impl Hashed {
    /// The work of checking a password against it, in bcrypt's units (2^cost key expansions); a SHA-1 is free
    /// next to one.
    fn work(&self) -> u64 {
        match self {
            Hashed::Bcrypt(_, cost) => 1 << cost,
            Hashed::Sha1(_) => 0,
        }
    }

    fn matches(&self, password: &str) -> bool {
        #[cfg(test)]
        tests::WORK_DONE.with(|done| done.set(done.get() + self.work()));
        match self {
            Hashed::Sha1(want) => {
                let got: [u8; 20] = Sha1::digest(password.as_bytes()).into();
                bool::from(got.ct_eq(want))
            }
            Hashed::Bcrypt(hash, _) => bcrypt::verify(password, hash).unwrap_or(false),
        }
    }
}

/// What checking a pair against a set gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Valid,
    Invalid,
    /// A bcrypt check was needed and the caller's budget had none left: nothing was learned.
    Busy,
}

#[derive(Debug)]
pub struct CredentialSet {
    fingerprinter: Fingerprinter,
    /// Every entry's user name, in order (a user may have several entries).
    users: Vec<String>,
    plain: Vec<Fingerprint>,
    hashed: Vec<(String, Hashed)>,
    /// Whether any entry is hashed (else a fingerprint alone decides).
    any_hashed: bool,
    /// The work of a wrong password for the user whose entries cost most to check, in bcrypt's units: every
    /// wrong password costs that much ([`verify`](Self::verify)), whoever it names, so that the answer's time
    /// tells a guesser nothing of which names exist or how their passwords are kept.
    work: u64,
}

/// What one set learned at run time: the pairs that verified against a hash, and those that failed. Kept apart
/// from the set, which is the config's and never changes.
#[derive(Debug, Default)]
pub struct Recalled {
    verified: RefCell<FingerprintSet>,
    rejected: RefCell<FingerprintSet>,
}

impl Recalled {
    /// Empties both caches, as a full one is emptied.
    #[cfg(test)]
    pub(crate) fn forget(&self) {
        self.verified.borrow_mut().clear();
        self.rejected.borrow_mut().clear();
    }
}

/// A well-formed bcrypt hash (22 characters of salt, 31 of hash) at `cost`: checking a password against it
/// costs what checking a real one does.
fn decoy_bcrypt(cost: u32) -> String {
    format!("$2y${cost:02}$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy")
}

impl CredentialSet {
    /// The set of `entries`, fingerprinted by `fingerprinter` (the config's: every set of a config shares it, so
    /// a request's pair is fingerprinted once for all of them).
    pub fn parse(entries: &[String], fingerprinter: &Fingerprinter) -> Result<Self, ConfigError> {
        if entries.is_empty() {
            return Err(ConfigError::new("", "at least one credential is required"));
        }
        let mut set = Self {
            fingerprinter: fingerprinter.clone(),
            users: Vec::new(),
            plain: Vec::new(),
            hashed: Vec::new(),
            any_hashed: false,
            work: 0,
        };
        for (i, entry) in entries.iter().enumerate() {
            set.add(entry).map_err(|e| e.within(&format!("[{i}]")))?;
        }
        set.any_hashed = !set.hashed.is_empty();
        set.work = set.users.iter().map(|user| set.work_of(user)).max().unwrap_or(0);
        Ok(set)
    }

    fn add(&mut self, entry: &str) -> Result<(), ConfigError> {
        let Some((user, secret)) = entry.split_once(':') else {
            // No colon: Istio's base64 form of `user:password`.
            let pair = decode_token(entry.trim().as_bytes())
                .map_err(|e| ConfigError::new("", format!("neither `user:password` nor its base64: {e}")))?;
            self.plain.push(pair.fingerprint(&self.fingerprinter));
            self.users.push(pair.user().to_string());
            return Ok(());
        };
        if user.is_empty() {
            return Err(ConfigError::new("", "empty user name"));
        }
        self.users.push(user.to_string());
        if let Some(b64) = secret.strip_prefix("{SHA}") {
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| ConfigError::new("", format!("user `{user}`: {{SHA}} hash is not base64")))?;
            let hash: [u8; 20] = raw
                .try_into()
                .map_err(|_| ConfigError::new("", format!("user `{user}`: {{SHA}} hash is not 20 bytes")))?;
            self.hashed.push((user.to_string(), Hashed::Sha1(hash)));
        } else if ["$2a$", "$2b$", "$2x$", "$2y$"].iter().any(|p| secret.starts_with(p)) {
            let parts = secret.parse::<bcrypt::HashParts>().map_err(|_| {
                ConfigError::new("", format!("user `{user}`: bad bcrypt hash (want `$2y$<cost>$` and 53 characters)"))
            })?;
            let cost = parts.get_cost();
            // A cost bcrypt cannot run would refuse every login at request time instead of at load.
            if cost < 4 {
                return Err(ConfigError::new("", format!("user `{user}`: bcrypt cost {cost} is below 4")));
            }
            if cost > MAX_BCRYPT_COST {
                return Err(ConfigError::new(
                    "",
                    format!(
                        "user `{user}`: bcrypt cost {cost} is above {MAX_BCRYPT_COST}: every wrong password would hold a \
                         gateway worker for {}; hash it again with a lower cost (`htpasswd -nbB -C 10 {user} ...`)",
                        bcrypt_time(cost)
                    ),
                ));
            }
            self.hashed.push((user.to_string(), Hashed::Bcrypt(secret.to_string(), cost)));
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
            self.plain.push(pair.fingerprint(&self.fingerprinter));
        }
        Ok(())
    }

    /// The user names of the entries (for `allow` lists, per-user counters and the forwarded identity).
    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// Whether checking a wrong password against this set can cost a bcrypt verification.
    pub fn has_bcrypt(&self) -> bool {
        self.work > 0
    }

    /// The work of checking a wrong password against `user`'s hashed entries.
    fn work_of(&self, user: &str) -> u64 {
        self.hashed.iter().filter(|(u, _)| u == user).map(|(_, hash)| hash.work()).sum()
    }

    /// What the set knows of a pair from its fingerprint alone: a plaintext entry (all compared, in constant
    /// time, whatever matches), a set without hashed entries (then nothing else can match), or what the set
    /// `recalled` of earlier checks. `None`: only checking the password against a hash can tell
    /// ([`verify`](Self::verify)).
    pub fn recall(&self, recalled: &Recalled, pair: &Fingerprint) -> Option<Check> {
        let plain = self.plain.iter().fold(Choice::from(0), |acc, f| acc | f.ct_eq(pair));
        if bool::from(plain) {
            return Some(Check::Valid);
        }
        if !self.any_hashed {
            return Some(Check::Invalid);
        }
        if recalled.verified.borrow().contains(pair) {
            return Some(Check::Valid);
        }
        if recalled.rejected.borrow().contains(pair) {
            return Some(Check::Invalid);
        }
        None
    }

    /// Whether `credentials` (whose fingerprint is `pair`) are in this set: what [`recall`](Self::recall) knows,
    /// else the hashed entries of the user it names. A wrong password then costs the set's [`work`](Self::work)
    /// whoever it names: the user's own entries, then decoy bcrypt hashes (which no password matches) for the
    /// rest, one per power of two left, so that an unknown user, a `{SHA}` user, a cost-4 user and a user with
    /// two entries all take as long. A check that needs bcrypt is handed to `slow`, which runs it and gives its
    /// result, or refuses (`None`: the budget is spent). The answer is remembered in `recalled`.
    pub fn verify(
        &self,
        recalled: &Recalled,
        credentials: &BasicCredentials,
        pair: &Fingerprint,
        slow: impl FnOnce(&dyn Fn() -> bool) -> Option<bool>,
    ) -> Check {
        if let Some(check) = self.recall(recalled, pair) {
            return check;
        }
        let entries: Vec<&Hashed> =
            self.hashed.iter().filter(|(user, _)| user == credentials.user()).map(|(_, hash)| hash).collect();
        let known = !entries.is_empty();
        let padding = decoys(self.work.saturating_sub(entries.iter().map(|h| h.work()).sum()));
        let password = credentials.password();
        let check = || {
            if entries.iter().any(|hash| hash.matches(password)) {
                return true;
            }
            // A `{SHA}`-only set: an unknown user's password is hashed too.
            if !known {
                let _ = Hashed::Sha1([0; 20]).matches(password);
            }
            padding.iter().fold(false, |any, decoy| any | decoy.matches(password))
        };
        let matched = if self.work > 0 {
            match slow(&check) {
                Some(matched) => matched,
                None => return Check::Busy,
            }
        } else {
            check()
        };
        let ok = known && matched;
        remember(if ok { &recalled.verified } else { &recalled.rejected }, *pair);
        if ok { Check::Valid } else { Check::Invalid }
    }
}

/// Decoy bcrypt hashes whose checks add up to `work` units: one at each cost whose bit is set (every entry's
/// cost is at least 4, so the lower bits of a difference of works are clear).
fn decoys(work: u64) -> Vec<Hashed> {
    (4..=MAX_BCRYPT_COST + 4)
        .filter(|cost| work & (1 << cost) != 0)
        .map(|cost| Hashed::Bcrypt(decoy_bcrypt(cost), cost))
        .collect()
}

fn remember(cache: &RefCell<FingerprintSet>, fingerprint: Fingerprint) {
    let mut cache = cache.borrow_mut();
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(fingerprint);
}

/// Roughly how long one bcrypt check at `cost` takes in a gateway worker (measured at cost 10: ~150 ms).
fn bcrypt_time(cost: u32) -> String {
    let millis = 150u64 << cost.saturating_sub(10).min(40);
    match millis {
        86_400_000.. => "over a day".into(),
        120_000.. => format!("~{} min", millis / 60_000),
        _ => format!("~{:.1} s", millis as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set with what it learns as it checks.
    #[derive(Debug)]
    struct Learning {
        set: CredentialSet,
        recalled: Recalled,
    }

    impl std::ops::Deref for Learning {
        type Target = CredentialSet;

        fn deref(&self) -> &CredentialSet {
            &self.set
        }
    }

    fn parse(entries: &[String]) -> Result<Learning, ConfigError> {
        let set = CredentialSet::parse(entries, &Fingerprinter::random().unwrap())?;
        Ok(Learning { set, recalled: Recalled::default() })
    }

    fn creds(pair: &str) -> BasicCredentials {
        BasicCredentials::from_pair(pair.to_string()).unwrap()
    }

    fn check(set: &Learning, pair: &str) -> bool {
        let c = creds(pair);
        set.verify(&set.recalled, &c, &c.fingerprint(&set.fingerprinter), |check| Some(check())) == Check::Valid
    }

    fn bcrypt_hash(password: &str, cost: u32) -> String {
        bcrypt::hash_with_salt(password, cost, [7u8; 16]).unwrap().format_for_version(bcrypt::Version::TwoY)
    }

    #[test]
    fn plain_and_base64_forms() {
        let set = parse(&["username:password".into(), STANDARD.encode("bob:b:2")]).unwrap();
        assert!(check(&set, "username:password"));
        assert!(check(&set, "bob:b:2"));
        assert!(!check(&set, "username:passwore"));
        assert!(!check(&set, "bob:b"));
    }

    #[test]
    fn bcrypt_and_sha() {
        let sha = STANDARD.encode(Sha1::digest(b"hunter2"));
        let set = parse(&[format!("alice:{}", bcrypt_hash("s3cret", 4)), format!("carol:{{SHA}}{sha}")]).unwrap();
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
                "above 12",
            ),
            (vec![format!("u:{}", bcrypt_hash("p", 4).replacen("$04$", "$03$", 1))], "below 4"),
            (vec![format!("u:{}", bcrypt_hash("p", 4).replacen("$04$", "$13$", 1))], "above 12"),
            (vec![format!("u:{}", bcrypt_hash("p", 4).replacen("$04$", "$31$", 1))], "hash it again with a lower cost"),
            (vec!["u:$apr1$abc$def".to_string()], "unsupported hash"),
        ];
        for (entries, want) in cases {
            let err = parse(&entries).unwrap_err();
            assert!(err.to_string().contains(want), "{entries:?}: {err}");
        }
        let err = parse(&["ok:pw".into(), ":x".into()]).unwrap_err();
        assert_eq!(err.path, "[1]");
    }

    /// Counts the bcrypt verifications `verify` asks to spend, and allows only `allowed` of them.
    fn budget(allowed: usize) -> (std::cell::Cell<usize>, usize) {
        (std::cell::Cell::new(0), allowed)
    }

    fn verify_with(set: &Learning, pair: &str, spent: &(std::cell::Cell<usize>, usize)) -> Check {
        let c = creds(pair);
        set.verify(&set.recalled, &c, &c.fingerprint(&set.fingerprinter), |check| {
            spent.0.set(spent.0.get() + 1);
            (spent.0.get() <= spent.1).then(check)
        })
    }

    thread_local! {
        /// bcrypt's units of work of every hash this thread checked a password against.
        pub(super) static WORK_DONE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// The work the checks of a wrong password for `user` ran, counted as each hash is checked.
    fn work_of_a_wrong_password(set: &Learning, user: &str) -> u64 {
        set.recalled.forget();
        WORK_DONE.set(0);
        assert_eq!(verify_with(set, &format!("{user}:wrong"), &budget(usize::MAX)), Check::Invalid);
        WORK_DONE.get()
    }

    /// The review's timings: an unknown user 113 ms, a cost-4 user 3.5 ms, a `{SHA}` user 0.3 ms, a user with two
    /// entries 209 ms. Every wrong password now costs what the costliest user's does.
    #[test]
    fn every_wrong_password_costs_the_same_work_whoever_it_names() {
        let sha = STANDARD.encode(Sha1::digest(b"hunter2"));
        let set = parse(&[
            format!("ten:{}", bcrypt_hash("a", 6)),
            format!("four:{}", bcrypt_hash("b", 4)),
            format!("sha:{{SHA}}{sha}"),
            format!("two:{}", bcrypt_hash("c", 6)),
            format!("two:{}", bcrypt_hash("d", 5)),
            "plain:pw".into(),
        ])
        .unwrap();
        assert_eq!(set.work, (1 << 6) + (1 << 5));
        for user in ["ten", "four", "sha", "two", "plain", "nobody"] {
            assert_eq!(work_of_a_wrong_password(&set, user), (1 << 6) + (1 << 5), "{user}");
        }
        assert_eq!(decoys((1 << 6) + (1 << 5) - (1 << 4)).iter().map(Hashed::work).collect::<Vec<_>>(), [16, 64]);
        // And the checks really run: each wrong password is refused, each right one accepted.
        let spent = budget(usize::MAX);
        for (pair, want) in [("ten:x", Check::Invalid), ("two:d", Check::Valid), ("sha:hunter2", Check::Valid)] {
            assert_eq!(verify_with(&set, pair, &spent), want, "{pair}");
        }
    }

    #[test]
    fn unknown_users_cost_the_same_bcrypt_check_as_known_ones() {
        let set = parse(&[format!("alice:{}", bcrypt_hash("s3cret", 5)), "bob:plain".into()]).unwrap();
        assert!(set.has_bcrypt());
        let spent = budget(usize::MAX);
        assert_eq!(verify_with(&set, "alice:wrong", &spent), Check::Invalid);
        assert_eq!(verify_with(&set, "mallory:wrong", &spent), Check::Invalid);
        // bob is a plaintext user: a wrong password for him is checked like an unknown user's.
        assert_eq!(verify_with(&set, "bob:wrong", &spent), Check::Invalid);
        assert_eq!(spent.0.get(), 3, "each of the three cost one bcrypt check");
        assert_eq!(verify_with(&set, "bob:plain", &spent), Check::Valid);
        assert_eq!(spent.0.get(), 3, "plaintext entries never cost one");
        // A decoy is a real hash at its cost, which no password matches.
        assert_eq!(decoy_bcrypt(5).parse::<bcrypt::HashParts>().unwrap().get_cost(), 5);
        assert!(!bcrypt::verify("", &decoy_bcrypt(4)).unwrap());
    }

    #[test]
    fn a_repeated_pair_costs_no_bcrypt_and_an_empty_budget_answers_busy() {
        let set = parse(&[format!("alice:{}", bcrypt_hash("s3cret", 4))]).unwrap();
        let spent = budget(2);
        assert_eq!(verify_with(&set, "alice:guess", &spent), Check::Invalid);
        assert_eq!(verify_with(&set, "alice:guess", &spent), Check::Invalid, "from the negative cache");
        assert_eq!(verify_with(&set, "alice:s3cret", &spent), Check::Valid);
        assert_eq!(verify_with(&set, "alice:s3cret", &spent), Check::Valid, "from the verified cache");
        assert_eq!(spent.0.get(), 2);
        assert_eq!(verify_with(&set, "alice:other", &spent), Check::Busy, "no budget left: nothing learned");
        assert_eq!(verify_with(&set, "nobody:other", &spent), Check::Busy, "unknown users wait the same");
        assert_eq!(verify_with(&set, "alice:s3cret", &spent), Check::Valid, "known-good pairs still pass");
    }

    #[test]
    fn sha_sets_never_ask_for_budget() {
        let sha = STANDARD.encode(Sha1::digest(b"hunter2"));
        let set = parse(&[format!("carol:{{SHA}}{sha}")]).unwrap();
        assert!(!set.has_bcrypt());
        let spent = budget(0);
        assert_eq!(verify_with(&set, "carol:hunter2", &spent), Check::Valid);
        assert_eq!(verify_with(&set, "dave:hunter2", &spent), Check::Invalid);
        assert_eq!(spent.0.get(), 0);
    }
}
