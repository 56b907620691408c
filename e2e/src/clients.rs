//! The real clients in `e2e/clients/` (tritonclient, TF Serving's API, grpcio), run with the project's Python.

use crate::workspace;
use anyhow::{Context, Result};
use serde_json::Value;
use std::process::Command;
use wasmgate_inference::data;

/// Runs `e2e/clients/<script>` with `args`; its standard output, or an error with both outputs when it fails.
pub async fn run(script: &str, args: Vec<String>) -> Result<String> {
    let script = workspace::root().join("e2e/clients").join(script);
    let python = workspace::python()?;
    let output = tokio::task::spawn_blocking(move || Command::new(python).arg(script).args(&args).output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    Ok(stdout)
}

/// A classifying script's arguments: the address, `extra`, and `--data` when the catvnoncat test set is present
/// (the script then checks the numpy reference's answers; without it, a generated batch).
pub fn args(address: impl ToString, extra: &[&str]) -> Vec<String> {
    let mut args = vec![address.to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let dir = data::default_dir();
    if data::available(&dir) {
        args.extend(["--data".to_owned(), dir.display().to_string()]);
    } else {
        eprintln!("catvnoncat data not found at {} (set {}): a generated batch", dir.display(), data::DATA_DIR_ENV);
    }
    args
}

/// Runs a script that classifies and prints a JSON summary, and checks what each of them reports: a batch of
/// at least 100 MB classified and, where the test set was there, the reference's probabilities (±1e-4) and test
/// accuracy (0.80: the committed weights are the reference's training).
pub async fn classified(script: &str, args: Vec<String>) -> Result<Value> {
    let stdout = run(script, args).await?;
    let summary: Value = serde_json::from_str(stdout.trim()).with_context(|| format!("{script} printed {stdout}"))?;
    anyhow::ensure!(summary["big_bytes"].as_u64() >= Some(100_000_000), "{script}: no 100 MB batch in {summary}");
    if let Some(accuracy) = summary["accuracy"].as_f64() {
        anyhow::ensure!((accuracy - 0.80).abs() < 1e-9, "{script}: test accuracy {accuracy}");
        anyhow::ensure!(summary["max_diff_vs_numpy"].as_f64() < Some(1e-4), "{script}: {summary}");
    }
    Ok(summary)
}
