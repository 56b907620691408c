//! Benchmark helpers (not tests): load from a real tool (wrk), Envoy's CPU time per request from
//! `/proc/<pid>/task/*/schedstat`, and medians over interleaved rounds so every variant sees the same noise.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::process::Command;

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadResult {
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub non_2xx: u64,
    /// Envoy's CPU time (all threads) per request, in microseconds.
    pub envoy_cpu_us: f64,
}

/// Nanoseconds `pid` has spent on a CPU, all threads together.
pub fn cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(total)
}

/// Runs `wrk --latency` against `addr` with the given headers, measuring `envoy_pid`'s CPU meanwhile.
pub fn wrk(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    connections: u32,
    seconds: u32,
    envoy_pid: u32,
) -> Result<LoadResult> {
    let mut cmd = Command::new("wrk");
    cmd.args(["--latency", "-t1", &format!("-c{connections}"), &format!("-d{seconds}s")]);
    for (k, v) in headers {
        // wrk adds its own `Host` unless one is spelled exactly so; two Host headers are (rightly) a bad request.
        let k = if k.eq_ignore_ascii_case("host") { "Host" } else { k };
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(format!("http://{addr}{path}"));
    let before = cpu_ns(envoy_pid)?;
    let output = cmd.output().context("running wrk (make setup installs it)")?;
    let after = cpu_ns(envoy_pid)?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut result = parse_wrk(&text)?;
    if result.requests > 0 {
        result.envoy_cpu_us = (after - before) as f64 / 1000.0 / result.requests as f64;
    }
    Ok(result)
}

fn parse_wrk(text: &str) -> Result<LoadResult> {
    let mut r = LoadResult::default();
    for line in text.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse()?,
            ["50%", v] => r.p50_us = duration_us(v)?,
            ["99%", v] => r.p99_us = duration_us(v)?,
            ["Non-2xx", "or", "3xx", "responses:", v] => r.non_2xx = v.parse()?,
            [n, "requests", "in", ..] => r.requests = n.parse()?,
            _ => {}
        }
    }
    if r.requests == 0 {
        bail!("wrk reported no requests:\n{text}");
    }
    Ok(r)
}

fn duration_us(v: &str) -> Result<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        bail!("unknown duration {v}")
    };
    Ok(num.parse::<f64>()? * scale)
}

/// A line of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`, ...).
pub fn proc_status_bytes(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field} for {pid}"))?;
    let kb: u64 = line.split_whitespace().nth(1).context("malformed status line")?.parse()?;
    Ok(kb * 1024)
}

/// Resets the process's peak resident size (`VmHWM`) to its current size (Linux `clear_refs` 5), so a later
/// `VmHWM` is the peak of what came after.
pub fn reset_peak_rss(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").with_context(|| format!("resetting the peak RSS of {pid}"))
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text = "Running 5s test @ http://127.0.0.1:1/\n  1 threads and 50 connections\n  Latency Distribution\n     50%    2.10ms\n     75%    3.00ms\n     90%    4.00ms\n     99%   12.50ms\n  81234 requests in 5.00s, 10.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:  16246.80\nTransfer/sec:      2.00MB\n";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.requests, 81234);
        assert_eq!(r.non_2xx, 3);
        assert!((r.rps - 16246.8).abs() < 1e-9);
        assert!((r.p50_us - 2100.0).abs() < 1e-9 && (r.p99_us - 12500.0).abs() < 1e-9);
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < 1e-12);
    }
}

pub mod basic_auth;
pub mod callgrind;
pub mod chain;
pub mod flood;
pub mod floor;
pub mod host_router;
pub mod inference;
pub mod instructions;
pub mod payload;
pub mod plot;
pub mod rates;
pub mod sections;
pub mod variant;

/// The authorised GET every request-rate and instruction section sends.
pub const SIGNED_IN_PATH: &str = "/v1/models";

/// `bench-report/` at the workspace root, where the report and its plots go.
pub fn report_dir() -> Result<std::path::PathBuf> {
    let dir = crate::workspace::root().join("bench-report");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// An environment override for a benchmark setting, else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `q`-quantile (0..=1) of `values`, by nearest rank.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
