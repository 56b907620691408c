//! basic-auth: HTTP Basic authentication at the gateway.
//!
//! [`config`] reads the `pluginConfig` of Istio's `basic_auth` extension (plus hashed credentials and exempt
//! paths) into a validated form; [`policy`] decides each request without touching the host; `filter` (wasm32
//! only) is the thin proxy-wasm shell.

pub mod authorization;
pub mod budget;
pub mod config;
pub mod credentials;
pub mod fingerprint;
pub mod lockout;
pub mod policy;
pub mod remembered;
pub mod user_id;

// Not in test builds: the wasm32 test binary runs under plain WASI, without a proxy to import from.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub mod filter;

pub use config::Config;
pub use policy::{Caller, Outcome, Verdict};
pub use wasmgate_common::RequestLine;

/// The name used for metrics and log lines.
pub const PLUGIN: &str = "basic_auth";

/// basic-auth as every plugin describes itself (its proxy-wasm shell is in `filter`).
pub struct BasicAuth;

impl wasmgate_common::PluginConfig for BasicAuth {
    const IMAGE: &'static str = "basic-auth";
    const NAME: &'static str = PLUGIN;
    type Config = Config;

    fn parse(bytes: &[u8]) -> Result<Config, wasmgate_common::ConfigError> {
        Config::from_json(bytes)
    }

    fn summary(config: &Config) -> String {
        format!("{} rule(s)", config.rule_count())
    }
}
