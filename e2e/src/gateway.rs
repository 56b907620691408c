//! A gateway as Istio builds one: the test's `WasmPlugin`s, a `Gateway` and a `VirtualService` in front of the
//! test's upstreams, turned into Envoy config by istiod's own generator and istio-agent's own Wasm fetcher
//! ([`crate::istiod`]), served over ADS to a real Envoy.

use crate::envoy::{Envoy, PathNormalization};
use crate::istiod::{Inputs, Istiod};
use crate::nlb::Nlb;
use crate::tls::TestCertificates;
use crate::world::{Endpoint, GatewayInstall, GatewayPort, PROXY_CONFIG_ANNOTATION, World};
use crate::{WasmPlugin, loopback, workspace};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the test's upstreams live, as Services.
pub const UPSTREAM_NAMESPACE: &str = "upstreams";
const GATEWAY_NAME: &str = "test-gateway";

/// Where a test's module for a plugin is on disk.
type Resolver = Box<dyn Fn(&WasmPlugin) -> Result<PathBuf> + Send + Sync>;

/// How Envoy gets each plugin's module: from `dist/` by `file://` URL (istiod hands Envoy the path), or from the
/// registry the CRs name (istio-agent pulls it).
enum Modules {
    Dist,
    Files(Resolver),
    Registry { insecure: Vec<String> },
}

pub struct Gateway {
    plugins: Vec<WasmPlugin>,
    upstreams: Vec<(String, SocketAddr)>,
    routes: Vec<Value>,
    native_filters: Vec<Value>,
    downstream_windows: Option<(u32, u32)>,
    cluster_objects: Vec<Value>,
    normalization: Option<PathNormalization>,
    modules: Modules,
    concurrency: u32,
    wrapper: Vec<String>,
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new()
    }
}

/// A running gateway: istiod, the Envoy it configures, and the NLB stand-in in front of it where the install puts
/// an NLB there. Dropping it stops them.
pub struct RunningGateway {
    pub envoy: Envoy,
    pub istiod: Istiod,
    /// Where clients reach the Gateway's server for the port it was started for: Envoy's own listener, or the
    /// NLB's listener in front of it (without the NLB's TLS, see [`Nlb::plain_https`]).
    pub listener: SocketAddr,
    pub nlb: Option<Nlb>,
    /// The Istio resources but the plugins.
    istio: String,
    modules: Modules,
    gateway_ports: Vec<GatewayPort>,
    /// Where Envoy listens for each port of the gateway Service (80, 443), on loopback.
    pub ports: BTreeMap<u16, SocketAddr>,
}

/// Everything istiod reads for one gateway, as a cluster would hold it.
pub struct Deployment {
    /// The Istio resources but the plugins (other kinds are skipped).
    pub istio: String,
    /// The `WasmPlugin`s, as the cluster holds them.
    pub plugins: Vec<WasmPlugin>,
    /// The Kubernetes objects but the gateway's own Service and Pod.
    pub world: World,
    /// The gateway's Service and Pod, with the target ports Envoy is to listen on.
    pub install: GatewayInstall,
    /// The hosts' certificate, for the NLB's TLS listener where the install puts an NLB in front.
    pub certificates: Option<Arc<TestCertificates>>,
    /// The install options (`IstioOperator`) whose mesh config istiod runs with.
    pub mesh: String,
    /// Registries istio-agent pulls from over plain HTTP.
    pub insecure_registries: Vec<String>,
}

