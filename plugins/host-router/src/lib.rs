//! host-router: per-host routing rules at the gateway. For the first host entry that matches a request, the
//! first rule that matches decides: set / append / remove request headers (e.g. a route header the Envoy route
//! table matches on), rewrite the path or host, or answer at once with a redirect, a direct response or a denial.
//!
//! [`config`] validates the `pluginConfig`; [`policy`] decides with no host calls; [`filter`] is the shell,
//! which asks the host through `wasmgate_common::Host` (the proxy in the module, a fake in tests).

pub mod config;
pub mod policy;

pub mod filter;

pub use config::Config;
pub use policy::{Decision, Request, Response};

/// The name used for metrics and log lines.
pub const PLUGIN: &str = "host_router";

/// host-router as every plugin describes itself (its proxy-wasm shell is in `filter`).
pub struct HostRouter;

impl wasmgate_common::PluginConfig for HostRouter {
    const IMAGE: &'static str = "host-router";
    const NAME: &'static str = PLUGIN;
    type Config = Config;

    fn parse(bytes: &[u8]) -> Result<Config, wasmgate_common::ConfigError> {
        Config::from_json(bytes)
    }

    fn summary(config: &Config) -> String {
        format!("{} host(s)", config.host_count())
    }
}
