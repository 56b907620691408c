//! Faults through the whole gateway, each with its defined answer: the model server down, killed in the middle
//! of a 100 MB request, restarted under load; a client giving up mid-upload. Nothing hangs, nothing wrong is
//! answered, and the gateway serves the next request.

use anyhow::Result;
use std::time::{Duration, Instant};
use tonic::Code;
use wasmgate_e2e::counters::GrpcLimits;
use wasmgate_e2e::fixtures::{HOST, PASSWORD, USER};
use wasmgate_e2e::model_server::{ModelProcess, ModelServer, free_addr};
use wasmgate_e2e::registry::Registry;
use wasmgate_e2e::stack::{FullStack, deployment, gateway_target, model_cluster};
use wasmgate_inference::client::{self, Client};
use wasmgate_inference::model::IMAGE_VALUES;
use wasmgate_inference::proto::ModelInferRequest;

async fn client_for(listener: std::net::SocketAddr) -> Result<Client> {
    gateway_target(listener, HOST, Some((USER, PASSWORD))).connect().await
}

fn fp32_batch(bytes: usize) -> Result<ModelInferRequest> {
    Ok(client::fp32_zeros(bytes.div_ceil(IMAGE_VALUES * 4)))
}

/// The gateway of the chart's EKS values in front of model server processes (stable, canary) that a test can kill.
async fn process_stack() -> Result<(wasmgate_e2e::RunningGateway, ModelProcess, ModelProcess, Registry)> {
    let (stable_addr, canary_addr) = (free_addr()?, free_addr()?);
    let stable = ModelProcess::start(stable_addr).await?;
    let canary = ModelProcess::start(canary_addr).await?;
    let (deployment, registry, _) = deployment("eks", &serde_json::Value::Null, &[stable_addr], canary_addr).await?;
    Ok((deployment.start(443, 1, &[]).await?, stable, canary, registry))
}

