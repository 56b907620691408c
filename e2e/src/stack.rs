//! The whole gateway on loopback, as `make demo` and the full-stack tests run it: the chart rendered by `helm
//! template` with the EKS values, its `WasmPlugin` images pushed to a real registry and pinned by digest, istiod's
//! own generator turning the result (Gateway, VirtualService, DestinationRule, WasmPlugins) into Envoy config for
//! the gateway, istio-agent's own fetcher pulling the modules, and two model servers as the `inference`
//! Service's `stable` and `canary` Pods. Requests reach the Gateway's 443 server through the NLB stand-in, as the
//! NLB delivers them: plain HTTP, TLS already terminated, each connection opened with a PROXY v2 header.

use crate::fixtures::{CANARY_HOST, HOST};
use crate::gateway::{Deployment, Gateway, RunningGateway, gateway_install, mesh_options};
use crate::model_server::ModelServer;
use crate::registry::{Registry, publish};
use crate::tls::TestCertificates;
use crate::workspace;
use crate::world::{Endpoint, ServedPods, World, cluster_objects, served_pods};
use crate::{PathNormalization, Upstream};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmgate::istio::{WasmPlugin, parse_wasm_plugins};
use wasmgate_inference::client::Target;

/// The model Service of the manifests.
const MODEL_SERVICE: (&str, &str) = ("inference", "ml-serving");

pub struct FullStack {
    /// istiod and the Envoy it configures; `envoy.listener` is the Gateway's 443 server as clients reach it (on
    /// EKS through the NLB stand-in, `envoy.nlb`).
    pub envoy: RunningGateway,
    /// The hosts' certificate, its CA and key: what the Gateway's TLS Secret holds (kind) or the NLB presents (EKS).
    pub certificates: Arc<TestCertificates>,
    pub stable: ModelServer,
    pub canary: ModelServer,
    /// The CRs as istiod got them: pinned to the images pushed to `registry`.
    pub plugins: Vec<WasmPlugin>,
    pub registry: Registry,
}

impl FullStack {
    /// The chart with the EKS values: three plugin filters.
    pub async fn start() -> Result<Self> {
        Self::start_with(Filters::Separate.deployment()).await
    }

    /// The gateway from the chart rendered for `values` (`eks`, or `eks-suite` with the one suite filter: see
    /// `wasmgate::chart`).
    pub async fn start_with(values: &str) -> Result<Self> {
        Self::start_overriding(values, &Value::Null).await
    }

    /// [`FullStack::start_with`], with the plugin configs in `sections` (see [`override_sections`]) in place of
    /// the chart's.
    pub async fn start_overriding(values: &str, sections: &Value) -> Result<Self> {
        let stable = ModelServer::start().await?;
        let canary = ModelServer::start().await?;
        let (deployment, registry, plugins) = deployment(values, sections, &[stable.addr], canary.addr).await?;
        let certificates = deployment.certificates.clone().context("the deployment has the hosts' certificate")?;
        let envoy = deployment.start(443, 1, &[]).await?;
        Ok(Self { envoy, certificates, stable, canary, plugins, registry })
    }

    /// A model client through this gateway: `host` as `:authority`, with basic `credentials` if given.
    pub fn target(&self, host: &str, credentials: Option<(&str, &str)>) -> Target {
        gateway_target(self.envoy.listener, host, credentials)
    }

    /// A plugin counter from Envoy's `/stats` (0 before the plugin first counts it).
    pub async fn counter(&self, counter: impl crate::counters::PluginCounter) -> Result<u64> {
        self.envoy.counter(&counter.stat()).await
    }
}

/// The install options the gateway Service and Pod come from: `manifests/istio/eks-gateway.yaml` with the EKS
/// values (the NLB's annotations, the target ports, PROXY protocol), `kind-gateway.yaml` with the kind ones
/// (NodePorts).
fn gateway_options(values: &str) -> Result<Option<String>> {
    let file = match values.split('-').next() {
        Some("eks") => "eks-gateway.yaml",
        Some("kind") => "kind-gateway.yaml",
        _ => return Ok(None),
    };
    let path = workspace::manifests_dir().join("istio").join(file);
    Ok(Some(std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?))
}

