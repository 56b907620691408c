//! A real Envoy on loopback, configured over ADS by istiod (see [`crate::gateway`]), or from a bootstrap the
//! caller writes; stopped on drop.

use crate::http1::RawRequest;
use crate::workspace;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Istio's `meshConfig.pathNormalization`; `Base` is Istio's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathNormalization {
    None,
    #[default]
    Base,
    MergeSlashes,
    DecodeAndMergeSlashes,
}

impl PathNormalization {
    /// The name `meshConfig.pathNormalization.normalization` takes.
    pub fn istio_name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Base => "BASE",
            Self::MergeSlashes => "MERGE_SLASHES",
            Self::DecodeAndMergeSlashes => "DECODE_AND_MERGE_SLASHES",
        }
    }

    /// The setting `manifests/istio/istio-operator.yaml` installs Istio with (Istio's default where it names
    /// none).
    pub fn shipped() -> Result<Self> {
        let path = workspace::manifests_dir().join("istio/istio-operator.yaml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let operator: Value = serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        match operator.pointer("/spec/meshConfig/pathNormalization/normalization").and_then(Value::as_str) {
            None | Some("DEFAULT") | Some("BASE") => Ok(Self::Base),
            Some("NONE") => Ok(Self::None),
            Some("MERGE_SLASHES") => Ok(Self::MergeSlashes),
            Some("DECODE_AND_MERGE_SLASHES") => Ok(Self::DecodeAndMergeSlashes),
            Some(other) => bail!("{}: unknown pathNormalization `{other}`", path.display()),
        }
    }
}

fn socket(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

fn write_config(dir: &Path, bootstrap: &Value) -> Result<PathBuf> {
    let path = dir.join("envoy.json");
    std::fs::write(&path, serde_json::to_vec_pretty(bootstrap)?)?;
    Ok(path)
}

/// A running Envoy. Dropping it stops the process.
pub struct Envoy {
    child: Child,
    dir: tempfile::TempDir,
    pub listener: SocketAddr,
    pub admin: SocketAddr,
}

/// What istio-agent tells istiod about the gateway in Envoy's node: its Pod (see [`crate::world`]), namespace,
/// labels, cluster, Istio version and proxy config. istiod finds the Pod and its Service from these and builds
/// the gateway's listeners at the Service's target ports, as the proxy config says (e.g. `gatewayTopology`).
fn gateway_node(proxy_config: &Value) -> Value {
    let pod = crate::world::GATEWAY_POD;
    let namespace = crate::world::GATEWAY_NAMESPACE;
    json!({
        "id": format!("router~{}~{pod}.{namespace}~{namespace}.svc.cluster.local", crate::world::GATEWAY_IP),
        "cluster": format!("istio-ingressgateway.{namespace}"),
        "metadata": {
            "NAME": pod,
            "NAMESPACE": namespace,
            "LABELS": crate::world::gateway_labels(),
            "INSTANCE_IPS": crate::world::GATEWAY_IP,
            "CLUSTER_ID": "Kubernetes",
            "ISTIO_VERSION": ISTIO_VERSION,
            "WORKLOAD_NAME": "istio-ingressgateway",
            "OWNER": format!("kubernetes://apis/apps/v1/namespaces/{namespace}/deployments/istio-ingressgateway"),
            "SERVICE_ACCOUNT": "istio-ingressgateway-service-account",
            "MESH_ID": "cluster.local",
            "PROXY_CONFIG": proxy_config,
        }
    })
}

/// The Istio release of the `istio.io/istio` the harness runs (e2e/istiod/go.mod).
pub const ISTIO_VERSION: &str = "1.31.0";

/// A bootstrap that takes everything else from ADS at `xds` (the istio-agent step in front of istiod).
fn ads_bootstrap(xds: SocketAddr, proxy_config: &Value) -> Value {
    json!({
        "node": gateway_node(proxy_config),
        "admin": {"address": socket(([127, 0, 0, 1], 0).into())},
        "stats_flush_interval": "1s",
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"}
        },
        "static_resources": {"clusters": [{
            "name": "xds-grpc",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(xds)}}]}]},
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            }
        }]}
    })
}

