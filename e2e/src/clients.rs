//! The real clients in `e2e/clients/` (tritonclient, grpcio), run with the project's Python.

use crate::workspace;
use anyhow::Result;
use std::process::Command;

/// Runs `e2e/clients/<script>` with `args`; its standard output, or an error with both outputs when it fails.
pub async fn run(script: &str, args: Vec<String>) -> Result<String> {
    let script = workspace::root().join("e2e/clients").join(script);
    let python = workspace::python()?;
    let output = tokio::task::spawn_blocking(move || Command::new(python).arg(script).args(&args).output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    Ok(stdout)
}
