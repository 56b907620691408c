//! The model server driven by real clients: NVIDIA's tritonclient, grpcio reflection and health clients, and the
//! crate's own tonic client.

use anyhow::{Context, Result};
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::Ordering;
use tonic::Code;
use wasmgate_e2e::model_server::ModelServer;
use wasmgate_e2e::workspace;
use wasmgate_inference::client::{self, Images, Target};
use wasmgate_inference::data;
use wasmgate_inference::server::ServerOptions;

/// Runs one of the Python client scripts under `e2e/clients/` and returns the JSON it prints.
fn run_client(script: &str, args: &[String]) -> Result<Value> {
    let output = Command::new(workspace::python()?)
        .arg(workspace::root().join("e2e/clients").join(script))
        .args(args)
        .output()
        .with_context(|| format!("running {script}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).with_context(|| format!("{script} printed {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tritonclient_gets_health_metadata_and_right_answers_including_a_100_mb_batch() -> Result<()> {
    let server = ModelServer::start().await?;
    let data_dir = data::default_dir();
    let mut args = vec![server.addr.to_string()];
    if data::available(&data_dir) {
        args.extend(["--data".to_owned(), data_dir.display().to_string()]);
    } else {
        eprintln!(
            "catvnoncat data not found at {} (set {}): checking a generated batch",
            data_dir.display(),
            data::DATA_DIR_ENV
        );
    }
    let summary = tokio::task::spawn_blocking(move || run_client("triton_check.py", &args)).await??;

    assert_eq!(summary["server"], "wasmgate-inference");
    let images = summary["images"].as_u64().context("images")?;
    let big_images = summary["big_images"].as_u64().context("big_images")?;
    assert!(summary["big_bytes"].as_u64() >= Some(100_000_000), "{summary}");
    if let Some(accuracy) = summary["accuracy"].as_f64() {
        // The committed weights are the reference's training, so they classify the test set as it does (0.80).
        assert!((accuracy - 0.80).abs() < 1e-9, "test accuracy {accuracy}");
        assert!(summary["max_diff_vs_numpy"].as_f64() < Some(1e-4));
    }
    assert!(summary["invalid_shape"].as_str().is_some_and(|m| m.contains("expected [N, 64, 64, 3]")), "{summary}");
    assert!(summary["unknown_model"].as_str().is_some_and(|m| m.contains("unknown model `no-such-model`")));

    // What the server counted is what the client sent: UINT8, FP32 and the large batch succeeded.
    let stats = server.stats.snapshot();
    assert_eq!(stats.infer_ok, 3, "{stats:?}");
    assert_eq!(stats.images, 2 * images + big_images);
    assert_eq!(stats.infer_invalid, 1);
    assert_eq!(stats.not_found, 1);
    assert!(stats.raw_input_bytes > 100_000_000);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_lists_the_services_and_health_reports_serving() -> Result<()> {
    let server = ModelServer::start().await?;
    let addr = server.addr.to_string();
    let summary = tokio::task::spawn_blocking(move || run_client("reflection_check.py", &[addr])).await??;
    let services: Vec<&str> =
        summary["services"].as_array().context("services")?.iter().filter_map(Value::as_str).collect();
    for expected in
        ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "inference.GRPCInferenceService"]
    {
        assert!(services.contains(&expected), "{expected} missing from {services:?}");
    }
    let methods: Vec<&str> =
        summary["methods"].as_array().context("methods")?.iter().filter_map(Value::as_str).collect();
    assert_eq!(methods, ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"]);
    // Wire-exact field numbers, as served to a client that knows nothing else about us.
    let fields = &summary["model_infer_request_fields"];
    assert_eq!(fields["inputs"], 5);
    assert_eq!(fields["outputs"], 6);
    assert_eq!(fields["raw_input_contents"], 7);
    assert_eq!(summary["health"]["(server)"], "SERVING");
    assert_eq!(summary["health"]["inference.GRPCInferenceService"], "SERVING");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn crate_client_classifies_and_bad_requests_get_clear_codes() -> Result<()> {
    let server = ModelServer::start().await?;
    let mut client = Target { address: server.url(), ..Default::default() }.connect().await?;
    let images = client::generated(3);
    let probabilities = client.classify(&images).await?;
    let expected =
        server.network.predict(data::scale::<f32>(ndarray::ArrayView2::from_shape((3, 12288), &images.pixels)?).view());
    assert_eq!(probabilities, expected.to_vec());

    let mut request = images.request();
    request.model_name = "resnet".into();
    let status = client.infer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "unknown model `resnet`; this server serves `catnet`");

    let mut request = images.request();
    request.inputs[0].datatype = "FP64".into();
    let status = client.infer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("send UINT8 (0-255) or FP32 (0.0-1.0)"), "{}", status.message());

    let mut request = images.request();
    request.raw_input_contents[0].truncate(100);
    let status = client.infer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(server.stats.infer_ok.load(Ordering::Relaxed), 1);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_above_the_configured_limit_are_refused_before_decoding() -> Result<()> {
    let server = ModelServer::start_with(ServerOptions { max_message_bytes: 1 << 20 }).await?;
    let mut client = Target { address: server.url(), ..Default::default() }.connect().await?;
    // 86 images are just over 1 MiB of UINT8.
    let status = client.classify(&client::generated(86)).await.unwrap_err();
    assert!(status.to_string().contains("message length too large"), "{status}");
    assert_eq!(server.stats.snapshot(), Default::default(), "nothing reached the model");
    assert_eq!(client.classify(&client::generated(80)).await?.len(), 80);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_a_100_mb_request_in_flight_finish() -> Result<()> {
    let mut server = ModelServer::start().await?;
    let mut client = Target { address: server.url(), ..Default::default() }.connect().await?;
    let images = client::generated(100_000_000 / 12288 + 1);
    let call = tokio::spawn(async move { client.classify(&images).await });
    // Shut down once the server holds the request and is working on it.
    while server.stats.in_flight.load(Ordering::Relaxed) == 0 {
        assert!(!call.is_finished(), "the call ended before the server started on it");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    server.begin_shutdown();
    assert!(!call.is_finished());
    let probabilities = call.await??;
    assert_eq!(probabilities.len(), 8139);
    server.stop().await?;
    Ok(())
}

#[test]
fn images_from_png_and_npy_files_are_read_and_resized() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let png = dir.path().join("photo.png");
    image::RgbImage::from_fn(100, 80, |x, _| image::Rgb([(x * 2) as u8, 10, 200])).save(&png)?;
    let npy = dir.path().join("batch.npy");
    ndarray_npy::write_npy(&npy, &ndarray::Array4::<u8>::from_elem((2, 64, 64, 3), 7))?;
    let mut images = Images::default();
    images.add_file(&png)?;
    images.add_file(&npy)?;
    assert_eq!(images.names.len(), 3);
    assert_eq!(images.pixels.len(), 3 * 12288);
    assert_eq!(&images.pixels[12288..12291], [7, 7, 7]);
    let wrong = dir.path().join("wrong.npy");
    ndarray_npy::write_npy(&wrong, &ndarray::Array2::<u8>::zeros((4, 4)))?;
    let err = images.add_file(&wrong).unwrap_err();
    assert!(err.to_string().contains("expected [64,64,3] or [N,64,64,3]"), "{err}");
    Ok(())
}
