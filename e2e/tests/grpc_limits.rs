//! grpc-limits through a real Envoy (V8), chained after basic-auth as the committed CRs order them.
//!
//! Attacks found in the shipped configuration are here too, each as the scenario that proves it closed; those run
//! with the three plugin filters and with the suite (`for_both_layouts!`).

use anyhow::{Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use prost::Message;
use serde_json::json;
use sha2::{Digest, Sha256};
use tonic::Code;
use wasmgate_e2e::counters::GrpcLimits;
use wasmgate_e2e::fixtures::{HOST, INFER, METADATA, authorization};
use wasmgate_e2e::fixtures::{PASSWORD, USER, cross_site_forms};
use wasmgate_e2e::grpc::infer_body;
use wasmgate_e2e::grpc::{channel, frame, raw_unary};
use wasmgate_e2e::http2::H2Request;
use wasmgate_e2e::plugin_gateway::PluginGateway;
use wasmgate_e2e::stack::Filters;
use wasmgate_e2e::stack::FullStack;
use wasmgate_e2e::{Gateway, RawRequest, workspace};
use wasmgate_inference::client;

const MI: usize = 1 << 20;

/// Both committed CRs (basic-auth in AUTHN, grpc-limits in AUTHZ) in front of the recording upstream.
async fn stack() -> Result<PluginGateway> {
    PluginGateway::with(workspace::plugin_crs()?).start().await
}

/// `len` bytes that are not all alike, so a corrupted transfer shows in the checksum.
fn payload(len: usize) -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = vec![0u8; len];
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    Bytes::from(data)
}

/// The SHA-256 of `payload` framed as one gRPC message, as the upstream sink reports it.
fn framed_sha256(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(frame(payload)))
}

