//! `wasmgate check`: every `WasmPlugin` under a path, its `pluginConfig` parsed by the plugin's own config code,
//! natively, so a bad rule fails in CI and not at the gateway (where Envoy would refuse the plugin).

use crate::istio::{WasmPlugin, load_wasm_plugins};
use anyhow::{Result, bail};
use std::path::Path;

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

pub fn check_path(path: &Path) -> Result<Vec<Finding>> {
    let plugins = load_wasm_plugins(path)?;
    if plugins.is_empty() {
        bail!("no WasmPlugin under {}", path.display());
    }
    Ok(plugins.iter().map(|p| Finding { plugin: p.qualified_name(), result: check_plugin(p) }).collect())
}
