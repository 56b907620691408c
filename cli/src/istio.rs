//! Istio `WasmPlugin` resources, read from the manifests and translated into Envoy HTTP filters the way istiod
//! and istio-agent do for an ingress gateway.
//!
//! Implemented (istiod `pilot/pkg/model/extensions.go`, `networking/core/extension`):
//! - selection: the plugin's namespace is the root namespace (`istio-system`) or the gateway's, and its
//!   `selector.matchLabels` (or `targetRefs` naming the gateway) match the gateway; `type` must be HTTP
//!   (or unset);
//! - `match`: a `mode: SERVER` entry never matches a gateway (gateway listeners are CLIENT); `ports` must
//!   contain the listener's port;
//! - order: phase AUTHN, AUTHZ, STATS, then unspecified; within a phase, priority descending (unset lowest),
//!   then name, then namespace (istiod's creation-time tie-break has no meaning for files);
//! - the filter: name `<namespace>.<name>`, `root_id` from `pluginName`, `configuration` the JSON of
//!   `pluginConfig` as a `StringValue` (empty when absent), V8 runtime without `vm_id`, `vmConfig.env` values
//!   (`valueFrom: HOST` is passed through from the harness's own environment), `failStrategy` FAIL_CLOSE /
//!   FAIL_OPEN / FAIL_RELOAD → `failure_policy` FAIL_CLOSED / FAIL_OPEN / FAIL_RELOAD;
//! - `url` without a scheme means `oci://`; the module is fetched by a resolver the caller gives (istio-agent's
//!   job); the e2e harness maps the image to `dist/plugins/<image name>.wasm`.
//!
//! Left out: ECDS indirection (the filter is inlined, which Envoy treats alike), `imagePullPolicy` and
//! `imagePullSecret` (nothing is pulled by this resolver), `NETWORK` plugins, `targetRef` kinds other than
//! Gateway, and sidecar selection.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const ROOT_NAMESPACE: &str = "istio-system";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPlugin {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: WasmPluginSpec,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmPluginSpec {
    #[serde(default)]
    pub selector: Option<Selector>,
    #[serde(default)]
    pub target_ref: Option<TargetRef>,
    #[serde(default)]
    pub target_refs: Vec<TargetRef>,
    pub url: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    #[serde(default)]
    pub image_pull_secret: Option<String>,
    #[serde(default)]
    pub plugin_config: Option<Value>,
    #[serde(default)]
    pub plugin_name: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub fail_strategy: Option<String>,
    #[serde(default)]
    pub vm_config: Option<VmConfig>,
    #[serde(default, rename = "match")]
    pub match_: Vec<TrafficSelector>,
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TargetRef {
    #[serde(default)]
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct VmConfig {
    #[serde(default)]
    pub env: Vec<EnvVar>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_from: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TrafficSelector {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub ports: Vec<PortSelector>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PortSelector {
    pub number: u32,
}

/// The gateway the plugins are translated for: its namespace, pod labels and listener port.
#[derive(Debug, Clone)]
pub struct GatewayInfo {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub port: u32,
}

impl Default for GatewayInfo {
    /// Istio's default ingress gateway.
    fn default() -> Self {
        Self {
            name: "istio-ingressgateway".into(),
            namespace: ROOT_NAMESPACE.into(),
            labels: BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]),
            port: 8080,
        }
    }
}

impl WasmPlugin {
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `<namespace>.<name>`, the filter name istiod gives it.
    pub fn filter_name(&self) -> String {
        format!("{}.{}", self.namespace(), self.metadata.name)
    }

    /// The last path element of the image, without tag or digest: `oci://r/wasmgate/basic-auth:1` → `basic-auth`.
    pub fn image_name(&self) -> &str {
        let url = self.spec.url.split_once("://").map_or(self.spec.url.as_str(), |(_, rest)| rest);
        let url = url.split('@').next().unwrap_or(url);
        let last = url.rsplit('/').next().unwrap_or(url);
        last.split(':').next().unwrap_or(last)
    }

    /// A copy with another `pluginConfig`: tests vary one field of a committed CR.
    pub fn with_config(&self, config: Value) -> Self {
        let mut copy = self.clone();
        copy.spec.plugin_config = Some(config);
        copy
    }

    pub fn with_fail_strategy(&self, strategy: &str) -> Self {
        let mut copy = self.clone();
        copy.spec.fail_strategy = Some(strategy.to_string());
        copy
    }

    fn phase_rank(&self) -> u8 {
        match self.spec.phase.as_deref() {
            Some("AUTHN") => 0,
            Some("AUTHZ") => 1,
            Some("STATS") => 2,
            _ => 3,
        }
    }

    fn selects(&self, gateway: &GatewayInfo) -> bool {
        let ns = self.namespace();
        if ns != ROOT_NAMESPACE && ns != gateway.namespace {
            return false;
        }
        let refs: Vec<&TargetRef> = self.spec.target_ref.iter().chain(&self.spec.target_refs).collect();
        if !refs.is_empty() {
            return refs.iter().any(|r| r.kind == "Gateway" && r.name == gateway.name);
        }
        let labels = self.spec.selector.as_ref().map(|s| &s.match_labels);
        labels.is_none_or(|want| want.iter().all(|(k, v)| gateway.labels.get(k) == Some(v)))
    }

    fn matches_traffic(&self, gateway: &GatewayInfo) -> bool {
        self.spec.match_.is_empty()
            || self.spec.match_.iter().any(|m| {
                m.mode.as_deref() != Some("SERVER")
                    && (m.ports.is_empty() || m.ports.iter().any(|p| p.number == gateway.port))
            })
    }

    fn failure_policy(&self) -> Result<&'static str> {
        Ok(match self.spec.fail_strategy.as_deref() {
            None | Some("FAIL_CLOSE") => "FAIL_CLOSED",
            Some("FAIL_OPEN") => "FAIL_OPEN",
            Some("FAIL_RELOAD") => "FAIL_RELOAD",
            Some(other) => bail!("{}: unknown failStrategy `{other}`", self.filter_name()),
        })
    }

    /// The `envoy.filters.http.wasm` filter istiod would produce, with the module at `wasm`.
    pub fn envoy_filter(&self, wasm: &Path) -> Result<Value> {
        let configuration = match &self.spec.plugin_config {
            Some(config) => serde_json::to_string(config)?,
            None => String::new(),
        };
        let mut env = serde_json::Map::new();
        let mut host_env = Vec::new();
        for var in self.spec.vm_config.iter().flat_map(|v| &v.env) {
            match var.value_from.as_deref() {
                Some("HOST") => host_env.push(var.name.clone()),
                None | Some("INLINE") => {
                    env.insert(var.name.clone(), Value::String(var.value.clone().unwrap_or_default()));
                }
                Some(other) => bail!("{}: unknown valueFrom `{other}`", self.filter_name()),
            }
        }
        let mut vm_config = json!({
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm.display().to_string()}},
        });
        if !env.is_empty() || !host_env.is_empty() {
            vm_config["environment_variables"] = json!({"key_values": env, "host_env_keys": host_env});
        }
        Ok(json!({
            "name": self.filter_name(),
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": self.filter_name(),
                    "root_id": self.spec.plugin_name.clone().unwrap_or_default(),
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": configuration,
                    },
                    "vm_config": vm_config,
                    "failure_policy": self.failure_policy()?,
                }
            }
        }))
    }
}

