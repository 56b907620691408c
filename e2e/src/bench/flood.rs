//! `bench flood`: what a flood of wrong passwords does to everybody else. A signed-in client (its credentials
//! already verified, so no bcrypt work of its own) measures its latency with wrk while eight connections guess
//! passwords for bcrypt users as fast as the gateway answers. Compared in one run: no flood; the flood against
//! a config without lockout or bcrypt budget (the plugin as the outside attack found it); the shipped config
//! with the flood from one address, then spread over 200 addresses.

use crate::bench::wrk;
use crate::counters::{BasicAuth, PluginCounter};
use crate::fixtures::HOST;
use crate::{Gateway, RawRequest, Upstream, workspace};
use anyhow::Result;
use serde_json::json;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const SECONDS: u32 = 10;
const GUESSERS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flood {
    None,
    /// The same connections sending no credentials at all: what any flood of requests costs the worker.
    Anonymous,
    /// Every guess from 127.0.0.1.
    OneAddress,
    /// Guesses spread over 127.0.0.10 – 127.0.0.209.
    ManyAddresses,
}

struct Row {
    name: &'static str,
    p50_us: f64,
    p99_us: f64,
    rps: f64,
    guesses: u64,
    refused_fast: u64,
    bcrypt_checks: u64,
}

/// Counts of the flood's answers.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    /// 429: locked out or over the bcrypt budget, answered without bcrypt work.
    refused_fast: AtomicU64,
}

async fn guess(listener: SocketAddr, flood: Flood, stop: Arc<AtomicBool>, tally: Arc<Tally>, worker: usize) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        // Half the guesses for the real user, half for made-up ones: a guesser also probes which names exist.
        let user = if n.is_multiple_of(2) { "username".to_string() } else { format!("made-up-{worker}-{n}") };
        let mut request = RawRequest::get("/").host(HOST);
        if flood != Flood::Anonymous {
            request = request.basic_auth(&user, &format!("guess-{worker}-{n}"));
        }
        if flood == Flood::ManyAddresses {
            let last = 10 + u8::try_from((n as usize * GUESSERS + worker) % 200).unwrap_or(0);
            request = request.from(IpAddr::from([127, 0, 0, last]));
        }
        match request.send(listener).await {
            Ok(r) => {
                tally.sent.fetch_add(1, Ordering::Relaxed);
                if r.status == 429 {
                    tally.refused_fast.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn measure(name: &'static str, config: serde_json::Value, flood: Flood) -> Result<Row> {
    let upstream = Upstream::start("models").await?;
    let cr = workspace::plugin_cr("basic-auth")?.with_config(config);
    let envoy = Gateway::new().plugin(cr).upstream("models", upstream.addr).start().await?;
    let auth = {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("username:password"))
    };
    // The signed-in client's credentials are verified once, before anything is measured.
    let first = RawRequest::get("/").host(HOST).header("authorization", &auth).from(IpAddr::from([127, 0, 0, 2]));
    anyhow::ensure!(first.send(envoy.listener).await?.status == 200, "the right password was refused");
    let checks_before = envoy.counter(&BasicAuth::BcryptChecks.stat()).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut guessers = Vec::new();
    if flood != Flood::None {
        for worker in 0..GUESSERS {
            guessers.push(tokio::spawn(guess(envoy.listener, flood, stop.clone(), tally.clone(), worker)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (listener, pid) = (envoy.listener, envoy.pid());
    let auth_header = auth.clone();
    let load = tokio::task::spawn_blocking(move || {
        wrk(listener, "/", &[("host", HOST), ("authorization", &auth_header)], 4, SECONDS, pid)
    })
    .await??;
    stop.store(true, Ordering::Relaxed);
    for guesser in guessers {
        let _ = guesser.await;
    }
    let checks = envoy.counter(&BasicAuth::BcryptChecks.stat()).await? - checks_before;
    Ok(Row {
        name,
        p50_us: load.p50_us,
        p99_us: load.p99_us,
        rps: load.rps,
        guesses: tally.sent.load(Ordering::Relaxed),
        refused_fast: tally.refused_fast.load(Ordering::Relaxed),
        bcrypt_checks: checks,
    })
}

pub async fn run() -> Result<String> {
    let shipped = workspace::plugin_cr("basic-auth")?.spec.plugin_config.unwrap_or_default();
    // Close to the plugin as the attack found it: no lockout, and the largest budget a config may set (half of
    // each second, a minute at once).
    let mut unbounded = shipped.clone();
    if let Some(object) = unbounded.as_object_mut() {
        object.remove("lockout");
        object.insert("bcrypt_budget".into(), json!({"per_second": "500ms", "burst": "60s"}));
    }
    let rows = vec![
        measure("no flood", shipped.clone(), Flood::None).await?,
        measure("flood without credentials (401s)", shipped.clone(), Flood::Anonymous).await?,
        measure("flood, no lockout, largest budget", unbounded, Flood::OneAddress).await?,
        measure("flood from one address (shipped)", shipped.clone(), Flood::OneAddress).await?,
        measure("flood from 200 addresses (shipped)", shipped, Flood::ManyAddresses).await?,
    ];
    let idle = rows[0].p99_us;
    let mut out = format!(
        "\n## A flood of wrong passwords (basic-auth, the committed CR: bcrypt cost 5)\n\nA signed-in client's latency (wrk, 4 \
         connections, {SECONDS} s) while {GUESSERS} connections guess passwords, half for the real user and half \
         for made-up names. p99 × idle is the ratio to the first row; the second row is a flood of the same connections \
         sending no credentials, the cost of the requests themselves.\n\n| flood | p50 µs | p99 µs | p99 × idle | \
         req/s | guesses | answered 429 | bcrypt checks |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for row in &rows {
        writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {} | {} | {} |",
            row.name,
            row.p50_us,
            row.p99_us,
            row.p99_us / idle,
            row.rps,
            row.guesses,
            row.refused_fast,
            row.bcrypt_checks
        )?;
    }
    println!("{out}");
    Ok(out)
}
