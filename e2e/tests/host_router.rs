//! host-router through a real Envoy (V8): the route table picks the upstream by the header the plugin sets,
//! chained after basic-auth and grpc-limits as the committed CRs order them.

use anyhow::Result;
use bytes::Bytes;
use serde_json::{Value, json};
use tonic::Code;
use wasmgate_e2e::fixtures::{CANARY_HOST, HOST, INFER, authorization};
use wasmgate_e2e::grpc::{channel, raw_unary};
use wasmgate_e2e::istio::{load_wasm_plugin, load_wasm_plugins};
use wasmgate_e2e::plugin_gateway::PluginGateway;
use wasmgate_e2e::{RawRequest, WasmPlugin, workspace};

/// Two upstreams; a VirtualService sends `x-wasmgate-route: canary` to the second, everything else to the first.
async fn stack(plugins: Vec<WasmPlugin>) -> Result<PluginGateway> {
    PluginGateway::with(plugins)
        .upstreams(&["stable", "canary"])
        .route_header("x-wasmgate-route", "canary", "canary")
        .start()
        .await
}

async fn committed() -> Result<PluginGateway> {
    stack(load_wasm_plugins(&workspace::plugin_crs_dir())?).await
}

async fn with_config(config: Value) -> Result<PluginGateway> {
    stack(vec![load_wasm_plugin(&workspace::manifests_dir(), "host-router")?.with_config(config)]).await
}

/// GET `path` on `host`, signed in.
async fn get(s: &PluginGateway, host: &str, path: &str) -> Result<wasmgate_e2e::RawResponse> {
    s.send(RawRequest::get(path).host(host).header("authorization", &authorization())).await
}

#[tokio::test]
async fn the_canary_host_reaches_the_canary_upstream() -> Result<()> {
    let s = committed().await?;
    let canary = get(&s, CANARY_HOST, "/v1/models").await?;
    assert_eq!(canary.header("x-upstream"), Some("canary"), "Envoy re-picked the route after the plugin's header");
    let stable = get(&s, HOST, "/v1/models").await?;
    assert_eq!(stable.header("x-upstream"), Some("stable"));
    assert_eq!((s.upstream_named("canary")?.count(), s.upstream_named("stable")?.count()), (1, 1));
    assert_eq!(s.upstream_named("canary")?.requests()[0].header("x-wasmgate-route"), Some("canary"));
    assert_eq!(s.counter("host_router.rules.canary-host").await?, 1);
    Ok(())
}

