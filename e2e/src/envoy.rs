//! A real Envoy on loopback: its bootstrap built from the translated `WasmPlugin`s, the process started on
//! ports it picks itself (port 0, read back from the admin API), and stopped on drop.

use crate::http1::RawRequest;
use crate::workspace;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmgate::istio::{self, GatewayInfo, WasmPlugin};

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

type Resolver = Box<dyn Fn(&WasmPlugin) -> Result<PathBuf> + Send + Sync>;

/// What the gateway Envoy is made of: the plugins (as CRs), the route table and upstream clusters.
pub struct Gateway {
    plugins: Vec<WasmPlugin>,
    info: GatewayInfo,
    normalization: PathNormalization,
    routes: Vec<Value>,
    clusters: Vec<(String, SocketAddr)>,
    native_filters: Vec<Value>,
    resolve: Resolver,
    concurrency: u32,
    downstream_windows: Option<(u32, u32)>,
    wrapper: Vec<String>,
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new()
    }
}

impl Gateway {
    pub fn new() -> Self {
        Self {
            plugins: Vec::new(),
            info: GatewayInfo::default(),
            normalization: PathNormalization::default(),
            routes: Vec::new(),
            clusters: Vec::new(),
            native_filters: Vec::new(),
            resolve: Box::new(workspace::resolve_from_dist),
            concurrency: 1,
            downstream_windows: None,
            wrapper: Vec::new(),
        }
    }

    pub fn plugin(mut self, plugin: WasmPlugin) -> Self {
        self.plugins.push(plugin);
        self
    }

    pub fn plugins(mut self, plugins: impl IntoIterator<Item = WasmPlugin>) -> Self {
        self.plugins.extend(plugins);
        self
    }

    /// An upstream cluster (HTTP/2 prior knowledge, as Istio's DestinationRule for the model server sets).
    /// The first one added receives every request no earlier route claims.
    pub fn upstream(mut self, name: &str, addr: SocketAddr) -> Self {
        self.clusters.push((name.to_string(), addr));
        self
    }

    /// A route tried before the default one (Envoy `route` JSON).
    pub fn route(mut self, route: Value) -> Self {
        self.routes.push(route);
        self
    }

    /// A native Envoy HTTP filter placed after the Wasm plugins (for comparisons in benchmarks).
    pub fn native_filter(mut self, filter: Value) -> Self {
        self.native_filters.push(filter);
        self
    }

    pub fn normalization(mut self, normalization: PathNormalization) -> Self {
        self.normalization = normalization;
        self
    }

    pub fn resolver(mut self, resolve: impl Fn(&WasmPlugin) -> Result<PathBuf> + Send + Sync + 'static) -> Self {
        self.resolve = Box::new(resolve);
        self
    }

    /// HTTP/2 flow-control windows towards clients (stream, connection). Unset, Envoy's (and Istio's) default
    /// of 256 MiB lets a fast client push far ahead of a slow upstream; Envoy's edge guidance is 64 KiB / 1 MiB.
    pub fn downstream_windows(mut self, stream: u32, connection: u32) -> Self {
        self.downstream_windows = Some((stream, connection));
        self
    }

    /// Modules from a registry ([`crate::registry::publish_and_fetch`]) instead of `dist/`.
    pub fn fetched(self, fetched: crate::registry::Fetched) -> Self {
        let fetched = std::sync::Arc::new(fetched);
        self.resolver(move |plugin| fetched.path(plugin))
    }

    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    /// Runs Envoy under `command` (e.g. a profiler), which is given Envoy's command line after its own.
    pub fn wrapped(mut self, command: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.wrapper = command.into_iter().map(Into::into).collect();
        self
    }

