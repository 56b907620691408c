//! `make bench [-- <section>]`: request rate, latency and Envoy CPU per request through a real Envoy for each
//! plugin against passthrough (and Envoy's native equivalent where there is one), instructions per request under
//! callgrind, a flood of wrong passwords, 100 MB messages on every path, and the model server. Variants run in
//! interleaved rounds and are reported as medians with ratios, since this machine is noisy.

use anyhow::{Result, bail};
use std::fmt::Write as _;
use std::str::FromStr;
use wasmgate_e2e::bench::instructions::{Counting, PerRequest, Probe, per_request};
use wasmgate_e2e::bench::rates::{self, Check, Rates, Request};
use wasmgate_e2e::bench::variant::{Floors, Variant};
use wasmgate_e2e::bench::{env_or, flood, inference, payload, plot};
use wasmgate_e2e::fixtures::{HOST, authorization};
use wasmgate_e2e::{Upstream, workspace};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    BasicAuth,
    Instructions,
    Flood,
    HostRouter,
    Chain,
    Payload,
    Inference,
}

impl Section {
    const ALL: [Section; 7] = [
        Section::BasicAuth,
        Section::Instructions,
        Section::Flood,
        Section::HostRouter,
        Section::Chain,
        Section::Payload,
        Section::Inference,
    ];

    fn name(self) -> &'static str {
        match self {
            Section::BasicAuth => "basic-auth",
            Section::Instructions => "instructions",
            Section::Flood => "flood",
            Section::HostRouter => "host-router",
            Section::Chain => "chain",
            Section::Payload => "payload",
            Section::Inference => "inference",
        }
    }

    async fn run(self) -> Result<String> {
        match self {
            Section::BasicAuth => basic_auth().await,
            Section::Instructions => instructions().await,
            Section::Flood => flood::run().await,
            Section::HostRouter => host_router().await,
            Section::Chain => chain().await,
            Section::Payload => payload::run().await,
            Section::Inference => inference::run().await,
        }
    }
}

impl FromStr for Section {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        match Section::ALL.into_iter().find(|s| s.name() == name) {
            Some(section) => Ok(section),
            None => {
                let known: Vec<&str> = Section::ALL.iter().map(|s| s.name()).collect();
                bail!("no bench section `{name}`; sections: {} (none: all of them)", known.join(", "))
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let sections: Vec<Section> = match std::env::args().nth(1) {
        Some(name) if name != "all" => vec![name.parse()?],
        _ => Section::ALL.to_vec(),
    };
    let mut report = String::new();
    for section in sections {
        report.push_str(&section.run().await?);
    }
    report.push_str(&wasm_sizes()?);
    let dir = report_dir()?;
    let header = "# wasmgate benchmark report\n\nMeasured in one run on this machine; ratios compare variants measured side \
                  by side in interleaved rounds.\n";
    std::fs::write(dir.join("report.md"), format!("{header}{report}"))?;
    println!("\nwritten to bench-report/report.md");
    Ok(())
}

/// The authorised GET every request-rate and instruction section sends.
const PATH: &str = "/v1/models";

/// Those of `variants` that `only` (`BENCH_ONLY`: `<name>|<name>`) names as the report does, in their order; all of
/// them without it.
fn only_named(variants: Vec<Variant>, only: Option<&str>) -> Result<Vec<Variant>> {
    let Some(only) = only else { return Ok(variants) };
    let names: Vec<&str> = only.split('|').map(str::trim).collect();
    if let Some(unknown) = names.iter().find(|n| !variants.iter().any(|v| v.name() == **n)) {
        let known: Vec<&str> = variants.iter().map(|v| v.name()).collect();
        bail!("BENCH_ONLY names no variant `{unknown}`; the variants: {}", known.join(" | "));
    }
    Ok(variants.into_iter().filter(|v| names.contains(&v.name())).collect())
}

/// With `BENCH_ALT_WASM` set, `variants` and the other build of basic-auth.
fn with_alt(mut variants: Vec<Variant>) -> Vec<Variant> {
    if std::env::var_os("BENCH_ALT_WASM").is_some() {
        variants.push(Variant::BasicAuthAlt);
    }
    variants
}

/// Passthrough, basic-auth on V8 and native basic_auth: req/s, latency, Envoy CPU per request.
async fn basic_auth() -> Result<String> {
    use Variant::*;
    let upstream = Upstream::start("models").await?;
    let floors = Floors::write()?;
    let auth = authorization();
    let request = Request { path: PATH, headers: &[("host", HOST), ("authorization", auth.as_str())] };
    let variants = with_alt(vec![Passthrough, BasicAuth, NativeBasicAuth, FloorHeaders]);
    let rates = rates::measure(&variants, &upstream, &floors, Check::Credentials, &request).await?;
    let mut report = rates.table("basic-auth");
    let _ = writeln!(report, "\nreq/s ratio wasm / passthrough: {:.3}", rates.rps(BasicAuth) / rates.rps(Passthrough));
    let _ = writeln!(
        report,
        "req/s ratio wasm / native basic_auth: {:.3}  (target >= 0.90)",
        rates.rps(BasicAuth) / rates.rps(NativeBasicAuth)
    );
    let (base, wasm, native, floor) =
        (rates.cpu(Passthrough), rates.cpu(BasicAuth), rates.cpu(NativeBasicAuth), rates.cpu(FloorHeaders));
    let _ = writeln!(
        report,
        "Envoy CPU per request: wasm {:+.1} µs over passthrough, native {:+.1} µs; CPU ratio native / wasm {:.3}",
        wasm - base,
        native - base,
        native / wasm
    );
    let _ = writeln!(
        report,
        "floor: a module that only reads the request headers reaches {:.3} of native basic_auth's req/s ({:+.1} µs \
         of Envoy CPU over passthrough), the most any wasm plugin that reads the request can reach on this host; \
         basic-auth costs {:+.1} µs over that floor",
        rates.rps(FloorHeaders) / rates.rps(NativeBasicAuth),
        floor - base,
        wasm - floor
    );
    println!("\n{report}");
    Ok(report)
}

/// Instructions per request, variant by variant.
struct Counted(Vec<(Variant, PerRequest)>);

impl Counted {
    fn total(&self, variant: Variant) -> f64 {
        self.0.iter().find(|(v, _)| *v == variant).map_or(f64::NAN, |(_, c)| c.total)
    }