#[tokio::test]
async fn grpc_requests_are_routed_by_method_and_header() -> Result<()> {
    let s = committed().await?;
    let auth = authorization();
    let call = |metadata: Vec<(&'static str, String)>| {
        let addr = s.envoy.listener;
        async move {
            let refs: Vec<(&'static str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw_unary(channel(addr, HOST).await.expect("channel"), INFER, Bytes::from_static(b"x"), &refs).await
        }
    };
    call(vec![("authorization", auth.clone())]).await?;
    call(vec![("authorization", auth.clone()), ("x-model-version", "canary".into())]).await?;
    assert_eq!((s.upstream_named("stable")?.count(), s.upstream_named("canary")?.count()), (1, 1));
    assert_eq!(s.upstream_named("canary")?.requests()[0].path, INFER);

    // Routing by method alone: ModelMetadata goes to the canary, ModelInfer stays.
    let by_method = with_config(json!({"hosts": [{"host": HOST, "rules": [{
        "name": "metadata", "match": {"exact": "/inference.GRPCInferenceService/ModelMetadata"},
        "set_headers": {"x-wasmgate-route": "canary"}}]}]}))
    .await?;
    let ch = channel(by_method.envoy.listener, HOST).await?;
    raw_unary(ch.clone(), "/inference.GRPCInferenceService/ModelMetadata", Bytes::from_static(b"m"), &[]).await?;
    raw_unary(ch, INFER, Bytes::from_static(b"i"), &[]).await?;
    assert_eq!(by_method.upstream_named("canary")?.requests()[0].path, "/inference.GRPCInferenceService/ModelMetadata");
    assert_eq!(by_method.upstream_named("stable")?.requests()[0].path, INFER);
    Ok(())
}

#[tokio::test]
async fn rewrites_redirects_direct_responses_and_denials() -> Result<()> {
    let s = with_config(json!({"hosts": [{"host": "*.example.com", "rules": [
        {"name": "v1", "match": {"prefix": "/v1/"}, "rewrite": {"prefix": {"from": "/v1/", "to": "/v2/"}}},
        {"name": "items", "match": {"regex": "^/items/[0-9]+$"},
         "rewrite": {"regex": {"pattern": "^/items/([0-9]+)$", "substitution": "/catalog/$1"}}, "host": "catalog.internal"},
        {"name": "login", "match": {"prefix": "/login"}, "redirect": {"status": 308, "https": true}},
        {"name": "moved", "match": {"exact": "/old"}, "redirect": {"status": 301, "path": "/new"}},
        {"name": "health", "match": {"exact": "/healthz"}, "direct_response": {"status": 200, "body": "ok", "content_type": "text/plain"}},
        {"name": "admin", "match": {"prefix": "/admin"}, "deny": {"status": 403, "message": "admin is internal"}}
    ]}]}))
    .await?;
    let listener = s.envoy.listener;
    let send = |path: &'static str| async move { RawRequest::get(path).host("api.example.com").send(listener).await };

    assert_eq!(send("/v1/models?limit=5").await?.status, 200);
    assert_eq!(s.upstream_named("stable")?.requests()[0].path, "/v2/models?limit=5", "rewrite seen at the upstream");
    assert_eq!(send("/items/42").await?.status, 200);
    assert_eq!(
        (
            s.upstream_named("stable")?.requests()[1].path.as_str(),
            s.upstream_named("stable")?.requests()[1].authority.as_str()
        ),
        ("/catalog/42", "catalog.internal")
    );

    let login = send("/login?next=%2Fhome").await?;
    assert_eq!((login.status, login.header("location")), (308, Some("https://api.example.com/login?next=%2Fhome")));
    let moved = send("/old?x=1").await?;
    assert_eq!((moved.status, moved.header("location")), (301, Some("http://api.example.com/new?x=1")));
    let health = send("/healthz").await?;
    assert_eq!((health.status, health.text().as_str(), health.header("content-type")), (200, "ok", Some("text/plain")));
    let admin = send("/admin/users").await?;
    assert_eq!((admin.status, admin.text().as_str()), (403, "admin is internal"));
    let grpc_admin = raw_unary(channel(s.envoy.listener, "api.example.com").await?, "/admin.Svc/Do", Bytes::new(), &[])
        .await
        .expect_err("denied");
    assert_eq!((grpc_admin.code(), grpc_admin.message()), (Code::PermissionDenied, "admin is internal"));
    assert_eq!(s.upstream_named("stable")?.count(), 2, "answers never reach an upstream");
    assert_eq!(s.counter("host_router.rules.admin").await?, 2);
    Ok(())
}

#[tokio::test]
async fn routing_runs_after_auth_and_limits() -> Result<()> {
    let s = committed().await?;
    // The health direct response sits behind basic-auth (AUTHN runs first) ...
    let unauthenticated = RawRequest::get("/healthz").host(HOST).send(s.envoy.listener).await?;
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(s.counter("host_router.rules.healthz").await?, 0, "host-router never saw it");
    let health = get(&s, HOST, "/healthz").await?;
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));
    // ... and grpc-limits (AUTHZ) refuses an oversized request before it is routed.
    let big = RawRequest::new("POST", "/upload")
        .host(CANARY_HOST)
        .basic_auth("username", "password")
        .body(vec![0u8; 5 << 20])
        .send(s.envoy.listener)
        .await?;
    assert_eq!(big.status, 413);
    assert_eq!(s.counter("host_router.rules.canary-host").await?, 0);
    assert_eq!(s.upstream_named("canary")?.count() + s.upstream_named("stable")?.count(), 0);
    Ok(())
}
