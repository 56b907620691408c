//! How much of a worker's time bcrypt may take on credentials the plugin has not seen before: a bucket of time
//! that fills at `per_second` (a share of each second) up to `burst`, and that each check empties by what it
//! took, measured. A check starts only when the bucket holds what the last check took.
//!
//! Why time: a bcrypt check at cost 10 holds an Envoy worker for ~90 ms under V8, and any client can make the
//! plugin run one by sending a made-up password; every request on that worker waits meanwhile. Without a budget,
//! eight guessing connections kept a worker busy full time (other requests' p99 went from 3 ms to over a
//! second). A share of 1 %, 100 ms at once, keeps the stalls within the 1 % of time a p99 looks past, whatever
//! the cost; cheaper hashes get more checks from the same share (htpasswd's default cost 5 takes ~3 ms: thirty
//! checks at once, three a second after that; cost 10 one, then one every nine seconds). Over budget, the plugin answers 429
//! (`RESOURCE_EXHAUSTED`, with `retry-after`) at once and learns nothing; pairs already verified, or already
//! refused, never need a check.
//!
//! ```yaml
//! bcrypt_budget: {per_second: 10ms, burst: 100ms}   # the default
//! ```

use serde::Deserialize;
use std::cell::Cell;
use wasmgate_common::{ConfigDuration, ConfigError};

pub const DEFAULT_PER_SECOND_US: u64 = 10_000;
pub const DEFAULT_BURST_US: u64 = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    per_second: ConfigDuration,
    burst: ConfigDuration,
}

/// The budget as the config sets it, validated; [`start`](Self::start) makes the [`Budget`] that spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    per_second_us: u64,
    burst_us: u64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self { per_second_us: DEFAULT_PER_SECOND_US, burst_us: DEFAULT_BURST_US }
    }
}

impl BudgetSettings {
    pub(crate) fn compile(raw: RawBudget) -> Result<Self, ConfigError> {
        let (per_second, burst) = (raw.per_second.as_millis() * 1000, raw.burst.as_millis() * 1000);
        if per_second == 0 {
            return Err(ConfigError::new("per_second", "must be longer than 0: no bcrypt user could sign in twice"));
        }
        if per_second > 500_000 {
            return Err(ConfigError::new(
                "per_second",
                "more than half of each second would let a flood of wrong passwords stall the worker",
            ));
        }
        if burst < per_second {
            return Err(ConfigError::new("burst", "must be at least `per_second`"));
        }
        Ok(Self { per_second_us: per_second, burst_us: burst })
    }

    /// A full budget.
    pub fn start(self) -> Budget {
        Budget {
            settings: self,
            tokens_ns: Cell::new(i64::try_from(self.burst_us.saturating_mul(1000)).unwrap_or(i64::MAX)),
            filled_at_us: Cell::new(None),
            last_check_us: Cell::new(0),
            checks: Cell::new(0),
        }
    }
}

#[derive(Debug)]
pub struct Budget {
    settings: BudgetSettings,
    /// Time left to spend, in nanoseconds (so that frequent fills lose nothing to rounding); negative after a
    /// check that took more than was left.
    tokens_ns: Cell<i64>,
    /// When the bucket was last filled (microseconds); `None` before the first check.
    filled_at_us: Cell<Option<u64>>,
    /// What the last check took: the next one starts when the bucket holds as much.
    last_check_us: Cell<u64>,
    /// Checks run since the shell last asked (for its counter).
    checks: Cell<u64>,
}

impl Budget {
    pub fn new(per_second_us: u64, burst_us: u64) -> Self {
        BudgetSettings { per_second_us, burst_us }.start()
    }

    /// Fills the bucket for the time since the last fill (a clock that goes back earns nothing); returns the
    /// nanoseconds it holds.
    fn fill(&self, now_us: u64) -> i64 {
        let filled_at = self.filled_at_us.get().unwrap_or(now_us);
        // `per_second_us` microseconds per second is `per_second_us / 1000` nanoseconds per microsecond.
        let earned = u128::from(now_us.saturating_sub(filled_at)) * u128::from(self.settings.per_second_us) / 1000;
        let burst = i64::try_from(self.settings.burst_us.saturating_mul(1000)).unwrap_or(i64::MAX);
        let tokens = i64::try_from(earned).unwrap_or(i64::MAX).saturating_add(self.tokens_ns.get()).min(burst);
        self.tokens_ns.set(tokens);
        self.filled_at_us.set(Some(now_us.max(filled_at)));
        tokens
    }

