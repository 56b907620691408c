//! `make demo`: Envoy with every plugin of our WasmPlugin CRs (basic-auth, grpc-limits, host-router) in front
//! of an upstream on loopback, and a short scripted session through it. `--keep-running` leaves the gateway up
//! until Ctrl-C.

use anyhow::Result;
use wasmgate_e2e::istio::load_wasm_plugins;
use wasmgate_e2e::{Gateway, RawRequest, Upstream, workspace};

const HOST: &str = "ml.example.com";

#[tokio::main]
async fn main() -> Result<()> {
    let keep_running = std::env::args().any(|a| a == "--keep-running");
    let plugins = load_wasm_plugins(&workspace::manifests_dir())?;
    println!("WasmPlugins from manifests/: {}", names(&plugins));
    let upstream = Upstream::start("models").await?;
    let envoy = Gateway::new().plugins(plugins).upstream("models", upstream.addr).start().await?;
    println!("Envoy (V8) listening on {}, admin on {}, upstream on {}\n", envoy.listener, envoy.admin, upstream.addr);

    let steps = [
        ("no credentials", RawRequest::get("/v1/models").host(HOST)),
        ("wrong password", RawRequest::get("/v1/models").host(HOST).basic_auth("username", "guess")),
        ("right credentials", RawRequest::get("/v1/models").host(HOST).basic_auth("username", "password")),
        ("another host (no rule)", RawRequest::get("/").host("status.example.com")),
        (
            "5 MB upload (4 MiB limit)",
            RawRequest::new("POST", "/upload").host(HOST).basic_auth("username", "password").body(vec![0u8; 5 << 20]),
        ),
        ("health, direct response", RawRequest::get("/healthz").host(HOST).basic_auth("username", "password")),
        ("canary host", RawRequest::get("/v1/models").host("canary.ml.example.com")),
    ];
    for (what, request) in steps {
        let response = request.send(envoy.listener).await?;
        let detail =
            response.header("www-authenticate").map(|c| format!("  www-authenticate: {c}")).unwrap_or_default();
        println!("{what:<26} -> {} {}{detail}", response.status, summary(&response.text()));
    }
    println!("\nrequests that reached the upstream: {}", upstream.count());
    let stats = envoy.stats().await?;
    println!("plugin counters (non-zero):");
    for (name, value) in stats.iter().filter(|(k, v)| k.starts_with("wasmcustom.wasmgate.") && **v > 0) {
        println!("  {name} = {value}");
    }

    if keep_running {
        println!(
            "\nGateway running. Try:\n  curl -u username:password -H 'host: {HOST}' http://{}/v1/models",
            envoy.listener
        );
        println!("Ctrl-C stops Envoy and the upstream.");
        tokio::signal::ctrl_c().await?;
    }
    drop(envoy);
    println!("stopped");
    Ok(())
}

fn names(plugins: &[wasmgate_e2e::WasmPlugin]) -> String {
    plugins.iter().map(|p| p.filter_name()).collect::<Vec<_>>().join(", ")
}

fn summary(body: &str) -> String {
    let line = body.lines().next().unwrap_or_default();
    if line.len() > 80 { format!("{}...", &line[..80]) } else { line.to_string() }
}
