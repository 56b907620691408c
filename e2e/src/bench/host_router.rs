//! The host-router section: passthrough against host-router with many rules, every request matching the last.

use super::rates::{self, Check, Request};
use super::variant::{Floors, Variant};
use crate::Upstream;
use anyhow::Result;
use std::fmt::Write as _;

/// Passthrough vs host-router with 20 hosts × 10 rules, every request matching the very last rule.
pub async fn run() -> Result<String> {
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
