//! What only Istio's own code shows, through a real Envoy: what istio-agent does when a module cannot be fetched,
//! what Envoy does with a rejected update, an image changed under a running gateway, which plugins istiod
//! attaches and in which order and under which names, and the routes' retries as istiod sets them.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wasmgate_e2e::fixtures::{HOST, PASSWORD, USER};
use wasmgate_e2e::gateway::Extension;
use wasmgate_e2e::registry::{Registry, publish, publish_module};
use wasmgate_e2e::stack::FullStack;
use wasmgate_e2e::{Gateway, RawRequest, RunningGateway, Upstream, WasmPlugin, workspace};

fn basic_auth() -> Result<WasmPlugin> {
    workspace::plugin_cr("basic-auth")
}

async fn status(gateway: &RunningGateway, credentials: Option<(&str, &str)>) -> Result<u16> {
    let mut request = RawRequest::get("/").host(HOST);
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, password);
    }
    Ok(request.send(gateway.listener).await?.status)
}

/// basic-auth published to a registry, with `change` applied to its pinned CR, pulled by istio-agent.
async fn pulled(
    registry: &Registry,
    change: impl FnOnce(&mut WasmPlugin),
    upstream: &Upstream,
) -> Result<RunningGateway> {
    let mut plugin = publish(registry, vec![basic_auth()?]).await?.remove(0);
    change(&mut plugin);
    Gateway::new().plugin(plugin).pulled([registry.host()]).upstream("models", upstream.addr).start().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_that_cannot_be_fetched_is_replaced_by_deny_all_under_fail_close() -> Result<()> {
    let upstream = Upstream::start("models").await?;
    // The registry is down when the gateway pulls.
    let mut registry = Registry::start(None)?;
    let mut plugin = publish(&registry, vec![basic_auth()?]).await?.remove(0);
    plugin.spec.image_pull_policy = Some("Always".into());
    registry.stop();
    let down =
        Gateway::new().plugin(plugin).pulled([registry.host()]).upstream("models", upstream.addr).start().await?;
    // The pinned digest is not the image's.
    let registry = Registry::start(None)?;
    let wrong = pulled(&registry, |p| p.spec.sha256 = Some("0".repeat(64)), &upstream).await?;
    for gateway in [&down, &wrong] {
        // istio-agent put its RBAC filter in the plugin's place: every request 403, with or without credentials.
        assert_eq!(status(gateway, None).await?, 403);
        assert_eq!(status(gateway, Some((USER, PASSWORD))).await?, 403);
        assert!(gateway.istiod.log().contains("applying deny RBAC filter"), "{}", gateway.istiod.log());
    }
    assert_eq!(upstream.count(), 0, "nothing reached the model");
    Ok(())
}

/// Why the committed CRs never use FAIL_OPEN: a module that cannot be fetched is replaced by allow-all, and the
/// gateway serves as if it had no authentication.
#[tokio::test(flavor = "multi_thread")]
async fn under_fail_open_a_module_that_cannot_be_fetched_lets_everything_through() -> Result<()> {
    let upstream = Upstream::start("models").await?;
    let registry = Registry::start(None)?;
    let gateway = pulled(
        &registry,
        |p| {
            p.spec.sha256 = Some("0".repeat(64));
            p.spec.fail_strategy = Some("FAIL_OPEN".into());
        },
        &upstream,
    )
    .await?;
    assert_eq!(status(&gateway, None).await?, 200, "an unauthenticated request passed");
    assert_eq!(upstream.count(), 1);
    assert!(gateway.istiod.log().contains("applying allow RBAC filter"), "{}", gateway.istiod.log());
    Ok(())
}

/// Waits until Envoy has taken (or refused) the pushed update of every extension.
async fn settled(gateway: &RunningGateway, want: Extension, since: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let updates = gateway.extension_updates().await?;
        if updates > since && gateway.extensions().await?.values().all(|e| *e == want) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "no update reached Envoy: {:?}", gateway.extensions().await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_plugin_config_pushed_to_a_running_gateway_is_rejected_and_the_previous_one_keeps_serving() -> Result<()>
{
    let upstream = Upstream::start("models").await?;
    let mut gateway = Gateway::new().plugin(basic_auth()?).upstream("models", upstream.addr).start().await?;
    assert_eq!(status(&gateway, None).await?, 401);
    let before = gateway.extension_updates().await?;
    let bad = basic_auth()?
        .with_config(json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["*"], "credentials": []}]}));
    gateway.update_plugins(&[bad]).await?;
    settled(&gateway, Extension::Rejected, before).await?;
    // The rejection is visible in Envoy's stats and log (the plugin's own reason); the old config still holds.
    assert!(gateway.envoy.log().contains("basic_auth_rules[0].credentials"), "{}", gateway.envoy.log());
    assert_eq!(status(&gateway, None).await?, 401);
    assert_eq!(status(&gateway, Some((USER, PASSWORD))).await?, 200);
    assert_eq!(upstream.count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_image_is_served_without_restarting_envoy() -> Result<()> {
    let upstream = Upstream::start("models").await?;
    let registry = Registry::start(None)?;
    let mut gateway = pulled(&registry, |_| {}, &upstream).await?;
    assert_eq!(status(&gateway, None).await?, 401);
    let pid = gateway.envoy.pid();
    // Version 2 of the image: a module that lets every request through (the benchmark's no-op floor).
    let dir = tempfile::tempdir()?;
    let noop = std::fs::read(wasmgate_e2e::bench::floor::write_noop(dir.path())?)?;
    let current = publish(&registry, vec![basic_auth()?]).await?.remove(0);
    let next = publish_module(&registry, &current, &noop, "v2").await?;
    assert_ne!(next.spec.sha256, current.spec.sha256);
    let before = gateway.extension_updates().await?;
    gateway.update_plugins(&[next]).await?;
    settled(&gateway, Extension::Accepted, before).await?;
    assert_eq!(status(&gateway, None).await?, 200, "the new module answers");
    assert_eq!(gateway.envoy.pid(), pid, "the same Envoy");
    Ok(())
}

/// istiod attaches a policy with `targetRefs` only to a Gateway API gateway (a proxy with the
/// `gateway.networking.k8s.io/gateway-name` label); our classic gateway ignores it, as a cluster would.
#[tokio::test(flavor = "multi_thread")]
async fn target_refs_are_ignored_by_a_classic_gateway_as_istiod_ignores_them() -> Result<()> {
    let upstream = Upstream::start("models").await?;
    let mut by_ref = basic_auth()?;
    by_ref.spec.selector = None;
    by_ref.spec.target_refs = vec![wasmgate::istio::TargetRef {
        group: Some("gateway.networking.k8s.io".into()),
        kind: "Gateway".into(),
        name: "istio-ingressgateway".into(),
        namespace: None,
    }];
    let gateway = Gateway::new().plugin(by_ref).upstream("models", upstream.addr).start().await?;
    assert!(gateway.extension_names().await?.is_empty(), "{:?}", gateway.extension_names().await?);
    assert_eq!(status(&gateway, None).await?, 200, "no plugin, no authentication");
    Ok(())
}

/// The HTTP filters of the gateway's 443 listener, by name, in order.
async fn http_filters(gateway: &RunningGateway) -> Result<Vec<String>> {
    let dump = gateway.config_dump("dynamic_listeners").await?;
    let port = gateway.envoy.listener.port();
    let listener = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| &l["active_state"]["listener"])
        .find(|l| l["address"]["socket_address"]["port_value"].as_u64() == Some(u64::from(port)))
        .context("no listener on the gateway's port")?;
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    Ok(hcm["http_filters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_are_named_and_ordered_as_istiod_emits_them() -> Result<()> {
    let stack = FullStack::start().await?;
    let name = |plugin: &str| {
        format!("extensions.istio.io/trafficextension/istio-system.{plugin}~istio-translated-wasmplugin")
    };
    let filters = http_filters(&stack.envoy).await?;
    // AUTHN, then AUTHZ, then no phase; Envoy's own filters after them.
    let wasm: Vec<&String> = filters.iter().filter(|f| f.starts_with("extensions.istio.io/")).collect();
    assert_eq!(wasm, [&name("basic-auth"), &name("grpc-limits"), &name("host-router")], "{filters:?}");
    assert_eq!(filters.last().map(String::as_str), Some("envoy.filters.http.router"), "{filters:?}");
    let accepted = stack.envoy.extensions().await?;
    assert!(accepted.values().all(|e| *e == Extension::Accepted), "{accepted:?}");
    Ok(())
}

/// The route of `name` in the gateway's route configs.
fn route<'a>(routes: &'a Value, name: &str) -> Option<&'a Value> {
    routes["configs"].as_array()?.iter().find_map(|config| {
        config["route_config"]["virtual_hosts"]
            .as_array()?
            .iter()
            .find_map(|host| host["routes"].as_array()?.iter().find(|r| r["name"].as_str() == Some(name)))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_retry_as_istiod_sets_them() -> Result<()> {
    let stack = FullStack::start().await?;
    let routes = stack.envoy.config_dump("dynamic_route_configs").await?;
    // Every route retries only what cannot have reached a model (tests/faults.rs shows why), 2 attempts; the
    // answer is bounded (a client's grpc-timeout cannot stretch it), health checks more tightly.
    for (name, timeout) in [("canary", "120s"), ("stable", "120s"), ("health", "5s"), ("canary-health", "5s")] {
        let found = route(&routes, name).with_context(|| format!("no {name} route in {routes:#}"))?;
        let policy = &found["route"]["retry_policy"];
        assert_eq!(policy["retry_on"], "connect-failure,refused-stream", "{found}");
        assert_eq!(policy["num_retries"], 2, "{found}");
        assert_eq!(found["route"]["timeout"], timeout, "{found}");
        assert_eq!(found["route"]["max_grpc_timeout"], timeout, "{found}");
    }
    Ok(())
}

/// basic-auth pulled from a registry that asks for credentials (challenged with `realm`), with the right ones in
/// the image pull secret the CR names, which istiod sends the authenticated gateway.
async fn pulled_with_credentials(realm: &str, upstream: &Upstream) -> Result<(RunningGateway, Registry)> {
    let registry = Registry::start_with_realm(Some(("puller", "s3cret")), realm)?;
    let mut plugin = publish(&registry, vec![basic_auth()?]).await?.remove(0);
    plugin.spec.image_pull_secret = Some("registry-pull".into());
    let secret = wasmgate_e2e::world::pull_secret("registry-pull", &registry.host(), ("puller", "s3cret"));
    let gateway = Gateway::new()
        .plugin(plugin)
        .pulled([registry.host()])
        .cluster_object(secret)
        .upstream("models", upstream.addr)
        .start()
        .await?;
    Ok((gateway, registry))
}

/// istio-agent (≥ 1.28) checks every `realm` of a registry's 401 challenge and refuses one that is not an http(s)
/// URL with a public host: the default of an htpasswd `docker-registry` (`realm: basic-realm`-style text) is such
/// a challenge. A gateway pulling from it, with the right credentials, gets no module but its deny-all filter, the
/// reason in istio-agent's log.
#[tokio::test(flavor = "multi_thread")]
async fn a_registry_challenge_istio_agent_will_not_follow_means_no_module() -> Result<()> {
    let upstream = Upstream::start("models").await?;
    let (gateway, _registry) = pulled_with_credentials("wasmgate", &upstream).await?;
    assert_eq!(status(&gateway, Some((USER, PASSWORD))).await?, 403);
    let log = gateway.istiod.log();
    assert!(log.contains("rejected unsafe bearer realm: realm scheme \"\" not allowed"), "{log}");
    assert_eq!(upstream.count(), 0);
    Ok(())
}

/// The same registry with a realm istio-agent accepts (an https URL on a public name, as ECR's challenge names
/// its amazonaws.com host): the module comes through the credentials of the pull secret.
#[tokio::test(flavor = "multi_thread")]
async fn an_authenticated_registry_with_an_acceptable_challenge_serves_the_module() -> Result<()> {
    let upstream = Upstream::start("models").await?;
    let (gateway, _registry) = pulled_with_credentials("https://registry.example.com/", &upstream).await?;
    assert_eq!(status(&gateway, None).await?, 401, "basic-auth runs");
    assert_eq!(status(&gateway, Some((USER, PASSWORD))).await?, 200);
    assert_eq!(upstream.count(), 1);
    Ok(())
}
