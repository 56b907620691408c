//! The plugins' counters as the tests read them, named through the plugins' own `Counter` enums: a test cannot
//! read a counter no plugin has, and a renamed counter fails to compile here instead of reading 0 for ever.

pub use basic_auth::policy::Counter as BasicAuth;
pub use grpc_limits::policy::Counter as GrpcLimits;

/// A plugin counter.
pub trait PluginCounter {
    /// Its name after `wasmgate.`: `basic_auth.allowed`.
    fn full_name(&self) -> String;

    /// As Envoy's `/stats` shows it: `wasmcustom.wasmgate.basic_auth.allowed`.
    fn stat(&self) -> String {
        format!("wasmcustom.{}.{}", wasmgate_common::metrics::PREFIX, self.full_name())
    }

    /// As Istio's Prometheus endpoint shows it (its tag extraction turns `wasmcustom.wasmgate.<plugin>.<name>`
    /// into `wasmgate_<plugin>_<name>`).
    fn prometheus(&self) -> String {
        format!("wasmgate_{}", self.full_name().replace(['.', '-'], "_"))
    }
}

impl PluginCounter for BasicAuth {
    fn full_name(&self) -> String {
        format!("{}.{}", basic_auth::PLUGIN, self.name())
    }
}

impl PluginCounter for GrpcLimits {
    fn full_name(&self) -> String {
        format!("{}.{}", grpc_limits::PLUGIN, self.name())
    }
}

/// basic-auth's count of requests a user was allowed (`user.<name>.allowed`, the name as the plugin writes it).
pub struct UserAllowed<'a>(pub &'a str);

impl PluginCounter for UserAllowed<'_> {
    fn full_name(&self) -> String {
        format!("{}.user.{}.allowed", basic_auth::PLUGIN, basic_auth::config::counter_name(self.0))
    }
}

/// host-router's count of requests a rule (or host default) named so decided.
pub struct RouterRule<'a>(pub &'a str);

impl PluginCounter for RouterRule<'_> {
    fn full_name(&self) -> String {
        format!("{}.rules.{}", host_router::PLUGIN, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_as_envoy_and_prometheus_show_them() {
        assert_eq!(BasicAuth::DeniedInvalid.stat(), "wasmcustom.wasmgate.basic_auth.denied.invalid");
        assert_eq!(GrpcLimits::RefusedContentType.prometheus(), "wasmgate_grpc_limits_refused_content_type");
        assert_eq!(UserAllowed("a.b").full_name(), "basic_auth.user.a_b.allowed");
        assert_eq!(RouterRule("canary-host").stat(), "wasmcustom.wasmgate.host_router.rules.canary-host");
    }
}
