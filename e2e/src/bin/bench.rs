//! `make bench`: request rate, latency and Envoy CPU per request through a real Envoy for
//! (a) no filter, (b) our basic-auth on V8, (c) Envoy's native basic_auth with the same user; the variants are
//! run in interleaved rounds and reported as medians with ratios, since this machine is noisy.

use anyhow::{Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::json;
use sha1::{Digest, Sha1};
use std::fmt::Write as _;
use std::time::Instant;
use wasmgate_e2e::bench::{LoadResult, median, proc_status_bytes, reset_peak_rss, wrk};
use wasmgate_e2e::grpc;
use wasmgate_e2e::istio::load_wasm_plugin;
use wasmgate_e2e::{Gateway, RawRequest, Upstream, workspace};

const HOST: &str = "ml.example.com";
const INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

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
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let mut report = String::new();
    if which == "all" || which == "basic-auth" {
        report.push_str(&basic_auth().await?);
    }
    if which == "all" || which == "payload" {
        report.push_str(&payload().await?);
    }
    let dir = workspace::root().join("bench-report");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("report.md"), &report)?;
    println!("\nwritten to bench-report/report.md");
    Ok(())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// (a) passthrough, (b) basic-auth on V8, (c) native basic_auth: req/s, latency, Envoy CPU per request.
async fn basic_auth() -> Result<String> {
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let seconds: u32 = env_or("BENCH_SECONDS", 5);
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
    let mut report = String::from(
        "## Request rate: basic-auth\n\n| variant | req/s | p50 µs | p99 µs | Envoy CPU µs/req |\n|---|---:|---:|---:|---:|\n",
    );
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
    Ok(report)
}

fn payload_gateway(variant: &str, upstream: &Upstream) -> Result<Option<Gateway>> {
    // Bounded windows towards the client, so what a filter holds shows rather than what Envoy's 256 MiB default
    // lets a fast client push ahead.
    let base = Gateway::new().upstream("models", upstream.addr).downstream_windows(1 << 20, 4 << 20);
    let native = |name: &str, ty: &str, limit: u64| json!({"name": name, "typed_config": {"@type": format!("type.googleapis.com/{ty}"), "max_request_bytes": limit}});
    Ok(Some(match variant {
        "direct to upstream" => return Ok(None),
        "Envoy, no filter" => base,
        "Envoy + grpc-limits (wasm)" => base.plugin(load_wasm_plugin(&workspace::manifests_dir(), "grpc-limits")?),
        "Envoy + buffer (native)" => base.native_filter(native(
            "envoy.filters.http.buffer",
            "envoy.extensions.filters.http.buffer.v3.Buffer",
            130 << 20,
        )),
        "Envoy + body_size_limit (native)" => base.native_filter(native(
            "envoy.filters.http.body_size_limit",
            "envoy.extensions.filters.http.body_size_limit.v3.BodySizeLimit",
            129 << 20,
        )),
        other => bail!("unknown variant {other}"),
    }))
}

/// One 100 MB gRPC message: direct, through Envoy alone, with grpc-limits, and with Envoy's native buffer and
/// body_size_limit filters; time per request and Envoy's peak RSS growth.
async fn payload() -> Result<String> {
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let size: usize = env_or("BENCH_PAYLOAD_BYTES", 100_000_000);
    let repeat: usize = env_or("BENCH_PAYLOAD_REPEAT", 3);
    let upstream = Upstream::start("models").await?;
    let body = Bytes::from(vec![0x5Au8; size]);
    let variants = [
        "direct to upstream",
        "Envoy, no filter",
        "Envoy + grpc-limits (wasm)",
        "Envoy + buffer (native)",
        "Envoy + body_size_limit (native)",
    ];
    // `BENCH_ONLY=grpc-limits`: just the variants whose name holds it (and the direct baseline).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let variants: Vec<&str> = variants.into_iter().filter(|v| v.starts_with("direct") || v.contains(&only)).collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut growth: Vec<u64> = vec![0; variants.len()];
    println!("\n{rounds} rounds of {repeat} {size}-byte gRPC messages per variant (median per round)");
    for round in 1..=rounds {
        for (i, name) in variants.iter().enumerate() {
            let envoy = match payload_gateway(name, &upstream)? {
                Some(g) => Some(g.start().await?),
                None => None,
            };
            let addr = envoy.as_ref().map_or(upstream.addr, |e| e.listener);
            let channel = grpc::channel(addr, HOST).await?;
            // Warm the connection up and let V8 finish compiling the module in the background, then take
            // Envoy's resident size as the baseline.
            grpc::raw_unary(channel.clone(), INFER, Bytes::from_static(b"warm"), &[]).await?;
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            let baseline = match &envoy {
                Some(e) => {
                    reset_peak_rss(e.pid())?;
                    proc_status_bytes(e.pid(), "VmRSS")?
                }
                None => 0,
            };
            let mut runs = Vec::new();
            for _ in 0..repeat {
                let start = Instant::now();
                let reply = grpc::raw_unary(channel.clone(), INFER, body.clone(), &[]).await?;
                runs.push(start.elapsed().as_secs_f64());
                if reply.len() != 64 {
                    bail!("{name}: unexpected reply {reply:?}");
                }
            }
            let secs = median(runs);
            let peak = match &envoy {
                Some(e) => proc_status_bytes(e.pid(), "VmHWM")?.saturating_sub(baseline),
                None => 0,
            };
            growth[i] = growth[i].max(peak);
            times[i].push(secs);
            println!("round {round} {name:<34} {:>7.3} s  Envoy RSS growth {:>6.1} MB", secs, peak as f64 / 1e6);
        }
    }
    let direct = median(times[0].clone());
    let mut report = format!(
        "\n## One {} MB gRPC message\n\n| path | median time s | × direct | Envoy peak RSS growth MB |\n|---|---:|---:|---:|\n",
        size / 1_000_000
    );
    for (i, name) in variants.iter().enumerate() {
        let t = median(times[i].clone());
        let _ = writeln!(report, "| {name} | {t:.3} | {:.2} | {:.1} |", t / direct, growth[i] as f64 / 1e6);
    }
    let _ = writeln!(
        report,
        "\nEnvoy with 1 worker and HTTP/2 windows of 1 MiB per stream and 4 MiB per connection towards the client. \
         Targets: grpc-limits ≤ 1.25× direct, RSS growth ≤ 32 MB."
    );
    println!("{report}");
    Ok(report)
}
