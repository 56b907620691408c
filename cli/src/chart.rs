//! wasmgate's Helm chart (`charts/wasmgate`) rendered by the real Helm, as `helm template` gives it to a user:
//! the one source of every resource the project deploys. A *deployment* names the values files it takes:
//! `default` (values.yaml alone), `eks` (`values-eks.yaml`), `eks-suite` (`values-eks.yaml`, `values-suite.yaml`),
//! and so on for each `-`-separated part.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The release name and namespace the project installs the chart as.
pub const RELEASE: &str = "wasmgate";
pub const NAMESPACE: &str = crate::istio::ROOT_NAMESPACE;

/// The deployments the project renders, validates and tests.
pub const DEPLOYMENTS: [&str; 5] = ["default", "kind", "kind-suite", "eks", "eks-suite"];

/// The Helm binary: `$WASMGATE_HELM`, else `helm` on `PATH` (`make helm` builds `target/helm`).
pub fn helm() -> OsString {
    std::env::var_os("WASMGATE_HELM").unwrap_or_else(|| "helm".into())
}

/// Whether `dir` is a Helm chart (it has a `Chart.yaml`).
pub fn is_chart(dir: &Path) -> bool {
    dir.join("Chart.yaml").is_file()
}

/// The values files of `deployment`, in the order Helm takes them (later ones win).
pub fn values_files(chart: &Path, deployment: &str) -> Result<Vec<PathBuf>> {
    if deployment == "default" {
        return Ok(Vec::new());
    }
    deployment
        .split('-')
        .map(|part| {
            let file = chart.join(format!("values-{part}.yaml"));
            if file.is_file() { Ok(file) } else { bail!("{}: no such values file", file.display()) }
        })
        .collect()
}

/// `helm template` of `chart` with `values` files and `--set` assignments: the YAML a user's install applies.
pub fn render(chart: &Path, values: &[PathBuf], set: &[&str]) -> Result<String> {
    let mut command = Command::new(helm());
    command.args(["template", RELEASE]).arg(chart).args(["--namespace", NAMESPACE]);
    for file in values {
        command.arg("--values").arg(file);
    }
    for assignment in set {
        command.args(["--set", assignment]);
    }
    let output = command
        .output()
        .with_context(|| format!("running {:?} (`make helm` builds target/helm; set WASMGATE_HELM)", helm()))?;
    if !output.status.success() {
        bail!("helm template {}: {}", chart.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    String::from_utf8(output.stdout).context("helm template printed something that is not UTF-8")
}

/// The chart rendered for one of the project's deployments.
pub fn render_deployment(chart: &Path, deployment: &str) -> Result<String> {
    render(chart, &values_files(chart, deployment)?, &[])
}

/// Every WasmPlugin the chart can install with its default values: the three plugins, and the suite.
pub fn default_wasm_plugins(chart: &Path) -> Result<Vec<crate::istio::WasmPlugin>> {
    let mut plugins = crate::istio::parse_wasm_plugins(&render(chart, &[], &[])?)?;
    plugins.extend(crate::istio::parse_wasm_plugins(&render(chart, &[], &["layout=suite"])?)?);
    Ok(plugins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wasmgate")
    }

    #[test]
    fn a_deployment_names_its_values_files_in_order() {
        let files = values_files(&chart(), "eks-suite").unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["values-eks.yaml", "values-suite.yaml"]);
        assert!(values_files(&chart(), "default").unwrap().is_empty());
        let error = values_files(&chart(), "gke").unwrap_err().to_string();
        assert!(error.contains("values-gke.yaml: no such values file"), "{error}");
    }

    #[test]
    fn the_suite_holds_exactly_the_three_plugins_configs() {
        let plugins = default_wasm_plugins(&chart()).unwrap();
        let names: Vec<_> = plugins.iter().map(|p| p.metadata.name.as_str()).collect();
        assert_eq!(names, ["basic-auth", "grpc-limits", "host-router", "suite"]);
        let suite = plugins[3].spec.plugin_config.as_ref().unwrap();
        for (plugin, section) in plugins[..3].iter().zip(["basic_auth", "grpc_limits", "host_router"]) {
            assert_eq!(suite.get(section), plugin.spec.plugin_config.as_ref(), "{section}");
        }
    }

    #[test]
    fn a_bad_value_is_refused_with_its_name() {
        let error = render(&chart(), &[], &["layout=both"]).unwrap_err().to_string();
        assert!(error.contains("layout"), "{error}");
        let error = render(&chart(), &[], &["images.digests.basic-auth=sha256:abc"]).unwrap_err().to_string();
        assert!(error.contains("digests"), "{error}");
    }
}
