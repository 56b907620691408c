//! `make bench [-- basic-auth|instructions|flood|host-router|chain|payload|inference]`: request rate, latency and Envoy CPU per request through a
//! real Envoy for each plugin against passthrough (and Envoy's native equivalent where there is one), and one
//! 100 MB gRPC message with and without grpc-limits. Variants run in interleaved rounds and are reported as
//! medians with ratios, since this machine is noisy.

use anyhow::{Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::json;
use sha1::{Digest, Sha1};
use std::fmt::Write as _;
use std::time::Instant;
use wasmgate_e2e::bench::instructions::{Probe, per_request};
use wasmgate_e2e::bench::{LoadResult, env_or, median, proc_status_bytes, reset_peak_rss, wrk};
use wasmgate_e2e::grpc;
use wasmgate_e2e::istio::{WasmPlugin, load_wasm_plugin, load_wasm_plugins};
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
    if which == "all" || which == "instructions" {
        report.push_str(&instructions().await?);
    }
    if which == "all" || which == "flood" {
        report.push_str(&wasmgate_e2e::bench::flood::run().await?);
    }
    if which == "all" || which == "host-router" {
        report.push_str(&host_router().await?);
    }
    if which == "all" || which == "chain" {
        report.push_str(&chain().await?);
    }
    if which == "all" || which == "payload" {
        report.push_str(&payload().await?);
    }
    if which == "all" || which == "inference" {
        report.push_str(&wasmgate_e2e::bench::inference::run().await?);
    }
    report.push_str(&wasm_sizes()?);
    let dir = report_dir()?;
    let header = "# wasmgate benchmark report\n\nMeasured in one run on this machine; ratios compare variants measured side \
                  by side in interleaved rounds.\n";
    std::fs::write(dir.join("report.md"), format!("{header}{report}"))?;
    println!("\nwritten to bench-report/report.md");
    Ok(())
}

