//! What anyone may make the gateway and the model do without credentials is bounded: the health check, the one
//! call basic-auth lets through unauthenticated, has a circuit breaker of its own at the gateway, so streams
//! held open against it cannot starve signed-in calls; and the gateway stops waiting on a client that sends
//! nothing (the EKS overlay, istiod's config, the real model server).

use anyhow::Result;
use serde_json::Value;
use std::time::Duration;
use wasmgate_e2e::held_streams::HeldStreams;
use wasmgate_e2e::stack::{FullStack, HOST, PASSWORD, USER};
use wasmgate_inference::client;
use wasmgate_inference::model::IMAGE_VALUES;

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// The health subsets' `http2MaxRequests` + `http1MaxPendingRequests` in the committed DestinationRule: the most
/// health streams the gateway sends on to the model at once.
const HEALTH_POOL: usize = 32 + 32;

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_held_health_streams_leave_signed_in_calls_served() -> Result<()> {
    let stack = FullStack::start().await?;
    // 1,000 health checks without credentials, through the NLB as any client arrives, each left unfinished.
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    let mut held = HeldStreams::open(stack.envoy.listener, HOST, HEALTH_CHECK, &grpc, 1000).await?;
    let (answers, open) = held.answers(Duration::from_secs(3)).await;

    // Meanwhile signed-in calls go through: readiness, and a 100 MB ModelInfer.
    let mut model = stack.target(HOST, Some((USER, PASSWORD))).connect().await?;
    let request = client::fp32_zeros(100_000_000usize.div_ceil(IMAGE_VALUES * 4));
    let response = tokio::time::timeout(Duration::from_secs(60), model.infer(request)).await??;
    assert_eq!(client::probabilities(&response)?.len(), 100_000_000usize.div_ceil(IMAGE_VALUES * 4));
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 1);
    // The health pool takes what it holds; the gateway refuses the rest at once (UNAVAILABLE, "overflow").
    assert!(open <= HEALTH_POOL, "{open} streams held open past the health pool: {answers:?}");
    assert_eq!(answers.get("grpc-status 14").copied().unwrap_or(0), 1000 - open, "{answers:?}");
    let overflow = stack.envoy.counter(&format!("cluster.{}.upstream_rq_pending_overflow", cluster("stable"))).await?;
    assert_eq!(overflow, 0, "the model calls' pool refused nothing");
    let (_, still_open) = held.answers(Duration::ZERO).await;
    assert_eq!(still_open, open, "the held streams were still open during the signed-in calls");
    Ok(())
}

/// The gateway's cluster for a subset of the model Service, as istiod names it.
fn cluster(subset: &str) -> String {
    format!("outbound|8500|{subset}|inference.ml-serving.svc.cluster.local")
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
