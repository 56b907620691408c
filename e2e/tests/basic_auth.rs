//! basic-auth through a real Envoy (V8), configured from the committed WasmPlugin CR.

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wasmgate_e2e::fixtures::{HOST, authorization};
use wasmgate_e2e::istio::load_wasm_plugin;
use wasmgate_e2e::plugin_gateway::PluginGateway;
use wasmgate_e2e::{Gateway, PathNormalization, RawRequest, Upstream, WasmPlugin, workspace};

fn committed_cr() -> WasmPlugin {
    load_wasm_plugin(&workspace::manifests_dir(), "basic-auth").expect("basic-auth WasmPlugin in manifests/")
}

/// The plugin goes through a real registry first: pushed and pinned by digest, then pulled and verified by
/// istio-agent's fetcher, so Envoy runs the module that came out of the registry.
async fn stack_with(plugin: WasmPlugin, normalization: PathNormalization) -> Result<PluginGateway> {
    PluginGateway::with([plugin]).through_registry().normalization(normalization).start().await
}

async fn stack(config: Option<Value>) -> Result<PluginGateway> {
    let cr = committed_cr();
    let plugin = match config {
        Some(c) => cr.with_config(c),
        None => cr,
    };
    stack_with(plugin, PathNormalization::Base).await
}

/// The reference deployment's `pluginConfig`, exactly as it stands there (plaintext credential).
fn reference_config() -> Value {
    json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET", "PUT", "POST", "PATCH", "DELETE"],
                                 "credentials": ["username:password"], "hosts": [HOST]}]})
}

#[tokio::test]
async fn the_committed_cr_stores_no_plaintext_password() -> Result<()> {
    let cr = committed_cr();
    let credentials = &cr.spec.plugin_config.expect("pluginConfig")["basic_auth_rules"][0]["credentials"];
    assert!(credentials[0].as_str().is_some_and(|c| c.starts_with("username:$2y$")), "{credentials}");
    let s = stack(None).await?;
    let ok = s.send(RawRequest::get("/").host(HOST).basic_auth("username", "password")).await?;
    assert_eq!(ok.status, 200);
    let wrong = s.send(RawRequest::get("/").host(HOST).basic_auth("username", "passwore")).await?;
    assert_eq!(wrong.status, 401);
    Ok(())
}

#[tokio::test]
async fn reference_config_unchanged() -> Result<()> {
    let s = stack(Some(reference_config())).await?;

    let ok = s.send(RawRequest::get("/v1/models?x=1").host(HOST).basic_auth("username", "password")).await?;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("x-upstream"), Some("models"));
    assert_eq!(s.upstream().count(), 1);
    assert_eq!(s.upstream().requests()[0].path, "/v1/models?x=1");

    let wrong = s.send(RawRequest::get("/").host(HOST).basic_auth("username", "passwore")).await?;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("www-authenticate"), Some("Basic realm=\"istio\""));
    assert!(wrong.text().contains("Invalid username and/or password"), "{}", wrong.text());

    let missing = s.send(RawRequest::new("POST", "/infer").host(HOST).body("x")).await?;
    assert_eq!(missing.status, 401);
    assert!(missing.text().contains("No Basic Authentication information found"), "{}", missing.text());

    let with_port = s.send(RawRequest::get("/").host("ml.example.com:8443")).await?;
    assert_eq!(with_port.status, 401, "a port does not take the host out of the rule");
    let with_port_ok =
        s.send(RawRequest::get("/").host("ML.example.com:8443").basic_auth("username", "password")).await?;
    assert_eq!(with_port_ok.status, 200);

    // Outside the rule: other method, other host.
    let options = s.send(RawRequest::new("OPTIONS", "/").host(HOST)).await?;
    assert_eq!(options.status, 200, "OPTIONS is not in request_methods");
    let other = s.send(RawRequest::get("/").host("other.example.com")).await?;
    assert_eq!(other.status, 200, "other hosts are not covered");

    assert_eq!(s.upstream().count(), 4, "only the allowed requests reached the upstream");
    assert_eq!(s.counter("basic_auth.allowed").await?, 2);
    assert_eq!(s.counter("basic_auth.denied.invalid").await?, 1);
    assert_eq!(s.counter("basic_auth.denied.missing").await?, 2);
    assert_eq!(s.counter("basic_auth.no_rule").await?, 2);
    Ok(())
}

