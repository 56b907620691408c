//! The kind cluster `e2e/kind/run.sh` starts (`make e2e-kind`): kubectl against its context, the gateway pod's
//! own endpoints through the API server's proxy, and the gateway's node ports on this machine. The tests that use
//! it are `#[ignore]`d in a plain `cargo test`, and run.sh runs them with `--ignored` once the cluster is up.

use crate::workspace;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The kubectl context of the cluster run.sh started.
pub const CONTEXT_ENV: &str = "WASMGATE_KIND_CONTEXT";
/// The kubectl run.sh built with the cluster (the same Kubernetes release); `kubectl` on PATH without it.
pub const KUBECTL_ENV: &str = "WASMGATE_KUBECTL";
/// The istioctl run.sh built (the Istio the cluster runs); `istioctl` on PATH without it.
pub const ISTIOCTL_ENV: &str = "WASMGATE_ISTIOCTL";
/// The values file `wasmgate image push --pin-values` wrote when run.sh pushed the plugins: their digests, and the
/// registry as the cluster reaches it. Without it the chart's tags are pulled unpinned.
pub const PINS_ENV: &str = "WASMGATE_KIND_PINS";
/// The Helm release run.sh's tests install.
pub const RELEASE: &str = wasmgate::chart::RELEASE;
/// The gateway's node ports, which e2e/kind/cluster.yaml maps to this machine's loopback.
pub const HTTPS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 30443);
pub const HTTP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 30080);
pub const GATEWAY_NAMESPACE: &str = "istio-system";
pub const MODEL_NAMESPACE: &str = "ml-serving";
/// Where run.sh runs Prometheus (e2e/kind/prometheus.yaml).
pub const PROMETHEUS_NAMESPACE: &str = "monitoring";

#[derive(Clone)]
pub struct Cluster {
    context: String,
    kubectl: String,
    istioctl: String,
}

impl Cluster {
    /// The cluster run.sh started, or an error that says how to start one.
    pub fn from_env() -> Result<Self> {
        let context = std::env::var(CONTEXT_ENV)
            .with_context(|| format!("{CONTEXT_ENV} is not set: these tests run in `make e2e-kind`"))?;
        let kubectl = std::env::var(KUBECTL_ENV).unwrap_or_else(|_| "kubectl".to_owned());
        let istioctl = std::env::var(ISTIOCTL_ENV).unwrap_or_else(|_| "istioctl".to_owned());
        Ok(Self { context, kubectl, istioctl })
    }

