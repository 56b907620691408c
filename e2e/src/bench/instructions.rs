//! The instructions section: instructions per request under callgrind ([`super::callgrind`]) for the basic-auth
//! variants, each plugin, the chain and the suite, with the ratios the goals are stated in.

use super::callgrind::{Counting, PerRequest, Probe, per_request};
use super::variant::{Floors, Variant, only_named, with_alt};
use super::{SIGNED_IN_PATH, env_or, rates};
use crate::Upstream;
use crate::fixtures::{HOST, authorization};
use anyhow::Result;
use std::fmt::Write as _;

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
pub async fn run() -> Result<String> {
    use Variant::*;
    let upstream = Upstream::start("models").await?;
    let floors = Floors::write()?;
    let probe = Probe {
        path: SIGNED_IN_PATH.into(),
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
