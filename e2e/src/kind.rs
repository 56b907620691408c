//! The kind cluster `e2e/kind/run.sh` starts (`make e2e-kind`): kubectl against its context, the gateway pod's
//! own endpoints through the API server's proxy, and the gateway's node ports on this machine. The tests that use
//! it are `#[ignore]`d in a plain `cargo test`, and run.sh runs them with `--ignored` once the cluster is up.

use crate::workspace;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The kubectl context of the cluster run.sh started.
pub const CONTEXT_ENV: &str = "WASMGATE_KIND_CONTEXT";
/// The kubectl run.sh built with the cluster (the same Kubernetes release); `kubectl` on PATH without it.
pub const KUBECTL_ENV: &str = "WASMGATE_KUBECTL";
/// The gateway's node ports, which e2e/kind/cluster.yaml maps to this machine's loopback.
pub const HTTPS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 30443);
pub const HTTP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 30080);
pub const GATEWAY_NAMESPACE: &str = "istio-system";
pub const MODEL_NAMESPACE: &str = "ml-serving";

pub struct Cluster {
    context: String,
    kubectl: String,
}

impl Cluster {
    /// The cluster run.sh started, or an error that says how to start one.
    pub fn from_env() -> Result<Self> {
        let context = std::env::var(CONTEXT_ENV)
            .with_context(|| format!("{CONTEXT_ENV} is not set: these tests run in `make e2e-kind`"))?;
        let kubectl = std::env::var(KUBECTL_ENV).unwrap_or_else(|_| "kubectl".to_owned());
        Ok(Self { context, kubectl })
    }

    /// `kubectl --context <cluster> args...`; its standard output, or an error with both outputs.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_with_input(args, None)
    }

    fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let mut child = Command::new(&self.kubectl)
            .arg("--context")
            .arg(&self.context)
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.kubectl))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!("kubectl {}: {stdout}{}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(stdout)
    }

    /// `kubectl apply -k manifests/overlays/<overlay>`: the overlay exactly as a user applies it.
    pub fn apply_overlay(&self, overlay: &str) -> Result<String> {
        let dir = workspace::manifests_dir().join("overlays").join(overlay);
        self.kubectl(&["apply", "-k", &dir.display().to_string()])
    }

    /// `kubectl apply -f -` of one object.
    pub fn apply(&self, object: &Value) -> Result<String> {
        self.kubectl_with_input(&["apply", "-f", "-"], Some(&object.to_string()))
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

    /// The names of the running pods that `selector` selects.
    pub fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<String>> {
        let pods = self.get(namespace, &["pods", "-l", selector, "--field-selector=status.phase=Running"])?;
        Ok(pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
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

    /// One sample of the gateway's merged Prometheus endpoint (`:15020/stats/prometheus`), summed over its
    /// labels; 0 when the series is absent.
    pub fn gateway_metric(&self, name: &str) -> Result<f64> {
        Ok(prometheus_sum(&self.gateway_get(15020, "/stats/prometheus")?, name))
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
    fn sums_a_metric_over_its_labels_and_ignores_longer_names() {
        let text = "# TYPE a counter\na{x=\"1\"} 2\na{x=\"2\"} 3\nab 100\na 1\n";
        assert_eq!(prometheus_sum(text, "a"), 6.0);
        assert_eq!(prometheus_sum(text, "missing"), 0.0);
    }
}
