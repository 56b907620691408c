//! The whole gateway on loopback, as `make demo` and the full-stack tests run it: the kind overlay rendered by
//! `kubectl kustomize`, its `WasmPlugin`s pushed to a real registry, pinned and pulled back by digest, and Envoy
//! configured from those CRs and the overlay's `VirtualService` in front of two model servers (the `stable` and
//! `canary` subsets).

use crate::envoy::{Envoy, Gateway, PathNormalization};
use crate::model_server::ModelServer;
use crate::registry::{Registry, publish_and_fetch};
use crate::workspace;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;
use wasmgate::istio::{WasmPlugin, parse_wasm_plugins};
use wasmgate::virtual_service;
use wasmgate_inference::client::Target;

pub const HOST: &str = "ml.example.com";
pub const CANARY_HOST: &str = "canary.ml.example.com";
/// The credentials whose bcrypt hash the committed basic-auth CR holds.
pub const USER: &str = "username";
pub const PASSWORD: &str = "password";

pub struct FullStack {
    pub envoy: Envoy,
    pub stable: ModelServer,
    pub canary: ModelServer,
    /// The CRs as Envoy got them: pinned to the images pushed to `registry`.
    pub plugins: Vec<WasmPlugin>,
    pub registry: Registry,
}

/// `kubectl kustomize manifests/overlays/<name>`.
pub fn render_overlay(name: &str) -> Result<String> {
    let dir = workspace::manifests_dir().join("overlays").join(name);
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .context("running kubectl kustomize (make setup installs kubectl)")?;
    if !output.status.success() {
        bail!("kubectl kustomize {}: {}", dir.display(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}

impl FullStack {
    /// The kind overlay: three plugin filters.
    pub async fn start() -> Result<Self> {
        Self::start_with("kind").await
    }

    /// The gateway from `manifests/overlays/<overlay>` (`kind`, or `kind-suite` with the one suite filter).
    pub async fn start_with(overlay: &str) -> Result<Self> {
        Self::start_overriding(overlay, &Value::Null).await
    }

    /// [`FullStack::start_with`], with the plugin configs in `sections` (see [`override_sections`]) in place of
    /// the overlay's.
    pub async fn start_overriding(overlay: &str, sections: &Value) -> Result<Self> {
        let stable = ModelServer::start().await?;
        let canary = ModelServer::start().await?;
        let (gateway, registry, plugins) = gateway_from_overlay(overlay, sections, stable.addr, canary.addr).await?;
        let envoy = gateway.start().await?;
        Ok(Self { envoy, stable, canary, plugins, registry })
    }

    /// A model client through this gateway: `host` as `:authority`, with basic `credentials` if given.
    pub fn target(&self, host: &str, credentials: Option<(&str, &str)>) -> Target {
        gateway_target(self.envoy.listener, host, credentials)
    }

    /// A plugin counter from Envoy's `/stats`, e.g. `basic_auth.allowed`.
    pub async fn counter(&self, name: &str) -> Result<u64> {
        self.envoy.counter(&format!("wasmcustom.wasmgate.{name}")).await
    }
}

/// Envoy's configuration from an overlay: its `WasmPlugin`s pushed to a fresh registry, pinned and pulled back,
/// and its `VirtualService` routes, with the `stable` and `canary` subsets at the given addresses. The registry
/// must outlive the gateway's start.
pub async fn gateway_from_overlay(
    overlay: &str,
    sections: &Value,
    stable: SocketAddr,
    canary: SocketAddr,
) -> Result<(Gateway, Registry, Vec<WasmPlugin>)> {
    let rendered = render_overlay(overlay)?;
    let plugins = override_sections(parse_wasm_plugins(&rendered)?, sections)?;
    let services = virtual_service::parse_all(&rendered)?;
    let service = services.iter().find(|s| s.spec.hosts.iter().any(|h| h == HOST)).context("no VirtualService")?;
    // Each destination subset is a model server of its own; the cluster is named after the subset.
    let routes = service.envoy_routes(|d| match d.subset.as_deref() {
        Some(subset @ ("stable" | "canary")) => Ok(subset.to_owned()),
        other => bail!("no model server for subset {other:?} of {}", d.host),
    })?;
    let registry = Registry::start(None)?;
    let (plugins, fetched) = publish_and_fetch(&registry, plugins).await?;
    let mut gateway = Gateway::new()
        .plugins(plugins.clone())
        .fetched(fetched)
        .upstream("stable", stable)
        .upstream("canary", canary)
        .normalization(PathNormalization::shipped()?);
    for route in routes {
        gateway = gateway.route(route);
    }
    Ok((gateway, registry, plugins))
}

/// A model client for the gateway listening at `listener`: `host` as `:authority`, basic `credentials` if given.
pub fn gateway_target(listener: SocketAddr, host: &str, credentials: Option<(&str, &str)>) -> Target {
    Target {
        address: format!("http://{listener}"),
        authority: Some(host.to_owned()),
        basic_auth: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
    }
}

/// The two ways the manifests deploy the plugins: three filters (overlay `kind`) or the one suite filter
/// (`kind-suite`). Scenarios that must hold for both run once per layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filters {
    Separate,
    Suite,
}

impl Filters {
    pub const BOTH: [Filters; 2] = [Filters::Separate, Filters::Suite];

    pub fn overlay(self) -> &'static str {
        match self {
            Self::Separate => "kind",
            Self::Suite => "kind-suite",
        }
    }

    /// The committed CRs of this layout (base plugins, or the suite component), with `sections` applied.
    pub fn plugins(self, sections: &Value) -> Result<Vec<WasmPlugin>> {
        let dir = match self {
            Self::Separate => workspace::plugin_crs_dir(),
            Self::Suite => workspace::manifests_dir().join("components/suite"),
        };
        override_sections(wasmgate::istio::load_wasm_plugins(&dir)?, sections)
    }
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
