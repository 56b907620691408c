//! The whole gateway on loopback, as `make demo` and the full-stack tests run it: the kind overlay rendered by
//! `kubectl kustomize`, its `WasmPlugin`s pushed to a real registry, pinned and pulled back by digest, and Envoy
//! configured from those CRs and the overlay's `VirtualService` in front of two model servers (the `stable` and
//! `canary` subsets).

use crate::envoy::{Envoy, Gateway};
use crate::model_server::ModelServer;
use crate::registry::{Registry, publish_and_fetch};
use crate::workspace;
use anyhow::{Context, Result, bail};
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
        let stable = ModelServer::start().await?;
        let canary = ModelServer::start().await?;
        let (gateway, registry, plugins) = gateway_from_overlay(overlay, stable.addr, canary.addr).await?;
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
    stable: SocketAddr,
    canary: SocketAddr,
) -> Result<(Gateway, Registry, Vec<WasmPlugin>)> {
    let rendered = render_overlay(overlay)?;
    let plugins = parse_wasm_plugins(&rendered)?;
    let services = virtual_service::parse_all(&rendered)?;
    let service = services.iter().find(|s| s.spec.hosts.iter().any(|h| h == HOST)).context("no VirtualService")?;
    // Each destination subset is a model server of its own; the cluster is named after the subset.
    let routes = service.envoy_routes(|d| match d.subset.as_deref() {
        Some(subset @ ("stable" | "canary")) => Ok(subset.to_owned()),
        other => bail!("no model server for subset {other:?} of {}", d.host),
    })?;
    let registry = Registry::start(None)?;
    let (plugins, fetched) = publish_and_fetch(&registry, plugins).await?;
    let mut gateway =
        Gateway::new().plugins(plugins.clone()).fetched(fetched).upstream("stable", stable).upstream("canary", canary);
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