impl Deployment {
    /// istiod for this deployment, and an Envoy configured by it, ready to serve the gateway Service's `port`;
    /// behind an NLB stand-in if the gateway Service's annotations ask the AWS Load Balancer Controller for one.
    pub async fn start(self, port: u16, concurrency: u32, wrapper: &[String]) -> Result<RunningGateway> {
        let world = self.world.ingress_gateway(&self.install);
        let istio = with_plugins(&self.istio, &follow_target_ports(self.plugins, &self.install.ports))?;
        let inputs = Inputs {
            istio,
            kube: world.to_yaml()?,
            mesh: self.mesh,
            insecure_registries: self.insecure_registries,
            proxy_config: self.install.pod_annotations.get(PROXY_CONFIG_ANNOTATION).cloned().unwrap_or_default(),
        };
        let ports: BTreeMap<u16, SocketAddr> = self
            .install
            .ports
            .iter()
            .map(|p| (p.port, SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, p.target_port))))
            .collect();
        let listener = *ports.get(&port).with_context(|| format!("the gateway Service has no port {port}"))?;
        let istiod = Istiod::start(&inputs).await?;
        let envoy = Envoy::start_ads(istiod.xds, &istiod.proxy_config, listener, concurrency, wrapper).await?;
        let nlb = match Nlb::in_front_of(&self.install) {
            false => None,
            true => {
                let certificates = self
                    .certificates
                    .context("the install puts an NLB in front, which needs the hosts' certificate")?;
                Some(Nlb::start(&ports, &self.install.service_annotations, certificates).await?)
            }
        };
        let listener = match &nlb {
            Some(nlb) if port == 443 => nlb.plain_https,
            Some(nlb) if port == 80 => nlb.http,
            Some(_) => bail!("the NLB forwards only the gateway Service's 80 and 443"),
            None => listener,
        };
        let gateway = RunningGateway {
            envoy,
            istiod,
            listener,
            nlb,
            istio: self.istio,
            modules: Modules::Registry { insecure: Vec::new() },
            gateway_ports: self.install.ports,
            ports,
        };
        // The listener serves before its filters' configs arrive over ECDS (istiod sets no initial fetch timeout:
        // a request meanwhile gets 500), so ready means every one of them answered, accepted or rejected.
        gateway.settled_extensions(Duration::from_secs(if wrapper.is_empty() { 60 } else { 900 })).await?;
        Ok(gateway)
    }
}

/// The gateway's Service and Pod as Istio's default install creates them (ports `http2` 80 → 8080, `https` 443 →
/// 8443), or as the install options in `options` set them (ports, Service and Pod annotations); each target port
/// moved to a free one, so gateways run side by side.
pub fn gateway_install(options: Option<&str>) -> Result<GatewayInstall> {
    let mut ports = vec![(String::from("http2"), 80u16, 8080u16), (String::from("https"), 443u16, 8443u16)];
    let (mut service_annotations, mut pod_annotations) = (BTreeMap::new(), BTreeMap::new());
    if let Some(text) = options {
        let operator: Value = serde_yaml_ng::from_str(text)?;
        let k8s = &operator["spec"]["components"]["ingressGateways"][0]["k8s"];
        let strings = |map: &Value| -> Result<BTreeMap<String, String>> {
            let Some(map) = map.as_object() else { return Ok(BTreeMap::new()) };
            map.iter()
                .map(|(k, v)| {
                    Ok((k.clone(), v.as_str().with_context(|| format!("annotation {k} is not a string"))?.into()))
                })
                .collect()
        };
        service_annotations = strings(&k8s["serviceAnnotations"])?;
        pod_annotations = strings(&k8s["podAnnotations"])?;
        if let Some(list) = k8s["service"]["ports"].as_array() {
            ports = list
                .iter()
                .filter(|p| p["name"] != "status-port")
                .filter_map(|p| {
                    let number = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
                    Some((p["name"].as_str()?.to_string(), number(&p["port"])?, number(&p["targetPort"])?))
                })
                .collect();
        }
    }
    let ports = ports
        .into_iter()
        .map(|(name, port, install_target_port)| {
            Ok(GatewayPort { name, port, target_port: loopback::free_port()?, install_target_port })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GatewayInstall { ports, service_annotations, pod_annotations })
}

/// The plugins with each port they match (`match[].ports`, a gateway listener's port, i.e. a target port of the
/// gateway Service on a cluster) moved to where that listener is here.
pub fn follow_target_ports(mut plugins: Vec<WasmPlugin>, ports: &[GatewayPort]) -> Vec<WasmPlugin> {
    for plugin in &mut plugins {
        for selector in plugin.spec.match_.iter_mut().flat_map(|m| m.ports.iter_mut()) {
            if let Some(port) = ports.iter().find(|p| u32::from(p.install_target_port) == selector.number) {
                selector.number = u32::from(port.target_port);
            }
        }
    }
    plugins
}

/// `istio` with the plugins appended, as one YAML stream.
fn with_plugins(istio: &str, plugins: &[WasmPlugin]) -> Result<String> {
    let mut out = istio.to_string();
    for plugin in plugins {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&plugin.to_value()?)?);
    }
    Ok(out)
}