#[tokio::test]
async fn paths_outside_the_rule_pass_and_normalised_paths_do_not_escape() -> Result<()> {
    let config =
        json!({"basic_auth_rules": [{"prefix": "/admin", "request_methods": ["GET"], "credentials": ["a:b"]}]});
    let s = stack(Some(config.clone())).await?;
    assert_eq!(s.send(RawRequest::get("/public").host(HOST)).await?.status, 200);
    assert_eq!(s.send(RawRequest::get("/admin/x").host(HOST)).await?.status, 401);
    // Envoy normalises before the plugin runs (Istio's BASE): dot segments and %2E cannot dodge the rule.
    assert_eq!(s.send(RawRequest::get("/public/../admin/x").host(HOST)).await?.status, 401);
    assert_eq!(s.send(RawRequest::get("/public/%2E%2E/admin").host(HOST)).await?.status, 401);

    // With MERGE_SLASHES, `//admin` is `/admin`; Istio's default BASE leaves it alone (CVE-2021-31920).
    let merged = stack_with(committed_cr().with_config(config), PathNormalization::MergeSlashes).await?;
    assert_eq!(merged.send(RawRequest::get("//admin//x").host(HOST)).await?.status, 401);
    assert_eq!(merged.upstream().count(), 0);
    Ok(())
}

#[tokio::test]
async fn hashed_credentials() -> Result<()> {
    let bcrypt_hash = bcrypt::hash("s3cret-bcrypt", 8)?;
    let sha = format!("{{SHA}}{}", STANDARD.encode(Sha1::digest(b"s3cret-sha")));
    let config = json!({"basic_auth_rules": [{
        "prefix": "/", "request_methods": ["GET"], "hosts": [HOST],
        "credentials": [format!("alice:{bcrypt_hash}"), format!("bob:{sha}")],
    }], "bcrypt_budget": {"per_second": "100ms", "burst": "2s"}});
    let s = stack(Some(config)).await?;
    for (user, password, want) in [
        ("alice", "s3cret-bcrypt", 200),
        ("alice", "s3cret-bcrypt", 200),
        ("alice", "s3cret-sha", 401),
        ("bob", "s3cret-sha", 200),
        ("bob", "wrong", 401),
        ("carol", "s3cret-sha", 401),
    ] {
        let r = s.send(RawRequest::get("/").host(HOST).basic_auth(user, password)).await?;
        assert_eq!(r.status, want, "{user}:{password}");
    }
    assert_eq!(s.upstream().count(), 3);
    Ok(())
}

