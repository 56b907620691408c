//! No request without valid credentials reaches the upstream, however it is written: header name case,
//! duplicate headers, scheme spelling, path tricks, host spellings, absolute-form targets, HTTP/1.1 and HTTP/2.

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use wasmgate_e2e::fixtures::{HOST, authorization};
use wasmgate_e2e::istio::load_wasm_plugin;
use wasmgate_e2e::{Gateway, PathNormalization, RawRequest, RunningGateway, Upstream, workspace};

async fn gateway(normalization: PathNormalization) -> Result<(RunningGateway, Upstream)> {
    let upstream = Upstream::start("models").await?;
    let cr = load_wasm_plugin(&workspace::manifests_dir(), "basic-auth")?.with_config(json!({
        "basic_auth_rules": [{"prefix": "/admin", "request_methods": ["GET", "POST"], "credentials": ["username:password"],
                              "hosts": [HOST]}]
    }));
    let envoy =
        Gateway::new().plugin(cr).upstream("models", upstream.addr).normalization(normalization).start().await?;
    Ok((envoy, upstream))
}

/// Sends raw bytes (for request lines no builder writes) and returns the status.
async fn raw(envoy: &RunningGateway, request: &str) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(envoy.listener).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(wasmgate_e2e::http1::parse_response(&response)?.status)
}

#[tokio::test]
async fn request_spellings_never_bypass_auth() -> Result<()> {
    let (envoy, upstream) = gateway(PathNormalization::MergeSlashes).await?;
    let good = authorization();
    let bad = format!("Basic {}", STANDARD.encode("username:wrong"));
    let cases: Vec<(&str, RawRequest)> = vec![
        ("upper-case header name", RawRequest::get("/admin").host(HOST).header("AUTHORIZATION", &bad)),
        ("mixed-case host", RawRequest::get("/admin").host("ML.Example.COM")),
        ("trailing dot in host", RawRequest::get("/admin").host("ml.example.com.")),
        ("host with port", RawRequest::get("/admin").host("ml.example.com:80")),
        ("dot segment", RawRequest::get("/public/../admin").host(HOST)),
        ("current-dir segment", RawRequest::get("/./admin").host(HOST)),
        ("double slash", RawRequest::get("//admin").host(HOST)),
        ("encoded dot", RawRequest::get("/%2e/admin").host(HOST)),
        ("query", RawRequest::get("/admin?x=/public").host(HOST)),
        (
            "valid then invalid header",
            RawRequest::get("/admin").host(HOST).header("authorization", &good).header("authorization", &bad),
        ),
        (
            "invalid then valid header",
            RawRequest::get("/admin").host(HOST).header("authorization", &bad).header("authorization", &good),
        ),
        ("scheme only", RawRequest::get("/admin").host(HOST).header("authorization", "Basic ")),
        ("bearer", RawRequest::get("/admin").host(HOST).header("authorization", "Bearer x")),
    ];
    for (what, request) in cases {
        let r = request.send(envoy.listener).await?;
        assert!(r.status == 401 || r.status == 400, "{what}: answered {}", r.status);
    }
    // Absolute-form target: the authority comes from the URL, not from the Host header.
    let status =
        raw(&envoy, "GET http://ml.example.com/admin HTTP/1.1\r\nhost: other.example.com\r\nconnection: close\r\n\r\n")
            .await?;
    assert!(status == 401 || status == 400, "absolute-form: {status}");
    assert_eq!(upstream.count(), 0, "nothing reached the upstream: {:?}", upstream.requests());

    // And the same request with the right credentials does get through, in either header-name case.
    let ok = RawRequest::get("/admin").host(HOST).header("Authorization", &good).send(envoy.listener).await?;
    assert_eq!(ok.status, 200);
    Ok(())
}

#[tokio::test]
async fn encoded_slashes_follow_the_gateways_normalisation() -> Result<()> {
    // With DECODE_AND_MERGE_SLASHES (Istio's strictest), `%2F` is decoded before the plugin sees the path.
    let (envoy, upstream) = gateway(PathNormalization::DecodeAndMergeSlashes).await?;
    let r = RawRequest::get("/admin%2Fusers").host(HOST).send(envoy.listener).await?;
    assert_eq!(r.status, 401);
    let r = RawRequest::get("/%2Fadmin").host(HOST).send(envoy.listener).await?;
    assert_eq!(r.status, 401);
    assert_eq!(upstream.count(), 0);
    Ok(())
}

#[tokio::test]
async fn http2_requests_are_checked_too() -> Result<()> {
    let (envoy, upstream) = gateway(PathNormalization::Base).await?;
    let channel = wasmgate_e2e::grpc::channel(envoy.listener, HOST).await?;
    let err = wasmgate_e2e::grpc::raw_unary(channel.clone(), "/admin.Svc/Do", bytes::Bytes::new(), &[])
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let good = authorization();
    wasmgate_e2e::grpc::raw_unary(channel, "/admin.Svc/Do", bytes::Bytes::new(), &[("authorization", &good)]).await?;
    assert_eq!(upstream.count(), 1);
    Ok(())
}