/// `payload` as one gRPC message to `path` on `host`, signed in or not.
async fn call(
    s: &PluginGateway,
    host: &str,
    path: &str,
    payload: Bytes,
    authenticated: bool,
) -> Result<Bytes, tonic::Status> {
    let channel = channel(s.envoy.listener, host).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let auth = authorization();
    let metadata: Vec<(&'static str, &str)> =
        if authenticated { vec![("authorization", auth.as_str())] } else { vec![] };
    raw_unary(channel, path, payload, &metadata).await
}

#[tokio::test]
async fn a_100_mb_message_passes_intact_and_130_mib_is_refused() -> Result<()> {
    let s = stack().await?;
    let big = payload(100_000_000);
    let reply = call(&s, HOST, INFER, big.clone(), true).await?;
    assert_eq!(String::from_utf8_lossy(&reply), framed_sha256(&big), "checksum at the upstream");
    let seen = s.upstream().requests();
    assert_eq!((seen.len(), seen[0].body_len, seen[0].complete), (1, 100_000_005, true));
    assert_eq!(s.counter(GrpcLimits::Accepted).await?, 1);
    assert_eq!(s.counter(GrpcLimits::Messages).await?, 1);
    assert_eq!(s.counter(GrpcLimits::RequestBytes).await?, 100_000_005);
    drop(big);

    let too_big = payload(130 * MI);
    let err = call(&s, HOST, INFER, too_big, true).await.expect_err("130 MiB must be refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("received message larger than max (136314880 vs. 134217728)"), "{err:?}");
    assert_eq!(s.counter(GrpcLimits::RefusedMessageBytes).await?, 1);
    // Refused at the prefix: whatever reached the upstream before the reset is a fraction of the message.
    for r in s.upstream().requests().iter().skip(1) {
        assert!(!r.complete && r.body_len < 64 * MI as u64, "{} bytes reached the upstream", r.body_len);
    }
    Ok(())
}

#[tokio::test]
async fn limits_differ_per_method_and_per_host() -> Result<()> {
    let s = stack().await?;
    let five_mb = payload(5 * MI);
    // ModelInfer on the model host is allowed 128 MiB; the service's other methods 4 MiB (rule `oip-other`), and
    // other hosts the 4 MiB default.
    assert!(call(&s, HOST, INFER, five_mb.clone(), true).await.is_ok());
    let err = call(&s, HOST, METADATA, five_mb.clone(), true).await.expect_err("the service's limit");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("(rule oip-other)"), "{err:?}");
    let err = call(&s, "canary.example.com", INFER, five_mb.clone(), false).await.expect_err("other host");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(call(&s, HOST, METADATA, payload(MI), true).await.is_ok());
    assert!(call(&s, "canary.example.com", INFER, payload(4 * MI - 5), false).await.is_ok(), "exactly at the limit");
    assert_eq!(s.counter(GrpcLimits::RefusedMessageBytes).await?, 2);
    assert_eq!(s.counter(GrpcLimits::Accepted).await?, 3);
    Ok(())
}

#[tokio::test]
async fn plain_http_gets_413_with_and_without_content_length() -> Result<()> {
    let s = stack().await?;
    let body = payload(5 * MI).to_vec();
    let post = || RawRequest::new("POST", "/upload").host(HOST).header("authorization", &authorization());

    let declared = post().body(body.clone()).send(s.envoy.listener).await?;
    assert_eq!(declared.status, 413, "{}", declared.text());
    assert!(declared.text().contains("over the limit of 4Mi (rule default)"), "{}", declared.text());
    assert_eq!(s.upstream().count(), 0, "refused at the headers, before any body moved");
    assert_eq!(s.counter(GrpcLimits::RefusedContentLength).await?, 1);

    let chunked = post().body(body).chunked(64 * 1024).send(s.envoy.listener).await?;
    assert_eq!(chunked.status, 413, "{}", chunked.text());
    assert_eq!(s.counter(GrpcLimits::RefusedRequestBytes).await?, 1);
    assert!(s.upstream().requests().iter().all(|r| !r.complete), "the chunked body never arrived whole");

    let small = post().body(vec![b'x'; 1000]).send(s.envoy.listener).await?;
    assert_eq!(small.status, 200);
    let small_chunked = post().body(vec![b'y'; 4 * MI]).chunked(100_000).send(s.envoy.listener).await?;
    assert_eq!(small_chunked.status, 200, "exactly at the limit");
    assert_eq!(s.upstream().requests().last().map(|r| r.body_len), Some(4 * MI as u64));
    Ok(())
}

#[tokio::test]
async fn basic_auth_runs_first() -> Result<()> {
    let s = stack().await?;
    // Over the limit and unauthenticated: AUTHN comes before AUTHZ, so the answer is UNAUTHENTICATED and
    // grpc-limits never counts it.
    let err = call(&s, HOST, METADATA, payload(5 * MI), false).await.expect_err("refused");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(s.counter(GrpcLimits::RefusedMessageBytes).await?, 0);
    assert_eq!(s.counter(GrpcLimits::Accepted).await?, 0);
    assert_eq!(s.upstream().count(), 0);
    Ok(())
}

/// With the `grpc-limits` image: the committed CR pulls `grpc-limits-requests`, which does not see responses.
#[tokio::test]
async fn responses_over_their_limit_are_not_delivered() -> Result<()> {
    let cr = workspace::plugin_cr("grpc-limits")?;
    let config = serde_json::json!({"rules": [{"hosts": ["small.example.com"], "max_response_bytes": 50}]});
    let cr = cr.with_config(config).with_image("grpc-limits");
    let s = PluginGateway::with([cr]).start().await?;

    // The echo's JSON (over 50 bytes, with content-length) is refused at the response headers.
    let r = RawRequest::get("/").host("small.example.com").send(s.envoy.listener).await?;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("response body is over the limit of 50 bytes"), "{}", r.text());
    // Other hosts are not limited.
    assert_eq!(RawRequest::get("/").host("big.example.com").send(s.envoy.listener).await?.status, 200);
    // The gRPC sink's reply (69 bytes, no content-length) is cut when its body goes over the limit.
    let err = call(&s, "small.example.com", INFER, payload(10), false).await.expect_err("reply over the limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(s.counter(GrpcLimits::RefusedResponseBytes).await?, 2);
    Ok(())
}

/// The proxy-wasm callbacks a built module (`dist/plugins/<image>.wasm`) exports, which Envoy calls on every request.
fn callbacks(image: &str) -> Result<Vec<String>> {
    let wasm = std::fs::read(workspace::plugin_wasm(image)?)?;
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        if let wasmparser::Payload::ExportSection(exports) = payload? {
            for export in exports {
                names.push(export?.name.to_string());
            }
        }
    }
    Ok(names.into_iter().filter(|n| n.starts_with("proxy_on_")).collect())
}

