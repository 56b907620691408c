//! The security review's requests against the real server (`serve`, as the Deployment runs it): each is refused
//! with the right code, before it costs what it asks for, and nothing the client sent is echoed whole. The cost
//! is read from the server process's own peak resident memory (`VmHWM`), around each request.

#[path = "support/palette.rs"]
mod palette;

use anyhow::{Context, Result};
use bytes::Bytes;
use palette::palette_png;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use tonic::Code;
use tonic::transport::Channel;
use wasmgate_inference::client;
use wasmgate_inference::model::IMAGE_VALUES;
use wasmgate_inference::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use wasmgate_inference::proto::model_infer_request::InferInputTensor;
use wasmgate_inference::proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use wasmgate_inference::proto::tensorflow::serving::{
    ClassificationRequest, ExampleListWithContext, Input, ModelSpec, input,
};
use wasmgate_inference::proto::tensorflow::{BytesList, Example, Feature, Features, feature};
use wasmgate_inference::proto::{InferTensorContents, ModelInferRequest};

const BIN: &str = env!("CARGO_BIN_EXE_wasmgate-inference");
/// What the test server's calls may allocate beyond their share of the message: small, so that a request that
/// costs more than it should shows in the process's memory.
const MAX_DECODED: &str = "4Mi";
/// Peak memory growth a refused request may cause: its own message (held by tonic) and the server's buffers.
const REFUSAL_GROWTH: u64 = 24 << 20;

struct Server {
    child: Child,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Result<Self> {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/catnet.safetensors");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--max-decoded-bytes", MAX_DECODED])
            .arg("--model")
            .arg(model)
            .stderr(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let serving = lines.next().context("no log line")??;
        let line: serde_json::Value = serde_json::from_str(&serving)?;
        let address = line["fields"]["address"].as_str().context("address")?.to_owned();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(Self { child, address: format!("http://{address}"), log })
    }

    async fn channel(&self) -> Result<Channel> {
        Ok(Channel::from_shared(self.address.clone())?.connect().await?)
    }

    /// The process's peak resident memory so far, in bytes.
    fn peak_rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
        let kib: u64 = line.split_whitespace().nth(1).context("VmHWM value")?.parse()?;
        Ok(kib << 10)
    }

    fn longest_log_line(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).iter().map(String::len).max().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn oip(channel: Channel) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::new(channel).max_encoding_message_size(usize::MAX)
}

fn tf(channel: Channel) -> PredictionServiceClient<Channel> {
    PredictionServiceClient::new(channel).max_encoding_message_size(usize::MAX)
}

/// A warm server (its pools and the model's first call done), and its peak memory then.
async fn warm() -> Result<(Server, u64)> {
    let server = Server::start()?;
    oip(server.channel().await?).model_infer(client::generated(8).request()).await?;
    let peak = server.peak_rss()?;
    Ok((server, peak))
}

fn assert_refused(status: &tonic::Status, code: Code, says: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(says), "{}", status.message());
    assert!(status.message().len() < 512, "a {}-byte grpc-message", status.message().len());
}

fn assert_cheap(server: &Server, before: u64, what: &str) -> Result<()> {
    let growth = server.peak_rss()?.saturating_sub(before);
    assert!(growth <= REFUSAL_GROWTH, "{what}: peak memory grew by {} MiB", growth >> 20);
    eprintln!("{what}: peak memory grew by {:.1} MiB", growth as f64 / f64::from(1 << 20));
    Ok(())
}

fn context_examples(count: usize) -> ClassificationRequest {
    let feature = Feature {
        kind: Some(feature::Kind::BytesList(BytesList { value: vec![Bytes::from(vec![5u8; IMAGE_VALUES])] })),
    };
    let context = Example { features: Some(Features { feature: HashMap::from([("images".to_owned(), feature)]) }) };
    ClassificationRequest {
        model_spec: Some(ModelSpec { name: "catnet".into(), signature_name: "classify".into(), ..Default::default() }),
        input: Some(Input {
            kind: Some(input::Kind::ExampleListWithContext(ExampleListWithContext {
                examples: vec![Example::default(); count],
                context: Some(context),
            })),
        }),
    }
}

