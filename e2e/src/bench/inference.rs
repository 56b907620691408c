//! The model server's benchmarks: training against the numpy reference (same data, same run), ModelInfer
//! throughput at batch 1 and 64 over loopback, and a 100 MB ModelInfer and TF Serving Predict against moving the
//! same 100 MB to a method that does no work.

use super::{env_or, median, percentile};
use crate::model_server::ModelServer;
use crate::workspace;
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wasmgate_inference::client::{self, Target};
use wasmgate_inference::data;
use wasmgate_inference::model::{DEFAULT_SIZES, GradientDescent, IMAGE_VALUES, Solver};
use wasmgate_inference::oip::tensor::{INPUT, PROBABILITIES};
use wasmgate_inference::proto::tensorflow::DataType;
use wasmgate_inference::train::{self, TrainOptions};

pub async fn run() -> Result<String> {
    let mut report = String::from("\n## Model server\n");
    report.push_str(&training()?);
    report.push_str(&throughput().await?);
    report.push_str(&large_request().await?);
    println!("{report}");
    Ok(report)
}

struct TrainingRun {
    seconds: f64,
    test_accuracy: f64,
}

/// numpy's `reference.py` with `threads` OpenBLAS threads: its own timing of the training loop.
fn numpy_training(dir: &Path, iterations: usize, threads: u32) -> Result<TrainingRun> {
    let output = Command::new(workspace::python()?)
        .arg(dir.join("reference.py"))
        .arg(dir)
        .args(["--iters", &iterations.to_string()])
        .env("OPENBLAS_NUM_THREADS", threads.to_string())
        .output()
        .context("running reference.py")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("reference.py failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    }
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().find_map(|w| w.parse::<f64>().ok()))
            .with_context(|| format!("no `{prefix}` in reference.py's output:\n{stdout}"))
    };
    // "training: 2500 iterations in 41.20 s (16.48 ms/iter)"
    let seconds = stdout
        .lines()
        .find_map(|l| l.strip_prefix("training: "))
        .and_then(|rest| rest.split(" in ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .context("no training time in reference.py's output")?;
    Ok(TrainingRun { seconds, test_accuracy: field("test accuracy:")? })
}

fn rust_training(dir: &Path, iterations: usize, solver: Solver) -> Result<TrainingRun> {
    let options = TrainOptions {
        data_dir: dir.to_path_buf(),
        sizes: DEFAULT_SIZES.to_vec(),
        descent: GradientDescent { iterations, solver, ..Default::default() },
        seed: 1,
        output: None,
        plot: None,
        progress: false,
    };
    let report = train::run(&options)?;
    Ok(TrainingRun { seconds: report.elapsed.as_secs_f64(), test_accuracy: report.test_accuracy })
}

fn training() -> Result<String> {
    let dir = data::default_dir();
    if !data::available(&dir) || !dir.join("reference.py").is_file() {
        let note = format!(
            "\ntraining: skipped, no catvnoncat data and reference.py in {} (set {})\n",
            dir.display(),
            data::DATA_DIR_ENV
        );
        println!("{note}");
        return Ok(note);
    }
    let iterations: usize = env_or("BENCH_TRAIN_ITERATIONS", 2500);
    let rounds: usize = env_or("BENCH_TRAIN_ROUNDS", 2);
    let names = ["numpy, 1 OpenBLAS thread", "numpy, 2 OpenBLAS threads", "Rust, primal", "Rust, dual (default)"];
    let mut runs: Vec<Vec<TrainingRun>> = names.iter().map(|_| Vec::new()).collect();
    println!("\ntraining {iterations} iterations, {rounds} interleaved rounds");
    for round in 1..=rounds {
        for (index, name) in names.iter().enumerate() {
            let run = match index {
                0 => numpy_training(&dir, iterations, 1)?,
                1 => numpy_training(&dir, iterations, 2)?,
                2 => rust_training(&dir, iterations, Solver::Primal)?,
                _ => rust_training(&dir, iterations, Solver::Dual)?,
            };
            println!("round {round} {name:<28} {:>8.2} s  test accuracy {:.4}", run.seconds, run.test_accuracy);
            runs[index].push(run);
        }
    }
    let seconds: Vec<f64> = runs.iter().map(|r| median(r.iter().map(|t| t.seconds).collect())).collect();
    let best_numpy = seconds[0].min(seconds[1]);
    let mut report = format!(
        "\n### Training, {iterations} iterations (median of {rounds} interleaved rounds)\n\n\
         | variant | seconds | ms / iteration | test accuracy | speed-up vs best numpy |\n|---|---:|---:|---:|---:|\n"
    );
    for (index, name) in names.iter().enumerate() {
        let accuracy = runs[index].last().map_or(f64::NAN, |r| r.test_accuracy);
        let _ = writeln!(
            report,
            "| {name} | {:.2} | {:.2} | {accuracy:.4} | {:.1}x |",
            seconds[index],
            seconds[index] * 1e3 / iterations as f64,
            best_numpy / seconds[index]
        );
    }
    Ok(report)
}

/// `concurrency` clients calling ModelInfer with `batch` images for `duration`.
async fn infer_load(
    server: &ModelServer,
    batch: usize,
    concurrency: usize,
    duration: Duration,
) -> Result<(f64, Vec<f64>)> {
    let images = client::generated(batch);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut client = Target { address: server.url(), ..Default::default() }.connect().await?;
        let request = images.request();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let call = Instant::now();
                client.infer(request.clone()).await?;
                latencies.push(call.elapsed().as_secs_f64() * 1e6);
            }
            Ok::<_, tonic::Status>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((latencies.len() as f64 / started.elapsed().as_secs_f64(), latencies))
}

