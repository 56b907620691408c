//! Lockout after repeated failures: once a client address has sent `max_failures` wrong passwords for one user
//! within `window`, that address is refused for that user for `duration`, right password or not. This slows
//! password guessing at the gateway without locking the user out for everybody else.
//!
//! The tally lives in the plugin's VM, one per Envoy worker thread: a guesser spread over N workers gets at most
//! N × `max_failures` tries per window. It holds at most [`MAX_TRACKED`] entries, dropping expired ones first and
//! then the oldest, so a flood of addresses cannot grow it without bound.

use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use wasmgate_common::{ConfigDuration, ConfigError};

pub const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLockout {
    max_failures: u32,
    window: ConfigDuration,
    duration: ConfigDuration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    window_start: u64,
    locked_until: u64,
}

#[derive(Debug)]
pub struct Lockout {
    max_failures: u32,
    window_ms: u64,
    duration_ms: u64,
    entries: RefCell<HashMap<(String, String), Entry>>,
}

impl Lockout {
    pub(crate) fn compile(raw: RawLockout) -> Result<Self, ConfigError> {
        if raw.max_failures == 0 {
            return Err(ConfigError::new("max_failures", "must be at least 1"));
        }
        for (field, value) in [("window", raw.window), ("duration", raw.duration)] {
            if value.as_millis() == 0 {
                return Err(ConfigError::new(field, "must be longer than 0"));
            }
        }
        Ok(Self::new(raw.max_failures, raw.window.as_millis(), raw.duration.as_millis()))
    }

    pub fn new(max_failures: u32, window_ms: u64, duration_ms: u64) -> Self {
        Self { max_failures, window_ms, duration_ms, entries: RefCell::default() }
    }

    /// Whether `client` is locked out for `user` at `now` (milliseconds).
    pub fn is_locked(&self, client: &str, user: &str, now: u64) -> bool {
        self.entries.borrow().get(&(client.to_owned(), user.to_owned())).is_some_and(|e| now < e.locked_until)
    }

    /// Counts a wrong password; returns whether it locked the pair out.
    pub fn record_failure(&self, client: &str, user: &str, now: u64) -> bool {
        let mut entries = self.entries.borrow_mut();
        let key = (client.to_owned(), user.to_owned());
        if !entries.contains_key(&key) && entries.len() >= MAX_TRACKED {
            self.make_room(&mut entries, now);
        }
        let entry = entries.entry(key).or_default();
        if now.saturating_sub(entry.window_start) >= self.window_ms {
            entry.failures = 0;
            entry.window_start = now;
        }
        entry.failures += 1;
        if entry.failures >= self.max_failures {
            entry.failures = 0;
            entry.window_start = now;
            entry.locked_until = now.saturating_add(self.duration_ms);
            return true;
        }
        false
    }

    /// A right password clears the pair's failures.
    pub fn record_success(&self, client: &str, user: &str) {
        self.entries.borrow_mut().remove(&(client.to_owned(), user.to_owned()));
    }

    pub fn tracked(&self) -> usize {
        self.entries.borrow().len()
    }

    fn make_room(&self, entries: &mut HashMap<(String, String), Entry>, now: u64) {
        let window = self.window_ms;
        entries.retain(|_, e| now < e.locked_until || now.saturating_sub(e.window_start) < window);
        if entries.len() >= MAX_TRACKED {
            let oldest = entries.iter().min_by_key(|(_, e)| e.window_start).map(|(k, _)| k.clone());
            if let Some(key) = oldest {
                entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn locks_after_max_failures_in_the_window_then_lets_go() {
        let lockout = Lockout::new(3, 60_000, 5_000);
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
        let lockout = Lockout::new(2, 1_000, 5_000);
        assert!(!lockout.record_failure("a", "u", 0));
        assert!(!lockout.record_failure("a", "u", 1_500), "the first failure fell out of the window");
        lockout.record_success("a", "u");
        assert!(!lockout.record_failure("a", "u", 1_600), "a success cleared the count");
        assert!(lockout.record_failure("a", "u", 1_700));
    }

    #[test]
    fn the_tally_stays_bounded_under_a_flood_of_addresses() {
        let lockout = Lockout::new(5, 60_000, 60_000);
        for i in 0..(MAX_TRACKED + 500) {
            lockout.record_failure(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255), "u", 1_000);
        }
        assert!(lockout.tracked() <= MAX_TRACKED);
        lockout.record_failure("locked", "u", 1_000);
        for _ in 0..4 {
            lockout.record_failure("locked", "u", 1_000);
        }
        assert!(lockout.is_locked("locked", "u", 2_000));
    }

    proptest! {
        #[test]
        fn never_locked_with_fewer_failures_than_the_maximum(
            max in 2u32..10,
            times in prop::collection::vec(0u64..100_000, 0..20),
        ) {
            let lockout = Lockout::new(max, 1_000_000, 1_000);
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
