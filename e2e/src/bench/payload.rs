//! One 100 MB message on each path a deployment has, against plain TCP moving the same bytes over loopback in the
//! same run (the floor of any protocol on this machine): a raw gRPC message straight to a sink and through the
//! gateway with each set of filters, and a 100 MB ModelInfer straight to the model server and through the whole
//! gateway. Every path runs once per round, rounds interleaved, so each sees the same noise.

use super::{env_or, median, proc_status_bytes, reset_peak_rss};
use crate::fixtures::{HOST, INFER, PASSWORD, USER, authorization};
use crate::model_server::ModelServer;
use crate::{Gateway, RunningGateway, Upstream, grpc, workspace};
use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmgate_inference::client::{self, Target};
use wasmgate_inference::model::IMAGE_VALUES;
use wasmgate_inference::proto::ModelInferRequest;

/// What sits in the gateway's HTTP filter chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filters {
    None,
    GrpcLimits,
    /// The three plugins as the committed CRs configure them: what a cluster runs.
    Chain,
    Suite,
    NativeBuffer,
    NativeBodySizeLimit,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The bytes alone over a TCP connection: no framing, no protocol.
    Tcp,
    /// The same, with the sink hashing what arrives as the gRPC sink does: that sink's own share.
    TcpHashed,
    /// gRPC straight to the upstream.
    Direct,
    Gateway(Filters),
}

impl Route {
    const ALL: [Route; 9] = [
        Route::Tcp,
        Route::TcpHashed,
        Route::Direct,
        Route::Gateway(Filters::None),
        Route::Gateway(Filters::GrpcLimits),
        Route::Gateway(Filters::Chain),
        Route::Gateway(Filters::Suite),
        Route::Gateway(Filters::NativeBuffer),
        Route::Gateway(Filters::NativeBodySizeLimit),
    ];

    fn name(self) -> &'static str {
        match self {
            Route::Tcp => "plain TCP",
            Route::TcpHashed => "plain TCP, sink hashing (SHA-256)",
            Route::Direct => "gRPC direct to upstream",
            Route::Gateway(Filters::None) => "gateway, no filter",
            Route::Gateway(Filters::GrpcLimits) => "gateway + grpc-limits (wasm)",
            Route::Gateway(Filters::Chain) => "gateway + all three plugins (wasm)",
            Route::Gateway(Filters::Suite) => "gateway + suite (wasm)",
            Route::Gateway(Filters::NativeBuffer) => "gateway + buffer (native)",
            Route::Gateway(Filters::NativeBodySizeLimit) => "gateway + body_size_limit (native)",
        }
    }
}

/// The gateway for `filters` in front of `upstream`, as istiod configures it from the test's resources (no
/// HTTP/2 settings of our own: what a cluster gets), unless `BENCH_DOWNSTREAM_WINDOWS=<stream>,<connection>`
/// bounds the windows towards the client to compare.
fn gateway(filters: Filters, upstream: std::net::SocketAddr) -> Result<Gateway> {
    let mut base = Gateway::new().upstream("models", upstream);
    if let Ok(windows) = std::env::var("BENCH_DOWNSTREAM_WINDOWS") {
        let (stream, connection) = windows.split_once(',').context("BENCH_DOWNSTREAM_WINDOWS=<stream>,<conn>")?;
        base = base.downstream_windows(stream.trim().parse()?, connection.trim().parse()?);
    }
    // As a TypedStruct, which istiod passes through untouched and Envoy converts: the go-control-plane istiod
    // builds with predates body_size_limit, so istiod could not parse that filter's own type.
    let native = |name: &str, ty: &str, limit: u64| {
        json!({"name": name, "typed_config": {
            "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
            "type_url": format!("type.googleapis.com/{ty}"),
            "value": {"max_request_bytes": limit}
        }})
    };
    Ok(match filters {
        Filters::None => base,
        Filters::GrpcLimits => base.plugin(workspace::plugin_cr("grpc-limits")?),
        Filters::Chain => base.plugins(workspace::plugin_crs()?),
        Filters::Suite => base.plugin(workspace::plugin_cr("suite")?),
        Filters::NativeBuffer => base.native_filter(native(
            "envoy.filters.http.buffer",
            "envoy.extensions.filters.http.buffer.v3.Buffer",
            130 << 20,
        )),
        Filters::NativeBodySizeLimit => base.native_filter(native(
            "envoy.filters.http.body_size_limit",
            "envoy.extensions.filters.http.body_size_limit.v3.BodySizeLimit",
            129 << 20,
        )),
    })
}

