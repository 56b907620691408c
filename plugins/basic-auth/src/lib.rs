//! basic-auth: HTTP Basic authentication at the gateway.
//!
//! [`config`] reads the `pluginConfig` of Istio's `basic_auth` extension (plus hashed credentials and exempt
//! paths) into a validated form; [`policy`] decides each request without touching the host; [`filter`] is the
//! thin shell, which asks the host through `wasmgate_common::Host` (the proxy in the module, a fake in tests).

pub mod authorization;
pub mod budget;
pub mod config;
pub mod credentials;
pub mod fingerprint;
pub mod lockout;
pub mod policy;
pub mod remembered;
pub mod state;
pub mod user_id;

pub mod filter;

pub use config::Config;
pub use policy::{Authenticator, Caller, Outcome, Verdict};
pub use wasmgate_common::RequestLine;

/// The name used for metrics and log lines.
pub const PLUGIN: &str = "basic_auth";

/// basic-auth as every plugin describes itself (its proxy-wasm shell is in `filter`).
pub struct BasicAuth;

impl wasmgate_common::PluginConfig for BasicAuth {
    const IMAGE: &'static str = "basic-auth";
    const NAME: &'static str = PLUGIN;
    type Config = Authenticator;

    fn parse(bytes: &[u8]) -> Result<Authenticator, wasmgate_common::ConfigError> {
        Authenticator::from_json(bytes)
    }

    fn summary(authenticator: &Authenticator) -> String {
        format!("{} rule(s)", authenticator.config().rule_count())
    }
}
