//! The chain section: each plugin alone, the three as a chain of filters (the committed CRs), the suite and
//! Envoy's native basic_auth under load, with plots of req/s and Envoy CPU per request.

use super::rates::{self, Check, Rates, Request};
use super::variant::{Floors, Variant};
use super::{SIGNED_IN_PATH, plot, report_dir};
use crate::Upstream;
use crate::fixtures::{HOST, authorization};
use anyhow::Result;
use std::fmt::Write as _;

/// Passthrough, each plugin alone, the three as a chain of filters (the committed CRs), the suite (one filter,
/// same policies) and Envoy's native basic_auth: what each costs per request, and whether the per-filter cost
/// dominates.
pub async fn run() -> Result<String> {
    use Variant::*;
    let upstream = Upstream::start("models").await?;
    let floors = Floors::write()?;
    let auth = authorization();
    let headers = [("host", HOST), ("authorization", auth.as_str()), ("content-type", "application/json")];
    let request = Request { path: SIGNED_IN_PATH, headers: &headers };
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