/// Load through each variant's gateway in interleaved rounds. `check` runs once per fresh Envoy before the load,
/// to prove the variant really does its job.
async fn load_rounds(
    names: &[&'static str],
    upstream: &Upstream,
    make: impl Fn(&str, &Upstream) -> Result<Gateway>,
    check: impl AsyncCheck,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Vec<Variant>> {
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let seconds: u32 = env_or("BENCH_SECONDS", 5);
    let connections = 50;
    let mut variants: Vec<Variant> = names.iter().map(|name| Variant { name, runs: Vec::new() }).collect();
    println!("\n{rounds} rounds x {seconds} s per variant, wrk -t1 -c{connections}, Envoy with 1 worker");
    for round in 1..=rounds {
        for variant in &mut variants {
            let envoy = make(variant.name, upstream)?.start().await?;
            check.check(variant.name, envoy.listener, upstream).await?;
            let r = wrk(envoy.listener, path, headers, connections, seconds, envoy.pid())?;
            if r.non_2xx > 0 {
                bail!("{}: {} non-2xx responses under load", variant.name, r.non_2xx);
            }
            println!(
                "round {round} {:<26} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  envoy cpu {:>6.1} us/req",
                variant.name, r.rps, r.p50_us, r.p99_us, r.envoy_cpu_us
            );
            variant.runs.push(r);
        }
    }
    Ok(variants)
}

/// A probe run against each fresh gateway before it is loaded.
trait AsyncCheck {
    async fn check(&self, variant: &str, listener: std::net::SocketAddr, upstream: &Upstream) -> Result<()>;
}

fn med(v: &Variant, f: fn(&LoadResult) -> f64) -> f64 {
    median(v.runs.iter().map(f).collect())
}

fn rate_table(title: &str, variants: &[Variant]) -> String {
    let mut report = format!(
        "\n## Request rate: {title}\n\n| variant | req/s | p50 µs | p99 µs | Envoy CPU µs/req |\n|---|---:|---:|---:|---:|\n"
    );
    for v in variants {
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
    report
}

struct WrongPasswordRefused;

impl AsyncCheck for WrongPasswordRefused {
    async fn check(&self, variant: &str, listener: std::net::SocketAddr, _upstream: &Upstream) -> Result<()> {
        warm_credentials(variant, listener, refuses_wrong_password(variant)).await
    }
}

/// Whether a variant of the basic-auth section must refuse a wrong password (`None`: not checked). An
/// alternative build is measured as it is, whatever it does; a floor module authenticates nobody.
fn refuses_wrong_password(variant: &str) -> Option<bool> {
    if variant.contains("alt") || variant.contains("floor") { None } else { Some(variant != "passthrough") }
}

/// (a) passthrough, (b) basic-auth on V8, (c) native basic_auth: req/s, latency, Envoy CPU per request.
async fn basic_auth() -> Result<String> {
    let upstream = Upstream::start("models").await?;
    let auth = format!("Basic {}", STANDARD.encode("username:password"));
    let headers = [("host", HOST), ("authorization", auth.as_str())];
    let mut names = vec!["passthrough", "basic-auth (wasm)", "basic_auth (native)", FLOOR_READ];
    if std::env::var_os("BENCH_ALT_WASM").is_some() {
        names.push("basic-auth (alt wasm)");
    }
    let dir = tempfile::tempdir()?;
    let reader = wasmgate_e2e::bench::floor::write_header_reader(dir.path())?;
    let make = |variant: &str, upstream: &Upstream| match variant {
        FLOOR_READ => Ok(floor_gateway(upstream, &reader)?),
        other => gateway(other, upstream),
    };
    let variants = load_rounds(&names, &upstream, make, WrongPasswordRefused, "/v1/models", &headers).await?;
    let mut report = rate_table("basic-auth", &variants);
    let (a, b, c, floor) = (&variants[0], &variants[1], &variants[2], &variants[3]);
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
    let _ = writeln!(
        report,
        "floor: a module that only reads the request headers reaches {:.3} of native basic_auth's req/s ({:+.1} µs \
         of Envoy CPU over passthrough), the most any wasm plugin that reads the request can reach on this host; \
         basic-auth costs {:+.1} µs over that floor",
        rps(floor) / rps(c),
        cpu(floor) - cpu(a),
        cpu(b) - cpu(floor)
    );
    println!("\n{report}");
    Ok(report)
}

/// The basic-auth variants again, each counted by callgrind: instructions per request are the same from run to
/// run, so this section shows where the cost is without the noise of the load runs above.
async fn instructions() -> Result<String> {
    let upstream = Upstream::start("models").await?;
    let dir = tempfile::tempdir()?;
    let noop = wasmgate_e2e::bench::floor::write_noop(dir.path())?;
    let reader = wasmgate_e2e::bench::floor::write_header_reader(dir.path())?;
    let auth = format!("Basic {}", STANDARD.encode("username:password"));
    let probe = Probe {
        path: "/v1/models".into(),
        headers: vec![("host".into(), HOST.into()), ("authorization".into(), auth)],
    };
    let requests: usize = env_or("BENCH_REQUESTS", 1000);
    let mut names = vec!["passthrough", "basic_auth (native)", FLOOR_ONE, FLOOR_READ, "basic-auth (wasm)"];
    if std::env::var_os("BENCH_ALT_WASM").is_some() {
        names.push("basic-auth (alt wasm)");
    }
    println!("\ninstructions per request: callgrind, {requests} requests on one connection per variant, two at a time");
    let mut counted = Vec::new();
    // Two at a time: valgrind runs a process on one core.
    for pair in names.chunks(2) {
        let mut runs = Vec::new();
        for &name in pair {
            let gateway = match name {
                FLOOR_ONE => floor_gateway(&upstream, &noop)?,
                FLOOR_READ => floor_gateway(&upstream, &reader)?,
                other => gateway(other, &upstream)?,
            };
            let probe = probe.clone();
            let warm = move |listener| warm_credentials(name, listener, refuses_wrong_password(name));
            runs.push((name, tokio::spawn(async move { per_request(gateway, warm, &probe, 200, requests).await })));
        }
        for (name, run) in runs {
            let count = run.await??;
            println!(
                "{name:<40} {:>9.0} instructions/request ({:.0} in V8-generated code)",
                count.total, count.generated
            );
            counted.push((name, count));
        }
    }
    let base = counted[0].1.total;
    let mut report = String::from(
        "\n## Instructions per request (callgrind): basic-auth\n\nEnvoy's whole process, counted by callgrind over \
         one keep-alive connection after a warm-up: the same from run to run within 1-2 % (how the upstream's replies \
         fall into reads varies), and exactly so for the generated code. \"Generated\" is code V8 compiled \
         at run time: the plugin's own wasm.\n\n| variant | instructions/request | over passthrough | generated |\n\
         |---|---:|---:|---:|\n",
    );
    for (name, c) in &counted {
        let _ = writeln!(report, "| {name} | {:.0} | {:+.0} | {:.0} |", c.total, c.total - base, c.generated);
    }
    let find = |wanted: &str| counted.iter().find(|(n, _)| *n == wanted).map(|(_, c)| c.total).unwrap_or(f64::NAN);
    let (native, wasm, reader) = (find("basic_auth (native)"), find("basic-auth (wasm)"), find(FLOOR_READ));
    let _ = writeln!(
        report,
        "\nnative / basic-auth: {:.3} (what b/c would be if a request cost its instructions); native / header-reading \
         floor: {:.3}, the most any plugin that reads the request reaches",
        native / wasm,
        native / reader
    );
    println!("{report}");
    Ok(report)
}

/// The committed basic-auth CR with its module swapped for a hand-written floor module.
fn floor_gateway(upstream: &Upstream, module: &std::path::Path) -> Result<Gateway> {
    let module = module.to_path_buf();
    let plugin = load_wasm_plugin(&workspace::plugin_crs_dir(), "basic-auth")?.with_config(json!({}));
    Ok(Gateway::new().upstream("models", upstream.addr).plugin(plugin).resolver(move |_| Ok(module.clone())))
}

/// 20 hosts × 10 rules; the benchmark's requests match only the last rule of the last host.
fn router_config() -> serde_json::Value {
    let hosts: Vec<serde_json::Value> = (0..20)
        .map(|h| {
            let rules: Vec<serde_json::Value> = (0..10)
                .map(|r| {
                    json!({"name": format!("h{h}-r{r}"),
                           "match": {"prefix": format!("/r{r}/"), "methods": ["GET"], "headers": [{"name": "x-tenant", "present": true}]},
                           "set_headers": {"x-wasmgate-rule": format!("h{h}-r{r}")}})
                })
                .collect();
            json!({"host": format!("h{h}.example.com"), "rules": rules})
        })
        .collect();
    json!({ "hosts": hosts })
}

struct LastRuleTaken;

impl AsyncCheck for LastRuleTaken {
    async fn check(&self, variant: &str, listener: std::net::SocketAddr, upstream: &Upstream) -> Result<()> {
        RawRequest::get("/r9/x").host("h19.example.com").header("x-tenant", "t").send(listener).await?;
        let seen = upstream.requests().last().and_then(|r| r.header("x-wasmgate-rule").map(str::to_string));
        let want = (variant != "passthrough").then(|| "h19-r9".to_string());
        if seen != want {
            bail!("{variant}: upstream saw rule {seen:?}, want {want:?}");
        }
        upstream.clear();
        Ok(())
    }
}

/// Passthrough vs host-router with 20 hosts × 10 rules, every request matching the very last rule.
async fn host_router() -> Result<String> {
    let upstream = Upstream::start("models").await?;
    let names = ["passthrough", "host-router (wasm)"];
    let make = |variant: &str, upstream: &Upstream| -> Result<Gateway> {
        let base = Gateway::new().upstream("models", upstream.addr);
        Ok(match variant {
            "passthrough" => base,
            _ => {
                base.plugin(load_wasm_plugin(&workspace::manifests_dir(), "host-router")?.with_config(router_config()))
            }
        })
    };
    let headers = [("host", "h19.example.com"), ("x-tenant", "t")];
    let variants = load_rounds(&names, &upstream, make, LastRuleTaken, "/r9/x", &headers).await?;
    upstream.clear();
    let mut report = rate_table("host-router, 20 hosts × 10 rules, last rule matches", &variants);
    let _ = writeln!(
        report,
        "\nreq/s ratio host-router / passthrough: {:.3}",
        med(&variants[1], |r| r.rps) / med(&variants[0], |r| r.rps)
    );
    println!("\n{report}");
    Ok(report)
}

fn payload_gateway(variant: &str, upstream: &Upstream) -> Result<Option<Gateway>> {
    // Bounded windows towards the client, so what a filter holds shows rather than what Envoy's 256 MiB default
    // lets a fast client push ahead.
    let base = Gateway::new().upstream("models", upstream.addr).downstream_windows(1 << 20, 4 << 20);
    // As a TypedStruct, which istiod passes through untouched and Envoy converts: the go-control-plane istiod
    // builds with predates body_size_limit, so istiod could not parse that filter's own type.
    let native = |name: &str, ty: &str, limit: u64| {
        json!({"name": name, "typed_config": {
            "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
            "type_url": format!("type.googleapis.com/{ty}"),
            "value": {"max_request_bytes": limit}
        }})
    };
    Ok(Some(match variant {
        "direct to upstream" => return Ok(None),
        "Envoy, no filter" => base,
        "Envoy + grpc-limits (wasm)" => base.plugin(load_wasm_plugin(&workspace::manifests_dir(), "grpc-limits")?),
        "Envoy + full chain (wasm)" => base.plugins(load_wasm_plugins(&workspace::plugin_crs_dir())?),
        "Envoy + suite (wasm)" => {
            base.plugin(load_wasm_plugin(&workspace::manifests_dir().join("components/suite"), "suite")?)
        }
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
        "Envoy + full chain (wasm)",
        "Envoy + suite (wasm)",
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
            let auth = format!("Basic {}", STANDARD.encode("username:password"));
            let metadata = [("authorization", auth.as_str())];
            grpc::raw_unary(channel.clone(), INFER, Bytes::from_static(b"warm"), &metadata).await?;
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
                let reply = grpc::raw_unary(channel.clone(), INFER, body.clone(), &metadata).await?;
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
         Targets: the gateway (grpc-limits, the full chain, the suite) ≤ 1.25× direct, RSS growth ≤ 32 MB."
    );
    println!("{report}");
    Ok(report)
}

fn report_dir() -> Result<std::path::PathBuf> {
    let dir = workspace::root().join("bench-report");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The size of every module `make build` left in `dist/plugins`.
fn wasm_sizes() -> Result<String> {
    let mut report = String::from(
        "\n## Module sizes (`make build`: opt-level s with the hot crypto and hashing crates at 3, LTO, wasm-opt -Oz, unused exports pruned)\n\n| module | bytes |\n|---|---:|\n",
    );
    let mut files: Vec<_> = std::fs::read_dir(workspace::root().join("dist/plugins"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(report, "| {name} | {} |", std::fs::metadata(&file)?.len());
    }
    Ok(report)
}

const CHAIN: &str = "full chain, 3 filters (wasm)";
const SUITE: &str = "suite, 1 filter (wasm)";

const FLOOR_ONE: &str = "no-op wasm, 1 filter (floor)";
const FLOOR_THREE: &str = "no-op wasm, 3 filters (floor)";
const FLOOR_READ: &str = "no-op wasm reading the headers (floor)";

/// The hand-written modules of the floor rows.
struct FloorModules {
    noop: std::path::PathBuf,
    reader: std::path::PathBuf,
}

fn chain_gateway(variant: &str, upstream: &Upstream, floor: &FloorModules) -> Result<Gateway> {
    let base = Gateway::new().upstream("models", upstream.addr);
    let plugins = load_wasm_plugins(&workspace::plugin_crs_dir())?;
    let one = |name: &str| load_wasm_plugin(&workspace::plugin_crs_dir(), name);
    let noop = floor.noop.clone();
    let as_noop = |plugin: WasmPlugin| plugin.with_config(json!({}));
    Ok(match variant {
        "passthrough" => base,
        FLOOR_ONE => floor_gateway(upstream, &floor.noop)?,
        FLOOR_THREE => base.plugins(plugins.into_iter().map(as_noop)).resolver(move |_| Ok(noop.clone())),
        FLOOR_READ => floor_gateway(upstream, &floor.reader)?,
        "basic-auth (wasm)" => base.plugin(one("basic-auth")?),
        "grpc-limits (wasm)" => base.plugin(one("grpc-limits")?),
        "host-router (wasm)" => base.plugin(one("host-router")?),
        CHAIN => base.plugins(plugins),
        SUITE => base.plugin(load_wasm_plugin(&workspace::manifests_dir().join("components/suite"), "suite")?),
        "basic_auth (native)" => gateway("basic_auth (native)", upstream)?,
        other => bail!("unknown variant {other}"),
    })
}

struct AuthWhereConfigured;

impl AsyncCheck for AuthWhereConfigured {
    async fn check(&self, variant: &str, listener: std::net::SocketAddr, _upstream: &Upstream) -> Result<()> {
        let authenticates = ["basic", "chain", "suite"].iter().any(|k| variant.contains(k));
        warm_credentials(variant, listener, Some(authenticates)).await
    }
}

/// A wrong password must be refused where the variant authenticates (`None`: not checked), and the right one
/// accepted. The accepted request also verifies the bcrypt hash once, as every gateway worker does once per
/// credential, so that this one-time cost (~100 ms of CPU) does not land in the measured window.
async fn warm_credentials(variant: &str, listener: std::net::SocketAddr, authenticates: Option<bool>) -> Result<()> {
    let wrong = RawRequest::get("/").host(HOST).basic_auth("username", "wrong").send(listener).await?;
    if let Some(authenticates) = authenticates {
        let expect = if authenticates { 401 } else { 200 };
        if wrong.status != expect {
            bail!("{variant}: wrong password answered {} (want {expect})", wrong.status);
        }
    }
    let right = RawRequest::get("/").host(HOST).basic_auth("username", "password").send(listener).await?;
    if right.status != 200 && authenticates.is_some() {
        bail!("{variant}: the right password answered {} (want 200)", right.status);
    }
    Ok(())
}

/// Passthrough, each plugin alone, the three as a chain of filters (the committed CRs), the suite (one filter,
/// same policies) and Envoy's native basic_auth: what each costs per request, and whether the per-filter cost
/// dominates.
async fn chain() -> Result<String> {
    let upstream = Upstream::start("models").await?;
    let auth = format!("Basic {}", STANDARD.encode("username:password"));
    let headers = [("host", HOST), ("authorization", auth.as_str()), ("content-type", "application/json")];
    let names = [
        "passthrough",
        FLOOR_ONE,
        FLOOR_THREE,
        FLOOR_READ,
        "basic-auth (wasm)",
        "grpc-limits (wasm)",
        "host-router (wasm)",
        CHAIN,
        SUITE,
        "basic_auth (native)",
    ];
    let dir = tempfile::tempdir()?;
    let floor = FloorModules {
        noop: wasmgate_e2e::bench::floor::write_noop(dir.path())?,
        reader: wasmgate_e2e::bench::floor::write_header_reader(dir.path())?,
    };
    let make = |variant: &str, upstream: &Upstream| chain_gateway(variant, upstream, &floor);
    let variants = load_rounds(&names, &upstream, make, AuthWhereConfigured, "/v1/models", &headers).await?;
    let mut report =
        rate_table("passthrough, each plugin, the chain and the suite (committed CRs, authorised GET)", &variants);
    let rps = |name: &str| variants.iter().find(|v| v.name == name).map_or(f64::NAN, |v| med(v, |r| r.rps));
    let cpu = |name: &str| variants.iter().find(|v| v.name == name).map_or(f64::NAN, |v| med(v, |r| r.envoy_cpu_us));
    let base = cpu("passthrough");
    let singles: f64 =
        ["basic-auth (wasm)", "grpc-limits (wasm)", "host-router (wasm)"].iter().map(|n| cpu(n) - base).sum();
    let _ = writeln!(
        report,
        "\nreq/s ratio full chain / passthrough: {:.3} (target ≥ 0.85)",
        rps(CHAIN) / rps("passthrough")
    );
    let _ = writeln!(report, "req/s ratio suite / passthrough: {:.3}", rps(SUITE) / rps("passthrough"));
    let _ = writeln!(report, "req/s ratio suite / full chain: {:.3}", rps(SUITE) / rps(CHAIN));
    let _ = writeln!(
        report,
        "Envoy CPU per request over passthrough: the three plugins alone {singles:+.1} µs in sum, chain {:+.1} µs, suite {:+.1} µs, native basic_auth {:+.1} µs",
        cpu(CHAIN) - base,
        cpu(SUITE) - base,
        cpu("basic_auth (native)") - base,
    );
    let dir = report_dir()?;
    let relative: Vec<(String, f64)> =
        variants.iter().map(|v| (v.name.to_string(), 100.0 * med(v, |r| r.rps) / rps("passthrough"))).collect();
    wasmgate_e2e::bench::plot::bars(
        "req/s, % of passthrough",
        "% of passthrough req/s",
        &relative,
        &dir.join("chain-rps.png"),
    )?;
    let cost: Vec<(String, f64)> = variants.iter().map(|v| (v.name.to_string(), med(v, |r| r.envoy_cpu_us))).collect();
    wasmgate_e2e::bench::plot::bars(
        "Envoy CPU per request",
        "µs of Envoy CPU per request",
        &cost,
        &dir.join("chain-cpu.png"),
    )?;
    report.push_str("\n![req/s relative to passthrough](chain-rps.png)\n\n![Envoy CPU per request](chain-cpu.png)\n");
    println!("\n{report}");
    Ok(report)
}