/// A loopback TCP sink: reads `size` bytes at a time from each connection, hashing them if `hash`, and answers
/// one byte for each.
async fn tcp_sink(size: usize, hash: bool) -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 1 << 20];
                loop {
                    let mut hasher = Sha256::new();
                    let mut left = size;
                    while left > 0 {
                        match stream.read(&mut buffer[..left.min(1 << 20)]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if hash {
                                    hasher.update(&buffer[..n]);
                                }
                                left -= n
                            }
                        }
                    }
                    std::hint::black_box(hasher.finalize());
                    if stream.write_all(b"k").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// How long one message takes, sent `repeat` times over one connection (median), and the growth of Envoy's
/// peak resident size meanwhile.
struct Timed {
    seconds: f64,
    envoy_growth: u64,
    /// Envoy's CPU time per message (all threads), in seconds.
    envoy_cpu: f64,
}

async fn time_tcp(sink: std::net::SocketAddr, body: &Bytes, repeat: usize) -> Result<Timed> {
    let mut stream = tokio::net::TcpStream::connect(sink).await?;
    stream.set_nodelay(true)?;
    let mut runs = Vec::new();
    let mut ack = [0u8; 1];
    for _ in 0..repeat {
        let started = Instant::now();
        stream.write_all(body).await?;
        stream.read_exact(&mut ack).await?;
        runs.push(started.elapsed().as_secs_f64());
    }
    Ok(Timed { seconds: median(runs), envoy_growth: 0, envoy_cpu: 0.0 })
}

/// Envoy's resident size once V8 has finished compiling in the background, with its peak reset to it.
async fn settled_rss(envoy: &RunningGateway) -> Result<u64> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    reset_peak_rss(envoy.envoy.pid())?;
    proc_status_bytes(envoy.envoy.pid(), "VmRSS")
}

fn peak_growth(envoy: Option<&RunningGateway>, baseline: u64) -> Result<u64> {
    Ok(match envoy {
        Some(e) => proc_status_bytes(e.envoy.pid(), "VmHWM")?.saturating_sub(baseline),
        None => 0,
    })
}

async fn time_grpc(route: Route, upstream: &Upstream, body: &Bytes, repeat: usize) -> Result<Timed> {
    let envoy = match route {
        Route::Gateway(filters) => Some(gateway(filters, upstream.addr)?.start().await?),
        _ => None,
    };
    let addr = envoy.as_ref().map_or(upstream.addr, |e| e.envoy.listener);
    let channel = grpc::channel(addr, HOST).await?;
    let auth = authorization();
    let metadata = [("authorization", auth.as_str())];
    // Warm the connection up (and the credential cache) before the baseline.
    grpc::raw_unary(channel.clone(), INFER, Bytes::from_static(b"warm"), &metadata).await?;
    let baseline = match &envoy {
        Some(e) => settled_rss(e).await?,
        None => 0,
    };
    let cpu_before = envoy_cpu(envoy.as_ref())?;
    let mut runs = Vec::new();
    for _ in 0..repeat {
        let started = Instant::now();
        let reply = grpc::raw_unary(channel.clone(), INFER, body.clone(), &metadata).await?;
        runs.push(started.elapsed().as_secs_f64());
        // The sink answers with the SHA-256 of what reached it (hex): the whole message arrived.
        ensure!(reply.len() == 64, "{}: unexpected reply {reply:?}", route.name());
    }
    Ok(Timed {
        seconds: median(runs),
        envoy_growth: peak_growth(envoy.as_ref(), baseline)?,
        envoy_cpu: (envoy_cpu(envoy.as_ref())? - cpu_before) / repeat as f64,
    })
}

fn envoy_cpu(envoy: Option<&RunningGateway>) -> Result<f64> {
    Ok(match envoy {
        Some(e) => super::cpu_ns(e.envoy.pid())? as f64 / 1e9,
        None => 0.0,
    })
}

/// A ModelInfer of `count` FP32 images (about 100 MB).
fn large_infer(count: usize) -> Result<ModelInferRequest> {
    let pixels: Bytes =
        client::generated(count).pixels.iter().flat_map(|&p| (f32::from(p) / 255.0).to_le_bytes()).collect();
    let mut request = client::generated(1).request();
    request.inputs[0].datatype = "FP32".into();
    request.inputs[0].shape[0] = i64::try_from(count)?;
    request.raw_input_contents = vec![pixels];
    Ok(request)
}

async fn time_infer(
    through_gateway: bool,
    server: &ModelServer,
    request: &ModelInferRequest,
    repeat: usize,
) -> Result<Timed> {
    let envoy = match through_gateway {
        true => Some(gateway(Filters::Chain, server.addr)?.start().await?),
        false => None,
    };
    let target = match &envoy {
        Some(e) => Target {
            address: format!("http://{}", e.envoy.listener),
            authority: Some(HOST.into()),
            basic_auth: Some((USER.into(), PASSWORD.into())),
            ..Default::default()
        },
        None => Target { address: server.url(), ..Default::default() },
    };
    let mut client = target.connect().await?;
    client.infer(client::generated(1).request()).await.context("warming up the connection")?;
    let baseline = match &envoy {
        Some(e) => settled_rss(e).await?,
        None => 0,
    };
    let count = request.inputs[0].shape[0];
    let cpu_before = envoy_cpu(envoy.as_ref())?;
    let mut runs = Vec::new();
    for _ in 0..repeat {
        let started = Instant::now();
        let response = client.infer(request.clone()).await?;
        runs.push(started.elapsed().as_secs_f64());
        ensure!(i64::try_from(client::probabilities(&response)?.len())? == count, "a probability per image");
    }
    Ok(Timed {
        seconds: median(runs),
        envoy_growth: peak_growth(envoy.as_ref(), baseline)?,
        envoy_cpu: (envoy_cpu(envoy.as_ref())? - cpu_before) / repeat as f64,
    })
}