/// The `credentialName`s of the rendered Gateways: the TLS Secrets the cluster holds for them.
fn credential_names(rendered: &str) -> Result<Vec<String>> {
    let gateways: Vec<Value> = wasmgate::istio::objects_of_kind(rendered, "Gateway")?;
    Ok(gateways
        .iter()
        .flat_map(|g| g["spec"]["servers"].as_array().cloned().unwrap_or_default())
        .filter_map(|server| server["tls"]["credentialName"].as_str().map(str::to_owned))
        .collect())
}

/// What istiod reads for the chart rendered for `values`: its resources with the `WasmPlugin`s pushed to a fresh registry and pinned
/// (their `sections` overridden), the cluster's objects (the chart's Services and Namespaces, a model Pod at each
/// of the `stable` replicas' addresses and one at `canary`, the image pull secret the CRs name, the Gateway's TLS
/// Secrets), and the gateway Service and Pod as Istio's install for it creates them; with the hosts' certificate
/// (the NLB's, on EKS). The registry must outlive the gateway's start.
pub async fn deployment(
    values: &str,
    sections: &Value,
    stable: &[SocketAddr],
    canary: SocketAddr,
) -> Result<(Deployment, Registry, Vec<WasmPlugin>)> {
    let rendered = workspace::render_chart(values)?;
    let plugins = override_sections(parse_wasm_plugins(&rendered)?, sections)?;
    let registry = Registry::start(None)?;
    let plugins = publish(&registry, plugins).await?;
    let mut istio = String::new();
    for doc in rendered.split("\n---\n") {
        if !doc.contains("kind: WasmPlugin") {
            istio.push_str("---\n");
            istio.push_str(doc.trim_start_matches("---\n"));
            istio.push('\n');
        }
    }
    let mut world = World::new();
    for object in cluster_objects(&rendered)? {
        world = world.object(object);
    }
    // The model pods as the chart's Deployments make them: their labels (which the DestinationRule's subsets
    // select) and the Service's port, so that a label or port name the cluster would not match fails here too.
    let (service, namespace) = MODEL_SERVICE;
    let stable_pods = served_pods(&rendered, namespace, service, "inference")?;
    let canary_pods = served_pods(&rendered, namespace, service, "inference-canary")?;
    let pod = |name: String, served: &ServedPods, addr| Endpoint { pod: name, labels: served.labels.clone(), addr };
    let endpoints: Vec<Endpoint> = stable
        .iter()
        .enumerate()
        .map(|(i, &addr)| pod(format!("inference-stable-{i}"), &stable_pods, addr))
        .chain([pod("inference-canary-0".into(), &canary_pods, canary)])
        .collect();
    world = world.endpoints(service, namespace, &stable_pods.port_name, &endpoints);
    let secrets: std::collections::BTreeSet<String> =
        plugins.iter().filter_map(|p| p.spec.image_pull_secret.clone()).collect();
    for secret in secrets {
        world = world.object(crate::world::pull_secret(&secret, &registry.host(), ("wasmgate", "unused")));
    }
    let certificates = Arc::new(TestCertificates::new(&[HOST, CANARY_HOST])?);
    for name in credential_names(&istio)? {
        world = world.object(certificates.secret(&name, crate::world::GATEWAY_NAMESPACE));
    }
    let deployment = Deployment {
        istio,
        plugins: plugins.clone(),
        world,
        install: gateway_install(gateway_options(values)?.as_deref())?,
        certificates: Some(certificates),
        mesh: mesh_options(None)?,
        insecure_registries: vec![registry.host()],
    };
    Ok((deployment, registry, plugins))
}

/// A model client for the gateway listening at `listener`: `host` as `:authority`, basic `credentials` if given.
pub fn gateway_target(listener: SocketAddr, host: &str, credentials: Option<(&str, &str)>) -> Target {
    Target {
        address: format!("http://{listener}"),
        authority: Some(host.to_owned()),
        basic_auth: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
        ..Default::default()
    }
}

/// The two ways the chart deploys the plugins: three filters (`eks`) or the one suite filter
/// (`eks-suite`). Scenarios that must hold for both run once per layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filters {
    Separate,
    Suite,
}

