//! suite: basic-auth, grpc-limits and host-router in one filter, configured from one `pluginConfig` with a
//! section per policy (each optional). Every proxy-wasm filter on V8 costs a fixed amount of Envoy CPU per request
//! for entering the VM and its per-stream contexts; the suite pays it once instead of three times. The policies
//! run in the order the separate CRs' phases give them: authentication, then limits, then routing.

pub mod chain;
pub mod config;
pub mod section;

// Not in test builds: the wasm32 test binary runs under plain WASI, without a proxy to import from.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;

pub use config::Config;
pub use section::SECTIONS;

/// The name used for log lines (each policy keeps its own metric names).
pub const PLUGIN: &str = "suite";

/// The suite as every plugin describes itself.
pub struct Suite;

impl wasmgate_common::PluginConfig for Suite {
    const IMAGE: &'static str = "suite";
    const NAME: &'static str = PLUGIN;
    type Config = Config;

    fn parse(bytes: &[u8]) -> Result<Config, wasmgate_common::ConfigError> {
        Config::from_json(bytes)
    }

    fn summary(config: &Config) -> String {
        format!("sections {}", config.sections().join(", "))
    }
}

/// The suite's second image, `suite-requests`: the same policies in a module that exports no response callbacks.
/// Envoy calls every callback a module exports, on every request (each call an entry into V8), and the exports
/// are fixed when the module loads, so no config can switch them off: the image is the choice. It refuses a config
/// with a response limit, which it could not enforce (the `suite` image sees responses too).
pub struct SuiteRequests;

impl wasmgate_common::PluginConfig for SuiteRequests {
    const IMAGE: &'static str = "suite-requests";
    const NAME: &'static str = "suite-requests";
    type Config = Config;

    fn parse(bytes: &[u8]) -> Result<Config, wasmgate_common::ConfigError> {
        Config::for_requests_only(bytes)
    }

    fn summary(config: &Config) -> String {
        Suite::summary(config)
    }
}
