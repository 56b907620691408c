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
//! tally's memory is bounded whatever names clients send.
//!
//! Cheap when nothing is locked: while nobody has failed, a request costs one look at an empty table; while no
//! lock is active, a right password costs one fingerprint of its user name, and the client's address is asked
//! of the host only to clear that user's own failures. The clock and the address are asked for every request
//! only while some lock is active, or the tally is full.

use crate::fingerprint::{Fingerprint, FingerprintHasher, Fingerprinter};
use serde::Deserialize;
use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, hash_map};
use std::hash::BuildHasherDefault;
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

impl Key {
    fn new(address: &str, user: Option<Fingerprint>) -> Self {
        let mut end = address.len().min(MAX_ADDRESS_LEN);
        while !address.is_char_boundary(end) {
            end -= 1;
        }
        Key { address: address[..end].into(), user }
    }
}

/// Whether a client may try a password now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Open,
    Locked,
    /// The tally is full of active locks and cannot count this client's failures: refused until one expires.
    Full,
}

/// What the lockout may need to know about the client. Asking the host for either costs thousands of
/// instructions, so the lockout asks only when its answer depends on it.
pub trait Client {
    fn address(&self) -> &str;
    /// Milliseconds.
    fn now_ms(&self) -> u64;
}

/// A client whose address and time are known up front.
impl Client for (&str, u64) {
    fn address(&self) -> &str {
        self.0
    }

    fn now_ms(&self) -> u64 {
        self.1
    }
}

#[derive(Debug, Default)]
struct Tally {
    entries: HashMap<Key, Entry>,
    /// How many entries each user has (per-user keys only): a right password asks for the address, to clear
    /// its entry, only when its user has one.
    users: UserCounts,
    /// No lock is active at or after this time (0: none was set since the last time it passed), so that while
    /// no lock is active a request asks neither the clock nor the address to learn it is not locked.
    locks_until: u64,
}

impl Tally {
    fn insert(&mut self, key: Key) -> &mut Entry {
        match self.entries.entry(key) {
            hash_map::Entry::Occupied(entry) => entry.into_mut(),
            hash_map::Entry::Vacant(vacant) => {
                if let Some(user) = vacant.key().user {
                    *self.users.entry(user).or_default() += 1;
                }
                vacant.insert(Entry::default())
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        if self.entries.remove(key).is_some()
            && let Some(user) = &key.user
        {
            forget_one(&mut self.users, user);
        }
    }

    /// The client's time if a lock may be active at it; asks the clock only when a lock was set.
    fn may_lock(&mut self, client: &dyn Client) -> Option<u64> {
        if self.locks_until == 0 {
            return None;
        }
        let now = client.now_ms();
        if now < self.locks_until {
            return Some(now);
        }
        self.locks_until = 0;
        None
    }

    /// Frees at least `needed` places without dropping an active lock: expired entries first, then the oldest
    /// unlocked ones, a batch at a time. Returns whether there is room.
    fn make_room(&mut self, window_ms: u64, now: u64, needed: usize) -> bool {
        let users = &mut self.users;
        self.entries.retain(|key, e| {
            let keep = now < e.locked_until || now.saturating_sub(e.window_start) < window_ms;
            if let (false, Some(user)) = (keep, &key.user) {
                forget_one(users, user);
            }
            keep
        });
        if self.entries.len() + needed <= MAX_TRACKED {
            return true;
        }
        let mut unlocked: Vec<(u64, Key)> = self
            .entries
            .iter()
            .filter(|(_, e)| now >= e.locked_until)
            .map(|(k, e)| (e.window_start, k.clone()))
            .collect();
        unlocked.sort_unstable_by_key(|(start, _)| *start);
        for (_, key) in unlocked.into_iter().take(EVICT_BATCH.max(needed)) {
            self.remove(&key);
        }
        self.entries.len() + needed <= MAX_TRACKED
    }
}

type UserCounts = HashMap<Fingerprint, u32, BuildHasherDefault<FingerprintHasher>>;

fn forget_one(users: &mut UserCounts, user: &Fingerprint) {
    if let Some(count) = users.get_mut(user) {
        *count -= 1;
        if *count == 0 {
            users.remove(user);
        }
    }
}

/// The lockout as the config sets it, validated; [`start`](Self::start) makes the [`Lockout`] that tallies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    max_failures: u32,
    max_address_failures: u32,
    window_ms: u64,
    duration_ms: u64,
}

impl LockoutSettings {
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
        Ok(Self {
            max_failures: raw.max_failures,
            max_address_failures,
            window_ms: raw.window.as_millis(),
            duration_ms: raw.duration.as_millis(),
        })
    }

