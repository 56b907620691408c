//! Lockout after repeated failures: once a client address has sent `max_failures` wrong passwords for one user
//! within `window`, that address is refused for that user for `duration`, right password or not; once it has
//! sent `max_address_failures` wrong passwords for any users (made-up names included), it is refused for every
//! user. This stops password guessing at the gateway, and the bcrypt work guessing costs, without locking a user
//! out for everybody else.
//!
//! The tally lives in the plugin's VM, one per Envoy worker thread: a guesser spread over N workers gets at most
//! N × `max_failures` tries per window. It holds at most [`MAX_TRACKED`] entries and never forgets an active
//! lock to make room: expired entries go first, then the oldest unlocked ones in a batch; when every entry is
//! an active lock, an address it does not know yet is refused ([`Admission::Full`]) rather than left untracked.
//! User names are kept as a 16-byte keyed fingerprint ([`Fingerprinter`]) and addresses cut at 64 bytes, so the
//! tally's memory is bounded whatever names clients send. While nobody has failed, a request costs one look at
//! an empty table: no fingerprint is computed.

use crate::fingerprint::{Fingerprint, Fingerprinter};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use wasmgate_common::{ConfigDuration, ConfigError};

pub const MAX_TRACKED: usize = 10_000;
/// Entries dropped at once when the tally is full, so a flood of new names costs one sort per batch.
const EVICT_BATCH: usize = MAX_TRACKED / 10;
const MAX_ADDRESS_LEN: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLockout {
    max_failures: u32,
    /// Default: 4 × `max_failures`.
    max_address_failures: Option<u32>,
    window: ConfigDuration,
    duration: ConfigDuration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    window_start: u64,
    locked_until: u64,
}

/// An address, for one user (by fingerprint) or for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    address: Box<str>,
    user: Option<Fingerprint>,
}

/// Whether a client may try a password now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Open,
    Locked,
    /// The tally is full of active locks and cannot count this client's failures: refused until one expires.
    Full,
}

#[derive(Debug)]
pub struct Lockout {
    max_failures: u32,
    max_address_failures: u32,
    window_ms: u64,
    duration_ms: u64,
    entries: RefCell<HashMap<Key, Entry>>,
    users: Fingerprinter,
}

impl Lockout {
    pub(crate) fn compile(raw: RawLockout) -> Result<Self, ConfigError> {
        if raw.max_failures == 0 {
            return Err(ConfigError::new("max_failures", "must be at least 1"));
        }
        let max_address_failures = raw.max_address_failures.unwrap_or(raw.max_failures.saturating_mul(4));
        if max_address_failures < raw.max_failures {
            return Err(ConfigError::new(
                "max_address_failures",
                format!("{max_address_failures} is below max_failures {}: it would lock first", raw.max_failures),
            ));
        }
        for (field, value) in [("window", raw.window), ("duration", raw.duration)] {
            if value.as_millis() == 0 {
                return Err(ConfigError::new(field, "must be longer than 0"));
            }
        }
        Self::new(raw.max_failures, max_address_failures, raw.window.as_millis(), raw.duration.as_millis())
    }