/// grpc-limits' two images. The manifests deploy `grpc-limits-requests`, which exports no response callbacks and
/// so refuses a response limit at load, naming the image that takes it (the test above holds responses to it).
#[tokio::test]
async fn the_committed_grpc_limits_image_sees_requests_only() -> Result<()> {
    let response = |name: &String| name.starts_with("proxy_on_response_");
    let requests_only = callbacks("grpc-limits-requests")?;
    assert!(!requests_only.iter().any(response), "{requests_only:?}");
    assert!(requests_only.contains(&"proxy_on_request_body".to_string()), "{requests_only:?}");
    assert_eq!(callbacks("grpc-limits")?.iter().filter(|n| response(n)).count(), 2, "headers and body");

    let committed = workspace::plugin_cr("grpc-limits")?;
    assert_eq!(committed.image_name(), "grpc-limits-requests", "the image the manifests deploy");
    let config = serde_json::json!({"rules": [{"hosts": ["small.example.com"], "max_response_bytes": 50}]});
    let refused = Gateway::new().plugin(committed.with_config(config)).validate().await.expect_err("a response limit");
    assert!(refused.to_string().contains("use the `grpc-limits` image"), "{refused}");
    Ok(())
}

/// The suite's two images. The manifests deploy `suite-requests`, which exports no response callbacks and so
/// refuses a response limit at load (Envoy rejects the filter, with the plugin's reason in its log); the `suite`
/// image takes the same config and holds responses to it as grpc-limits does.
#[tokio::test]
async fn only_the_suite_image_that_sees_responses_takes_a_response_limit() -> Result<()> {
    let response = |name: &String| name.starts_with("proxy_on_response_");
    assert!(!callbacks("suite-requests")?.iter().any(response), "{:?}", callbacks("suite-requests")?);
    assert_eq!(callbacks("suite")?.iter().filter(|n| response(n)).count(), 2, "headers and body");

    let sections = serde_json::json!({
        "basic_auth": null, "host_router": null,
        "grpc_limits": {"rules": [{"hosts": ["small.example.com"], "max_response_bytes": 50}]},
    });
    let [committed] = Filters::Suite.plugins(&sections)?.try_into().map_err(|_| anyhow!("one suite CR"))?;
    assert_eq!(committed.image_name(), "suite-requests", "the image the manifests deploy");
    let refused = Gateway::new().plugin(committed.clone()).validate().await.expect_err("a response limit");
    assert!(refused.to_string().contains("use the `suite` image"), "{refused}");

    let s = PluginGateway::with([committed.with_image("suite")]).start().await?;
    let r = RawRequest::get("/").host("small.example.com").send(s.envoy.listener).await?;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("response body is over the limit of 50 bytes"), "{}", r.text());
    assert_eq!(RawRequest::get("/").host("big.example.com").send(s.envoy.listener).await?.status, 200);
    assert_eq!(s.counter(GrpcLimits::RefusedResponseBytes).await?, 1);
    Ok(())
}

/// gRPC-Web as a browser sends it (HTTP/1.1, chunked): binary frames are read like gRPC's, base64 (text) bodies
/// are held to the limit by their decoded size, and refusals come in gRPC-Web's form (HTTP 200, `grpc-status: 8`).
#[tokio::test]
async fn grpc_web_is_limited_like_grpc() -> Result<()> {
    let s = stack().await?;
    let post = |content_type: &str, body: Vec<u8>| {
        RawRequest::new("POST", INFER)
            .host(HOST)
            .header("authorization", &authorization())
            .header("content-type", content_type)
            .body(body)
            .chunked(64 * 1024)
    };
    // A prefix announcing 129 MiB, over the committed 128 MiB ModelInfer limit: refused at the first chunk.
    let announced = [0u8, 0x08, 0x10, 0, 0];
    let mut binary = announced.to_vec();
    binary.extend_from_slice(&[7u8; 1000]);
    let r = post("application/grpc-web+proto", binary.clone()).send(s.envoy.listener).await?;
    assert_eq!((r.status, r.header("grpc-status")), (200, Some("8")), "{}", r.text());
    assert!(r.header("grpc-message").is_some_and(|m| m.contains("received message larger than max")), "{r:?}");
    assert_eq!(s.upstream().count(), 0);
    // The same bytes in base64 decode to 1005 bytes: what the server will read is small, so it passes.
    let text = STANDARD.encode(&binary).into_bytes();
    let r = post("application/grpc-web-text", text.clone()).send(s.envoy.listener).await?;
    assert_eq!((r.status, r.header("grpc-status")), (200, None), "{}", r.text());
    let seen = s.upstream().requests();
    assert_eq!((seen.len(), seen[0].body_len), (1, text.len() as u64));
    // Read as frames, those base64 characters would announce ~1 GiB ("AgQA" is 0x41675141): never how it is read.
    assert_eq!(s.counter(GrpcLimits::RefusedMessageBytes).await?, 1);
    Ok(())
}