/// Names do not leak by timing: with a cost-4 user, a `{SHA}` user and a user with two cost-9 entries in one rule,
/// a wrong password took 3.5 ms, 0.3 ms and 209 ms, and 113 ms for a name that does not exist. Now each takes the
/// costliest user's time. (The tolerance is wide: what it guards against is a factor of 50.)
#[tokio::test]
async fn a_wrong_password_takes_as_long_whoever_it_names() -> Result<()> {
    let sha = format!("{{SHA}}{}", STANDARD.encode(Sha1::digest(b"s3cret-sha")));
    let credentials = [
        format!("four:{}", bcrypt::hash("pw-four", 4)?),
        format!("sha:{sha}"),
        format!("two:{}", bcrypt::hash("pw-two-a", 9)?),
        format!("two:{}", bcrypt::hash("pw-two-b", 9)?),
    ];
    let config = json!({"basic_auth_rules": [{
        "prefix": "/", "request_methods": ["GET"], "hosts": [HOST], "credentials": credentials,
    }], "bcrypt_budget": {"per_second": "500ms", "burst": "60s"}});
    let s = stack(Some(config)).await?;
    let mut attempt = 0;
    let mut median = async |user: &str| {
        let mut times = Vec::new();
        for _ in 0..5 {
            attempt += 1;
            // A password not tried before: a refused pair is remembered and answered without a check.
            let request = RawRequest::get("/").host(HOST).basic_auth(user, &format!("wrong-{attempt}"));
            let started = std::time::Instant::now();
            let r = s.send(request).await?;
            assert_eq!(r.status, 401, "{user}: {r:?}");
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok::<_, anyhow::Error>(times[2])
    };
    let reference = median("two").await?;
    for user in ["four", "sha", "nobody"] {
        let ratio = median(user).await? / reference;
        assert!((0.5..2.0).contains(&ratio), "{user}: {ratio:.2} of the two-entry user's time ({reference:.3} s)");
    }
    Ok(())
}

async fn health(
    s: &PluginGateway,
    authorization: Option<&str>,
    path_service: &str,
) -> Result<ServingStatus, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", s.envoy.listener))
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .origin(format!("http://{HOST}").parse().map_err(|_| tonic::Status::internal("origin"))?)
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(HealthCheckRequest { service: path_service.into() });
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value.parse().map_err(|_| tonic::Status::internal("metadata"))?);
    }
    let response = HealthClient::new(channel).check(request).await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn grpc_clients_get_unauthenticated() -> Result<()> {
    let s = stack(Some(reference_config())).await?;
    let missing = health(&s, None, "").await.expect_err("must be refused");
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert!(missing.message().contains("No Basic Authentication information"), "{missing:?}");
    let wrong =
        health(&s, Some(&format!("Basic {}", STANDARD.encode("username:nope"))), "").await.expect_err("refused");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(s.upstream().count(), 0);
    let ok = health(&s, Some(&authorization()), "").await?;
    assert_eq!(ok, ServingStatus::Serving);
    assert_eq!(s.upstream().requests()[0].path, "/grpc.health.v1.Health/Check");
    Ok(())
}

/// A browser: the page's GET is challenged (the browser's own prompt), its gRPC-Web calls are answered in
/// gRPC-Web's trailers-only form (HTTP 200, `grpc-status` in the headers) that its client library reads, with no
/// challenge that would pop the prompt over the page.
#[tokio::test]
async fn browsers_get_the_prompt_for_the_page_and_a_status_for_grpc_web() -> Result<()> {
    let s = stack(None).await?;
    let page = s.send(RawRequest::get("/").host(HOST).header("accept", "text/html")).await?;
    assert_eq!(page.status, 401);
    assert!(page.header("www-authenticate").is_some_and(|v| v.starts_with("Basic realm=")), "{:?}", page.headers);
    let call = |content_type: &'static str, authorization: Option<String>| {
        let mut request = RawRequest::new("POST", "/inference.GRPCInferenceService/ModelInfer")
            .host(HOST)
            .header("content-type", content_type)
            .header("x-grpc-web", "1")
            .body(vec![0, 0, 0, 0, 0]);
        if let Some(value) = authorization {
            request = request.header("authorization", &value);
        }
        request
    };
    let stale = Some(format!("Basic {}", STANDARD.encode("username:old-password")));
    for (content_type, authorization) in [
        ("application/grpc-web+proto", None),
        ("application/grpc-web", stale.clone()),
        ("application/grpc-web-text", stale),
    ] {
        let r = s.send(call(content_type, authorization)).await?;
        assert_eq!(r.status, 200, "{content_type}: {}", r.text());
        assert_eq!(r.header("grpc-status"), Some("16"), "{content_type}");
        assert!(r.header("grpc-message").is_some_and(|m| !m.is_empty()), "{content_type}");
        assert_eq!(r.header("www-authenticate"), None, "{content_type}: no prompt over the page");
    }
    assert_eq!(s.upstream().count(), 0);
    let ok = s.send(call("application/grpc-web+proto", Some(authorization()))).await?;
    assert_eq!((ok.status, ok.header("grpc-status")), (200, None), "{}", ok.text());
    assert_eq!(s.upstream().count(), 1);
    Ok(())
}