    fn table(&self) -> String {
        let base = self.total(Variant::Passthrough);
        let mut out = String::from(
            "\n## Instructions per request (callgrind): basic-auth, each plugin, the chain, the suite\n\nEnvoy's whole \
             process, counted by callgrind over one keep-alive connection after a warm-up, the median of the counted \
             windows (their lowest and highest in the last column): the same from run to run within 1-2 % (timers, \
             how the upstream's replies fall into reads), and exactly so for the generated code. \"Generated\" is \
             code V8 compiled at run time: the plugin's own wasm.\n\n| variant | instructions/request | over \
             passthrough | generated | windows |\n|---|---:|---:|---:|---:|\n",
        );
        for (variant, c) in &self.0 {
            // Passthrough is not counted when `BENCH_ONLY` leaves it out.
            let over = if base.is_nan() { "—".to_string() } else { format!("{:+.0}", c.total - base) };
            let (low, high) = c.spread;
            let _ = writeln!(
                out,
                "| {} | {:.0} | {over} | {:.0} | {low:.0}-{high:.0} |",
                variant.name(),
                c.total,
                c.generated
            );
        }
        out
    }
}

/// The basic-auth variants, each plugin, the chain and the suite, each counted by callgrind: instructions per
/// request are the same from run to run, so this section shows where the cost is without the noise of the load
/// runs above.
async fn instructions() -> Result<String> {
    use Variant::*;
    let upstream = Upstream::start("models").await?;
    let floors = Floors::write()?;
    let probe = Probe {
        path: PATH.into(),
        headers: vec![("host".into(), HOST.into()), ("authorization".into(), authorization())],
    };
    let counting =
        Counting { warmup: 200, requests: env_or("BENCH_REQUESTS", 1000), windows: env_or("BENCH_WINDOWS", 5) };
    let variants = with_alt(vec![
        Passthrough,
        NativeBasicAuth,
        NativeBasicAuthForwarding,
        FloorNoop,
        FloorHeaders,
        FloorValues,
        FloorForward,
        BasicAuth,
        BasicAuthSameAsNative,
        BasicAuthSameAsNativeForwarding,
        GrpcLimits,
        GrpcLimitsResponses,
        HostRouter,
        Chain,
        Suite,
        SuiteResponses,
    ]);
    let only = std::env::var("BENCH_ONLY").ok();
    let variants = only_named(variants, only.as_deref())?;
    println!(
        "\ninstructions per request: callgrind, the median of {} windows of {} requests on one connection per \
         variant, two variants at a time",
        counting.windows, counting.requests
    );
    let mut counted = Vec::new();
    // Two at a time: valgrind runs a process on one core.
    for pair in variants.chunks(2) {
        let mut runs = Vec::new();
        for &variant in pair {
            let gateway = variant.gateway(upstream.addr, &floors)?;
            let probe = probe.clone();
            let warm = move |listener| rates::warm_credentials(variant, listener);
            runs.push((
                variant,
                tokio::spawn(async move { per_request(variant.name(), gateway, warm, &probe, counting).await }),
            ));
        }
        for (variant, run) in runs {
            let count = run.await??;
            println!(
                "{:<44} {:>9.0} instructions/request ({:.0} in V8-generated code; windows {:.0}-{:.0})",
                variant.name(),
                count.total,
                count.generated,
                count.spread.0,
                count.spread.1
            );
            counted.push((variant, count));
        }
    }
    let counted = Counted(counted);
    let mut report = counted.table();
    if only.is_some() {
        // The ratios below need every variant.
        println!("{report}");
        return Ok(report);
    }
    let at = |variant| counted.total(variant);
    let (native, wasm, floor) = (at(NativeBasicAuth), at(BasicAuth), at(FloorHeaders));
    let _ = writeln!(
        report,
        "\nnative / basic-auth: {:.3} (what wasm / native req/s would be if a request cost its instructions; goal ≥ \
         0.90); native / header-reading floor: {:.3}, the most any plugin that reads the request reaches",
        native / wasm,
        native / floor,
    );
    let _ = writeln!(
        report,
        "with native's features only (one {{SHA}} user, no lockout, no forwarded identity): native / basic-auth {:.3}",
        native / at(BasicAuthSameAsNative),
    );
    let _ = writeln!(
        report,
        "forwarding the user's name to the upstream: native / basic-auth with native's features {:.3}; native / \
         the floor that reads the headers and adds one {:.3}",
        at(NativeBasicAuthForwarding) / at(BasicAuthSameAsNativeForwarding),
        at(NativeBasicAuthForwarding) / at(FloorForward),
    );
    let _ = writeln!(
        report,
        "each plugin's own code, instructions over the header-reading floor: basic-auth {:+.0} (native's features \
         only {:+.0}), grpc-limits {:+.0}, host-router {:+.0}",
        wasm - floor,
        at(BasicAuthSameAsNative) - floor,
        at(GrpcLimits) - floor,
        at(HostRouter) - floor,
    );
    let _ = writeln!(
        report,
        "passthrough / suite: {:.3} (goal ≥ 0.85); passthrough / the three as filters: {:.3}; passthrough / the \
         floor that reads the headers and adds one, the most a plugin that forwards the user reaches: {:.3}",
        at(Passthrough) / at(Suite),
        at(Passthrough) / at(Chain),
        at(Passthrough) / at(FloorForward),
    );
    let _ = writeln!(
        report,
        "the response callbacks (the full image against the `-requests` one, same config): suite {:+.0} \
         instructions, grpc-limits {:+.0}",
        at(SuiteResponses) - at(Suite),
        at(GrpcLimitsResponses) - at(GrpcLimits),
    );
    let _ = writeln!(
        report,
        "reading the five headers basic-auth needs one host call each costs {:+.0} instructions against all of them \
         in one call",
        at(FloorValues) - floor
    );
    println!("{report}");
    Ok(report)
}

/// Passthrough vs host-router with 20 hosts × 10 rules, every request matching the very last rule.
async fn host_router() -> Result<String> {
    use Variant::*;
    let upstream = Upstream::start("models").await?;
    let floors = Floors::write()?;
    let request = Request { path: "/r9/x", headers: &[("host", "h19.example.com"), ("x-tenant", "t")] };
    let variants = [Passthrough, HostRouterManyRules];
    let rates = rates::measure(&variants, &upstream, &floors, Check::LastRouterRule, &request).await?;
    let mut report = rates.table("host-router, 20 hosts × 10 rules, last rule matches");
    let _ = writeln!(
        report,
        "\nreq/s ratio host-router / passthrough: {:.3}",
        rates.rps(HostRouterManyRules) / rates.rps(Passthrough)
    );
    println!("\n{report}");
    Ok(report)
}

/// Passthrough, each plugin alone, the three as a chain of filters (the committed CRs), the suite (one filter,
/// same policies) and Envoy's native basic_auth: what each costs per request, and whether the per-filter cost
/// dominates.
async fn chain() -> Result<String> {
    use Variant::*;
    let upstream = Upstream::start("models").await?;
    let floors = Floors::write()?;
    let auth = authorization();
    let headers = [("host", HOST), ("authorization", auth.as_str()), ("content-type", "application/json")];
    let request = Request { path: PATH, headers: &headers };
    let variants = [
        Passthrough,
        FloorNoop,
        FloorNoopThree,
        FloorHeaders,
        BasicAuth,
        GrpcLimits,
        HostRouter,
        Chain,
        Suite,
        NativeBasicAuth,
    ];
    let rates = rates::measure(&variants, &upstream, &floors, Check::Credentials, &request).await?;
    let mut report = rates.table("passthrough, each plugin, the chain and the suite (committed CRs, authorised GET)");
    let base = rates.cpu(Passthrough);
    let singles: f64 = [BasicAuth, GrpcLimits, HostRouter].iter().map(|&v| rates.cpu(v) - base).sum();
    let ratio = |variant| rates.rps(variant) / rates.rps(Passthrough);
    let _ = writeln!(report, "\nreq/s ratio full chain / passthrough: {:.3} (target ≥ 0.85)", ratio(Chain));
    let _ = writeln!(report, "req/s ratio suite / passthrough: {:.3}", ratio(Suite));
    let _ = writeln!(report, "req/s ratio suite / full chain: {:.3}", rates.rps(Suite) / rates.rps(Chain));
    let _ = writeln!(
        report,
        "Envoy CPU per request over passthrough: the three plugins alone {singles:+.1} µs in sum, chain {:+.1} µs, \
         suite {:+.1} µs, native basic_auth {:+.1} µs",
        rates.cpu(Chain) - base,
        rates.cpu(Suite) - base,
        rates.cpu(NativeBasicAuth) - base,
    );
    report.push_str(&chain_plots(&rates)?);
    println!("\n{report}");
    Ok(report)
}

/// `chain-rps.png` and `chain-cpu.png` beside the report, and the report's links to them.
fn chain_plots(rates: &Rates) -> Result<String> {
    let dir = report_dir()?;
    let passthrough = rates.rps(Variant::Passthrough);
    let bars = |value: &dyn Fn(Variant) -> f64| -> Vec<(String, f64)> {
        rates.0.iter().map(|m| (m.variant.name().to_string(), value(m.variant))).collect()
    };
    let relative = bars(&|v| 100.0 * rates.rps(v) / passthrough);
    plot::bars("req/s, % of passthrough", "% of passthrough req/s", &relative, &dir.join("chain-rps.png"))?;
    let cost = bars(&|v| rates.cpu(v));
    plot::bars("Envoy CPU per request", "µs of Envoy CPU per request", &cost, &dir.join("chain-cpu.png"))?;
    Ok("\n![req/s relative to passthrough](chain-rps.png)\n\n![Envoy CPU per request](chain-cpu.png)\n".into())
}

fn report_dir() -> Result<std::path::PathBuf> {
    let dir = workspace::root().join("bench-report");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The size of every module `make build` left in `dist/plugins`.
fn wasm_sizes() -> Result<String> {
    let mut report = String::from(
        "\n## Module sizes (`make build`: opt-level s, with the plugins, the SDK and the hot crypto and hashing crates \
         at 3, LTO, wasm-opt -O3, unused exports pruned)\n\n| module | bytes |\n|---|---:|\n",
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

#[cfg(test)]
mod tests {
    use super::Section;

    #[test]
    fn every_section_parses_by_its_name_and_others_are_refused() {
        for section in Section::ALL {
            assert_eq!(section.name().parse::<Section>().unwrap(), section);
        }
        let err = "payloads".parse::<Section>().unwrap_err().to_string();
        assert!(err.contains("no bench section `payloads`") && err.contains("instructions"), "{err}");
    }
}
