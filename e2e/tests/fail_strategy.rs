//! What each `failStrategy` makes the gateway do when a plugin's VM fails at runtime, seen through a real Envoy
//! with a module that traps on every request (what a panic in a plugin becomes). FAIL_CLOSE (our CRs' choice for
//! every plugin): nothing reaches the upstream, ever. FAIL_OPEN: once the VM has failed, requests pass without
//! the filter — which is why an auth plugin must never use it. FAIL_RELOAD: the VM is reloaded, and while the
//! module keeps failing nothing passes.

use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;
use wasmgate_e2e::bench::floor::write_module;
use wasmgate_e2e::fixtures::HOST;
use wasmgate_e2e::{Gateway, RawRequest, RunningGateway, Upstream, workspace};

struct Case {
    envoy: RunningGateway,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

/// The committed basic-auth CR with `strategy`, its module swapped for the trapping one.
async fn gateway(strategy: &str) -> Result<Case> {
    let dir = tempfile::tempdir()?;
    // A proxy-wasm module that configures fine and traps in `proxy_on_request_headers`.
    let module = write_module(dir.path(), "traps", "unreachable")?;
    gateway_running(module, strategy, dir).await
}

/// The committed basic-auth CR with `strategy`, running `module` in its place.
async fn gateway_running(module: PathBuf, strategy: &str, dir: tempfile::TempDir) -> Result<Case> {
    let plugin = workspace::plugin_cr("basic-auth")?.with_config(json!({})).with_fail_strategy(strategy);
    let upstream = Upstream::start("models").await?;
    let envoy = Gateway::new()
        .plugin(plugin)
        .resolver(move |_| Ok(module.clone()))
        .upstream("models", upstream.addr)
        .start()
        .await?;
    Ok(Case { envoy, upstream, _dir: dir })
}

async fn statuses(case: &Case, n: usize) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(RawRequest::get("/v1/models").host(HOST).send(case.envoy.listener).await?.status);
    }
    Ok(out)
}

#[tokio::test]
async fn fail_close_refuses_every_request_after_a_crash() -> Result<()> {
    let case = gateway("FAIL_CLOSE").await?;
    let answers = statuses(&case, 4).await?;
    assert!(answers.iter().all(|&s| s >= 500), "{answers:?}");
    assert_eq!(case.upstream.count(), 0, "nothing passed a failed auth filter");
    Ok(())
}

#[tokio::test]
async fn fail_open_lets_requests_through_once_the_vm_has_failed() -> Result<()> {
    let case = gateway("FAIL_OPEN").await?;
    let answers = statuses(&case, 4).await?;
    assert!(answers[1..].iter().all(|&s| s == 200), "{answers:?}");
    assert!(case.upstream.count() >= 3, "requests reached the upstream without the filter");
    Ok(())
}

#[tokio::test]
async fn fail_reload_restarts_the_vm_and_still_lets_nothing_through() -> Result<()> {
    let case = gateway("FAIL_RELOAD").await?;
    let answers = statuses(&case, 4).await?;
    assert!(answers.iter().all(|&s| s >= 500), "{answers:?}");
    assert_eq!(case.upstream.count(), 0);
    Ok(())
}

/// A panic (here a module built to panic in its request callback, as a bug in a dependency would): the shared
/// panic hook logs it at critical level with the plugin's name and where it happened, before the module aborts;
/// with FAIL_CLOSE the request and the ones after it are refused.
#[tokio::test]
async fn a_panic_is_logged_at_critical_and_the_request_is_refused() -> Result<()> {
    let module = workspace::root().join("target/wasm32-wasip1/wasm/panic_probe.wasm");
    anyhow::ensure!(module.is_file(), "{} is missing: run `make build`", module.display());
    let case = gateway_running(module, "FAIL_CLOSE", tempfile::tempdir()?).await?;
    let answers = statuses(&case, 2).await?;
    assert!(answers.iter().all(|&s| s >= 500), "{answers:?}");
    assert_eq!(case.upstream.count(), 0);
    let log = case.envoy.envoy.log();
    let line = log.lines().find(|l| l.contains("panic-probe: panicked")).unwrap_or_default();
    assert!(line.contains("[critical]"), "no critical line for the panic in:\n{log}");
    assert!(line.contains("index 7 out of range in a dependency (probe)"), "{line}");
    assert!(line.contains("plugins/panic-probe/src/lib.rs"), "where it panicked: {line}");
    Ok(())
}
