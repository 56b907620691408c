//! What basic-auth learns as requests come: the lockout's tally, the bcrypt budget, what each rule's credential
//! set learned of pairs it checked, and the `authorization` headers seen before. Made from a [`Config`] at load
//! and changed by requests; the config never changes. Each part is bounded (see its module).

use crate::budget::{Budget, BudgetSettings};
use crate::config::Config;
use crate::credentials::Recalled;
use crate::lockout::{Lockout, LockoutSettings};
use crate::remembered::RememberedHeaders;
use wasmgate_common::ConfigError;

#[derive(Debug)]
pub struct State {
    pub(crate) lockout: Option<Lockout>,
    /// Present when some rule has bcrypt credentials.
    pub(crate) budget: Option<Budget>,
    pub(crate) remembered: RememberedHeaders,
    /// One per rule, in the config's order.
    pub(crate) recalled: Vec<Recalled>,
}

impl State {
    /// Empty tallies, a full budget, nothing remembered.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            lockout: config.lockout.map(LockoutSettings::start).transpose()?,
            budget: config.budget.map(BudgetSettings::start),
            remembered: RememberedHeaders::new(config.fingerprinter.clone()),
            recalled: config.rules.iter().map(|_| Recalled::default()).collect(),
        })
    }

    /// bcrypt verifications run since the last call, for the shell's counter.
    pub fn take_bcrypt_checks(&self) -> u64 {
        self.budget.as_ref().map_or(0, Budget::take_checks)
    }
}