/// Only `application/grpc-web-text` and `application/grpc-web-text+proto`, spelled exactly so, are decoded as
/// base64 by tonic-web (and Envoy's grpc_web filter); other spellings reach the server's binary reader. Read as
/// base64 by the plugin, a binary message up to 4/3 of the limit passed. Each is now limited as the binary
/// frames the server reads, and so is a body that two content types describe two ways.
#[tokio::test]
async fn text_spellings_the_server_reads_as_binary_are_limited_as_binary() -> Result<()> {
    let s = stack().await?;
    // A prefix announcing 129 MiB, over the committed 128 MiB ModelInfer limit.
    let mut binary = vec![0u8, 0x08, 0x10, 0, 0];
    binary.extend_from_slice(&[7u8; 1000]);
    let spellings: [&[&str]; 5] = [
        &["application/grpc-web-text+json"],
        &["Application/grpc-web-text"],
        &["application/grpc-web-text; charset=utf-8"],
        &["application/grpc-web-text", "application/grpc-web"],
        &["text/plain", "application/grpc-web-text"],
    ];
    for content_types in spellings {
        let mut request = RawRequest::new("POST", INFER).host(HOST).header("authorization", &authorization());
        for content_type in content_types {
            request = request.header("content-type", content_type);
        }
        let r = request.body(binary.clone()).chunked(64 * 1024).send(s.envoy.listener).await?;
        // Envoy joins repeated content types into one value; one that starts `text/plain` is no gRPC-Web client
        // and hears the refusal as HTTP.
        let refused = (r.status, r.header("grpc-status")) == (200, Some("8")) || matches!(r.status, 413 | 415);
        assert!(refused, "{content_types:?}: {} {:?}", r.status, r.text());
    }
    // Envoy may have passed a request's headers on before its first chunk was refused: no byte of the body, and
    // the stream reset.
    for seen in s.upstream().requests() {
        assert_eq!((seen.body_len, seen.complete), (0, false), "{:?}", seen.header("content-type"));
    }
    // Envoy joins the last pair into `text/plain,application/grpc-web-text`: no gRPC client at all, refused for
    // its content type before any of its body is read.
    let refused = s.counter(GrpcLimits::RefusedMessageBytes).await? + s.counter(GrpcLimits::RefusedContentType).await?;
    assert_eq!(refused, spellings.len() as u64);
    Ok(())
}

#[tokio::test]
async fn malformed_grpc_bodies_never_break_the_vm() -> Result<()> {
    let s = stack().await?;
    let post = |body: Vec<u8>| {
        RawRequest::new("POST", METADATA)
            .host("other.example.com")
            .header("content-type", "application/grpc")
            .body(body)
    };
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("ends mid-prefix", vec![0, 0, 0], None),
        ("zero-length message", vec![0, 0, 0, 0, 0], None),
        ("prefix promises more than comes", vec![0, 0, 0, 0, 9, b'x'], None),
        ("prefix announces 10 MiB", vec![0, 0, 0xA0, 0, 0, b'x'], Some("8")),
        ("flag byte not 0 or 1", vec![0xFF, 0, 0, 0, 1, b'x'], None),
    ];
    for (what, body, grpc_status) in cases {
        let r = post(body).send(s.envoy.listener).await?;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        // Passed on to the upstream (gRPC trailers do not survive HTTP/1.1), or refused with a gRPC status.
        assert_eq!(r.header("grpc-status"), grpc_status, "{what}");
        assert_eq!(r.header("x-upstream").is_some(), grpc_status.is_none(), "{what}");
    }
    assert_eq!(s.counter(GrpcLimits::Truncated).await?, 2);
    assert_eq!(s.counter(GrpcLimits::RefusedMessageBytes).await?, 1);
    assert!(call(&s, HOST, INFER, payload(1000), true).await.is_ok(), "the VM is still serving");
    Ok(())
}

// CSRF: a browser sends a signed-in user's cached Basic credentials with a form that another site's page
// auto-submits (`enctype=text/plain`, urlencoded, multipart: no preflight), and tonic decoded the body, built to
// survive form encoding, as ModelInfer. No request a browser sends cross-site without asking reaches a gRPC method:
// the plugins refuse it on the model hosts, and the model server refuses it itself.

