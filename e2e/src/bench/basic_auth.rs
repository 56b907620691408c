//! The basic-auth section: passthrough, basic-auth on V8 and Envoy's native basic_auth under load (req/s,
//! latency, Envoy CPU per request), and the floor a module that only reads the headers reaches.

use super::SIGNED_IN_PATH;
use super::rates::{self, Check, Request};
use super::variant::{Floors, Variant, with_alt};
use crate::Upstream;
use crate::fixtures::{HOST, authorization};
use anyhow::Result;
use std::fmt::Write as _;

/// Passthrough, basic-auth on V8 and native basic_auth: req/s, latency, Envoy CPU per request.
pub async fn run() -> Result<String> {
    use Variant::*;
    let upstream = Upstream::start("models").await?;
    let floors = Floors::write()?;
    let auth = authorization();
    let request = Request { path: SIGNED_IN_PATH, headers: &[("host", HOST), ("authorization", auth.as_str())] };
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