    /// `kubectl --context <cluster> args...`; its standard output, or an error with both outputs.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.run(self.kubectl_command(&[]), args, None)
    }

    /// `kubectl --context <cluster> args...` to start as the caller likes (a `port-forward` that keeps running).
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = self.command(&self.kubectl, "--context");
        command.args(args);
        command
    }

    /// `program <context_flag> <cluster>`: kubectl and istioctl say `--context`, helm `--kube-context`.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, context_flag: &str) -> Command {
        let mut command = Command::new(program);
        command.arg(context_flag).arg(&self.context);
        command
    }

    /// `istioctl --context <cluster> args...`: its standard output and error, whatever its exit status (`analyze`
    /// exits non-zero when it finds an error, which is what the caller wants to read).
    pub fn istioctl(&self, args: &[&str]) -> Result<String> {
        let output = self
            .command(&self.istioctl, "--context")
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.istioctl))?;
        Ok(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    fn run(&self, mut command: Command, args: &[&str], input: Option<&str>) -> Result<String> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {program}"))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!("{program} {}: {stdout}{}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(stdout)
    }

    /// `helm upgrade --install wasmgate charts/wasmgate -n istio-system -f <values...> [-f pins]`: the chart as a
    /// user installs it, with the values files of `deployment` (`kind`, `kind-suite`: `wasmgate::chart`),
    /// run.sh's pins, and `extra` values last.
    pub fn helm_install(&self, deployment: &str, extra: &[Value]) -> Result<String> {
        let chart = workspace::chart_dir();
        let mut args: Vec<String> = ["upgrade", "--install", RELEASE].map(String::from).to_vec();
        args.extend([chart.display().to_string(), "--namespace".into(), GATEWAY_NAMESPACE.into()]);
        let mut values = wasmgate::chart::values_files(&chart, deployment)?;
        values.extend(std::env::var_os(PINS_ENV).map(std::path::PathBuf::from));
        let dir = tempfile::tempdir()?;
        for (i, value) in extra.iter().enumerate() {
            let file = dir.path().join(format!("values-{i}.yaml"));
            std::fs::write(&file, serde_yaml_ng::to_string(value)?)?;
            values.push(file);
        }
        for file in values {
            args.extend(["--values".into(), file.display().to_string()]);
        }
        self.helm(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `helm --kube-context <cluster> args...` (the Helm `make helm` builds); its standard output.
    pub fn helm(&self, args: &[&str]) -> Result<String> {
        self.run(self.command(wasmgate::chart::helm(), "--kube-context"), args, None)
    }

    /// `kubectl apply -f -` of one object.
    pub fn apply(&self, object: &Value) -> Result<String> {
        self.run(self.kubectl_command(&[]), &["apply", "-f", "-"], Some(&object.to_string()))
    }

    /// `kubectl delete what...` in `namespace`; nothing to delete is not an error.
    pub fn delete(&self, namespace: &str, what: &[&str]) -> Result<String> {
        let args = [&["-n", namespace, "delete", "--ignore-not-found"], what].concat();
        self.kubectl(&args)
    }

    /// `kubectl get what...` in `namespace`, as JSON.
    pub fn get(&self, namespace: &str, what: &[&str]) -> Result<Value> {
        let args = [&["-n", namespace, "get"], what, &["-o", "json"]].concat();
        let json = self.kubectl(&args)?;
        serde_json::from_str(&json).with_context(|| format!("kubectl get {}", what.join(" ")))
    }

    /// Waits until a Deployment has rolled out.
    pub fn rolled_out(&self, namespace: &str, deployment: &str, timeout: Duration) -> Result<()> {
        let timeout = format!("--timeout={}s", timeout.as_secs());
        self.kubectl(&["-n", namespace, "rollout", "status", &format!("deployment/{deployment}"), &timeout])?;
        Ok(())
    }

    /// The names of the pods that `selector` selects and that serve: running, ready, not being deleted.
    pub fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<String>> {
        let pods = self.get(namespace, &["pods", "-l", selector, "--field-selector=status.phase=Running"])?;
        let ready = |pod: &Value| {
            let mut conditions = pod["status"]["conditions"].as_array().into_iter().flatten();
            conditions.any(|c| c["type"] == "Ready" && c["status"] == "True")
        };
        Ok(pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && ready(p))
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// The ingress gateway's pod.
    pub fn gateway_pod(&self) -> Result<String> {
        self.pods(GATEWAY_NAMESPACE, "istio=ingressgateway")?.into_iter().next().context("no running gateway pod")
    }

    /// GET `path` on the gateway pod's `port` through the API server's proxy (the pod's own endpoints: 15020's
    /// merged Prometheus stats, 15000's Envoy admin is not reachable this way as it listens on localhost).
    pub fn gateway_get(&self, port: u16, path: &str) -> Result<String> {
        let pod = self.gateway_pod()?;
        self.kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{GATEWAY_NAMESPACE}/pods/{pod}:{port}/proxy{path}"),
        ])
    }

    /// `pilot-agent request GET <path>` in the gateway pod: Envoy's admin endpoint (config dump, stats), which
    /// listens on the pod's loopback only.
    pub fn gateway_admin(&self, path: &str) -> Result<String> {
        let pod = self.gateway_pod()?;
        self.kubectl(&[
            "-n",
            GATEWAY_NAMESPACE,
            "exec",
            &pod,
            "-c",
            "istio-proxy",
            "--",
            "pilot-agent",
            "request",
            "GET",
            path,
        ])
    }

    /// The WasmPlugins (`<namespace>.<name>`) whose filters the gateway's active listener on `port` (the pod's
    /// port) takes from discovery (ECDS). Istio names such a filter
    /// `extensions.istio.io/trafficextension/<namespace>.<name>~istio-translated-wasmplugin` (older releases
    /// `<namespace>.<name>`). A listener still warming (its new filters not yet fetched by istio-agent) does not
    /// count.
    pub fn gateway_discovered_filters(&self, port: u16) -> Result<BTreeSet<String>> {
        let dump: Value = serde_json::from_str(&self.gateway_admin("/config_dump?resource=dynamic_listeners")?)?;
        let listener = dump["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"].as_str() == Some(&format!("0.0.0.0_{port}")))
            .with_context(|| format!("no listener on {port}"))?;
        let mut names = BTreeSet::new();
        discovered_filters(&listener["active_state"]["listener"], &mut names);
        Ok(names.iter().map(|name| wasm_plugin_of(name).to_owned()).collect())
    }

    /// An instant query to the cluster's Prometheus (e2e/kind/prometheus.yaml) through the API server's proxy:
    /// its result vector (each `{metric, value: [time, "v"]}`).
    pub fn prometheus_query(&self, query: &str) -> Result<Vec<Value>> {
        // Prometheus's query API takes the query form-encoded; its names, parentheses and colons need only this.
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let data = self.prometheus_api(&format!("query?query={encoded}"))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// `GET /api/v1/<path>` of the cluster's Prometheus: its `data`.
    pub fn prometheus_api(&self, path: &str) -> Result<Value> {
        let path = format!("/api/v1/namespaces/{PROMETHEUS_NAMESPACE}/services/prometheus:9090/proxy/api/v1/{path}");
        let answer: Value = serde_json::from_str(&self.kubectl(&["get", "--raw", &path])?)?;
        if answer["status"] != "success" {
            bail!("Prometheus answered {answer}");
        }
        Ok(answer["data"].clone())
    }

    /// One sample of the gateway's merged Prometheus endpoint (`:15020/stats/prometheus`), summed over its
    /// labels; 0 when the series is absent.
    pub fn gateway_metric(&self, name: &str) -> Result<f64> {
        Ok(prometheus_sum(&self.gateway_get(15020, "/stats/prometheus")?, name))
    }
}

