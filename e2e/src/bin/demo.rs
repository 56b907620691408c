//! `make demo`: the whole gateway on loopback — a local registry with the plugin images, two model servers with
//! the committed weights, and Envoy configured by istiod from the chart with its EKS values (three plugins pulled by istio-agent,
//! by digest) — and
//! a short scripted session through it. `--keep-running` leaves it up and prints how to call it. Ctrl-C (or
//! SIGTERM) at any point stops every process it started.

use anyhow::Result;
use base64::Engine;
use std::time::Instant;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wasmgate_e2e::fixtures::{CANARY_HOST, HOST, PASSWORD, USER};
use wasmgate_e2e::stack::FullStack;
use wasmgate_inference::client::{self, Images};
use wasmgate_inference::data;
use wasmgate_inference::model::{IMAGE_VALUES, LABELS, label};
use wasmgate_inference::server::termination;

#[tokio::main]
async fn main() -> Result<()> {
    let keep_running = std::env::args().any(|a| a == "--keep-running");
    println!(
        "starting: registry, plugin images, two model servers, istiod with the chart (values-eks.yaml), Envoy ..."
    );
    let stack = tokio::select! {
        stack = FullStack::start() => stack?,
        () = termination() => return stopped(),
    };
    describe(&stack);
    tokio::select! {
        result = session(&stack) => result?,
        () = termination() => {
            println!("\ninterrupted");
            drop(stack);
            return stopped();
        }
    }
    if keep_running {
        how_to_call(&stack);
        termination().await;
    }
    drop(stack);
    stopped()
}

fn stopped() -> Result<()> {
    println!("stopped: Envoy, istiod, the registry and the model servers are shut down");
    Ok(())
}

fn describe(stack: &FullStack) {
    println!(
        "registry      {} (plugin images pushed, pinned by digest, pulled by istio-agent's fetcher)",
        stack.registry.host()
    );
    for plugin in &stack.plugins {
        let digest = plugin.spec.sha256.as_deref().unwrap_or("-");
        println!("  {:<22} {}  sha256 {}…", plugin.qualified_name(), plugin.spec.url, &digest[..digest.len().min(12)]);
    }
    println!("model servers stable {}  canary {}", stack.stable.addr, stack.canary.addr);
    println!("istiod        xDS {} (istiod's generator, istio-agent's Wasm step)", stack.envoy.istiod.xds);
    println!("Envoy (V8)    {}  admin http://{}", stack.envoy.envoy.listener, stack.envoy.admin);
    if let Some(nlb) = &stack.envoy.nlb {
        println!("NLB stand-in  {} (TLS), {} (plain), PROXY v2 to the gateway", nlb.https, nlb.plain_https);
    }
    println!("web page      {}  (user {USER}, password {PASSWORD})\n", page_url(stack));
}

fn step(what: &str, outcome: impl std::fmt::Display) {
    println!("{what:<44} -> {outcome}");
}

fn status(result: Result<impl Sized, tonic::Status>) -> String {
    match result {
        Ok(_) => "OK".to_owned(),
        Err(s) => format!("{:?}: {}", s.code(), s.message()),
    }
}

/// A few test images with their true labels, or a generated batch when the data set is absent.
fn sample_images() -> Result<(Images, Option<Vec<u8>>)> {
    let dir = data::default_dir();
    if !data::available(&dir) {
        println!("(no catvnoncat data at {}: classifying a generated batch)", dir.display());
        return Ok((client::generated(8), None));
    }
    let test = data::load_split(&dir, "test")?;
    // Cats and non-cats, two of them misclassified: the model is right on 80 % of the test set.
    let picks = [0usize, 1, 2, 5, 11, 14, 16, 21];
    let mut images = Images::default();
    for &i in &picks {
        images.names.push(format!("test image {i}"));
        images.pixels.extend(test.images.row(i).iter());
    }
    Ok((images, Some(picks.iter().map(|&i| test.labels[i]).collect())))
}