impl std::ops::Deref for RunningGateway {
    type Target = Envoy;

    fn deref(&self) -> &Envoy {
        &self.envoy
    }
}

impl Modules {
    /// The CRs as istiod gets them: `file://` URLs to the modules unless they are pulled.
    fn resolve(&self, plugins: &[WasmPlugin]) -> Result<Vec<WasmPlugin>> {
        plugins
            .iter()
            .map(|plugin| {
                let path = match self {
                    Modules::Registry { .. } => return Ok(plugin.clone()),
                    Modules::Dist => workspace::resolve_from_dist(plugin)?,
                    Modules::Files(resolve) => resolve(plugin)?,
                };
                let path = path.canonicalize().with_context(|| format!("{}", path.display()))?;
                let mut local = plugin.clone();
                local.spec.url = format!("file://{}", path.display());
                local.spec.sha256 = None;
                Ok(local)
            })
            .collect()
    }
}

impl Gateway {
    pub fn new() -> Self {
        Self {
            plugins: Vec::new(),
            upstreams: Vec::new(),
            routes: Vec::new(),
            native_filters: Vec::new(),
            downstream_windows: None,
            cluster_objects: Vec::new(),
            normalization: None,
            modules: Modules::Dist,
            concurrency: 1,
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

    /// A backend, as the Service `<name>.upstreams.svc.cluster.local` (HTTP/2) with one endpoint at `addr`. The
    /// first one added receives every request no earlier route claims.
    pub fn upstream(mut self, name: &str, addr: SocketAddr) -> Self {
        self.upstreams.push((name.to_string(), addr));
        self
    }

    /// A `VirtualService` HTTP route (Istio's schema), tried before the default one; name destinations with
    /// [`destination`].
    pub fn route(mut self, route: Value) -> Self {
        self.routes.push(route);
        self
    }

    /// A native Envoy HTTP filter (name and `typed_config`) after the Wasm plugins, the way a user adds one to an
    /// Istio gateway: an `EnvoyFilter` inserting it before the router (for comparisons in benchmarks).
    pub fn native_filter(mut self, filter: Value) -> Self {
        self.native_filters.push(filter);
        self
    }

    /// HTTP/2 flow-control windows towards clients (stream, connection), set by an `EnvoyFilter` on the gateway's
    /// connection manager. Unset, Istio's default of 256 MiB lets a fast client push far ahead of a slow upstream;
    /// Envoy's edge guidance is 64 KiB / 1 MiB.
    pub fn downstream_windows(mut self, stream: u32, connection: u32) -> Self {
        self.downstream_windows = Some((stream, connection));
        self
    }

    /// A Kubernetes object the cluster holds besides the gateway and the upstreams (e.g. an image pull secret).
    pub fn cluster_object(mut self, object: Value) -> Self {
        self.cluster_objects.push(object);
        self
    }

    /// The mesh's `pathNormalization`; unset, the one `manifests/istio` installs.
    pub fn normalization(mut self, normalization: PathNormalization) -> Self {
        self.normalization = Some(normalization);
        self
    }

    /// Modules from another place than `dist/` (a hand-written module, a second build).
    pub fn resolver(mut self, resolve: impl Fn(&WasmPlugin) -> Result<PathBuf> + Send + Sync + 'static) -> Self {
        self.modules = Modules::Files(Box::new(resolve));
        self
    }

    /// Modules pulled by istio-agent from the registries the CRs name (plain HTTP to `insecure` ones).
    pub fn pulled(mut self, insecure: impl IntoIterator<Item = String>) -> Self {
        self.modules = Modules::Registry { insecure: insecure.into_iter().collect() };
        self
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

    /// Deploys the gateway and reports whether Envoy accepted every plugin: `Err` with Envoy's log (where each
    /// plugin logs why it refused its config) when one was rejected.
    pub async fn validate(self) -> Result<String> {
        let gateway = self.start().await?;
        let rejected: Vec<String> = gateway
            .extensions()
            .await?
            .into_iter()
            .filter(|(_, state)| *state == Extension::Rejected)
            .map(|(name, _)| name)
            .collect();
        let log = gateway.envoy.log();
        if rejected.is_empty() { Ok(log) } else { bail!("envoy rejected {}:\n{log}", rejected.join(", ")) }
    }

    fn resolved_plugins(&self) -> Result<Vec<WasmPlugin>> {
        self.modules.resolve(&self.plugins)
    }

    /// The Istio resources but the plugins: a Gateway whose 443 server (plain HTTP, as behind the EKS values' NLB)
    /// takes every host, and a VirtualService.
    fn istio_resources(&self) -> Result<String> {
        let mut docs: Vec<Value> = Vec::new();
        docs.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": GATEWAY_NAME, "namespace": crate::world::GATEWAY_NAMESPACE},
            "spec": {"selector": {"istio": "ingressgateway"},
                     "servers": [{"port": {"number": 443, "name": "http-443", "protocol": "HTTP"}, "hosts": ["*"]}]}
        }));
        let mut routes = self.routes.clone();
        if let Some((name, _)) = self.upstreams.first() {
            routes.push(json!({"name": "default", "route": [{"destination": destination(name)}]}));
        }
        if !routes.is_empty() {
            docs.push(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "upstreams", "namespace": crate::world::GATEWAY_NAMESPACE},
                "spec": {"hosts": ["*"], "gateways": [GATEWAY_NAME], "http": routes}
            }));
        }
        let hcm = "envoy.filters.network.http_connection_manager";
        for (i, filter) in self.native_filters.iter().enumerate() {
            docs.push(envoy_filter(
                &format!("native-{i}"),
                json!({"applyTo": "HTTP_FILTER",
                       "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {"name": hcm,
                                 "subFilter": {"name": "envoy.filters.http.router"}}}}},
                       "patch": {"operation": "INSERT_BEFORE", "value": filter}}),
            ));
        }
        if let Some((stream, connection)) = self.downstream_windows {
            docs.push(envoy_filter(
                "downstream-windows",
                json!({"applyTo": "NETWORK_FILTER",
                       "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {"name": hcm}}}},
                       "patch": {"operation": "MERGE", "value": {"typed_config": {
                           "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                           "http2_protocol_options": {"initial_stream_window_size": stream,
                                                      "initial_connection_window_size": connection}}}}}),
            ));
        }
        let mut out = String::new();
        for doc in docs {
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(&doc)?);
        }
        Ok(out)
    }

    pub async fn start(self) -> Result<RunningGateway> {
        let istio = self.istio_resources()?;
        let install = gateway_install(None)?;
        let mut world = World::new()
            .object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": UPSTREAM_NAMESPACE}}));
        for object in &self.cluster_objects {
            world = world.object(object.clone());
        }
        for (i, (name, addr)) in self.upstreams.iter().enumerate() {
            let endpoint = Endpoint {
                pod: format!("{name}-0"),
                labels: BTreeMap::from([("app".to_string(), name.clone())]),
                addr: *addr,
            };
            world = world.service(name, UPSTREAM_NAMESPACE, 80, &[endpoint], &format!("10.96.1.{}", i + 1));
        }
        let insecure_registries = match &self.modules {
            Modules::Registry { insecure } => insecure.clone(),
            _ => Vec::new(),
        };
        let deployment = Deployment {
            istio,
            plugins: self.resolved_plugins()?,
            world,
            install,
            certificates: None,
            mesh: mesh_options(self.normalization)?,
            insecure_registries,
        };
        let mut gateway = deployment.start(443, self.concurrency, &self.wrapper).await?;
        gateway.modules = self.modules;
        Ok(gateway)
    }
}