    pub fn new(
        max_failures: u32,
        max_address_failures: u32,
        window_ms: u64,
        duration_ms: u64,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            max_failures,
            max_address_failures,
            window_ms,
            duration_ms,
            entries: RefCell::default(),
            users: Fingerprinter::random()?,
        })
    }

    fn key(&self, address: &str, user: Option<&str>) -> Key {
        let mut end = address.len().min(MAX_ADDRESS_LEN);
        while !address.is_char_boundary(end) {
            end -= 1;
        }
        Key { address: address[..end].into(), user: user.map(|u| self.users.of(u.as_bytes())) }
    }

    /// Whether `client` may try a password for `user` at `now` (milliseconds).
    pub fn admit(&self, client: &str, user: &str, now: u64) -> Admission {
        let mut entries = self.entries.borrow_mut();
        if entries.is_empty() {
            return Admission::Open;
        }
        let keys = [self.key(client, Some(user)), self.key(client, None)];
        if keys.iter().any(|k| entries.get(k).is_some_and(|e| now < e.locked_until)) {
            return Admission::Locked;
        }
        let missing = keys.iter().filter(|k| !entries.contains_key(*k)).count();
        if entries.len() + missing > MAX_TRACKED && !self.make_room(&mut entries, now, missing) {
            return Admission::Full;
        }
        Admission::Open
    }

    /// Whether `client` is locked out for `user` at `now`.
    pub fn is_locked(&self, client: &str, user: &str, now: u64) -> bool {
        self.admit(client, user, now) == Admission::Locked
    }

    /// Counts a wrong password; returns whether it locked the client out (for this user or for all).
    pub fn record_failure(&self, client: &str, user: &str, now: u64) -> bool {
        let mut entries = self.entries.borrow_mut();
        let mut locked = false;
        for (key, limit) in
            [(self.key(client, Some(user)), self.max_failures), (self.key(client, None), self.max_address_failures)]
        {
            if !entries.contains_key(&key) && entries.len() >= MAX_TRACKED && !self.make_room(&mut entries, now, 1) {
                continue;
            }
            let entry = entries.entry(key).or_default();
            if now.saturating_sub(entry.window_start) >= self.window_ms {
                entry.failures = 0;
                entry.window_start = now;
            }
            entry.failures += 1;
            if entry.failures >= limit {
                entry.failures = 0;
                entry.window_start = now;
                entry.locked_until = now.saturating_add(self.duration_ms);
                locked = true;
            }
        }
        locked
    }

    /// A right password clears the client's failures for this user (not its address-wide count: one valid
    /// account must not reset a guesser's tally for the others).
    pub fn record_success(&self, client: &str, user: &str) {
        let mut entries = self.entries.borrow_mut();
        if !entries.is_empty() {
            entries.remove(&self.key(client, Some(user)));
        }
    }

    pub fn tracked(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Frees at least `needed` places without dropping an active lock: expired entries first, then the oldest
    /// unlocked ones, a batch at a time. Returns whether there is room.
    fn make_room(&self, entries: &mut HashMap<Key, Entry>, now: u64, needed: usize) -> bool {
        let window = self.window_ms;
        entries.retain(|_, e| now < e.locked_until || now.saturating_sub(e.window_start) < window);
        if entries.len() + needed <= MAX_TRACKED {
            return true;
        }
        let mut unlocked: Vec<(u64, Key)> =
            entries.iter().filter(|(_, e)| now >= e.locked_until).map(|(k, e)| (e.window_start, k.clone())).collect();
        unlocked.sort_unstable_by_key(|(start, _)| *start);
        for (_, key) in unlocked.into_iter().take(EVICT_BATCH.max(needed)) {
            entries.remove(&key);
        }
        entries.len() + needed <= MAX_TRACKED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn address(i: usize) -> String {
        format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)
    }

    #[test]
    fn locks_after_max_failures_in_the_window_then_lets_go() {
        let lockout = Lockout::new(3, 100, 60_000, 5_000).unwrap();
        assert!(!lockout.record_failure("10.0.0.1", "alice", 1_000));
        assert!(!lockout.record_failure("10.0.0.1", "alice", 2_000));
        assert!(!lockout.is_locked("10.0.0.1", "alice", 2_500));
        assert!(lockout.record_failure("10.0.0.1", "alice", 3_000));
        assert!(lockout.is_locked("10.0.0.1", "alice", 3_001));
        assert!(lockout.is_locked("10.0.0.1", "alice", 7_999));
        assert!(!lockout.is_locked("10.0.0.1", "alice", 8_000), "the lock ends after `duration`");
        // Other addresses and other users are not affected.
        assert!(!lockout.is_locked("10.0.0.2", "alice", 4_000));
        assert!(!lockout.is_locked("10.0.0.1", "bob", 4_000));
    }

    #[test]
    fn failures_outside_the_window_start_over_and_success_clears() {
        let lockout = Lockout::new(2, 100, 1_000, 5_000).unwrap();
        assert!(!lockout.record_failure("a", "u", 0));
        assert!(!lockout.record_failure("a", "u", 1_500), "the first failure fell out of the window");
        lockout.record_success("a", "u");
        assert!(!lockout.record_failure("a", "u", 1_600), "a success cleared the count");
        assert!(lockout.record_failure("a", "u", 1_700));
    }

    #[test]
    fn rotating_user_names_locks_the_address_for_everyone() {
        let lockout = Lockout::new(5, 8, 60_000, 60_000).unwrap();
        for i in 0..7 {
            assert!(!lockout.record_failure("10.0.0.1", &format!("made-up-{i}"), 1_000));
        }
        // A valid login for another account does not reset the address-wide count.
        lockout.record_success("10.0.0.1", "real");
        assert!(lockout.record_failure("10.0.0.1", "made-up-7", 1_000));
        assert_eq!(lockout.admit("10.0.0.1", "real", 2_000), Admission::Locked);
        assert_eq!(lockout.admit("10.0.0.2", "real", 2_000), Admission::Open);
    }

    /// An outside attack locked itself out, then sent ~10,050 wrong passwords for made-up users from other
    /// addresses to push the lock out of a full tally, and resumed guessing. Locks are never what makes room.
    #[test]
    fn a_flood_of_new_names_never_evicts_an_active_lock() {
        let lockout = Lockout::new(5, 1_000_000, 60_000, 60_000).unwrap();
        for _ in 0..5 {
            lockout.record_failure("attacker", "alice", 1_000);
        }
        assert!(lockout.is_locked("attacker", "alice", 1_000));
        for i in 0..(MAX_TRACKED + 50) {
            lockout.record_failure(&address(i), &format!("made-up-{i}"), 2_000);
        }
        assert!(lockout.tracked() <= MAX_TRACKED);
        assert!(lockout.is_locked("attacker", "alice", 3_000), "the lock survived the flood");
    }

    #[test]
    fn a_tally_full_of_locks_refuses_newcomers_until_one_expires() {
        let lockout = Lockout::new(1, 1, 60_000, 10_000).unwrap();
        // Each failure locks its address (and its address-wide key): two entries per address.
        for i in 0..MAX_TRACKED / 2 {
            lockout.record_failure(&address(i), "u", 1_000);
        }
        assert_eq!(lockout.tracked(), MAX_TRACKED);
        assert_eq!(lockout.admit("newcomer", "u", 2_000), Admission::Full);
        assert_eq!(lockout.admit(&address(0), "u", 2_000), Admission::Locked);
        assert_eq!(lockout.admit("newcomer", "u", 11_000), Admission::Open, "the locks expired");
    }

    #[test]
    fn memory_is_bounded_whatever_the_names() {
        let lockout = Lockout::new(5, 1_000_000, 60_000, 60_000).unwrap();
        let long_user = "u".repeat(4000);
        let long_address = "a".repeat(4000);
        lockout.record_failure(&long_address, &long_user, 0);
        let entries = lockout.entries.borrow();
        assert!(entries.keys().all(|k| k.address.len() <= MAX_ADDRESS_LEN));
    }

    proptest! {
        #[test]
        fn never_locked_with_fewer_failures_than_the_maximum(
            max in 2u32..10,
            times in prop::collection::vec(0u64..100_000, 0..20),
        ) {
            let lockout = Lockout::new(max, max * 4, 1_000_000, 1_000).unwrap();
            let mut times = times;
            times.sort_unstable();
            times.truncate(max as usize - 1);
            for t in &times {
                prop_assert!(!lockout.record_failure("c", "u", *t));
            }
            prop_assert!(!lockout.is_locked("c", "u", times.last().copied().unwrap_or(0)));
        }
    }
}