#[tokio::test]
async fn grpc_health_can_be_exempt() -> Result<()> {
    let mut config = committed_cr().spec.plugin_config.expect("pluginConfig");
    config["basic_auth_rules"][0]["exempt_paths"] = json!([{"prefix": "/grpc.health.v1.Health/"}]);
    let s = stack(Some(config)).await?;
    assert_eq!(health(&s, None, "").await?, ServingStatus::Serving);
    let other = s.send(RawRequest::new("POST", "/inference.GRPCInferenceService/ModelInfer").host(HOST)).await?;
    assert_eq!(other.status, 401);
    assert_eq!(s.counter("basic_auth.exempt").await?, 1);
    Ok(())
}

#[tokio::test]
async fn malformed_headers_are_refused_and_the_vm_survives() -> Result<()> {
    let s = stack(Some(reference_config())).await?;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad base64", b"Basic !!!notbase64".to_vec()),
        ("other scheme", b"Bearer abc.def".to_vec()),
        ("no token", b"Basic".to_vec()),
        ("no colon", format!("Basic {}", STANDARD.encode("usernamepassword")).into_bytes()),
        ("empty user", format!("Basic {}", STANDARD.encode(":password")).into_bytes()),
        ("non-UTF-8 decoded", format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'p'])).into_bytes()),
        ("non-UTF-8 header", b"Basic \xff\xfe\xfd".to_vec()),
        ("oversized", format!("Basic {}", "QUFB".repeat(2000)).into_bytes()),
        ("two tokens", format!("Basic {} {}", STANDARD.encode("a:b"), STANDARD.encode("c:d")).into_bytes()),
    ];
    for (what, value) in &cases {
        let r = s.send(RawRequest::get("/").host(HOST).header_bytes("authorization", value)).await?;
        assert_eq!(r.status, 401, "{what}");
    }
    // Two headers, the first one valid: proxies and servers disagree on which counts, so neither does.
    let twice = s
        .send(RawRequest::get("/").host(HOST).basic_auth("username", "password").header("authorization", "Basic eDp5"))
        .await?;
    assert_eq!(twice.status, 401, "duplicate authorization headers");
    assert_eq!(s.upstream().count(), 0);
    assert_eq!(s.counter("basic_auth.denied.malformed").await?, cases.len() as u64 + 1);
    let ok = s.send(RawRequest::get("/").host(HOST).basic_auth("username", "password")).await?;
    assert_eq!(ok.status, 200, "the VM is still alive");
    let log = s.envoy.log();
    assert!(log.contains("credentials are not valid base64"), "reasons are logged:\n{log}");
    for secret in ["password".to_string(), STANDARD.encode("username:password"), STANDARD.encode("a:b")] {
        assert!(!log.contains(&secret), "credentials leaked into the log: {secret}");
    }
    Ok(())
}

