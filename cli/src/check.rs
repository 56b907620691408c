//! `wasmgate check`: every `WasmPlugin` under a path (or that a Helm chart renders), its `pluginConfig` parsed
//! by the plugin's own config code, natively, so a bad rule fails in CI and not at the gateway (where Envoy would
//! refuse the plugin).

use crate::istio::{WasmPlugin, load_wasm_plugins, parse_wasm_plugins};
use anyhow::{Context, Result, bail};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// What checking one resource found.
#[derive(Debug)]
pub struct Finding {
    pub plugin: String,
    pub result: Result<String, String>,
}

/// Parses `plugin`'s config with the parser of the plugin its image names.
pub fn check_plugin(plugin: &WasmPlugin) -> Result<String, String> {
    let config = match &plugin.spec.plugin_config {
        Some(value) => serde_json::to_vec(value).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let image = plugin.image_name();
    let Some(catalogued) = wasmgate_catalogue::image(image) else {
        let known: Vec<&str> = wasmgate_catalogue::IMAGES.iter().map(|i| i.name).collect();
        return Err(format!(
            "no wasmgate image is called `{image}` (from url {}); the images are {}",
            plugin.spec.url,
            known.join(", ")
        ));
    };
    catalogued.check(&config).map(|summary| format!("{image}, {summary}")).map_err(|e| e.to_string())
}

/// The WasmPlugins of `path`: a chart rendered with `values`, standard input (`-`), or YAML files.
fn wasm_plugins_of(path: &Path, values: &[PathBuf]) -> Result<Vec<WasmPlugin>> {
    if crate::chart::is_chart(path) {
        return parse_wasm_plugins(&crate::chart::render(path, values, &[])?);
    }
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
        return parse_wasm_plugins(&text);
    }
    load_wasm_plugins(path)
}

pub fn check_path(path: &Path, values: &[PathBuf]) -> Result<Vec<Finding>> {
    let plugins = wasm_plugins_of(path, values)?;
    if plugins.is_empty() {
        bail!("no WasmPlugin under {}", path.display());
    }
    Ok(plugins.iter().map(|p| Finding { plugin: p.qualified_name(), result: check_plugin(p) }).collect())
}
