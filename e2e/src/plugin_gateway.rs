//! The gateway the per-plugin scenarios run against: plugins (from the committed CRs or given configs) in front of
//! recording upstreams, optionally pulled through a real registry by digest first.

use crate::envoy::PathNormalization;
use crate::gateway::{Gateway, RunningGateway, destination};
use crate::registry::{Registry, publish};
use crate::{RawRequest, RawResponse, Upstream, WasmPlugin};
use anyhow::{Context, Result};
use serde_json::{Value, json};

pub struct PluginGateway {
    pub envoy: RunningGateway,
    upstreams: Vec<Upstream>,
    _registry: Option<Registry>,
}

pub struct PluginGatewayBuilder {
    plugins: Vec<WasmPlugin>,
    upstreams: Vec<&'static str>,
    routes: Vec<Value>,
    normalization: Option<PathNormalization>,
    through_registry: bool,
}

impl PluginGateway {
    /// `plugins` in front of one recording upstream, `models`.
    pub fn with(plugins: impl IntoIterator<Item = WasmPlugin>) -> PluginGatewayBuilder {
        PluginGatewayBuilder {
            plugins: plugins.into_iter().collect(),
            upstreams: vec!["models"],
            routes: Vec::new(),
            normalization: None,
            through_registry: false,
        }
    }

    /// The first upstream: the one every request goes to that no route sends elsewhere.
    pub fn upstream(&self) -> &Upstream {
        &self.upstreams[0]
    }

    pub fn upstream_named(&self, name: &str) -> Result<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name).with_context(|| format!("no upstream `{name}`"))
    }

    /// Sends `request` (HTTP/1.1) to the gateway's listener.
    pub async fn send(&self, request: RawRequest) -> Result<RawResponse> {
        request.send(self.envoy.listener).await
    }

    /// A plugin counter from Envoy's `/stats` (0 before the plugin first counts it).
    pub async fn counter(&self, counter: impl crate::counters::PluginCounter) -> Result<u64> {
        self.envoy.counter(&counter.stat()).await
    }
}

impl PluginGatewayBuilder {
    /// Recording upstreams by name, in place of `models`: the first gets every request no route sends elsewhere.
    pub fn upstreams(mut self, names: &[&'static str]) -> Self {
        self.upstreams = names.to_vec();
        self
    }

    /// Requests with `header: value` go to upstream `to`.
    pub fn route_header(mut self, header: &str, value: &str, to: &str) -> Self {
        self.routes.push(json!({
            "match": [{"headers": {header: {"exact": value}}}],
            "route": [{"destination": destination(to)}]
        }));
        self
    }

    /// The mesh's `pathNormalization` (Istio's default, `BASE`, without it).
    pub fn normalization(mut self, normalization: PathNormalization) -> Self {
        self.normalization = Some(normalization);
        self
    }

    /// Pushes the plugins to a real registry and pins them by digest first, so that istio-agent's fetcher pulls
    /// and verifies them and Envoy runs the module that came out of the registry.
    pub fn through_registry(mut self) -> Self {
        self.through_registry = true;
        self
    }

    pub async fn start(self) -> Result<PluginGateway> {
        let mut gateway = Gateway::new();
        if let Some(normalization) = self.normalization {
            gateway = gateway.normalization(normalization);
        }
        let registry = if self.through_registry {
            let registry = Registry::start(None)?;
            gateway = gateway.plugins(publish(&registry, self.plugins).await?).pulled([registry.host()]);
            Some(registry)
        } else {
            gateway = gateway.plugins(self.plugins);
            None
        };
        let mut upstreams = Vec::new();
        for name in self.upstreams {
            let upstream = Upstream::start(name).await?;
            gateway = gateway.upstream(name, upstream.addr);
            upstreams.push(upstream);
        }
        for route in self.routes {
            gateway = gateway.route(route);
        }
        Ok(PluginGateway { envoy: gateway.start().await?, upstreams, _registry: registry })
    }
}