/// Review item 1: 100,000 empty examples inheriting the context's image aborted the server (6 GiB asked for).
#[tokio::test(flavor = "multi_thread")]
async fn a_classify_of_empty_examples_is_refused_before_its_pixels() -> Result<()> {
    let (server, before) = warm().await?;
    let mut client = tf(server.channel().await?);
    let status = client.classify(context_examples(100_000)).await.expect_err("refused");
    assert_refused(&status, Code::ResourceExhausted, "decoding this ClassificationRequest would take");
    // Fewer examples get past prost but not past the count of their pixels.
    let status = client.classify(context_examples(3_000)).await.expect_err("refused");
    assert_refused(&status, Code::ResourceExhausted, "a batch of 3000 images as the model's input");
    assert_cheap(&server, before, "Classify of empty examples")?;
    // The server still answers, and a real classify within the budget works.
    let answer = client.classify(context_examples(10)).await?.into_inner();
    assert_eq!(answer.result.context("result")?.classifications.len(), 10);
    Ok(())
}

/// Review item 6: 1 million empty `inputs` in a 2 MB ModelInferRequest raised peak memory by 302 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn empty_repeated_inputs_are_refused_before_prost_builds_them() -> Result<()> {
    let (server, before) = warm().await?;
    let request = ModelInferRequest { inputs: vec![InferInputTensor::default(); 1_000_000], ..Default::default() };
    let status = oip(server.channel().await?).model_infer(request).await.expect_err("refused");
    assert_refused(&status, Code::ResourceExhausted, "decoding this ModelInferRequest would take");
    assert_cheap(&server, before, "1M empty inputs")
}

/// Review item 5: 16 palette PNGs of 8192×8192 in one request took 9.5 s of CPU and gigabytes.
#[tokio::test(flavor = "multi_thread")]
async fn image_bombs_are_refused_from_their_headers() -> Result<()> {
    let (server, before) = warm().await?;
    let bomb = Bytes::from(palette_png(8192));
    let request = ModelInferRequest {
        model_name: "catnet".into(),
        inputs: vec![InferInputTensor {
            name: "encoded_images".into(),
            datatype: "BYTES".into(),
            shape: vec![16],
            contents: Some(InferTensorContents { bytes_contents: vec![bomb; 16], ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let status = oip(server.channel().await?).model_infer(request).await.expect_err("refused");
    assert_refused(&status, Code::ResourceExhausted, "(67108864 pixels declared by its header)");
    // Refused from the headers: nothing was decoded (one decode alone took 0.6 s of CPU).
    assert!(started.elapsed() < std::time::Duration::from_millis(500), "{:?}", started.elapsed());
    assert_cheap(&server, before, "16 PNG bombs")
}

/// Review item 7: a 1,000,000-entry shape wrote a 3.0 MB log line and a 3.6 MB grpc-message. (A million 1-byte
/// dimensions are now refused for what prost would build of them; 100,000 still reach the shape check.)
#[tokio::test(flavor = "multi_thread")]
async fn client_text_is_never_echoed_whole() -> Result<()> {
    let (server, _) = warm().await?;
    let mut client = oip(server.channel().await?);
    let mut request = client::generated(1).request();
    request.inputs[0].shape = vec![7; 100_000];
    request.id = "i".repeat(100_000);
    let status = client.model_infer(request).await.expect_err("refused");
    assert_refused(&status, Code::InvalidArgument, "has shape [7, 7, 7, 7, 7, 7, 7, 7, ... (100000 in all)]");
    let mut request = client::generated(1).request();
    request.model_name = "m".repeat(1_000_000);
    let status = client.model_infer(request).await.expect_err("refused");
    assert_refused(&status, Code::NotFound, "(1000000 bytes)");
    // Give the log a moment to reach the reader thread.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let longest = server.longest_log_line();
    assert!(longest < 2048, "a {longest}-byte log line");
    Ok(())
}