#[tokio::test]
async fn bad_config_is_refused_by_envoy() -> Result<()> {
    let cases = [
        (
            json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": []}]}),
            "basic_auth_rules[0].credentials",
        ),
        (
            json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"], "host": ["x"]}]}),
            "unknown field `host`",
        ),
        (
            json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["u:$2y$10$tooshort"]}]}),
            "bad bcrypt hash",
        ),
    ];
    let upstream = Upstream::start("models").await?;
    for (config, want) in cases {
        let gateway =
            || Gateway::new().plugin(committed_cr().with_config(config.clone())).upstream("models", upstream.addr);
        let err = gateway().validate().await.expect_err("validation must fail").to_string();
        assert!(err.contains(want), "validate: want {want:?} in:\n{err}");
        // Deployed anyway (a first deploy): Envoy rejects the plugin's config over ECDS and, with no config to
        // fall back to, answers 500; nothing passes unauthenticated.
        let envoy = gateway().start().await?;
        let r = RawRequest::get("/").host(HOST).send(envoy.listener).await?;
        assert_eq!(r.status, 500, "{}", r.text());
    }
    assert_eq!(upstream.count(), 0);
    Ok(())
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_address_out_for_that_user() -> Result<()> {
    let mut config = reference_config();
    config["lockout"] = json!({"max_failures": 3, "window": "1m", "duration": "2s"});
    let s = stack(Some(config)).await?;
    let attempt = |user: &str, password: &str| RawRequest::get("/").host(HOST).basic_auth(user, password);
    for _ in 0..3 {
        assert_eq!(s.send(attempt("username", "guess")).await?.status, 401);
    }
    let locked = s.send(attempt("username", "password")).await?;
    assert_eq!(locked.status, 429, "the right password is refused while locked out");
    assert!(locked.text().contains("Too many failed attempts"), "{}", locked.text());
    // Another user from the same address is not locked out.
    assert_eq!(s.send(attempt("admin", "guess")).await?.status, 401);
    assert_eq!(s.upstream().count(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(s.send(attempt("username", "password")).await?.status, 200, "the lockout ends");
    assert_eq!(s.counter("basic_auth.denied.invalid").await?, 4);
    assert_eq!(s.counter("basic_auth.denied.locked").await?, 1);
    assert_eq!(s.counter("basic_auth.allowed").await?, 1);
    Ok(())
}

/// Two teams' users on one gateway: `username` everywhere, `reader` everywhere but `/admin/`; the user forwarded
/// to the upstream in `x-wasmgate-user`; `/public/` exempt.
fn teams_config() -> Value {
    let users = json!(["username:password", "reader:r-pw"]);
    json!({
        "forward_user_header": "x-wasmgate-user",
        "basic_auth_rules": [
            {"prefix": "/", "request_methods": ["*"], "credentials": users, "hosts": [HOST],
             "exempt_paths": [{"prefix": "/public/"}]},
            {"prefix": "/admin/", "request_methods": ["*"], "credentials": users, "hosts": [HOST],
             "allow": ["username"]}
        ]
    })
}

/// The values of `x-wasmgate-user` the upstream received on its last request, in its headers and its trailers,
/// in any letter case and with `_` for `-` (as CGI-style backends read names).
fn forwarded_users(upstream: &Upstream) -> Vec<String> {
    let last = upstream.requests().pop().expect("a request reached the upstream");
    let identity = |name: &str| name.replace('_', "-").eq_ignore_ascii_case("x-wasmgate-user");
    last.headers.iter().chain(&last.trailers).filter(|(k, _)| identity(k)).map(|(_, v)| v.clone()).collect()
}

/// A client's `x-wasmgate-user`, however spelled and however many, never reaches the upstream: not on an
/// authenticated request (which carries the real user instead), not on an exempt path, not on a host no rule
/// covers; over HTTP/1.1 and HTTP/2.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_can_never_say_who_it_is_to_the_upstream() -> Result<()> {
    let stack = stack(Some(teams_config())).await?;
    let spoofs: [&[(&str, &str)]; 6] = [
        &[("X-Wasmgate-User", "username")],
        &[("x-wasmgate-user", "username"), ("x-wasmgate-user", "admin")],
        &[("x-wasmgate-user", "")],
        &[("X-WASMGATE-USER", "username"), ("x-wasmgate-user", "reader")],
        &[("x_wasmgate_user", "username")],
        &[("x-wasmgate_user", "username"), ("X_Wasmgate-User", "admin")],
    ];
    for spoof in spoofs {
        let cases = [
            (HOST, "/models", Some(("reader", "r-pw")), vec!["reader".to_owned()]),
            (HOST, "/public/x", None, vec![]),
            ("other.example.com", "/models", None, vec![]),
        ];
        for (host, path, credentials, expected) in cases {
            let mut h1 = RawRequest::get(path).host(host);
            for (name, value) in spoof {
                h1 = h1.header(name, value);
            }
            if let Some((user, password)) = credentials {
                h1 = h1.basic_auth(user, password);
            }
            let r = stack.send(h1).await?;
            assert_eq!(r.status, 200, "HTTP/1.1 {host}{path} {spoof:?}: {r:?}");
            assert_eq!(forwarded_users(stack.upstream()), expected, "HTTP/1.1 {host}{path} {spoof:?}");

            let mut h2 = wasmgate_e2e::http2::H2Request::new("GET", path, host);
            for (name, value) in spoof {
                h2 = h2.header(name, value);
            }
            if let Some((user, password)) = credentials {
                h2 = h2.basic_auth(user, password);
            }
            let before = stack.upstream().count();
            let r = h2.send(stack.envoy.listener).await?;
            if spoof.iter().any(|(name, _)| name.bytes().any(|b| b.is_ascii_uppercase())) {
                // Upper-case names are not HTTP/2: Envoy refuses the stream before any filter runs.
                assert!(r.refused_by_protocol() || r.status == 400, "HTTP/2 {spoof:?}: {r:?}");
                assert_eq!(stack.upstream().count(), before);
            } else {
                assert_eq!(r.status, 200, "HTTP/2 {host}{path} {spoof:?}: {r:?}");
                assert_eq!(forwarded_users(stack.upstream()), expected, "HTTP/2 {host}{path} {spoof:?}");
            }
        }
    }
    // In HTTP/2 request trailers, in any spelling, after a body.
    for name in ["x-wasmgate-user", "x_wasmgate_user"] {
        for (path, credentials, expected) in
            [("/models", Some(("reader", "r-pw")), vec!["reader".to_owned()]), ("/public/x", None, vec![])]
        {
            let mut h2 = wasmgate_e2e::http2::H2Request::new("POST", path, HOST).body("x").trailer(name, "username");
            if let Some((user, password)) = credentials {
                h2 = h2.basic_auth(user, password);
            }
            let r = h2.send(stack.envoy.listener).await?;
            assert_eq!(r.status, 200, "trailer {name} on {path}: {r:?}");
            assert_eq!(forwarded_users(stack.upstream()), expected, "trailer {name} on {path}");
        }
    }
    // A wrong password with a claimed identity reaches nothing at all.
    let before = stack.upstream().count();
    let r = stack
        .send(RawRequest::get("/models").host(HOST).header("x-wasmgate-user", "username").basic_auth("reader", "guess"))
        .await?;
    assert_eq!(r.status, 401);
    assert_eq!(stack.upstream().count(), before);
    Ok(())
}

/// `allow` answers a valid user it leaves out with 403 (gRPC: PERMISSION_DENIED) and no challenge; each user's
/// allowed calls are counted under its name.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_outside_allow_is_forbidden_and_each_user_is_counted() -> Result<()> {
    let stack = stack(Some(teams_config())).await?;
    let admin = stack.send(RawRequest::get("/admin/models").host(HOST).basic_auth("username", "password")).await?;
    assert_eq!(admin.status, 200);
    assert_eq!(forwarded_users(stack.upstream()), ["username"]);
    let reader = stack.send(RawRequest::get("/admin/models").host(HOST).basic_auth("reader", "r-pw")).await?;
    assert_eq!(reader.status, 403, "{reader:?}");
    assert_eq!(reader.header("www-authenticate"), None);
    assert!(!reader.text().contains("r-pw"));
    let grpc = wasmgate_e2e::http2::H2Request::new("POST", "/admin/inference.GRPCInferenceService/ModelInfer", HOST)
        .header("content-type", "application/grpc")
        .basic_auth("reader", "r-pw")
        .body(vec![0u8; 5])
        .send(stack.envoy.listener)
        .await?;
    assert_eq!((grpc.status, grpc.grpc_status()), (200, Some(7)), "{grpc:?}");
    // A wrong password is a 401 like anyone's: the allow list tells a guesser nothing.
    let guess = stack.send(RawRequest::get("/admin/models").host(HOST).basic_auth("reader", "guess")).await?;
    assert_eq!(guess.status, 401);
    for _ in 0..2 {
        let ok = stack.send(RawRequest::get("/models").host(HOST).basic_auth("reader", "r-pw")).await?;
        assert_eq!(ok.status, 200);
    }
    assert_eq!(stack.upstream().count(), 3);
    assert_eq!(stack.counter("basic_auth.denied.forbidden").await?, 2);
    assert_eq!(stack.counter("basic_auth.user.username.allowed").await?, 1);
    assert_eq!(stack.counter("basic_auth.user.reader.allowed").await?, 2);
    assert_eq!(stack.counter("basic_auth.allowed").await?, 3);
    Ok(())
}
