//! `make bench`: request rate, latency and Envoy CPU per request through a real Envoy for
//! (a) no filter, (b) our basic-auth on V8, (c) Envoy's native basic_auth with the same user; the variants are
//! run in interleaved rounds and reported as medians with ratios, since this machine is noisy.

use anyhow::{Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sha1::{Digest, Sha1};
use std::fmt::Write as _;
use wasmgate_e2e::bench::{LoadResult, median, wrk};
use wasmgate_e2e::istio::load_wasm_plugin;
use wasmgate_e2e::{Gateway, RawRequest, Upstream, workspace};

const HOST: &str = "ml.example.com";

struct Variant {
    name: &'static str,
    runs: Vec<LoadResult>,
}

fn gateway(variant: &str, upstream: &Upstream) -> Result<Gateway> {
    let base = Gateway::new().upstream("models", upstream.addr);
    Ok(match variant {
        "passthrough" => base,
        "basic-auth (wasm)" => base.plugin(load_wasm_plugin(&workspace::manifests_dir(), "basic-auth")?),
        "basic_auth (native)" => {
            let sha = STANDARD.encode(Sha1::digest(b"password"));
            base.native_filter(json!({
                "name": "envoy.filters.http.basic_auth",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
                    "users": {"inline_string": format!("username:{{SHA}}{sha}")}
                }
            }))
        }
        // `BENCH_ALT_WASM=path`: the same CR with another build of the module, to compare builds side by side.
        "basic-auth (alt wasm)" => {
            let path = std::path::PathBuf::from(std::env::var("BENCH_ALT_WASM")?);
            base.plugin(load_wasm_plugin(&workspace::manifests_dir(), "basic-auth")?)
                .resolver(move |_| Ok(path.clone()))
        }
        other => bail!("unknown variant {other}"),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seconds: u32 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let connections = 50;
    let upstream = Upstream::start("models").await?;
    let auth = format!("Basic {}", STANDARD.encode("username:password"));
    let headers = [("host", HOST), ("authorization", auth.as_str())];
    let mut names = vec!["passthrough", "basic-auth (wasm)", "basic_auth (native)"];
    if std::env::var_os("BENCH_ALT_WASM").is_some() {
        names.push("basic-auth (alt wasm)");
    }
    let mut variants: Vec<Variant> = names.into_iter().map(|name| Variant { name, runs: Vec::new() }).collect();

    println!("{rounds} rounds x {seconds} s per variant, wrk -t1 -c{connections}, Envoy with 1 worker\n");
    for round in 1..=rounds {
        for variant in &mut variants {
            let envoy = gateway(variant.name, &upstream)?.start().await?;
            // Each variant must really authenticate: a wrong password is refused where a filter runs.
            let probe = RawRequest::get("/").host(HOST).basic_auth("username", "wrong").send(envoy.listener).await?;
            // An alternative build is measured as it is, whatever it does.
            let expect = if variant.name == "passthrough" { 200 } else { 401 };
            if probe.status != expect && !variant.name.contains("alt") {
                bail!("{}: wrong password answered {} (want {expect})", variant.name, probe.status);
            }
            let r = wrk(envoy.listener, "/v1/models", &headers, connections, seconds, envoy.pid())?;
            if r.non_2xx > 0 {
                bail!("{}: {} non-2xx responses under load", variant.name, r.non_2xx);
            }
            println!(
                "round {round} {:<20} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  envoy cpu {:>6.1} us/req",
                variant.name, r.rps, r.p50_us, r.p99_us, r.envoy_cpu_us
            );
            variant.runs.push(r);
        }
    }

    let med = |v: &Variant, f: fn(&LoadResult) -> f64| median(v.runs.iter().map(f).collect());
    let mut report =
        String::from("| variant | req/s | p50 µs | p99 µs | Envoy CPU µs/req |\n|---|---:|---:|---:|---:|\n");
    for v in &variants {
        let _ = writeln!(
            report,
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} |",
            v.name,
            med(v, |r| r.rps),
            med(v, |r| r.p50_us),
            med(v, |r| r.p99_us),
            med(v, |r| r.envoy_cpu_us)
        );
    }
    let (a, b, c) = (&variants[0], &variants[1], &variants[2]);
    let rps = |v: &Variant| med(v, |r| r.rps);
    let cpu = |v: &Variant| med(v, |r| r.envoy_cpu_us);
    let _ = writeln!(report, "\nreq/s ratio b/a (wasm / passthrough): {:.3}", rps(b) / rps(a));
    let _ = writeln!(report, "req/s ratio b/c (wasm / native basic_auth): {:.3}  (target >= 0.90)", rps(b) / rps(c));
    let _ = writeln!(
        report,
        "Envoy CPU per request: wasm {:+.1} µs over passthrough, native {:+.1} µs; CPU ratio c/b {:.3}",
        cpu(b) - cpu(a),
        cpu(c) - cpu(a),
        cpu(c) / cpu(b)
    );
    println!("\n{report}");
    let dir = workspace::root().join("bench-report");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("basic-auth.md"), &report)?;
    println!("written to bench-report/basic-auth.md");
    Ok(())
}