#[tokio::test(flavor = "multi_thread")]
async fn model_server_down_is_unavailable_at_once() -> Result<()> {
    let mut stack = FullStack::start().await?;
    let mut client = client_for(stack.envoy.listener).await?;
    assert_eq!(client.classify(&client::generated(1)).await?.len(), 1);
    std::mem::replace(&mut stack.stable, ModelServer::start().await?).stop().await?;
    // The replacement is not behind the gateway: the stable cluster's only endpoint is gone.
    let started = Instant::now();
    let status = client.infer(client::generated(1).request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_server_killed_mid_100_mb_request_is_unavailable_and_the_gateway_carries_on() -> Result<()> {
    let (envoy, mut stable, _canary, _registry) = process_stack().await?;
    let stable_addr = stable.addr;
    let mut client = client_for(envoy.listener).await?;
    let request = fp32_batch(100_000_000)?;
    let call = tokio::spawn(async move { client.infer(request).await.map(|_| ()) });
    // Let the upload get going, then kill the server under it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!call.is_finished(), "the upload finished before the kill; nothing was tested");
    stable.kill();
    let status = tokio::time::timeout(Duration::from_secs(30), call).await??.unwrap_err();
    // A reset before Envoy gave up buffering the body for a retry is UNAVAILABLE; past the route's retry buffer
    // Envoy answers 500 "exceeded request buffer limit while retrying upstream" (UNKNOWN to a gRPC client).
    let defined = match status.code() {
        Code::Unavailable | Code::Internal => true,
        Code::Unknown => status.message().contains("exceeded request buffer limit while retrying upstream"),
        _ => false,
    };
    assert!(defined, "{status}");

    // The gateway itself is fine: a new server on the same address gets the next request.
    let _stable = ModelProcess::start(stable_addr).await?;
    let mut client = client_for(envoy.listener).await?;
    assert_eq!(client.classify(&client::generated(2)).await?.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_giving_up_mid_upload_leaves_nothing_behind() -> Result<()> {
    let stack = FullStack::start().await?;
    let mut client = client_for(stack.envoy.listener).await?;
    let request = fp32_batch(100_000_000)?;
    let call = tokio::spawn(async move { client.infer(request).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(150)).await;
    call.abort();
    let _ = call.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 0, "no answer for an abandoned request");
    assert_eq!(stack.counter(GrpcLimits::Accepted).await?, 0, "an unfinished body is not accepted");
    let mut client = client_for(stack.envoy.listener).await?;
    assert_eq!(client.classify(&client::generated(3)).await?.len(), 3);
    assert_eq!(stack.counter(GrpcLimits::Accepted).await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_the_model_server_under_load_gives_right_answers_or_unavailable() -> Result<()> {
    let (envoy, mut stable, _canary, _registry) = process_stack().await?;
    let stable_addr = stable.addr;
    let images = client::generated(4);
    let expected = client_for(envoy.listener).await?.classify(&images).await?;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, images, expected) = (stop.clone(), images.request(), expected.clone());
        let mut client = client_for(envoy.listener).await?;
        workers.push(tokio::spawn(async move {
            let (mut ok, mut unavailable) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.infer(images.clone()).await {
                    Ok(response) => {
                        assert_eq!(client::probabilities(&response).unwrap(), expected, "a wrong answer");
                        ok += 1;
                    }
                    Err(status) if status.code() == Code::Unavailable => unavailable += 1,
                    // Killed while it was writing an answer: Envoy cannot retry a response already under way and
                    // resets the stream, which gRPC reports as INTERNAL.
                    Err(status)
                        if status.code() == Code::Internal && status.message().contains("h2 protocol error") =>
                    {
                        unavailable += 1
                    }
                    Err(status) => panic!("unexpected answer during the restart: {status}"),
                }
            }
            (ok, unavailable)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stable.kill();
    let _stable = ModelProcess::start(stable_addr).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut unavailable) = (0, 0);
    for worker in workers {
        let (o, u) = worker.await?;
        ok += o;
        unavailable += u;
    }
    assert!(ok > 0, "nothing succeeded");
    eprintln!(
        "during the restart: {ok} answered, {unavailable} UNAVAILABLE or reset mid-answer (after the route's retries)"
    );
    // After the restart every request is answered again.
    let mut client = client_for(envoy.listener).await?;
    assert_eq!(client.classify(&images).await?, expected);
    Ok(())
}

/// A model replica that takes a request and dies under it: it reads what Envoy sends, then drops the connection.
/// Counts the connections that carried a request.
struct DyingReplica {
    addr: std::net::SocketAddr,
    hit: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl DyingReplica {
    async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let hit = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hit.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    // The connection preface and settings come first; a request's HEADERS follow within moments.
                    let mut seen = 0;
                    while seen < 200 {
                        match tokio::time::timeout(
                            Duration::from_millis(300),
                            tokio::io::AsyncReadExt::read(&mut socket, &mut buf),
                        )
                        .await
                        {
                            Ok(Ok(n)) if n > 0 => seen += n,
                            _ => break,
                        }
                    }
                    if seen >= 200 {
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        Ok(Self { addr, hit })
    }

    fn hits(&self) -> usize {
        self.hit.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A request that kills the replica it reaches (the review's 212 KB Classify took down all three, with the
/// retries istiod generated from `retryOn: reset` sending it on to the next) reaches exactly one replica: the
/// VirtualService retries only what cannot have reached a model.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_kills_its_replica_reaches_only_one() -> Result<()> {
    let replicas = [DyingReplica::start().await?, DyingReplica::start().await?, DyingReplica::start().await?];
    let canary = ModelProcess::start(free_addr()?).await?;
    let addrs: Vec<_> = replicas.iter().map(|r| r.addr).collect();
    let (deployment, _registry, _) = deployment("eks", &serde_json::Value::Null, &addrs, canary.addr).await?;
    let envoy = deployment.start(443, 1, &[]).await?;
    let mut client = client_for(envoy.listener).await?;
    let status = client.infer(client::generated(1).request()).await.unwrap_err();
    assert!(matches!(status.code(), Code::Unavailable | Code::Internal | Code::Unknown), "{status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits: Vec<usize> = replicas.iter().map(DyingReplica::hits).collect();
    assert_eq!(hits.iter().sum::<usize>(), 1, "replicas reached: {hits:?}");
    Ok(())
}

/// A replica that resets every request it takes is taken out of the pool by outlier detection after five in a row
/// (the DestinationRule's `consecutive5xxErrors`), and the requests after it all reach the replica that answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_resets_every_request_is_ejected_after_five() -> Result<()> {
    let dying = DyingReplica::start().await?;
    let healthy = ModelServer::start().await?;
    let canary = ModelServer::start().await?;
    let (deployment, _registry, _) =
        deployment("eks", &serde_json::Value::Null, &[dying.addr, healthy.addr], canary.addr).await?;
    let envoy = deployment.start(443, 1, &[]).await?;
    let mut client = client_for(envoy.listener).await?;
    let mut failed = 0;
    for _ in 0..40 {
        if client.infer(client::generated(1).request()).await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(dying.hits(), 5, "the resetting replica took five requests, then none");
    assert_eq!(failed, 5, "only the requests it took failed");
    assert_eq!(healthy.stats.snapshot().infer_ok, 35);
    let cluster = model_cluster("stable");
    assert_eq!(envoy.cluster_stat(&cluster, "outlier_detection.ejections_enforced_consecutive_5xx").await?, 1);
    Ok(())
}