async fn session(stack: &FullStack) -> Result<()> {
    let (images, truth) = sample_images()?;

    let mut anonymous = stack.target(HOST, None).connect().await?;
    step("ModelInfer without credentials", status(anonymous.infer(images.request()).await));
    let mut guessing = stack.target(HOST, Some((USER, "guess"))).connect().await?;
    step("ModelInfer with a wrong password", status(guessing.infer(images.request()).await));

    let mut client = stack.target(HOST, Some((USER, PASSWORD))).connect().await?;
    let probabilities = client.classify(&images).await?;
    step(&format!("classify {} images as {USER}", images.len()), "OK");
    for (i, (name, p)) in images.names.iter().zip(&probabilities).enumerate() {
        let actual =
            truth.as_ref().map(|t| format!("  (truly {})", LABELS[usize::from(t[i] == 1)])).unwrap_or_default();
        println!("    {name:<16} {:<8} p(cat) = {p:.3}{actual}", label(*p));
    }

    let mut tf = stack.target(HOST, Some((USER, PASSWORD)));
    tf.api = client::Api::Tf;
    let same = tf.connect().await?.classify(&images).await? == probabilities;
    step(
        "the same images via TF Serving's Predict",
        if same { "OK, the same probabilities" } else { "OK, but different probabilities" },
    );

    let count = 100_000_000usize.div_ceil(IMAGE_VALUES * 4);
    let started = Instant::now();
    let outcome = status(client.infer(client::fp32_zeros(count)).await);
    step(
        &format!("100 MB ModelInfer ({count} FP32 images)"),
        format!("{outcome} in {:.2} s", started.elapsed().as_secs_f64()),
    );

    let before = stack.stable.stats.snapshot().infer_ok;
    let too_big = (130 << 20) / (IMAGE_VALUES * 4) + 1;
    let outcome = status(client.infer(client::fp32_zeros(too_big)).await);
    let reached = stack.stable.stats.snapshot().infer_ok - before;
    step("130 MiB ModelInfer", format!("{outcome} (calls that reached the model: {reached})"));

    let mut canary = stack.target(CANARY_HOST, Some((USER, PASSWORD))).connect().await?;
    let outcome = status(canary.infer(images.request()).await);
    let served = stack.canary.stats.snapshot().infer_ok;
    step(&format!("ModelInfer to {CANARY_HOST}"), format!("{outcome}, answered by the canary server ({served} call)"));

    let channel = wasmgate_e2e::grpc::channel(stack.envoy.listener, HOST).await?;
    let health = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
    let outcome = match health {
        Ok(r) => format!("{:?}", r.into_inner().status()),
        Err(s) => format!("{:?}", s.code()),
    };
    step("gRPC health check without credentials", outcome);

    println!("\nplugin counters on Envoy's /stats (non-zero):");
    for (name, value) in
        stack.envoy.stats().await?.iter().filter(|(k, v)| k.starts_with("wasmcustom.wasmgate.") && **v > 0)
    {
        println!("  {name} = {value}");
    }
    Ok(())
}

/// The page through the gateway: the host the Gateway serves, on the listener's port.
fn page_url(stack: &FullStack) -> String {
    format!("http://{HOST}:{}/", stack.envoy.listener.port())
}

fn how_to_call(stack: &FullStack) {
    let gateway = stack.envoy.listener;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    println!(
        "\nThe gateway stays up at {gateway} (host {HOST}). Try:\n\
         \n  the web page: {page} as {USER} / {PASSWORD}, with {HOST} resolving to {ip}: a line `{ip} {HOST}` in\n  \
         /etc/hosts, or chromium --host-resolver-rules='MAP {HOST} {ip}' {page}\n\
         \n  WASMGATE_PASSWORD={PASSWORD} cargo run -q --release -p wasmgate-inference -- classify \\\n    \
         --address http://{gateway} --authority {HOST} --user {USER} some-cat.jpg\n\
         \n  .venv/bin/python -c 'import numpy as np, tritonclient.grpc as g\n\
         c = g.InferenceServerClient(\"{gateway}\", channel_args=[(\"grpc.default_authority\", \"{HOST}\")])\n\
         x = g.InferInput(\"images\", [1, 64, 64, 3], \"UINT8\"); x.set_data_from_numpy(np.zeros((1, 64, 64, 3), np.uint8))\n\
         print(c.infer(\"catnet\", [x], headers={{\"authorization\": \"Basic {token}\"}}).as_numpy(\"probabilities\"))'\n\
         \n  .venv/bin/python -c 'import grpc, numpy as np, tensorflow as tf\n\
         from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc as s\n\
         stub = s.PredictionServiceStub(grpc.insecure_channel(\"{gateway}\", options=[(\"grpc.default_authority\", \"{HOST}\")]))\n\
         r = predict_pb2.PredictRequest(); r.model_spec.name = \"catnet\"\n\
         r.inputs[\"images\"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 64, 64, 3), np.uint8)))\n\
         print(stub.Predict(r, metadata=[(\"authorization\", \"Basic {token}\")]).outputs[\"probabilities\"].float_val)'\n\
         \n  Envoy admin: curl http://{}/stats | grep wasmgate\n\nCtrl-C stops everything.",
        stack.envoy.admin,
        page = page_url(stack),
        ip = gateway.ip(),
    );
}