/// The WasmPlugin an ECDS filter name stands for: what lies between the last `/` and the first `~`.
fn wasm_plugin_of(filter: &str) -> &str {
    let name = filter.rsplit('/').next().unwrap_or(filter);
    name.split('~').next().unwrap_or(name)
}

/// The names of the filters under `config` that come from discovery (`config_discovery`).
fn discovered_filters(config: &Value, names: &mut BTreeSet<String>) {
    match config {
        Value::Object(object) => {
            if let (Some(name), true) =
                (object.get("name").and_then(Value::as_str), object.contains_key("config_discovery"))
            {
                names.insert(name.to_owned());
            }
            object.values().for_each(|v| discovered_filters(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| discovered_filters(v, names)),
        _ => {}
    }
}

/// Runs `undo` when dropped: what a test changed on the shared cluster is put back even when the test fails.
pub struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    pub fn new(undo: F) -> Self {
        Self(Some(undo))
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(undo) = self.0.take() {
            undo();
        }
    }
}

/// The sum of every sample of `name` in a Prometheus text exposition.
pub fn prometheus_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Retries `check` every second until it succeeds or `timeout` passes; the last error otherwise.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => return Err(e.context(format!("still failing after {timeout:?}"))),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prometheus_sum;

    #[test]
    fn finds_the_discovered_filters_in_a_listener() {
        let listener = serde_json::json!({"filter_chains": [{"filters": [{"typed_config": {"http_filters": [
            {"name": "istio-system.basic-auth", "config_discovery": {"type_urls": ["wasm"]}},
            {"name": "envoy.filters.http.router", "typed_config": {}},
        ]}}]}]});
        let mut names = std::collections::BTreeSet::new();
        super::discovered_filters(&listener, &mut names);
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["istio-system.basic-auth"]);
    }

    #[test]
    fn names_the_wasm_plugin_of_an_istio_filter() {
        let translated = "extensions.istio.io/trafficextension/istio-system.suite~istio-translated-wasmplugin";
        assert_eq!(super::wasm_plugin_of(translated), "istio-system.suite");
        assert_eq!(super::wasm_plugin_of("istio-system.suite"), "istio-system.suite");
    }

    #[test]
    fn sums_a_metric_over_its_labels_and_ignores_longer_names() {
        let text = "# TYPE a counter\na{x=\"1\"} 2\na{x=\"2\"} 3\nab 100\na 1\n";
        assert_eq!(prometheus_sum(text, "a"), 6.0);
        assert_eq!(prometheus_sum(text, "missing"), 0.0);
    }
}
