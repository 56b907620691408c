//! The model server driven by real clients: NVIDIA's tritonclient, grpcio reflection and health clients, and the
//! crate's own tonic client.
//!
//! Also the model server's own refusals that the gateway's attacks showed it needs (only POST, only gRPC from its own site).

use anyhow::{Context, Result};
use serde_json::Value;
use std::sync::atomic::Ordering;
use tonic::Code;
use wasmgate_e2e::clients;
use wasmgate_e2e::fixtures::{INFER, cross_site_forms};
use wasmgate_e2e::grpc::infer_body;
use wasmgate_e2e::http2::H2Request;
use wasmgate_e2e::model_server::ModelServer;
use wasmgate_inference::client::{self, Api, Images, Target};
use wasmgate_inference::data;
use wasmgate_inference::server::ServerOptions;

#[tokio::test(flavor = "multi_thread")]
async fn tritonclient_gets_health_metadata_and_right_answers_including_a_100_mb_batch() -> Result<()> {
    let server = ModelServer::start().await?;
    let summary = clients::classified("triton_check.py", clients::args(server.addr, &[])).await?;
    assert_eq!(summary["server"], "wasmgate-inference");
    let images = summary["images"].as_u64().context("images")?;
    let big_images = summary["big_images"].as_u64().context("big_images")?;
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

/// TF Serving's own Python API (`tensorflow-serving-api`), as a team moving from TF Serving calls the model.
#[tokio::test(flavor = "multi_thread")]
async fn tensorflow_serving_client_gets_status_signatures_and_right_answers_including_100_mb() -> Result<()> {
    let server = ModelServer::start().await?;
    let summary = clients::classified("tf_serving_check.py", clients::args(server.addr, &[])).await?;
    assert_eq!(summary["signatures"], serde_json::json!(["classify", "serving_default"]));
    assert_eq!(summary["input"], "images");
    assert_eq!(summary["version"], 1);
    let images = summary["images"].as_u64().context("images")?;
    let big_images = summary["big_images"].as_u64().context("big_images")?;
    let message = |key: &str| summary[key].as_str().unwrap_or_default().to_owned();
    assert!(message("wrong_shape").contains("expected [N, 64, 64, 3]"), "{summary}");
    assert!(message("wrong_dtype").contains("DT_INT32; send DT_UINT8"), "{summary}");
    assert!(message("missing_input").contains("takes one input, `images`"), "{summary}");
    assert!(message("unknown_model").starts_with("Servable not found for request: Latest(no-such-model)"));
    assert!(message("unknown_version").starts_with("Servable not found for request: Specific(catnet, 2)"));
    assert_eq!(message("unknown_signature"), "Serving signature key \"nope\" not found.");
    assert!(message("unknown_filter").starts_with("output tensor alias not found in signature: logits"));

    // Counted as the client sent them: 4 forms of the batch, the filtered and the labelled calls, Classify of 5,
    // the large batch; 5 inputs refused; 2 unknown model or version.
    let stats = server.stats.snapshot();
    assert_eq!(stats.infer_ok, 8, "{stats:?}");
    assert_eq!(stats.images, 4 * images + 2 + 1 + 5 + big_images);
    assert_eq!(stats.infer_invalid, 4, "{stats:?}");
    assert_eq!(stats.not_found, 2);
    assert!(stats.raw_input_bytes > 100_000_000);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_lists_the_services_and_health_reports_serving() -> Result<()> {
    let server = ModelServer::start().await?;
    let addr = server.addr.to_string();
    let stdout = clients::run("reflection_check.py", vec![addr]).await?;
    let summary: Value = serde_json::from_str(stdout.trim())?;
    let services: Vec<&str> =
        summary["services"].as_array().context("services")?.iter().filter_map(Value::as_str).collect();
    for expected in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "inference.GRPCInferenceService",
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
    ] {
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
    assert_eq!(summary["health"]["tensorflow.serving.PredictionService"], "SERVING");
    assert_eq!(summary["tf_methods"], serde_json::json!(["Classify", "Predict", "GetModelMetadata"]));
    assert_eq!(
        summary["predict_request_fields"],
        serde_json::json!({"model_spec": 1, "inputs": 2, "output_filter": 3})
    );
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

    // `classify --api tf`: the same answers through TF Serving's Predict.
    let mut tf = Target { address: server.url(), api: Api::Tf, ..Default::default() }.connect().await?;
    assert_eq!(tf.classify(&images).await?, expected.to_vec());
    assert_eq!(server.stats.infer_ok.load(Ordering::Relaxed), 2);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_above_the_configured_limit_are_refused_before_decoding() -> Result<()> {
    let server = ModelServer::start_with(ServerOptions { max_message_bytes: 1 << 20, ..Default::default() }).await?;
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

/// The page beside the gRPC services, on the same port: its files to GET over HTTP/1.1 (with a content security
/// policy), the gallery's samples, gRPC-Web calls answered with the status in a trailer frame, and the gRPC paths
/// still POST only.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_serves_its_page_and_answers_grpc_web_over_http1() -> Result<()> {
    use prost::Message;
    use wasmgate_e2e::RawRequest;
    let server = ModelServer::start().await?;
    let page = RawRequest::get("/").host("models").send(server.addr).await?;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("Cat or non-cat?"));
    assert!(page.header("content-security-policy").is_some_and(|v| v.starts_with("default-src 'self'")));
    let samples = RawRequest::get("/samples.json").host("models").send(server.addr).await?;
    let samples: Value = serde_json::from_slice(&samples.body)?;
    assert!(!samples["images"].as_array().context("images")?.is_empty(), "{samples}");

    let message = client::generated(2).request().encode_to_vec();
    let framed = wasmgate_e2e::grpc::frame(&message);
    let call = RawRequest::new("POST", "/inference.GRPCInferenceService/ModelInfer")
        .host("models")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(framed)
        .send(server.addr)
        .await?;
    assert_eq!(call.status, 200);
    assert_eq!(call.header("content-type"), Some("application/grpc-web+proto"));
    // gRPC-Web's answer: the message frame, then a trailer frame (flag 0x80) carrying the status.
    let trailer = call.body.windows(1).position(|b| b[0] == 0x80).context("no trailer frame")?;
    assert!(String::from_utf8_lossy(&call.body[trailer + 5..]).contains("grpc-status:0"), "{call:?}");
    assert_eq!(server.stats.snapshot().infer_ok, 1);

    let get = RawRequest::get("/inference.GRPCInferenceService/ModelInfer").host("models").send(server.addr).await?;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    Ok(())
}

/// The model server on its own, without a gateway in front: gRPC is POST only.
#[tokio::test(flavor = "multi_thread")]
async fn the_model_server_answers_only_post() -> Result<()> {
    let server = wasmgate_e2e::model_server::ModelServer::start().await?;
    let body = infer_body(1);
    for method in ["OPTIONS", "post", "GET", "FOO"] {
        let r = H2Request::new(method, INFER, "models")
            .header("content-type", "application/grpc")
            .body(body.clone())
            .send(server.addr)
            .await?;
        assert_eq!((r.status, r.grpc_status()), (405, Some(12)), "{method}: {r:?}");
        assert_eq!(r.header("allow"), Some("POST"));
    }
    let ok = H2Request::new("POST", INFER, "models")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .send(server.addr)
        .await?;
    assert_eq!((ok.status, ok.grpc_status()), (200, Some(0)), "{ok:?}");
    assert_eq!(server.stats.snapshot().infer_ok, 1);
    Ok(())
}

/// The model server on its own refuses what is not gRPC, and a browser's cross-site call even in gRPC-Web.
#[tokio::test(flavor = "multi_thread")]
async fn the_model_server_takes_only_grpc_from_its_own_site() -> Result<()> {
    let server = wasmgate_e2e::model_server::ModelServer::start().await?;
    let body = infer_body(1);
    for (what, content_type) in cross_site_forms() {
        let mut form = H2Request::new("POST", INFER, "models");
        if let Some(content_type) = content_type {
            form = form.header("content-type", content_type);
        }
        let r = form.body(body.clone()).send(server.addr).await?;
        assert_eq!((r.status, r.grpc_status()), (415, Some(3)), "{what}: {r:?}");
    }
    let cross_site = H2Request::new("POST", INFER, "models")
        .header("content-type", "application/grpc-web+proto")
        .header("sec-fetch-site", "cross-site")
        .body(body)
        .send(server.addr)
        .await?;
    assert_eq!((cross_site.status, cross_site.grpc_status()), (403, Some(7)), "{cross_site:?}");
    assert_eq!(server.stats.snapshot(), Default::default());
    Ok(())
}