async fn throughput() -> Result<String> {
    let server = ModelServer::start().await?;
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let concurrency = 4;
    let mut report = format!(
        "\n### ModelInfer over loopback ({concurrency} concurrent tonic clients, {seconds} s, UINT8 raw input)\n\n\
         | batch | calls/s | images/s | p50 µs | p99 µs |\n|---:|---:|---:|---:|---:|\n"
    );
    for batch in [1usize, 64] {
        let (rate, mut latencies) = infer_load(&server, batch, concurrency, Duration::from_secs(seconds)).await?;
        let (p50, p99) = (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99));
        println!("batch {batch:>2}: {rate:>8.0} calls/s  p50 {p50:>8.0} us  p99 {p99:>8.0} us");
        let _ = writeln!(report, "| {batch} | {rate:.0} | {:.0} | {p50:.0} | {p99:.0} |", rate * batch as f64);
    }
    server.stop().await?;
    Ok(report)
}

/// A ~100 MB FP32 batch classified through ModelInfer and through TF Serving's Predict, against the same
/// message sent to a model that does not exist: the server receives and decodes all of it, then answers
/// NOT_FOUND without running anything. Interleaved, so each round's three calls see the same machine.
async fn large_request() -> Result<String> {
    let server = ModelServer::start().await?;
    let mut client = Target { address: server.url(), ..Default::default() }.connect().await?;
    let count = 100_000_000usize.div_ceil(IMAGE_VALUES * 4);
    let pixels: bytes::Bytes =
        client::generated(count).pixels.iter().flat_map(|&p| (f32::from(p) / 255.0).to_le_bytes()).collect();
    let mut request = client::generated(1).request();
    request.inputs[0].datatype = "FP32".into();
    request.inputs[0].shape[0] = i64::try_from(count)?;
    request.raw_input_contents = vec![pixels.clone()];
    let mut noop = request.clone();
    noop.model_name = "no-op".into();
    let mut predict = client::generated(1).predict_request();
    let images = predict.inputs.get_mut(INPUT).context("no images input")?;
    images.dtype = DataType::DtFloat as i32;
    if let Some(shape) = images.tensor_shape.as_mut() {
        shape.dim[0].size = i64::try_from(count)?;
    }
    images.tensor_content = pixels;
    let rounds: usize = env_or("BENCH_PAYLOAD_REPEAT", 5);
    let (mut infer, mut transfer, mut predicted) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let status = client.infer(noop.clone()).await.err().context("the no-op call should be refused")?;
        anyhow::ensure!(status.code() == tonic::Code::NotFound, "no-op call: {status}");
        transfer.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let response = client.infer(request.clone()).await?;
        infer.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(client::probabilities(&response)?.len() == count);
        let started = Instant::now();
        let response = client.predict(predict.clone()).await?;
        predicted.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(response.outputs.get(PROBABILITIES).is_some_and(|t| t.float_val.len() == count));
    }
    let (infer, transfer, predicted) = (median(infer), median(transfer), median(predicted));
    server.stop().await?;
    let bytes = count * IMAGE_VALUES * 4;
    let report = format!(
        "\n### One {:.1} MB request ({count} FP32 images; median of {rounds} interleaved rounds)\n\n\
         | call | seconds | above the transfer |\n|---|---:|---:|\n\
         | transfer only (unknown model: received, decoded, refused) | {transfer:.3} | |\n\
         | ModelInfer (decode, forward pass, answer) | {infer:.3} | {:.3} |\n\
         | TF Serving Predict (`tensor_content`) | {predicted:.3} | {:.3} |\n\n\
         ratio ModelInfer / transfer: {:.2}; Predict / ModelInfer: {:.2} (goal ≤ 1.1)\n",
        bytes as f64 / 1e6,
        infer - transfer,
        predicted - transfer,
        infer / transfer,
        predicted / infer,
    );
    Ok(report)
}
