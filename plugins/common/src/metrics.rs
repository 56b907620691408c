//! Metric names. Envoy shows a Wasm counter named `wasmgate.<plugin>.<name>` as
//! `wasmcustom.wasmgate.<plugin>.<name>` on its admin `/stats` and Prometheus endpoints.

pub const PREFIX: &str = "wasmgate";

pub fn metric_name(plugin: &str, name: &str) -> String {
    format!("{PREFIX}.{plugin}.{name}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::metric_name("basic_auth", "allowed"), "wasmgate.basic_auth.allowed");
    }
}
