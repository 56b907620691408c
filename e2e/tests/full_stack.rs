//! The whole gateway from the chart's CRs (EKS values) (three plugins pulled from a real registry by digest, routes from
//! the VirtualService) in front of two real model servers, driven by real clients. Every scenario runs twice: with
//! the three plugin filters (`eks`) and with the one suite filter (`eks-suite`), which must behave the same, down
//! to the counters.

use anyhow::{Context, Result};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wasmgate_e2e::clients;
use wasmgate_e2e::counters::{BasicAuth, GrpcLimits, RouterRule, UserAllowed};
use wasmgate_e2e::fixtures::{CANARY_HOST, HOST, PASSWORD, USER};
use wasmgate_e2e::http1::basic_authorization;
use wasmgate_e2e::stack::{Filters, FullStack};
use wasmgate_inference::client;
use wasmgate_inference::model::IMAGE_VALUES;

async fn tritonclient_through_the_gateway_with_basic_auth_gets_the_right_answers(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let credentials = format!("{USER}:{PASSWORD}");
    let args = clients::args(stack.envoy.listener, &["--authority", HOST, "--basic-auth", &credentials]);
    clients::classified("triton_check.py", args).await?;

    // Everything went to the stable server: UINT8, FP32 and the 100 MB batch classified, one bad shape refused.
    let stable = stack.stable.stats.snapshot();
    assert_eq!((stable.infer_ok, stable.infer_invalid, stable.not_found), (3, 1, 1), "{stable:?}");
    assert_eq!(stack.canary.stats.snapshot().infer_ok, 0);
    // The script made 11 calls, each with credentials; grpc-limits passed every one of them.
    assert_eq!(stack.counter(BasicAuth::Allowed).await?, 11);
    assert_eq!(stack.counter(BasicAuth::DeniedInvalid).await?, 0);
    assert_eq!(stack.counter(GrpcLimits::Accepted).await?, 11);
    assert!(stack.counter(GrpcLimits::RequestBytes).await? > 100_000_000);
    Ok(())
}

/// TF Serving's own client through the whole gateway: the same answers as direct, its 100 MB Predict within
/// grpc-limits' rule for Predict, a wrong password UNAUTHENTICATED, a 130 MiB Predict refused before any server
/// counts it.
async fn tensorflow_serving_client_through_the_gateway_gets_the_same_answers(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let credentials = format!("{USER}:{PASSWORD}");
    let args = clients::args(stack.envoy.listener, &["--authority", HOST, "--basic-auth", &credentials, "--gateway"]);
    let summary = clients::classified("tf_serving_check.py", args).await?;
    assert!(summary["wrong_password"].is_string() && summary["too_big"].is_string(), "{summary}");

    // What the stable server counted is what the script sent it directly; the 130 MiB call never reached it.
    let stable = stack.stable.stats.snapshot();
    assert_eq!((stable.infer_ok, stable.infer_invalid, stable.not_found), (8, 4, 2), "{stable:?}");
    assert_eq!(stack.canary.stats.snapshot().infer_ok, 0);
    assert_eq!(stack.counter(BasicAuth::DeniedInvalid).await?, 1);
    assert_eq!(stack.counter(GrpcLimits::RefusedMessageBytes).await?, 1);
    Ok(())
}

/// The model servers' log lines, as JSON (what `--log-format json` writes), kept for the tests to read.
fn model_server_log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static std::sync::Mutex<Vec<u8>> = Box::leak(Box::default());
        let writer = move || LogWriter(log);
        let _ = tracing_subscriber::fmt()
            .json()
            .with_writer(writer)
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .try_init();
        log
    })
}

struct LogWriter(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("log poisoned"))?.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A call through the gateway can be followed to the model: the model server's log line for it names the user
/// basic-auth authenticated (from `x-wasmgate-user`, which the gateway sets and no client can).
async fn the_model_server_logs_the_user_the_gateway_authenticated(filters: Filters) -> Result<()> {
    let log = model_server_log();
    let stack = FullStack::start_with(filters.deployment()).await?;
    let mut request = client::generated(1).request();
    let id = format!("trace-{}-{filters:?}", std::process::id());
    request.id = id.clone();
    let mut spoofed = tonic::Request::new(request);
    // A client claiming to be someone else is not believed.
    spoofed.metadata_mut().insert("x-wasmgate-user", "admin".parse()?);
    spoofed.metadata_mut().insert("authorization", basic_authorization(USER, PASSWORD).parse()?);
    let channel = wasmgate_e2e::grpc::channel(stack.envoy.listener, HOST).await?;
    let mut grpc = wasmgate_inference::proto::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
    grpc.model_infer(spoofed).await?;
    let text = String::from_utf8_lossy(&log.lock().map_err(|_| anyhow::anyhow!("log poisoned"))?).into_owned();
    let line: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["request_id"] == id.as_str())
        .with_context(|| format!("no log line for request {id} in:\n{text}"))?;
    assert_eq!(line["fields"]["message"], "ModelInfer", "{line}");
    assert_eq!(line["span"]["user"], USER, "{line}");
    assert_eq!(line["span"]["method"], "/inference.GRPCInferenceService/ModelInfer");
    assert_eq!(stack.counter(UserAllowed(USER)).await?, 1);
    Ok(())
}