    fn last_check_ns(&self) -> i64 {
        i64::try_from(self.last_check_us.get().saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Whether a check may start at `now_us`.
    pub fn admit(&self, now_us: u64) -> bool {
        let tokens = self.fill(now_us);
        tokens > 0 && tokens >= self.last_check_ns()
    }

    /// Charges a check that took `took_us`.
    pub fn charge(&self, took_us: u64) {
        self.last_check_us.set(took_us);
        let took_ns = i64::try_from(took_us.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.tokens_ns.set(self.tokens_ns.get().saturating_sub(took_ns));
        self.checks.set(self.checks.get() + 1);
    }

    /// Whole seconds until a check like the last one may start, at least 1 (for `retry-after`).
    pub fn retry_after_secs(&self) -> u64 {
        let missing_ns = u64::try_from(self.last_check_ns().saturating_sub(self.tokens_ns.get())).unwrap_or(0);
        missing_ns.div_ceil(self.settings.per_second_us.saturating_mul(1000)).max(1)
    }

    /// Checks run since the last call.
    pub fn take_checks(&self) -> u64 {
        self.checks.replace(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn a_burst_then_a_share_of_each_second() {
        // 5 ms per second, 100 ms at once; checks of 40 ms.
        let budget = Budget::new(5_000, 100_000);
        let start = 10 * SECOND;
        for _ in 0..2 {
            assert!(budget.admit(start));
            budget.charge(40_000);
        }
        // 20 ms left: the next 40 ms check waits for 20 ms more, 4 s at 5 ms/s.
        assert!(!budget.admit(start));
        assert_eq!(budget.retry_after_secs(), 4);
        assert!(!budget.admit(start + 3 * SECOND));
        assert!(budget.admit(start + 4 * SECOND));
        budget.charge(40_000);
        assert_eq!(budget.take_checks(), 3);
        assert_eq!(budget.take_checks(), 0);
        // A long pause fills up to the burst, no further.
        assert!(budget.admit(start + 1_000 * SECOND));
        budget.charge(40_000);
        assert!(budget.admit(start + 1_000 * SECOND));
        budget.charge(40_000);
        assert!(!budget.admit(start + 1_000 * SECOND));
    }

    #[test]
    fn an_expensive_check_waits_for_its_own_cost() {
        let budget = Budget::new(5_000, 100_000);
        assert!(budget.admit(0));
        budget.charge(90_000);
        // 10 ms left; the next check is estimated at 90 ms: 80 ms to earn at 5 ms/s.
        assert!(!budget.admit(15 * SECOND));
        assert_eq!(budget.retry_after_secs(), 1);
        assert!(budget.admit(16 * SECOND));
    }

    #[test]
    fn a_clock_that_goes_back_earns_nothing() {
        let budget = Budget::new(5_000, 10_000);
        assert!(budget.admit(5 * SECOND));
        budget.charge(10_000);
        assert!(!budget.admit(SECOND));
        assert!(!budget.admit(6 * SECOND));
        assert!(budget.admit(7 * SECOND));
    }

    proptest! {
        /// Whatever the timing and the cost of the checks, the time they take within any span stays under
        /// burst + one check + per_second × span: a flood cannot hold the worker for more.
        #[test]
        fn the_time_spent_is_bounded(
            costs in prop::collection::vec(1_000u64..200_000, 1..100),
            gaps in prop::collection::vec(0u64..3 * SECOND, 1..100),
        ) {
            let budget = Budget::new(5_000, 100_000);
            let mut now = 50 * SECOND;
            let mut ran: Vec<(u64, u64)> = Vec::new();
            for (cost, gap) in costs.iter().zip(gaps.iter().cycle()) {
                now += gap;
                if budget.admit(now) {
                    budget.charge(*cost);
                    ran.push((now, *cost));
                    now += cost;
                }
            }
            for (i, (start, _)) in ran.iter().enumerate() {
                for j in i..ran.len() {
                    let (end, _) = ran[j];
                    let spent: u64 = ran[i..=j].iter().map(|(_, c)| c).sum();
                    let biggest = ran[i..=j].iter().map(|(_, c)| *c).max().unwrap_or(0);
                    let allowed = 100_000 + biggest + (end - start) * 5_000 / SECOND;
                    prop_assert!(spent <= allowed, "{} µs spent in {} µs", spent, end - start);
                }
            }
        }
    }
}