    /// The Envoy bootstrap.
    pub fn bootstrap(&self) -> Result<Value> {
        let mut http_filters = istio::translate(&self.plugins, &self.info, &self.resolve)?;
        http_filters.extend(self.native_filters.iter().cloned());
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
        }));
        let mut routes = self.routes.clone();
        if let Some((default, _)) = self.clusters.first() {
            routes.push(json!({"match": {"prefix": "/"}, "route": {"cluster": default, "timeout": "0s"}}));
        }
        let (normalize, merge, escaped) = match self.normalization {
            PathNormalization::None => (false, false, "KEEP_UNCHANGED"),
            PathNormalization::Base => (true, false, "KEEP_UNCHANGED"),
            PathNormalization::MergeSlashes => (true, true, "KEEP_UNCHANGED"),
            PathNormalization::DecodeAndMergeSlashes => (true, true, "UNESCAPE_AND_FORWARD"),
        };
        let clusters: Vec<Value> = self.clusters.iter().map(|(name, addr)| cluster(name, *addr)).collect();
        let http2 = match self.downstream_windows {
            Some((stream, connection)) => {
                json!({"initial_stream_window_size": stream, "initial_connection_window_size": connection})
            }
            None => json!({}),
        };
        Ok(json!({
            "admin": {"address": socket(([127, 0, 0, 1], 0).into())},
            // Gauges such as server.memory_allocated are refreshed at each flush (5 s by default).
            "stats_flush_interval": "1s",
            "static_resources": {
                "listeners": [{
                    "name": "gateway",
                    "address": socket(([127, 0, 0, 1], 0).into()),
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "gateway",
                            "codec_type": "AUTO",
                            "normalize_path": normalize,
                            "merge_slashes": merge,
                            "path_with_escaped_slashes_action": escaped,
                            "use_remote_address": true,
                            "stream_idle_timeout": "300s",
                            "http2_protocol_options": http2,
                            "route_config": {
                                "name": "gateway",
                                "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]
                            },
                            "http_filters": http_filters,
                        }
                    }]}]
                }],
                "clusters": clusters,
            }
        }))
    }

    /// `envoy --mode validate`: loads the plugins and runs their `on_configure` without serving.
    pub fn validate(&self) -> Result<String> {
        let dir = tempfile::tempdir()?;
        let config = write_config(dir.path(), &self.bootstrap()?)?;
        let output = Command::new(workspace::envoy_binary()?)
            .args(["--mode", "validate", "-l", "info", "--disable-hot-restart", "-c"])
            .arg(&config)
            .output()
            .context("running envoy --mode validate")?;
        let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        if output.status.success() { Ok(log) } else { bail!("envoy refused the configuration:\n{log}") }
    }

    pub async fn start(self) -> Result<Envoy> {
        let bootstrap = self.bootstrap()?;
        let (concurrency, wrapper) = (self.concurrency, self.wrapper);
        tokio::task::spawn_blocking(move || Envoy::start(&bootstrap, concurrency, &wrapper)).await?
    }
}

fn socket(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

fn cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(addr)}}]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {
                    "initial_stream_window_size": 16777216,
                    "initial_connection_window_size": 16777216
                }}
            }
        }
    })
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

impl Envoy {
    fn start(bootstrap: &Value, concurrency: u32, wrapper: &[String]) -> Result<Self> {
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
        let mut envoy = Self { child, dir, listener: ([127, 0, 0, 1], 0).into(), admin: ([127, 0, 0, 1], 0).into() };
        // Under an instrumenting wrapper, start-up (V8 compiling the modules) is some fifty times slower.
        let patience = Duration::from_secs(if wrapper.is_empty() { 60 } else { 900 });
        envoy.wait_ready(&admin_file, patience)?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, admin_file: &Path, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("envoy exited ({status}) during start-up:\n{}", self.log_tail(40));
            }
            if Instant::now() > deadline {
                bail!("envoy not ready after {} s:\n{}", patience.as_secs(), self.log_tail(40));
            }
            if let Some(admin) = std::fs::read_to_string(admin_file).ok().and_then(|s| s.trim().parse().ok()) {
                self.admin = admin;
                if let Ok(listeners) =
                    runtime.block_on(RawRequest::get("/listeners?format=json").host("admin").send(admin))
                    && let Some(addr) = listener_address(&listeners.body)
                {
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

    /// Counters and gauges from the admin `/stats` page, by full name.
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>> {
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
}

fn listener_address(body: &[u8]) -> Option<SocketAddr> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let sock = &v["listener_statuses"][0]["local_address"]["socket_address"];
    let port = u16::try_from(sock["port_value"].as_u64()?).ok()?;
    let ip = sock["address"].as_str()?.parse().ok()?;
    (port != 0).then_some(SocketAddr::new(ip, port))
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
