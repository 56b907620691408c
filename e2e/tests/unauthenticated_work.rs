//! What anyone may make the gateway and the model do without credentials is bounded: the health check, the one
//! call basic-auth lets through unauthenticated, has a circuit breaker of its own at the gateway, so streams
//! held open against it cannot starve signed-in calls; and the gateway stops waiting on a client that sends
//! nothing (the chart with its EKS values, istiod's config, the real model server).

use anyhow::Result;
use serde_json::Value;
use std::time::{Duration, Instant};
use wasmgate_e2e::fixtures::{HOST, PASSWORD, USER};
use wasmgate_e2e::held_streams::HeldStreams;
use wasmgate_e2e::stack::{FullStack, model_cluster};
use wasmgate_inference::client;
use wasmgate_inference::model::IMAGE_VALUES;

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// The health subsets' `http2MaxRequests` + `http1MaxPendingRequests` in the committed DestinationRule: the most
/// health streams the gateway sends on to the model at once.
const HEALTH_POOL: usize = 32 + 32;
/// The health routes' timeout in the committed VirtualService.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_held_health_streams_leave_signed_in_calls_served() -> Result<()> {
    let stack = FullStack::start().await?;
    // 1,000 health checks without credentials, through the NLB as any client arrives, each left unfinished.
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    let opened = Instant::now();
    let mut held = HeldStreams::open(stack.envoy.listener, HOST, HEALTH_CHECK, &grpc, 1000).await?;
    let (answers, open) = held.answers(Duration::from_secs(1)).await;

    // While they are held (the health route's 5 s timeout has not run out), a signed-in 100 MB ModelInfer goes
    // through.
    let sent = opened.elapsed();
    assert!(sent < HEALTH_TIMEOUT - Duration::from_secs(1), "the call went {sent:?} after the streams opened");
    let mut model = stack.target(HOST, Some((USER, PASSWORD))).connect().await?;
    let images = 100_000_000usize.div_ceil(IMAGE_VALUES * 4);
    let response = tokio::time::timeout(Duration::from_secs(60), model.infer(client::fp32_zeros(images))).await??;
    assert_eq!(client::probabilities(&response)?.len(), images);
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 1);

    // The health pool took what it holds; the gateway refused the rest at once (UNAVAILABLE, "overflow").
    assert!(open <= HEALTH_POOL, "{open} streams held open past the health pool: {answers:?}");
    assert_eq!(answers.get("grpc-status 14").copied().unwrap_or(0), 1000 - open, "{answers:?}");
    // Envoy's circuit breakers count what they refused: too many active requests, or too many waiting for one.
    let (mut model_pool, mut health_pool) = (0, 0);
    for stat in ["upstream_rq_active_overflow", "upstream_rq_pending_overflow"] {
        model_pool += stack.envoy.cluster_stat(&model_cluster("stable"), stat).await?;
        health_pool += stack.envoy.cluster_stat(&model_cluster("stable-health"), stat).await?;
    }
    assert_eq!(model_pool, 0, "the model calls' pool refused nothing");
    assert_eq!(health_pool, 1000 - open as u64, "the health pool refused the rest");
    // The streams it held are cut at the route's timeout, not held for ever; none was answered as a health check.
    let (later, still_open) = held.answers(HEALTH_TIMEOUT * 2).await;
    assert_eq!(still_open, 0, "{later:?}");
    assert!(!later.contains_key("grpc-status 0"), "{later:?}");
    Ok(())
}

/// On istiod's config: every HTTP connection manager of the gateway bounds how long a client may take (the
/// routes' timeouts, how long the answer may take: tests/istio.rs).
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_stops_waiting_on_a_silent_client() -> Result<()> {
    let stack = FullStack::start().await?;
    let listeners = stack.envoy.config_dump("dynamic_listeners").await?;
    let mut managers = Vec::new();
    collect_managers(&listeners, &mut managers);
    assert!(!managers.is_empty(), "no HTTP connection manager in {listeners}");
    for manager in &managers {
        assert_eq!(manager["stream_idle_timeout"], "60s", "{manager}");
        assert_eq!(manager["request_headers_timeout"], "10s", "{manager}");
        assert_eq!(manager["request_timeout"], "300s", "{manager}");
    }
    Ok(())
}

fn collect_managers(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            let hcm =
                "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
            if map.get("@type").and_then(Value::as_str) == Some(hcm) {
                out.push(value.clone());
            }
            map.values().for_each(|v| collect_managers(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_managers(v, out)),
        _ => {}
    }
}