    /// A lockout with an empty tally and a key of its own for the user names it tallies.
    pub fn start(self) -> Result<Lockout, ConfigError> {
        Ok(Lockout { settings: self, tally: RefCell::default(), users: Fingerprinter::random()? })
    }
}

#[derive(Debug)]
pub struct Lockout {
    settings: LockoutSettings,
    tally: RefCell<Tally>,
    users: Fingerprinter,
}

impl Lockout {
    pub fn new(
        max_failures: u32,
        max_address_failures: u32,
        window_ms: u64,
        duration_ms: u64,
    ) -> Result<Self, ConfigError> {
        LockoutSettings { max_failures, max_address_failures, window_ms, duration_ms }.start()
    }

    /// One request's password attempt for `user`; the user's fingerprint is computed once, if ever needed.
    pub fn attempt<'l>(&'l self, user: &'l str) -> Attempt<'l> {
        Attempt { lockout: self, user, fingerprint: OnceCell::new() }
    }

    /// The fingerprint a user is tallied by (for a header remembered with it, see [`attempt_of`](Self::attempt_of)).
    pub fn user_fingerprint(&self, user: &str) -> Fingerprint {
        self.users.of(user.as_bytes())
    }

    /// One request's password attempt by the user of this [`user_fingerprint`](Self::user_fingerprint).
    pub fn attempt_of(&self, user: Fingerprint) -> Attempt<'_> {
        Attempt { lockout: self, user: "", fingerprint: OnceCell::from(user) }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.tally.borrow().entries.len()
    }
}

/// A request's password attempt: asked whether it may go on, then told how it went.
pub struct Attempt<'l> {
    lockout: &'l Lockout,
    /// Read only to take its fingerprint, when the attempt was not given one.
    user: &'l str,
    fingerprint: OnceCell<Fingerprint>,
}