/// An `EnvoyFilter` on the gateway with one config patch.
fn envoy_filter(name: &str, patch: Value) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
        "metadata": {"name": name, "namespace": crate::world::GATEWAY_NAMESPACE},
        "spec": {"workloadSelector": {"labels": {"istio": "ingressgateway"}}, "configPatches": [patch]}
    })
}

/// A route destination naming the upstream `name` (see [`Gateway::upstream`]).
pub fn destination(name: &str) -> Value {
    json!({"host": format!("{name}.{UPSTREAM_NAMESPACE}.svc.cluster.local"), "port": {"number": 80}})
}

/// The shipped install options (`manifests/istio/istio-operator.yaml`), with `normalization` in place of its
/// path normalisation if given.
pub fn mesh_options(normalization: Option<PathNormalization>) -> Result<String> {
    let shipped = workspace::manifests_dir().join("istio/istio-operator.yaml");
    let text = std::fs::read_to_string(&shipped).with_context(|| format!("reading {}", shipped.display()))?;
    let Some(normalization) = normalization else {
        return Ok(text);
    };
    let mut operator: Value = serde_yaml_ng::from_str(&text)?;
    operator["spec"]["meshConfig"]["pathNormalization"] = json!({"normalization": normalization.istio_name()});
    Ok(serde_yaml_ng::to_string(&operator)?)
}