impl Envoy {
    /// Envoy configured over ADS from `xds` as the gateway with `proxy_config` (see [`crate::istiod::Istiod`]),
    /// serving (among its listeners) `listener` once it is ready.
    pub async fn start_ads(
        xds: SocketAddr,
        proxy_config: &Value,
        listener: SocketAddr,
        concurrency: u32,
        wrapper: &[String],
    ) -> Result<Self> {
        let bootstrap = ads_bootstrap(xds, proxy_config);
        let wrapper = wrapper.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut envoy = Self::spawn(&bootstrap, concurrency, &wrapper)?;
            envoy.wait_ready(Some(listener), envoy.patience(&wrapper))?;
            Ok(envoy)
        })
        .await?
    }

    /// Envoy with a bootstrap of the caller's (static listeners), ready once it listens on `listener`.
    pub async fn start_static(bootstrap: Value, listener: SocketAddr) -> Result<Self> {
        tokio::task::spawn_blocking(move || {
            let mut envoy = Self::spawn(&bootstrap, 1, &[])?;
            envoy.wait_ready(Some(listener), envoy.patience(&[]))?;
            Ok(envoy)
        })
        .await?
    }

    fn patience(&self, wrapper: &[String]) -> Duration {
        // Under an instrumenting wrapper, start-up (V8 compiling the modules) is some fifty times slower.
        Duration::from_secs(if wrapper.is_empty() { 60 } else { 900 })
    }

    fn spawn(bootstrap: &Value, concurrency: u32, wrapper: &[String]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = write_config(dir.path(), bootstrap)?;
        let admin_file = dir.path().join("admin-address");
        let log = dir.path().join("envoy.log");
        let envoy = workspace::envoy_binary()?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&envoy);
                c
            }
            None => Command::new(&envoy),
        };
        let child = command
            .arg("-c")
            .arg(&config)
            .args(["--disable-hot-restart", "-l", "info", "--concurrency", &concurrency.to_string()])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Envoy's stderr logger writes at once; its `--log-path` file sink buffers and would hide the
            // latest lines from a test.
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| {
                format!("starting envoy{}", wrapper.first().map(|w| format!(" under {w}")).unwrap_or_default())
            })?;
        Ok(Self { child, dir, listener: ([127, 0, 0, 1], 0).into(), admin: ([127, 0, 0, 1], 0).into() })
    }

    /// Waits until Envoy is ready and listening on `expected`, a port istiod's listener binds.
    fn wait_ready(&mut self, expected: Option<SocketAddr>, patience: Duration) -> Result<()> {
        let admin_file = self.dir.path().join("admin-address");
        let deadline = Instant::now() + patience;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("envoy exited ({status}) during start-up:\n{}", self.log_tail(40));
            }
            if Instant::now() > deadline {
                bail!("envoy not ready after {} s:\n{}", patience.as_secs(), self.log_tail(40));
            }
            if let Some(admin) = std::fs::read_to_string(&admin_file).ok().and_then(|s| s.trim().parse().ok()) {
                self.admin = admin;
                if let Ok(listeners) =
                    runtime.block_on(RawRequest::get("/listeners?format=json").host("admin").send(admin))
                    && let Some(addr) = listener_address(&listeners.body, expected.map(|e| e.port()))
                {
                    let addr = expected.unwrap_or(addr);
                    let ready = runtime.block_on(RawRequest::get("/ready").host("admin").send(admin))?;
                    if ready.status == 200 {
                        self.listener = addr;
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Envoy's whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Counters and gauges from the admin `/stats` page, by full name, once the plugins have handed Envoy what
    /// they counted so far (they flush every `FLUSH_PERIOD`).
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>> {
        tokio::time::sleep(wasmgate_common::metrics::FLUSH_PERIOD + std::time::Duration::from_millis(100)).await;
        let page = RawRequest::get("/stats").host("admin").send(self.admin).await?;
        Ok(page
            .text()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k.to_string(), v)))
            .collect())
    }

    /// A counter's value, 0 if Envoy has not created it.
    pub async fn counter(&self, name: &str) -> Result<u64> {
        Ok(self.stats().await?.get(name).copied().unwrap_or(0))
    }

    /// A statistic of the upstream cluster `cluster` (e.g. `upstream_rq_total`), which must exist: istiod names a
    /// cluster's stats after the cluster followed by `;` (`cluster.outbound|8500|stable|host;.upstream_rq_total`).
    pub async fn cluster_stat(&self, cluster: &str, stat: &str) -> Result<u64> {
        let stats = self.stats().await?;
        [format!("cluster.{cluster};.{stat}"), format!("cluster.{cluster}.{stat}")]
            .iter()
            .find_map(|name| stats.get(name).copied())
            .with_context(|| format!("Envoy has no `{stat}` for cluster `{cluster}`"))
    }
}

/// The address of the first listener (or of the one on `port`) that has one.
fn listener_address(body: &[u8], port: Option<u16>) -> Option<SocketAddr> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["listener_statuses"].as_array()?.iter().find_map(|status| {
        let sock = &status["local_address"]["socket_address"];
        let listening = u16::try_from(sock["port_value"].as_u64()?).ok()?;
        let ip = sock["address"].as_str()?.parse().ok()?;
        (listening != 0 && port.is_none_or(|p| p == listening)).then_some(SocketAddr::new(ip, listening))
    })
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // SIGTERM first so Envoy exits cleanly; kill if it lingers.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
