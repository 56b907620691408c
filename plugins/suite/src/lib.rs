//! suite: basic-auth, grpc-limits and host-router in one filter, configured from one `pluginConfig` with a
//! section per policy (each optional). Every proxy-wasm filter on V8 costs a fixed amount of Envoy CPU per request
//! for entering the VM and its per-stream contexts; the suite pays it once instead of three times. The policies
//! run in the order the separate CRs' phases give them: authentication, then limits, then routing.

pub mod config;

// Not in test builds: the wasm32 test binary runs under plain WASI, without a proxy to import from.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;

pub use config::Config;

/// The name used for log lines (each policy keeps its own metric names).
pub const PLUGIN: &str = "suite";