async fn a_cross_site_form_never_reaches_a_grpc_method(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let body = infer_body(1);
    let paths = [INFER, "/inference.GRPCInferenceService/ServerReady", "/tensorflow.serving.PredictionService/Predict"];
    for path in paths {
        for (what, content_type) in cross_site_forms() {
            let mut form = RawRequest::new("POST", path)
                .host(HOST)
                .basic_auth(USER, PASSWORD)
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site");
            if let Some(content_type) = content_type {
                form = form.header("content-type", content_type);
            }
            let r = form.body(body.clone()).send(stack.envoy.listener).await?;
            assert_eq!(r.status, 415, "{path} {what}: {:?}", r.text());
        }
    }
    assert_eq!(stack.stable.stats.snapshot(), Default::default(), "nothing reached a model");
    assert_eq!(stack.counter(GrpcLimits::RefusedContentType).await?, 3 * cross_site_forms().len() as u64);
    // The signed-in page's own calls (gRPC-Web, same origin) still work.
    let page = RawRequest::new("POST", "/inference.GRPCInferenceService/ServerReady")
        .host(HOST)
        .basic_auth(USER, PASSWORD)
        .header("content-type", "application/grpc-web+proto")
        .header("sec-fetch-site", "same-origin")
        .body(frame(&[]))
        .send(stack.envoy.listener)
        .await?;
    // gRPC-Web's answer: the message (`ready: true`), then its trailers in a frame of their own.
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.starts_with(&[0, 0, 0, 0, 2, 8, 1]) && page.text().contains("grpc-status:0"), "{page:?}");
    Ok(())
}

// A 1.5 MiB message over a 1 MiB message limit reached ModelInfer when sent as text/plain, with no
// content-type, as application/octet-stream, or with two content-type headers; tonic decoded it.

async fn the_message_limit_holds_whatever_the_content_type(filters: Filters) -> Result<()> {
    let sections = json!({"grpc_limits": {"default": {"max_request_bytes": "4Mi", "max_message_bytes": "4Mi"},
        "rules": [{"name": "model-infer", "hosts": [HOST], "grpc_method": "inference.GRPCInferenceService/ModelInfer",
                   "max_request_bytes": "4Mi", "max_message_bytes": "1Mi"}]}});
    let stack = FullStack::start_overriding(filters.deployment(), &sections).await?;
    let body = frame(&client::fp32_zeros(32).encode_to_vec());
    assert!(body.len() > 1_500_000);
    let types: [&[&str]; 4] =
        [&["text/plain"], &[], &["application/octet-stream"], &["text/plain", "application/grpc"]];
    for content_types in types {
        let mut h1 = RawRequest::new("POST", INFER).host(HOST).basic_auth(USER, PASSWORD).header("te", "trailers");
        let mut h2 = H2Request::new("POST", INFER, HOST).basic_auth(USER, PASSWORD).header("te", "trailers");
        for content_type in content_types {
            h1 = h1.header("content-type", content_type);
            h2 = h2.header("content-type", content_type);
        }
        // Not gRPC at all: refused for its content type (415). Said to be gRPC by one of two: held to the limit.
        let refused = |status: u16, grpc_status: Option<u32>| matches!(status, 413 | 415) || grpc_status == Some(8);
        let r = h1.body(body.clone()).send(stack.envoy.listener).await?;
        let grpc_status = r.header("grpc-status").and_then(|s| s.parse().ok());
        assert!(refused(r.status, grpc_status), "HTTP/1.1 {content_types:?}: {} {:?}", r.status, r.headers);
        let r = h2.body(body.clone()).send(stack.envoy.listener).await?;
        assert!(refused(r.status, r.grpc_status()), "HTTP/2 {content_types:?}: {r:?}");
    }
    assert_eq!(stack.stable.stats.snapshot(), Default::default(), "the model server decoded nothing");
    let content_type = stack.counter(GrpcLimits::RefusedContentType).await?;
    let message_bytes = stack.counter(GrpcLimits::RefusedMessageBytes).await?;
    assert_eq!((content_type + message_bytes, content_type >= 6), (8, true), "{content_type} + {message_bytes}");
    Ok(())
}

wasmgate_e2e::for_both_layouts!(
    a_cross_site_form_never_reaches_a_grpc_method,
    the_message_limit_holds_whatever_the_content_type,
);
