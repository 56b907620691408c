//! grpc-limits: request, gRPC message and response size limits per host and per gRPC method, enforced while
//! the body streams through (nothing is buffered).
//!
//! [`config`] validates the `pluginConfig`; [`frames`] reads gRPC length prefixes across chunk boundaries;
//! [`policy`] picks the limits for a request and meters it; `filter` (wasm32 only) is the proxy-wasm shell.

pub mod config;
pub mod frames;
pub mod policy;

// Not in test builds: the wasm32 test binary runs under plain WASI, without a proxy to import from.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub mod filter;

pub use config::{Config, Limits};
pub use policy::{Meter, Violation};

/// The name used for metrics and log lines.
pub const PLUGIN: &str = "grpc_limits";

/// grpc-limits as every plugin describes itself (its proxy-wasm shell is in `filter`).
pub struct GrpcLimits;

impl wasmgate_common::PluginConfig for GrpcLimits {
    const IMAGE: &'static str = "grpc-limits";
    const NAME: &'static str = PLUGIN;
    type Config = Config;

    fn parse(bytes: &[u8]) -> Result<Config, wasmgate_common::ConfigError> {
        Config::from_json(bytes)
    }

    fn summary(config: &Config) -> String {
        format!("{} rule(s)", config.rule_count())
    }
}