async fn wrong_or_missing_credentials_are_unauthenticated_and_reach_no_model(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let images = client::generated(2);
    for credentials in [Some((USER, "guess")), Some(("admin", PASSWORD)), None] {
        let mut client = stack.target(HOST, credentials).connect().await?;
        let status = client.infer(images.request()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{credentials:?}: {status}");
    }
    let mut client = stack.target(CANARY_HOST, None).connect().await?;
    assert_eq!(client.infer(images.request()).await.unwrap_err().code(), Code::Unauthenticated, "canary host too");
    assert_eq!(stack.counter(BasicAuth::DeniedInvalid).await?, 2);
    assert_eq!(stack.counter(BasicAuth::DeniedMissing).await?, 2);
    assert_eq!(stack.stable.stats.snapshot(), Default::default());
    assert_eq!(stack.canary.stats.snapshot(), Default::default());
    Ok(())
}

async fn a_130_mib_request_is_resource_exhausted_before_the_model_server_sees_it(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let mut client = stack.target(HOST, Some((USER, PASSWORD))).connect().await?;
    let too_big = (130 << 20) / (IMAGE_VALUES * 4) + 1;
    let status = client.infer(client::fp32_zeros(too_big)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    assert_eq!(stack.stable.stats.snapshot(), Default::default(), "the model server got nothing");
    assert_eq!(stack.counter(GrpcLimits::RefusedMessageBytes).await?, 1);

    // The same connection still works for a request within the limits.
    let probabilities = client.classify(&client::generated(3)).await?;
    assert_eq!(probabilities.len(), 3);
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 1);
    Ok(())
}

async fn the_canary_host_and_the_canary_header_reach_the_second_server(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let images = client::generated(4);
    let mut canary = stack.target(CANARY_HOST, Some((USER, PASSWORD))).connect().await?;
    let via_canary = canary.classify(&images).await?;
    let mut stable = stack.target(HOST, Some((USER, PASSWORD))).connect().await?;
    let via_stable = stable.classify(&images).await?;
    assert_eq!(via_canary, via_stable, "the same model answers on both");

    let mut request = tonic::Request::new(images.request());
    request.metadata_mut().insert("x-model-version", "canary".parse()?);
    request.metadata_mut().insert("authorization", basic_authorization(USER, PASSWORD).parse()?);
    let channel = wasmgate_e2e::grpc::channel(stack.envoy.listener, HOST).await?;
    let mut grpc = wasmgate_inference::proto::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
    grpc.model_infer(request).await.context("canary header")?;

    assert_eq!(stack.canary.stats.snapshot().infer_ok, 2, "canary host + canary header");
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 1);
    assert_eq!(stack.counter(RouterRule("canary-host")).await?, 1);
    assert_eq!(stack.counter(RouterRule("canary-version")).await?, 1);
    Ok(())
}

async fn grpc_health_through_the_gateway_needs_no_credentials(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let channel = wasmgate_e2e::grpc::channel(stack.envoy.listener, HOST).await?;
    let mut health = HealthClient::new(channel);
    for service in ["", "inference.GRPCInferenceService"] {
        let response = health.check(HealthCheckRequest { service: service.into() }).await?.into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    assert_eq!(stack.counter(BasicAuth::Exempt).await?, 2);
    assert_eq!(stack.counter(BasicAuth::DeniedMissing).await?, 0);
    Ok(())
}

/// The script the kind e2e runs against a cluster's gateway, here against the loopback one.
async fn the_kind_e2e_gateway_checks_pass(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let args = vec![
        stack.envoy.listener.to_string(),
        "--host".to_owned(),
        HOST.to_owned(),
        "--canary-host".to_owned(),
        CANARY_HOST.to_owned(),
        "--basic-auth".to_owned(),
        format!("{USER}:{PASSWORD}"),
    ];
    let stdout = clients::run("gateway_check.py", args).await?;
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok: ")).count(), 5, "{stdout}");
    assert_eq!(stack.canary.stats.snapshot().infer_ok, 1);
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 0, "nothing else reached a model");
    Ok(())
}

wasmgate_e2e::for_both_layouts!(
    tritonclient_through_the_gateway_with_basic_auth_gets_the_right_answers,
    tensorflow_serving_client_through_the_gateway_gets_the_same_answers,
    the_model_server_logs_the_user_the_gateway_authenticated,
    wrong_or_missing_credentials_are_unauthenticated_and_reach_no_model,
    a_130_mib_request_is_resource_exhausted_before_the_model_server_sees_it,
    the_canary_host_and_the_canary_header_reach_the_second_server,
    grpc_health_through_the_gateway_needs_no_credentials,
    the_kind_e2e_gateway_checks_pass,
);
