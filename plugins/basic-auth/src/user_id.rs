//! Who a request authenticated as: an index into the config's sorted user names, which the remembered headers
//! and the per-user counters key on (a module of its own so that neither imports the config for it).

/// One of the config's users, by index into [`crate::config::Config::users`]; it also places the user's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserId(pub(crate) usize);
