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

/// host-router's count of requests refused because their host or path reads more than one way.
pub struct RouterBadRequest;

impl PluginCounter for RouterBadRequest {
    fn full_name(&self) -> String {
        format!("{}.{}", host_router::PLUGIN, host_router::filter::BAD_REQUEST_COUNTER)
    }
}

/// A plugin's count of host calls that failed (every plugin has one, after its own counters).
pub struct HostError(pub &'static str);

impl PluginCounter for HostError {
    fn full_name(&self) -> String {
        format!("{}.host_error", self.0)
    }
}

/// Every counter whose name does not depend on a config, as Prometheus shows it.
pub fn prometheus_names() -> Vec<String> {
    /// A counter known by its full name only.
    struct Named(String);
    impl PluginCounter for Named {
        fn full_name(&self) -> String {
            self.0.clone()
        }
    }
    let mut names: Vec<String> = BasicAuth::NAMES
        .iter()
        .map(|name| format!("{}.{name}", basic_auth::PLUGIN))
        .chain(GrpcLimits::NAMES.iter().map(|name| format!("{}.{name}", grpc_limits::PLUGIN)))
        .map(|full_name| Named(full_name).prometheus())
        .collect();
    names.push(RouterBadRequest.prometheus());
    for plugin in [basic_auth::PLUGIN, grpc_limits::PLUGIN, host_router::PLUGIN] {
        names.push(HostError(plugin).prometheus());
    }
    names
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
        assert!(prometheus_names().contains(&"wasmgate_grpc_limits_host_error".to_string()));
    }

    /// Whether `name` matches a selector's name pattern, which may use `.+` and nothing else of regex.
    fn matches(pattern: &str, name: &str) -> bool {
        assert!(!pattern.replace(".+", "").contains(['.', '*', '|', '(', '[', '?']), "a pattern past `.+`: {pattern}");
        match pattern.split_once(".+") {
            None => pattern == name,
            Some((head, tail)) => name
                .strip_prefix(head)
                .is_some_and(|rest| (1..=rest.len()).any(|i| rest.is_char_boundary(i) && matches(tail, &rest[i..]))),
        }
    }

    /// The alerting rules and the dashboard read the plugins' counters by name: each name they use exists, and
    /// each name pattern matches some counter, so a renamed counter fails here instead of silencing an alert.
    #[test]
    fn the_rules_and_the_dashboard_read_counters_that_exist() {
        let known = prometheus_names();
        let root = crate::workspace::root();
        let rules_file = root.join("charts/wasmgate/files/wasmgate-rules.yaml");
        let files = [
            rules_file.clone(),
            root.join("manifests/monitoring/wasmgate-rules-test.yaml"),
            root.join("charts/wasmgate/files/wasmgate-dashboard.json"),
        ];
        for path in &files {
            let file = path.file_name().unwrap().to_string_lossy();
            let text = std::fs::read_to_string(path).unwrap();
            let mut used = 0;
            for (at, _) in text.match_indices("wasmgate_") {
                let name: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let pattern = text[at..].strip_prefix(&name).is_some_and(|rest| rest.starts_with(".+"));
                let line = text[..at].lines().count();
                if pattern {
                    let end = text[at..].find(['"', '\\']).unwrap();
                    let pattern = &text[at..at + end];
                    assert!(known.iter().any(|n| matches(pattern, n)), "{file}:{line}: `{pattern}` matches no counter");
                } else if !name.ends_with('_') {
                    assert!(known.contains(&name), "{file}:{line}: no counter `{name}`; the counters: {known:?}");
                }
                used += 1;
            }
            assert!(used > 3, "{file} reads the counters");
        }
        // And the reverse: every reason a plugin refuses for counts in the rules' sums, so a new one is alerted on.
        let rules = std::fs::read_to_string(&rules_file).unwrap();
        let refusals =
            known.iter().filter(|n| n.contains("_denied_") || n.contains("_refused_") || n.ends_with("_host_error"));
        // (host-router refuses only requests that read two ways, answered like any routing decision.)
        for name in refusals.filter(|n| !n.starts_with("wasmgate_host_router_refused")) {
            assert!(rules.contains(&format!("{name}[")), "wasmgate-rules.yaml does not count `{name}`");
        }
        assert!(matches("wasmgate_.+_host_error", "wasmgate_basic_auth_host_error"));
        assert!(!matches("wasmgate_.+_host_error", "wasmgate__host_error"));
        assert!(!matches("wasmgate_basic_auth_denied_.+", "wasmgate_basic_auth_allowed"));
    }
}
