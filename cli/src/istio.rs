//! Istio `WasmPlugin` resources as the manifests hold them: read from files or the rendered chart, varied by tests
//! (another `pluginConfig`, another `failStrategy`), and written back. Turning them into Envoy config is istiod's
//! and istio-agent's job: the e2e harness runs their own code (`e2e/istiod`), never a translation of ours.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const ROOT_NAMESPACE: &str = "istio-system";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPlugin {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: WasmPluginSpec,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Metadata {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmPluginSpec {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub selector: Option<Selector>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_ref: Option<TargetRef>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub target_refs: Vec<TargetRef>,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image_pull_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image_pull_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plugin_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plugin_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub priority: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fail_strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vm_config: Option<VmConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty", default, rename = "match")]
    pub match_: Vec<TrafficSelector>,
    #[serde(skip_serializing_if = "Option::is_none", default, rename = "type")]
    pub type_: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TargetRef {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct VmConfig {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub env: Vec<EnvVar>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value_from: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TrafficSelector {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ports: Vec<PortSelector>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PortSelector {
    pub number: u32,
}

impl WasmPlugin {
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `<namespace>.<name>`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace(), self.metadata.name)
    }

    /// The last path element of the image, without tag or digest: `oci://r/wasmgate/basic-auth:1` → `basic-auth`.
    pub fn image_name(&self) -> &str {
        let url = self.spec.url.split_once("://").map_or(self.spec.url.as_str(), |(_, rest)| rest);
        let url = url.split('@').next().unwrap_or(url);
        let last = url.rsplit('/').next().unwrap_or(url);
        last.split(':').next().unwrap_or(last)
    }

    /// A copy pulling another image of the same repository and tag (`oci://r/wasmgate/suite:1` →
    /// `oci://r/wasmgate/suite-requests:1`), unpinned: a `sha256` is one image's.
    pub fn with_image(&self, name: &str) -> Self {
        let url = &self.spec.url;
        let path = url.find("://").map_or(0, |i| i + 3);
        let digest = url[path..].find('@').map_or(url.len(), |i| path + i);
        let start = url[path..digest].rfind('/').map_or(path, |i| path + i + 1);
        let end = start + self.image_name().len();
        let mut copy = self.clone();
        copy.spec.url = format!("{}{name}{}", &url[..start], &url[end..]);
        copy.spec.sha256 = None;
        copy
    }

    /// The CR as YAML/JSON again (fields left unset are left out).
    pub fn to_value(&self) -> Result<Value> {
        Ok(serde_json::to_value(self)?)
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

/// Every `WasmPlugin` in a YAML stream (e.g. the chart as `helm template` renders it), in order.
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
    fn another_image_keeps_repository_and_tag_and_drops_the_pin() {
        for (url, want) in [
            ("oci://r.io:5000/wasmgate/suite:0.1", "oci://r.io:5000/wasmgate/suite-requests:0.1"),
            ("r.io/wasmgate/suite@sha256:abc", "r.io/wasmgate/suite-requests@sha256:abc"),
            ("oci://suite", "oci://suite-requests"),
        ] {
            let mut p = named("x", "  sha256: abc\n");
            p.spec.url = url.into();
            let other = p.with_image("suite-requests");
            assert_eq!((other.spec.url.as_str(), other.spec.sha256.as_deref()), (want, None), "{url}");
            assert_eq!(other.image_name(), "suite-requests");
        }
    }

    #[test]
    fn the_charts_wasm_plugins_parse() {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wasmgate");
        let plugins = crate::chart::default_wasm_plugins(&chart).unwrap();
        assert!(plugins.iter().any(|p| p.metadata.name == "basic-auth" && p.spec.plugin_config.is_some()));
    }
}