impl Filters {
    pub const BOTH: [Filters; 2] = [Filters::Separate, Filters::Suite];

    /// The chart's deployment the full stack runs for this layout (the EKS topology, which the seed deployment
    /// runs).
    pub fn deployment(self) -> &'static str {
        match self {
            Self::Separate => "eks",
            Self::Suite => "eks-suite",
        }
    }

    /// The chart's CRs of this layout (the three plugins, or the suite), with `sections` applied.
    pub fn plugins(self, sections: &Value) -> Result<Vec<WasmPlugin>> {
        let plugins = match self {
            Self::Separate => workspace::plugin_crs()?,
            Self::Suite => vec![workspace::plugin_cr("suite")?],
        };
        override_sections(plugins, sections)
    }
}

/// The gateway's cluster for a subset of the model Service (`stable`, `canary`, `stable-health`, ...), as istiod
/// names it: the name [`crate::envoy::Envoy::cluster_stat`] takes.
pub fn model_cluster(subset: &str) -> String {
    let (service, namespace) = MODEL_SERVICE;
    format!("outbound|8500|{subset}|{service}.{namespace}.svc.cluster.local")
}

/// Sections for [`FullStack::start_overriding`]: the committed basic-auth config with room for many bcrypt checks,
/// for scenarios about something other than the bcrypt budget.
pub fn roomy_bcrypt_budget() -> Result<Value> {
    let cr = workspace::plugin_cr("basic-auth")?;
    let mut config = cr.spec.plugin_config.unwrap_or_default();
    config["bcrypt_budget"] = serde_json::json!({"per_second": "100ms", "burst": "2s"});
    Ok(serde_json::json!({"basic_auth": config}))
}

/// Replaces plugin configs: `sections` is an object like the suite's `pluginConfig` (`basic_auth`,
/// `grpc_limits`, `host_router`); each section replaces the `pluginConfig` of the plugin's own CR
/// (`basic-auth`, ...) or the section of the suite CR, whichever `plugins` holds. A `null` section removes the
/// plugin (or the suite's section). `Value::Null` changes nothing.
pub fn override_sections(mut plugins: Vec<WasmPlugin>, sections: &Value) -> Result<Vec<WasmPlugin>> {
    let Some(sections) = sections.as_object() else {
        return Ok(plugins);
    };
    for (section, config) in sections {
        let cr_name = section.replace('_', "-");
        if let Some(index) = plugins.iter().position(|p| p.metadata.name == cr_name) {
            if config.is_null() {
                plugins.remove(index);
            } else {
                plugins[index] = plugins[index].with_config(config.clone());
            }
        } else if let Some(suite) = plugins.iter_mut().find(|p| p.metadata.name == "suite") {
            let mut suite_config = suite.spec.plugin_config.clone().unwrap_or_default();
            let object = suite_config.as_object_mut().context("the suite's pluginConfig is not an object")?;
            if config.is_null() {
                object.remove(section);
            } else {
                object.insert(section.clone(), config.clone());
            }
            *suite = suite.with_config(suite_config);
        } else {
            bail!("no plugin for section `{section}`");
        }
    }
    Ok(plugins)
}

/// The committed CRs of `filters` with `sections`, in front of a recording upstream.
pub async fn recording_gateway(
    filters: Filters,
    sections: Value,
    normalization: PathNormalization,
) -> Result<(RunningGateway, Upstream)> {
    let upstream = Upstream::start("models").await?;
    let envoy = Gateway::new()
        .plugins(filters.plugins(&sections)?)
        .upstream("models", upstream.addr)
        .normalization(normalization)
        .start()
        .await?;
    Ok((envoy, upstream))
}

/// Turns each `scenario(filters: Filters) -> Result<()>` into a test per layout: `three_filters::<scenario>` and
/// `suite_filter::<scenario>`, which must behave the same.
#[macro_export]
macro_rules! for_both_layouts {
    ($($scenario:ident),* $(,)?) => {
        mod three_filters {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $scenario() -> anyhow::Result<()> {
                super::$scenario($crate::stack::Filters::Separate).await
            })*
        }
        mod suite_filter {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $scenario() -> anyhow::Result<()> {
                super::$scenario($crate::stack::Filters::Suite).await
            })*
        }
    };
}