pub async fn run() -> Result<String> {
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let size: usize = env_or("BENCH_PAYLOAD_BYTES", 100_000_000);
    let repeat: usize = env_or("BENCH_PAYLOAD_REPEAT", 3);
    let body = Bytes::from(vec![0x5Au8; size]);
    let upstream = Upstream::start("models").await?;
    let sinks = (tcp_sink(size, false).await?, tcp_sink(size, true).await?);
    let server = ModelServer::start().await?;
    let images = size.div_ceil(IMAGE_VALUES * 4);
    let request = large_infer(images)?;
    let infer_names = ["ModelInfer direct to the model server", "ModelInfer through the gateway (all three plugins)"];
    let mut times: Vec<Vec<Timed>> = Route::ALL.iter().map(|_| Vec::new()).collect();
    let mut infer_times: Vec<Vec<Timed>> = infer_names.iter().map(|_| Vec::new()).collect();
    println!("\n{rounds} rounds of {repeat} {size}-byte messages per path (median per round)");
    for round in 1..=rounds {
        for (route, runs) in Route::ALL.iter().zip(&mut times) {
            let timed = match route {
                Route::Tcp => time_tcp(sinks.0, &body, repeat).await?,
                Route::TcpHashed => time_tcp(sinks.1, &body, repeat).await?,
                _ => time_grpc(*route, &upstream, &body, repeat).await?,
            };
            println!(
                "round {round} {:<40} {:>7.3} s  Envoy CPU {:>6.3} s  RSS growth {:>6.1} MB",
                route.name(),
                timed.seconds,
                timed.envoy_cpu,
                timed.envoy_growth as f64 / 1e6
            );
            runs.push(timed);
        }
        for (i, (name, runs)) in infer_names.iter().zip(&mut infer_times).enumerate() {
            let timed = time_infer(i == 1, &server, &request, repeat).await?;
            println!("round {round} {name:<40} {:>7.3} s  Envoy CPU {:>6.3} s", timed.seconds, timed.envoy_cpu);
            runs.push(timed);
        }
    }
    server.stop().await?;
    let seconds = |runs: &[Timed]| median(runs.iter().map(|t| t.seconds).collect());
    let growth = |runs: &[Timed]| runs.iter().map(|t| t.envoy_growth).max().unwrap_or(0) as f64 / 1e6;
    let cpu = |runs: &[Timed]| median(runs.iter().map(|t| t.envoy_cpu).collect());
    let tcp = seconds(&times[0]);
    let direct = seconds(&times[2]);
    ensure!(tcp > 0.0, "no TCP time measured");
    let mut report = format!(
        "\n## One {} MB message\n\n| path | median s | × plain TCP | × gRPC direct | Envoy CPU s | Envoy peak RSS \
         growth MB |\n|---|---:|---:|---:|---:|---:|\n",
        size / 1_000_000
    );
    for (route, runs) in Route::ALL.iter().zip(&times) {
        let t = seconds(runs);
        let _ = writeln!(
            report,
            "| {} | {t:.3} | {:.2} | {:.2} | {:.3} | {:.1} |",
            route.name(),
            t / tcp,
            t / direct,
            cpu(runs),
            growth(runs)
        );
    }
    for (name, runs) in infer_names.iter().zip(&infer_times) {
        let t = seconds(runs);
        let _ = writeln!(
            report,
            "| {name} ({images} FP32 images) | {t:.3} | {:.2} | | {:.3} | {:.1} |",
            t / tcp,
            cpu(runs),
            growth(runs)
        );
    }
    let chain = seconds(&times[Route::ALL.iter().position(|r| *r == Route::Gateway(Filters::Chain)).unwrap_or(0)]);
    let through = seconds(&infer_times[1]);
    let _ = writeln!(
        report,
        "\nGoals: through the gateway with all three plugins {:.2}× plain TCP (≤ 2); ModelInfer answered through the \
         whole gateway {:.2}× plain TCP (≤ 3). Envoy with 1 worker and HTTP/2 as istiod configures the gateway; the \
         model server and the sink with the model server's HTTP/2 defaults.",
        chain / tcp,
        through / tcp
    );
    println!("{report}");
    Ok(report)
}
