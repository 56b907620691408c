//! grpc-limits: request, gRPC message and response size limits per host and per gRPC method, enforced while
//! the body streams through (nothing is buffered).
//!
//! [`config`] validates the `pluginConfig`; [`frames`] reads gRPC length prefixes across chunk boundaries;
//! [`policy`] picks the limits for a request and meters it; [`filter`] is the shell, which asks the host
//! through `wasmgate_common::Host` (the proxy in the module, a fake in tests).

pub mod config;
pub mod frames;
pub mod policy;

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

    fn sees_responses(config: &Config) -> bool {
        config.limits_responses()
    }

    fn for_requests_only(
        config: Config,
        image: &str,
        full_image: &str,
    ) -> Result<Config, wasmgate_common::ConfigError> {
        config.for_requests_only(image, full_image)
    }
}

/// grpc-limits' second image, `grpc-limits-requests`: the same filter in a module that exports no response
/// callbacks. Envoy enters V8 for every callback a module exports, on every response, and the exports are fixed
/// when the module loads, so no config can switch them off: the image is the choice (the committed CR, which
/// limits requests only, pulls this one). It refuses a config with a response limit, which it could not enforce.
/// Its metrics and logs keep grpc-limits' name.
pub struct GrpcLimitsRequests;

impl wasmgate_common::PluginConfig for GrpcLimitsRequests {
    const IMAGE: &'static str = "grpc-limits-requests";
    const NAME: &'static str = PLUGIN;
    type Config = Config;

    fn parse(bytes: &[u8]) -> Result<Config, wasmgate_common::ConfigError> {
        GrpcLimits::for_requests_only(GrpcLimits::parse(bytes)?, Self::IMAGE, GrpcLimits::IMAGE)
    }

    fn summary(config: &Config) -> String {
        GrpcLimits::summary(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_common::PluginConfig;

    #[test]
    fn the_requests_only_image_refuses_a_response_limit_and_takes_the_rest() {
        let requests = br#"{"default": {"max_request_bytes": "4Mi"}, "rules": [{"hosts": ["a.example"], "max_message_bytes": 10}]}"#;
        let taken = GrpcLimitsRequests::parse(requests).unwrap();
        assert_eq!(GrpcLimitsRequests::summary(&taken), GrpcLimits::summary(&GrpcLimits::parse(requests).unwrap()));
        for (config, field) in [
            (
                &br#"{"rules": [{"max_request_bytes": 1}, {"hosts": ["a.example"], "max_response_bytes": "1Mi"}]}"#[..],
                "rules[1]",
            ),
            (br#"{"default": {"max_response_bytes": 50}}"#, "default"),
        ] {
            assert!(GrpcLimits::parse(config).unwrap().limits_responses(), "the `grpc-limits` image takes it");
            let e = GrpcLimitsRequests::parse(config).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(&format!("at `{field}.max_response_bytes`:")), "{e}");
            assert!(e.contains("use the `grpc-limits` image"), "{e}");
        }
    }
}