/// How Envoy took one extension config (ECDS), from its `extension_config_discovery.http_filter.<name>.*` stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    Waiting,
    Accepted,
    /// Rejected (the module failed to load or its `on_configure` refused the config): Envoy keeps the previous
    /// config, or answers 500 where there is none.
    Rejected,
}

/// Every filter name in `value` that takes its config from ECDS.
fn ecds_names(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("config_discovery")
                && let Some(name) = map.get("name").and_then(Value::as_str)
            {
                out.push(name.to_string());
            }
            map.values().for_each(|v| ecds_names(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| ecds_names(v, out)),
        _ => {}
    }
}

impl RunningGateway {
    /// The names of the HTTP filters Envoy's listeners take from ECDS, as istiod named them.
    pub async fn extension_names(&self) -> Result<Vec<String>> {
        let dump = self.config_dump("dynamic_listeners").await?;
        let mut names = Vec::new();
        ecds_names(&dump, &mut names);
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Envoy's `/config_dump?resource=<resource>` (e.g. `dynamic_listeners`, `ecds_filters`).
    pub async fn config_dump(&self, resource: &str) -> Result<Value> {
        let page = crate::RawRequest::get(&format!("/config_dump?resource={resource}"))
            .host("admin")
            .send(self.envoy.admin)
            .await?;
        Ok(serde_json::from_slice(&page.body)?)
    }

    /// How each ECDS extension stands, by name: its latest update accepted or rejected.
    pub async fn extensions(&self) -> Result<BTreeMap<String, Extension>> {
        let stats = self.envoy.stats().await?;
        let stat = |name: &str, what: &str| {
            stats.get(&format!("extension_config_discovery.http_filter.{name}.{what}")).copied().unwrap_or(0)
        };
        Ok(self
            .extension_names()
            .await?
            .into_iter()
            .map(|name| {
                let state = if stat(&name, "update_rejected") + stat(&name, "update_failure") > 0 {
                    Extension::Rejected
                } else if stat(&name, "update_success") > 0 {
                    Extension::Accepted
                } else {
                    Extension::Waiting
                };
                (name, state)
            })
            .collect())
    }

    /// How many updates of its extension configs Envoy has been sent so far (accepted or not): a push raises it.
    pub async fn extension_updates(&self) -> Result<u64> {
        let stats = self.envoy.stats().await?;
        Ok(stats
            .iter()
            .filter(|(k, _)| k.starts_with("extension_config_discovery.http_filter.") && k.ends_with(".update_attempt"))
            .map(|(_, v)| *v)
            .sum())
    }

    /// Waits until no extension is waiting for its first config.
    async fn settled_extensions(&self, patience: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let extensions = self.extensions().await?;
            if extensions.values().all(|e| *e != Extension::Waiting) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "extension configs still waiting after {} s: {extensions:?}\nistiod:\n{}",
                    patience.as_secs(),
                    self.istiod.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Applies the plugins again with their new configs or images, as `kubectl apply` on a cluster: istiod pushes
    /// to the running Envoy.
    pub async fn update_plugins(&mut self, plugins: &[WasmPlugin]) -> Result<()> {
        let plugins = follow_target_ports(self.modules.resolve(plugins)?, &self.gateway_ports);
        self.istiod.apply(&with_plugins(&self.istio, &plugins)?).await
    }
}