impl Attempt<'_> {
    fn fingerprint(&self) -> Fingerprint {
        *self.fingerprint.get_or_init(|| self.lockout.users.of(self.user.as_bytes()))
    }

    fn keys(&self, client: &dyn Client) -> [Key; 2] {
        let address = Key::new(client.address(), None);
        [Key { address: address.address.clone(), user: Some(self.fingerprint()) }, address]
    }

    /// Whether `client` may try a password for this user now.
    pub fn admit(&self, client: &dyn Client) -> Admission {
        let mut tally = self.lockout.tally.borrow_mut();
        if tally.entries.is_empty() {
            return Admission::Open;
        }
        // The two keys this client would add if it fails: room is looked for only when they might not fit.
        let crowded = tally.entries.len() + 2 > MAX_TRACKED;
        let now = match tally.may_lock(client) {
            Some(now) => now,
            None if crowded => client.now_ms(),
            None => return Admission::Open,
        };
        let keys = self.keys(client);
        if keys.iter().any(|k| tally.entries.get(k).is_some_and(|e| now < e.locked_until)) {
            return Admission::Locked;
        }
        let missing = keys.iter().filter(|k| !tally.entries.contains_key(*k)).count();
        if tally.entries.len() + missing > MAX_TRACKED
            && !tally.make_room(self.lockout.settings.window_ms, now, missing)
        {
            return Admission::Full;
        }
        Admission::Open
    }

    /// Counts a wrong password; returns whether it locked the client out (for this user or for all).
    pub fn failed(&self, client: &dyn Client) -> bool {
        let lockout = self.lockout;
        let mut tally = lockout.tally.borrow_mut();
        let now = client.now_ms();
        let mut locked = false;
        let [user_key, address_key] = self.keys(client);
        for (key, limit) in
            [(user_key, lockout.settings.max_failures), (address_key, lockout.settings.max_address_failures)]
        {
            if !tally.entries.contains_key(&key)
                && tally.entries.len() >= MAX_TRACKED
                && !tally.make_room(lockout.settings.window_ms, now, 1)
            {
                continue;
            }
            let entry = tally.insert(key);
            if now.saturating_sub(entry.window_start) >= lockout.settings.window_ms {
                entry.failures = 0;
                entry.window_start = now;
            }
            entry.failures += 1;
            if entry.failures >= limit {
                entry.failures = 0;
                entry.window_start = now;
                entry.locked_until = now.saturating_add(lockout.settings.duration_ms);
                tally.locks_until = tally.locks_until.max(now.saturating_add(lockout.settings.duration_ms));
                locked = true;
            }
        }
        locked
    }

    /// A right password clears the client's failures for this user (not its address-wide count: one valid
    /// account must not reset a guesser's tally for the others). The address is asked for only when this user
    /// has an entry.
    pub fn succeeded(&self, client: &dyn Client) {
        let mut tally = self.lockout.tally.borrow_mut();
        if tally.entries.is_empty() || !tally.users.contains_key(&self.fingerprint()) {
            return;
        }
        let key = Key::new(client.address(), Some(self.fingerprint()));
        tally.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fail(lockout: &Lockout, address: &str, user: &str, now: u64) -> bool {
        lockout.attempt(user).failed(&(address, now))
    }

    fn admit(lockout: &Lockout, address: &str, user: &str, now: u64) -> Admission {
        lockout.attempt(user).admit(&(address, now))
    }

    fn is_locked(lockout: &Lockout, address: &str, user: &str, now: u64) -> bool {
        admit(lockout, address, user, now) == Admission::Locked
    }

    fn succeed(lockout: &Lockout, address: &str, user: &str) {
        lockout.attempt(user).succeeded(&(address, 0));
    }

    /// The per-user counts agree with the entries they count.
    fn assert_users_counted(lockout: &Lockout) {
        let tally = lockout.tally.borrow();
        let mut counted: HashMap<Fingerprint, u32> = HashMap::new();
        for user in tally.entries.keys().filter_map(|k| k.user) {
            *counted.entry(user).or_default() += 1;
        }
        let kept: HashMap<Fingerprint, u32> = tally.users.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(kept, counted);
    }

    fn address(i: usize) -> String {
        format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)
    }

    #[test]
    fn locks_after_max_failures_in_the_window_then_lets_go() {
        let lockout = Lockout::new(3, 100, 60_000, 5_000).unwrap();
        assert!(!fail(&lockout, "10.0.0.1", "alice", 1_000));
        assert!(!fail(&lockout, "10.0.0.1", "alice", 2_000));
        assert!(!is_locked(&lockout, "10.0.0.1", "alice", 2_500));
        assert!(fail(&lockout, "10.0.0.1", "alice", 3_000));
        assert!(is_locked(&lockout, "10.0.0.1", "alice", 3_001));
        assert!(is_locked(&lockout, "10.0.0.1", "alice", 7_999));
        assert!(!is_locked(&lockout, "10.0.0.1", "alice", 8_000), "the lock ends after `duration`");
        // Other addresses and other users are not affected.
        assert!(!is_locked(&lockout, "10.0.0.2", "alice", 4_000));
        assert!(!is_locked(&lockout, "10.0.0.1", "bob", 4_000));
    }

    #[test]
    fn failures_outside_the_window_start_over_and_success_clears() {
        let lockout = Lockout::new(2, 100, 1_000, 5_000).unwrap();
        assert!(!fail(&lockout, "a", "u", 0));
        assert!(!fail(&lockout, "a", "u", 1_500), "the first failure fell out of the window");
        succeed(&lockout, "a", "u");
        assert!(!fail(&lockout, "a", "u", 1_600), "a success cleared the count");
        assert!(fail(&lockout, "a", "u", 1_700));
    }

    #[test]
    fn rotating_user_names_locks_the_address_for_everyone() {
        let lockout = Lockout::new(5, 8, 60_000, 60_000).unwrap();
        for i in 0..7 {
            assert!(!fail(&lockout, "10.0.0.1", &format!("made-up-{i}"), 1_000));
        }
        // A valid login for another account does not reset the address-wide count.
        succeed(&lockout, "10.0.0.1", "real");
        assert!(fail(&lockout, "10.0.0.1", "made-up-7", 1_000));
        assert_eq!(admit(&lockout, "10.0.0.1", "real", 2_000), Admission::Locked);
        assert_eq!(admit(&lockout, "10.0.0.2", "real", 2_000), Admission::Open);
    }

    /// An outside attack locked itself out, then sent ~10,050 wrong passwords for made-up users from other
    /// addresses to push the lock out of a full tally, and resumed guessing. Locks are never what makes room.
    #[test]
    fn a_flood_of_new_names_never_evicts_an_active_lock() {
        let lockout = Lockout::new(5, 1_000_000, 60_000, 60_000).unwrap();
        for _ in 0..5 {
            fail(&lockout, "attacker", "alice", 1_000);
        }
        assert!(is_locked(&lockout, "attacker", "alice", 1_000));
        for i in 0..(MAX_TRACKED + 50) {
            fail(&lockout, &address(i), &format!("made-up-{i}"), 2_000);
        }
        assert!(lockout.tracked() <= MAX_TRACKED);
        assert_users_counted(&lockout);
        assert!(is_locked(&lockout, "attacker", "alice", 3_000), "the lock survived the flood");
    }

    #[test]
    fn a_tally_full_of_locks_refuses_newcomers_until_one_expires() {
        let lockout = Lockout::new(1, 1, 60_000, 10_000).unwrap();
        // Each failure locks its address (and its address-wide key): two entries per address.
        for i in 0..MAX_TRACKED / 2 {
            fail(&lockout, &address(i), "u", 1_000);
        }
        assert_eq!(lockout.tracked(), MAX_TRACKED);
        assert_eq!(admit(&lockout, "newcomer", "u", 2_000), Admission::Full);
        assert_eq!(admit(&lockout, &address(0), "u", 2_000), Admission::Locked);
        assert_eq!(admit(&lockout, "newcomer", "u", 11_000), Admission::Open, "the locks expired");
    }

    #[test]
    fn memory_is_bounded_whatever_the_names() {
        let lockout = Lockout::new(5, 1_000_000, 60_000, 60_000).unwrap();
        let long_user = "u".repeat(4000);
        let long_address = "a".repeat(4000);
        fail(&lockout, &long_address, &long_user, 0);
        let tally = lockout.tally.borrow();
        assert!(tally.entries.keys().all(|k| k.address.len() <= MAX_ADDRESS_LEN));
    }

    proptest! {
        /// Whatever clients do, a right password after another's failures clears exactly its own, and a lock
        /// is found whether or not the tally remembered one was set.
        #[test]
        fn the_shortcuts_agree_with_the_tally(
            ops in prop::collection::vec((0u8..3, 0usize..3, 0usize..3, 0u64..3_000), 1..60),
        ) {
            let lockout = Lockout::new(2, 3, 1_000, 500).unwrap();
            let mut now = 0;
            for (op, a, u, step) in ops {
                now += step;
                let (address, user) = (format!("10.0.0.{a}"), format!("user-{u}"));
                match op {
                    0 => {
                        fail(&lockout, &address, &user, now);
                    }
                    1 => succeed(&lockout, &address, &user),
                    _ => {
                        // The slow way: look for the two keys' locks directly.
                        let fingerprint = lockout.users.of(user.as_bytes());
                        let locked = {
                            let tally = lockout.tally.borrow();
                            [Key::new(&address, Some(fingerprint)), Key::new(&address, None)]
                                .iter()
                                .any(|k| tally.entries.get(k).is_some_and(|e| now < e.locked_until))
                        };
                        prop_assert_eq!(is_locked(&lockout, &address, &user, now), locked);
                    }
                }
                assert_users_counted(&lockout);
            }
        }

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
                prop_assert!(!fail(&lockout, "c", "u", *t));
            }
            prop_assert!(!is_locked(&lockout, "c", "u", times.last().copied().unwrap_or(0)));
        }
    }
}
