//! host-router through a real Envoy (V8): the route table picks the upstream by the header the plugin sets,
//! chained after basic-auth and grpc-limits as the committed CRs order them.
//!
//! Attacks found in the shipped configuration are here too, each as the scenario that proves it closed; those run
//! with the three plugin filters and with the suite (`for_both_layouts!`).

use anyhow::Result;
use bytes::Bytes;
use serde_json::{Value, json};
use tonic::Code;
use wasmgate_e2e::PathNormalization;
use wasmgate_e2e::counters::RouterRule;
use wasmgate_e2e::fixtures::{CANARY_HOST, HOST, INFER, authorization};
use wasmgate_e2e::fixtures::{PASSWORD, USER};
use wasmgate_e2e::grpc::{channel, raw_unary};
use wasmgate_e2e::http1::basic_authorization;
use wasmgate_e2e::http2::H2Request;
use wasmgate_e2e::plugin_gateway::PluginGateway;
use wasmgate_e2e::stack::{Filters, FullStack, recording_gateway};
use wasmgate_e2e::{RawRequest, WasmPlugin, workspace};
use wasmgate_inference::client;

/// Two upstreams; a VirtualService sends `x-wasmgate-route: canary` to the second, everything else to the first.
async fn stack(plugins: Vec<WasmPlugin>) -> Result<PluginGateway> {
    PluginGateway::with(plugins)
        .upstreams(&["stable", "canary"])
        .route_header("x-wasmgate-route", "canary", "canary")
        .start()
        .await
}

async fn committed() -> Result<PluginGateway> {
    stack(workspace::plugin_crs()?).await
}

async fn with_config(config: Value) -> Result<PluginGateway> {
    stack(vec![workspace::plugin_cr("host-router")?.with_config(config)]).await
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
    assert_eq!(s.counter(RouterRule("canary-host")).await?, 1);
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
    assert_eq!(s.counter(RouterRule("admin")).await?, 2);
    Ok(())
}

#[tokio::test]
async fn routing_runs_after_auth_and_limits() -> Result<()> {
    let s = committed().await?;
    // The health direct response sits behind basic-auth (AUTHN runs first) ...
    let unauthenticated = RawRequest::get("/healthz").host(HOST).send(s.envoy.listener).await?;
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(s.counter(RouterRule("healthz")).await?, 0, "host-router never saw it");
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
    assert_eq!(s.counter(RouterRule("canary-host")).await?, 0);
    assert_eq!(s.upstream_named("canary")?.count() + s.upstream_named("stable")?.count(), 0);
    Ok(())
}

// Host spellings Envoy routes to a virtual host but the plugins read as another host (or none): basic-auth's
// host rules and host-router's deny rules were skipped.

/// A basic-auth rule on the model hosts; or (`router_only`) host-router alone, denying everything on them.
fn host_rules(router_only: bool) -> Value {
    let deny_all = json!({"hosts": [
        {"host": HOST, "default": {"name": "closed", "deny": {"status": 403}}},
        {"host": "*.ml.example.com", "default": {"name": "closed-sub", "deny": {"status": 403}}}]});
    if router_only {
        return json!({"basic_auth": null, "grpc_limits": null, "host_router": deny_all});
    }
    json!({
        "basic_auth": {"basic_auth_rules": [{"prefix": "/", "request_methods": ["*"], "credentials": ["username:password"],
                                             "hosts": [HOST, "*.ml.example.com"]}]},
        "grpc_limits": null,
        "host_router": deny_all,
    })
}

const BAD_HOSTS: [&str; 6] = [
    "a:b.ml.example.com:443",
    "[x]a.ml.example.com",
    "ml.example.com:1:2",
    "ml.example.com,x",
    "a.ml.example.com:@evil.example",
    "ml.example.com:99999",
];

async fn host_spellings_the_router_reads_differently_are_refused(filters: Filters) -> Result<()> {
    for router_only in [false, true] {
        let (envoy, upstream) = recording_gateway(filters, host_rules(router_only), PathNormalization::Base).await?;
        for host in BAD_HOSTS {
            let r = RawRequest::get("/").host(host).send(envoy.listener).await?;
            assert_eq!(r.status, 400, "HTTP/1.1 Host {host}: {}", r.text());
            let r = H2Request::new("GET", "/", host).send(envoy.listener).await?;
            assert!(r.status == 400 || r.refused_by_protocol(), "HTTP/2 :authority {host}: {r:?}");
        }
        // Two Host headers, which a proxy may join with a comma.
        let r = RawRequest::get("/").host(HOST).header("host", "x").send(envoy.listener).await?;
        assert_eq!(r.status, 400, "two Host headers");
        // Well-formed spellings of the same hosts still get the rules.
        let want = if router_only { 403 } else { 401 };
        for host in ["ML.example.com:443", "a.ml.example.com", "a.ml.example.com."] {
            assert_eq!(RawRequest::get("/x").host(host).send(envoy.listener).await?.status, want, "{host}");
        }
        assert_eq!(upstream.count(), 0, "nothing reached the upstream: {:?}", upstream.requests());
    }
    Ok(())
}

// `Host: ml.example.com:@evil.example` on a redirect rule answered `location: https://ml.example.com:@evil.example/login`.

