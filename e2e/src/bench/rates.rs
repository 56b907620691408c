//! Request rate, latency and Envoy's CPU per request through each variant's gateway, in interleaved rounds
//! (wrk, 50 connections, Envoy with one worker), each fresh gateway first checked to do its job.

use super::variant::{Floors, Variant};
use super::{LoadResult, env_or, median, wrk};
use crate::fixtures::{HOST, PASSWORD, USER};
use crate::{RawRequest, Upstream};
use anyhow::{Result, bail};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// What each fresh gateway must show before it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A wrong password refused where the variant authenticates, the right one accepted.
    Credentials,
    /// host-router's last rule of the last host taken ([`super::variant::router_config`]).
    LastRouterRule,
}

/// The request wrk sends.
pub struct Request<'a> {
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

/// One variant's runs.
pub struct Measured {
    pub variant: Variant,
    pub runs: Vec<LoadResult>,
}

impl Measured {
    pub fn median(&self, field: fn(&LoadResult) -> f64) -> f64 {
        median(self.runs.iter().map(field).collect())
    }
}

/// Every variant's runs, in the order measured.
pub struct Rates(pub Vec<Measured>);

impl Rates {
    fn of(&self, variant: Variant, field: fn(&LoadResult) -> f64) -> f64 {
        self.0.iter().find(|m| m.variant == variant).map_or(f64::NAN, |m| m.median(field))
    }

    pub fn rps(&self, variant: Variant) -> f64 {
        self.of(variant, |r| r.rps)
    }

    /// Envoy's CPU time per request, µs.
    pub fn cpu(&self, variant: Variant) -> f64 {
        self.of(variant, |r| r.envoy_cpu_us)
    }

    /// The report's table of medians.
    pub fn table(&self, title: &str) -> String {
        let mut out = format!(
            "\n## Request rate: {title}\n\n| variant | req/s | p50 µs | p99 µs | Envoy CPU µs/req |\n|---|---:|---:|---:|---:|\n"
        );
        for m in &self.0 {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.0} | {:.1} |",
                m.variant.name(),
                m.median(|r| r.rps),
                m.median(|r| r.p50_us),
                m.median(|r| r.p99_us),
                m.median(|r| r.envoy_cpu_us)
            );
        }
        out
    }
}

/// Loads each variant's fresh gateway in turn, `BENCH_ROUNDS` times (3), `BENCH_SECONDS` each (5).
pub async fn measure(
    variants: &[Variant],
    upstream: &Upstream,
    floors: &Floors,
    check: Check,
    request: &Request<'_>,
) -> Result<Rates> {
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let seconds: u32 = env_or("BENCH_SECONDS", 5);
    let connections = 50;
    let mut measured: Vec<Measured> = variants.iter().map(|&variant| Measured { variant, runs: Vec::new() }).collect();
    println!("\n{rounds} rounds x {seconds} s per variant, wrk -t1 -c{connections}, Envoy with 1 worker");
    for round in 1..=rounds {
        for m in &mut measured {
            let envoy = m.variant.gateway(upstream.addr, floors)?.start().await?;
            match check {
                Check::Credentials => warm_credentials(m.variant, envoy.listener).await?,
                Check::LastRouterRule => last_rule_taken(m.variant, envoy.listener, upstream).await?,
            }
            let r = wrk(envoy.listener, request.path, request.headers, connections, seconds, envoy.pid())?;
            if r.non_2xx > 0 {
                bail!("{}: {} non-2xx responses under load", m.variant.name(), r.non_2xx);
            }
            println!(
                "round {round} {:<42} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  envoy cpu {:>6.1} us/req",
                m.variant.name(),
                r.rps,
                r.p50_us,
                r.p99_us,
                r.envoy_cpu_us
            );
            m.runs.push(r);
        }
    }
    Ok(Rates(measured))
}

/// The right password must be accepted where the variant authenticates, and a wrong one refused. The right one
/// goes first: it verifies the bcrypt hash once, as every gateway worker does once per credential, so that this
/// one-time cost (~100 ms of CPU, seconds under callgrind) does not land in the measured window, and on a fresh
/// budget it is always admitted. A wrong password sent first would spend the worker's bcrypt budget (under
/// callgrind for many minutes) before the right one is ever checked.
pub async fn warm_credentials(variant: Variant, listener: SocketAddr) -> Result<()> {
    let authenticates = variant.authenticates();
    let sign_in = RawRequest::get("/").host(HOST).basic_auth(USER, PASSWORD);
    let mut right = sign_in.send(listener).await?;
    // A budget spent all the same (a busy machine, a second worker) answers 429 with `retry-after`: the bench
    // waits as a client would, a few times, and says so.
    let mut waited = Vec::new();
    while right.status == 429 && waited.len() < 5 {
        let wait = right.header("retry-after").and_then(|s| s.parse::<u64>().ok()).unwrap_or(1);
        println!("{}: signing in answered 429, waiting {wait} s (retry-after)", variant.name());
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        waited.push(wait);
        right = sign_in.send(listener).await?;
    }
    if right.status != 200 && authenticates.is_some() {
        bail!(
            "{}: the right password answered {} (want 200), after waiting {waited:?} s as retry-after said",
            variant.name(),
            right.status
        );
    }
    let wrong = RawRequest::get("/").host(HOST).basic_auth(USER, "wrong").send(listener).await?;
    if let Some(authenticates) = authenticates {
        // Refused either way: 401 for the password, or 429 when its bcrypt check found the budget spent.
        let refused = matches!(wrong.status, 401 | 429);
        if refused != authenticates {
            bail!("{}: a wrong password answered {} (authenticates: {authenticates})", variant.name(), wrong.status);
        }
    }
    Ok(())
}

async fn last_rule_taken(variant: Variant, listener: SocketAddr, upstream: &Upstream) -> Result<()> {
    RawRequest::get("/r9/x").host("h19.example.com").header("x-tenant", "t").send(listener).await?;
    let seen = upstream.requests().last().and_then(|r| r.header("x-wasmgate-rule").map(str::to_string));
    let want = (variant != Variant::Passthrough).then(|| "h19-r9".to_string());
    if seen != want {
        bail!("{}: upstream saw rule {seen:?}, want {want:?}", variant.name());
    }
    upstream.clear();
    Ok(())
}