/// Every `WasmPlugin` in the YAML file `dir` or the files under it (recursively), in file order.
pub fn load_wasm_plugins(dir: &Path) -> Result<Vec<WasmPlugin>> {
    let mut files = Vec::new();
    collect_yaml(dir, &mut files)?;
    files.sort();
    let mut plugins = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        plugins.extend(parse_wasm_plugins(&text).with_context(|| format!("in {}", file.display()))?);
    }
    Ok(plugins)
}

/// Every `WasmPlugin` in a YAML stream (e.g. a rendered kustomize overlay), in order.
pub fn parse_wasm_plugins(yaml: &str) -> Result<Vec<WasmPlugin>> {
    objects_of_kind(yaml, "WasmPlugin")
}

/// Every object of `kind` in a YAML stream, in order, each read into `T`.
pub fn objects_of_kind<T: serde::de::DeserializeOwned>(yaml: &str, kind: &str) -> Result<Vec<T>> {
    let mut found = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc).context("parsing YAML")?;
        if value.get("kind").and_then(Value::as_str) == Some(kind) {
            let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").to_owned();
            found.push(serde_json::from_value(value).with_context(|| format!("{kind} {name}"))?);
        }
    }
    Ok(found)
}

/// The one `WasmPlugin` named `name` under `dir`.
pub fn load_wasm_plugin(dir: &Path, name: &str) -> Result<WasmPlugin> {
    load_wasm_plugins(dir)?
        .into_iter()
        .find(|p| p.metadata.name == name)
        .with_context(|| format!("no WasmPlugin named {name} under {}", dir.display()))
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The plugins that apply to `gateway`, in istiod's filter order.
pub fn select_and_order<'a>(plugins: &'a [WasmPlugin], gateway: &GatewayInfo) -> Result<Vec<&'a WasmPlugin>> {
    let mut chosen = Vec::new();
    for plugin in plugins {
        if plugin.kind != "WasmPlugin" || !plugin.api_version.starts_with("extensions.istio.io/") {
            bail!("{}: not an extensions.istio.io WasmPlugin", plugin.filter_name());
        }
        if !matches!(plugin.spec.type_.as_deref(), None | Some("HTTP") | Some("UNSPECIFIED_PLUGIN_TYPE")) {
            bail!("{}: only HTTP plugins are supported", plugin.filter_name());
        }
        if plugin.selects(gateway) && plugin.matches_traffic(gateway) {
            chosen.push(plugin);
        }
    }
    chosen.sort_by(|a, b| {
        a.phase_rank()
            .cmp(&b.phase_rank())
            .then_with(|| b.spec.priority.unwrap_or(i64::MIN).cmp(&a.spec.priority.unwrap_or(i64::MIN)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
            .then_with(|| a.namespace().cmp(b.namespace()))
    });
    Ok(chosen)
}

/// The Envoy HTTP filters for `plugins` on `gateway`, each module found by `resolve` (istio-agent's part).
pub fn translate(
    plugins: &[WasmPlugin],
    gateway: &GatewayInfo,
    resolve: impl Fn(&WasmPlugin) -> Result<PathBuf>,
) -> Result<Vec<Value>> {
    select_and_order(plugins, gateway)?
        .into_iter()
        .map(|plugin| {
            let wasm = resolve(plugin).with_context(|| format!("fetching the module of {}", plugin.filter_name()))?;
            plugin.envoy_filter(&wasm)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(yaml: &str) -> WasmPlugin {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn named(name: &str, extra: &str) -> WasmPlugin {
        plugin(&format!(
            "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: {name}, namespace: istio-system}}\nspec:\n  url: oci://r/x/{name}:1\n{extra}"
        ))
    }

    fn order(plugins: &[WasmPlugin]) -> Vec<String> {
        select_and_order(plugins, &GatewayInfo::default()).unwrap().iter().map(|p| p.metadata.name.clone()).collect()
    }

    #[test]
    fn phases_then_priority_then_name() {
        let plugins = vec![
            named("stats", "  phase: STATS"),
            named("none", ""),
            named("authz-low", "  phase: AUTHZ\n  priority: 1"),
            named("authz-high", "  phase: AUTHZ\n  priority: 10"),
            named("authz-unset", "  phase: AUTHZ"),
            named("authn-b", "  phase: AUTHN"),
            named("authn-a", "  phase: AUTHN"),
        ];
        assert_eq!(order(&plugins), ["authn-a", "authn-b", "authz-high", "authz-low", "authz-unset", "stats", "none"]);
    }

    #[test]
    fn selection() {
        let plugins = vec![
            named("mine", "  selector: {matchLabels: {istio: ingressgateway}}"),
            named("other-gw", "  selector: {matchLabels: {istio: eastwestgateway}}"),
            named("server-only", "  match: [{mode: SERVER}]"),
            named("port-80", "  match: [{ports: [{number: 80}]}]"),
            named("port-8080", "  match: [{mode: CLIENT, ports: [{number: 8080}]}]"),
            named(
                "by-ref",
                "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: istio-ingressgateway}]",
            ),
            named("other-ref", "  targetRefs: [{kind: Gateway, name: other}]"),
        ];
        let mut elsewhere = named("elsewhere", "");
        elsewhere.metadata.namespace = Some("team-a".into());
        let mut all = plugins;
        all.push(elsewhere);
        assert_eq!(order(&all), ["by-ref", "mine", "port-8080"]);
    }

    #[test]
    fn filter_shape() {
        let p = named(
            "basic-auth",
            "  pluginName: basic-auth\n  failStrategy: FAIL_RELOAD\n  pluginConfig: {realm: r}\n  vmConfig: {env: [{name: A, value: b}, {name: HOME, valueFrom: HOST}]}",
        );
        let f = p.envoy_filter(Path::new("/x.wasm")).unwrap();
        let c = &f["typed_config"]["config"];
        assert_eq!(f["name"], "istio-system.basic-auth");
        assert_eq!(c["root_id"], "basic-auth");
        assert_eq!(c["failure_policy"], "FAIL_RELOAD");
        assert_eq!(c["configuration"]["value"], r#"{"realm":"r"}"#);
        assert_eq!(c["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(c["vm_config"]["environment_variables"]["key_values"]["A"], "b");
        assert_eq!(c["vm_config"]["environment_variables"]["host_env_keys"][0], "HOME");
        assert!(c["vm_config"].get("vm_id").is_none());
        let empty = named("x", "").envoy_filter(Path::new("/x.wasm")).unwrap();
        assert_eq!(empty["typed_config"]["config"]["configuration"]["value"], "");
        assert_eq!(empty["typed_config"]["config"]["failure_policy"], "FAIL_CLOSED");
        assert!(named("x", "  failStrategy: MAYBE").envoy_filter(Path::new("/x")).is_err());
    }

    #[test]
    fn image_names() {
        for (url, want) in [
            ("oci://r.io/wasmgate/basic-auth:0.1", "basic-auth"),
            ("r.io:5000/wasmgate/basic-auth@sha256:abc", "basic-auth"),
            ("oci://localhost:5000/grpc-limits", "grpc-limits"),
        ] {
            let mut p = named("x", "");
            p.spec.url = url.into();
            assert_eq!(p.image_name(), want, "{url}");
        }
    }

    #[test]
    fn committed_manifests_parse() {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let plugins = load_wasm_plugins(&manifests).unwrap();
        assert!(plugins.iter().any(|p| p.metadata.name == "basic-auth"));
    }
}