async fn redirects_never_point_where_the_client_wrote(filters: Filters) -> Result<()> {
    let sections = json!({"basic_auth": null, "grpc_limits": null, "host_router": {"hosts": [{"host": HOST, "rules": [
        {"name": "login-https", "match": {"prefix": "/login"}, "redirect": {"status": 308, "https": true}}]}]}});
    let (envoy, upstream) = recording_gateway(filters, sections, PathNormalization::Base).await?;
    for host in ["ml.example.com:@evil.example", "ml.example.com:80@evil.example", "ml.example.com@evil.example"] {
        let r = RawRequest::get("/login").host(host).send(envoy.listener).await?;
        assert_eq!(r.status, 400, "{host}: {:?}", r.header("location"));
        let r = H2Request::new("GET", "/login", host).send(envoy.listener).await?;
        assert!(r.status == 400 || r.refused_by_protocol(), "{host}: {r:?}");
    }
    let r = RawRequest::get("/login?next=/a").host("ML.example.com:8080").send(envoy.listener).await?;
    assert_eq!((r.status, r.header("location")), (308, Some("https://ml.example.com/login?next=/a")));
    assert_eq!(upstream.count(), 0);
    Ok(())
}

// A client's `x-wasmgate-route: canary` reached routing unchanged and picked the canary.

async fn clients_cannot_pick_the_canary(filters: Filters) -> Result<()> {
    let stack = FullStack::start_with(filters.deployment()).await?;
    let images = client::generated(2);
    for version in ["canary", "stable"] {
        let mut request = tonic::Request::new(images.request());
        request.metadata_mut().insert("x-wasmgate-route", "canary".parse()?);
        request.metadata_mut().insert("x-model-version", version.parse()?);
        request.metadata_mut().insert("authorization", basic_authorization(USER, PASSWORD).parse()?);
        let channel = wasmgate_e2e::grpc::channel(stack.envoy.listener, HOST).await?;
        let mut grpc =
            wasmgate_inference::proto::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
        grpc.model_infer(request).await?;
    }
    // The gateway's own rule (`x-model-version: canary`) still routes to the canary; the client's header alone does not.
    assert_eq!(stack.canary.stats.snapshot().infer_ok, 1);
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 1);
    // The canary host is the gateway's routing too.
    let mut canary = stack.target(CANARY_HOST, Some((USER, PASSWORD))).connect().await?;
    canary.classify(&images).await?;
    assert_eq!(stack.canary.stats.snapshot().infer_ok, 2);
    Ok(())
}

// A route chosen by the user basic-auth authenticated must follow that user, never a name the client wrote
// into the forwarded header: the router reads the headers after basic-auth changed them, as separate filters
// and inside the suite (which hands its parts the changed headers without asking Envoy again).

async fn routes_by_user_follow_the_authenticated_user(filters: Filters) -> Result<()> {
    let route_for = |user: &str| {
        json!({"name": format!("as-{user}"), "match": {"prefix": "/", "headers": [{"name": "x-wasmgate-user", "exact": user}]},
               "set_headers": {"x-wasmgate-route": user}})
    };
    let sections = json!({
        "basic_auth": {"forward_user_header": "x-wasmgate-user", "basic_auth_rules": [
            {"prefix": "/", "request_methods": ["*"], "credentials": ["username:password", "reader:r-pw"],
             "exempt_paths": [{"prefix": "/public/"}]}]},
        "host_router": {"hosts": [{"host": HOST, "rules": [route_for("admin"), route_for("username")]}],
                        "gateway_headers": ["x-wasmgate-route"]}});
    let (envoy, upstream) = recording_gateway(filters, sections, PathNormalization::Base).await?;
    type Case<'c> = (&'c str, Option<(&'c str, &'c str)>, &'c [(&'c str, &'c str)], Option<&'c str>, Option<&'c str>);
    let cases: [Case; 4] = [
        ("/models", Some((USER, PASSWORD)), &[("x-wasmgate-user", "admin")], Some(USER), Some(USER)),
        (
            "/models",
            Some(("reader", "r-pw")),
            &[("x-wasmgate-user", "admin"), ("X-Wasmgate-User", "username")],
            Some("reader"),
            None,
        ),
        ("/models", Some(("reader", "r-pw")), &[("x-wasmgate-route", "admin")], Some("reader"), None),
        // Nobody authenticated: the claim is removed and nothing is forwarded.
        ("/public/x", None, &[("x-wasmgate-user", "admin")], None, None),
    ];
    for (path, credentials, claims, user, route) in cases {
        let mut r = RawRequest::get(path).host(HOST);
        if let Some((name, password)) = credentials {
            r = r.basic_auth(name, password);
        }
        for (name, value) in claims {
            r = r.header(name, value);
        }
        assert_eq!(r.send(envoy.listener).await?.status, 200, "{path} {claims:?}");
        let last = upstream.requests().pop().expect("a request reached the upstream");
        let values = |name: &str| -> Vec<&str> {
            last.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
        };
        assert_eq!(values("x-wasmgate-user"), user.into_iter().collect::<Vec<_>>(), "{path} {claims:?}");
        assert_eq!(values("x-wasmgate-route"), route.into_iter().collect::<Vec<_>>(), "{path} {claims:?}");
    }
    Ok(())
}

wasmgate_e2e::for_both_layouts!(
    host_spellings_the_router_reads_differently_are_refused,
    redirects_never_point_where_the_client_wrote,
    clients_cannot_pick_the_canary,
    routes_by_user_follow_the_authenticated_user,
);
