//! Mixed traffic through the whole gateway for a fixed time (`WASMGATE_SOAK_SECONDS`, 15 s in `make test`,
//! `make soak` for longer): authorised, denied, large and canary-routed calls from concurrent clients. Every
//! answer is the one defined for its kind, every classification is exactly the model's own answer for what was
//! sent (a corrupted payload would change it), Envoy's memory stays flat, and the counters add up exactly.

use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;
use wasmgate_e2e::bench::{env_or, proc_status_bytes};
use wasmgate_e2e::counters::{BasicAuth, GrpcLimits, RouterRule};
use wasmgate_e2e::fixtures::{CANARY_HOST, HOST, PASSWORD, USER};
use wasmgate_e2e::stack::FullStack;
use wasmgate_inference::client::{self, Client, Images};
use wasmgate_inference::data;
use wasmgate_inference::model::IMAGE_VALUES;

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    authorised: u64,
    denied: u64,
    /// Intruder calls refused by the lockout.
    locked: u64,
    large: u64,
    routed: u64,
}

async fn client(stack: &FullStack, host: &str, password: &str) -> Result<Client> {
    stack.target(host, Some((USER, password))).connect().await
}

/// What the model answers for `images`, computed here without the network.
fn expected(stack: &FullStack, images: &Images) -> Result<Vec<f32>> {
    let pixels = ndarray::ArrayView2::from_shape((images.len(), IMAGE_VALUES), &images.pixels)?;
    Ok(stack.stable.network.predict(data::scale::<f32>(pixels).view()).to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_traffic_for_a_while_answers_right_and_leaks_nothing() -> Result<()> {
    let seconds: u64 = env_or("WASMGATE_SOAK_SECONDS", 15);
    let stack = Arc::new(FullStack::start().await?);
    let small = client::generated(4);
    let small_expected = expected(&stack, &small)?;
    // ~20 MB of images, each different, so a byte moved or lost in transit changes an answer.
    let large = client::generated(20_000_000 / IMAGE_VALUES);
    let large_expected = expected(&stack, &large)?;
    let mix = Mix { small, small_expected, large, large_expected };

    // A first quarter of the load brings Envoy's buffers and its allocator's caches to their working size; a
    // leak shows as growth from there to the end.
    let warm = Duration::from_secs((seconds / 4).max(2));
    let first = load(&stack, &mix, warm).await?;
    // Past a stats flush (1 s in the harness), so the heap gauge shows the quiet gateway.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rss_before = proc_status_bytes(stack.envoy.pid(), "VmRSS")?;
    let heap_before = stack.envoy.counter("server.memory_allocated").await?;
    let rest = Duration::from_secs(seconds).saturating_sub(warm).max(Duration::from_secs(2));
    let second = load(&stack, &mix, rest).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rss_after = proc_status_bytes(stack.envoy.pid(), "VmRSS")?;
    let heap_after = stack.envoy.counter("server.memory_allocated").await?;
    let total = first.plus(second);
    eprintln!(
        "soak {seconds} s: {total:?}; after the first quarter and at the end: Envoy RSS {} / {} MB, \
         heap in use {} / {} MB",
        rss_before / 1_000_000,
        rss_after / 1_000_000,
        heap_before / 1_000_000,
        heap_after / 1_000_000
    );
    assert!(second.authorised > 0 && second.locked > 0 && second.large > 0 && second.routed > 0, "{second:?}");

    // Counters add up exactly.
    let allowed = total.authorised + total.large + total.routed;
    assert_eq!(stack.counter(BasicAuth::Allowed).await?, allowed);
    assert_eq!(stack.counter(BasicAuth::DeniedInvalid).await?, total.denied);
    assert_eq!(stack.counter(BasicAuth::DeniedLocked).await?, total.locked);
    assert!(total.denied <= 4 * 5, "each guesser is locked after 5 wrong passwords: {total:?}");
    assert_eq!(stack.counter(GrpcLimits::Accepted).await?, allowed);
    assert_eq!(stack.counter(RouterRule("canary-host")).await?, total.routed);
    assert_eq!(stack.stable.stats.snapshot().infer_ok, total.authorised + total.large);
    assert_eq!(stack.canary.stats.snapshot().infer_ok, total.routed);
    // Memory stays flat. The heap in use (Envoy's allocator, quiescent) is what a leak per request would grow;
    // the resident size also holds the allocator's cache of freed 20 MB bodies, so it gets a looser bound.
    assert!(heap_before > 0, "server.memory_allocated missing from /stats");
    let heap_growth = heap_after.saturating_sub(heap_before);
    assert!(heap_growth < 8 << 20, "Envoy's heap grew by {} MB", heap_growth / 1_000_000);
    let rss_growth = rss_after.saturating_sub(rss_before);
    assert!(rss_growth < 96 << 20, "Envoy's resident size grew by {} MB", rss_growth / 1_000_000);
    Ok(())
}

/// The requests the clients send and the answers they must get.
struct Mix {
    small: Images,
    small_expected: Vec<f32>,
    large: Images,
    large_expected: Vec<f32>,
}

impl Tally {
    fn plus(self, other: Tally) -> Tally {
        Tally {
            authorised: self.authorised + other.authorised,
            denied: self.denied + other.denied,
            locked: self.locked + other.locked,
            large: self.large + other.large,
            routed: self.routed + other.routed,
        }
    }
}

/// Four clients looping over the mix for `duration`; fails on any answer other than the defined one.
async fn load(stack: &Arc<FullStack>, mix: &Mix, duration: Duration) -> Result<Tally> {
    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    for worker in 0..4u64 {
        let mut stable = client(stack, HOST, PASSWORD).await?;
        let mut canary = client(stack, CANARY_HOST, PASSWORD).await?;
        // A guesser on an address of its own: the lockout refuses it after 5 wrong passwords, and only it.
        let source = std::net::IpAddr::from([127, 0, 0, 60 + u8::try_from(worker)?]);
        let channel = wasmgate_e2e::grpc::channel_from(stack.envoy.listener, HOST, source).await?;
        let mut intruder = Client::over(channel, Some(&(USER.to_owned(), "guess".to_owned())))?;
        let (small, large) = (mix.small.request(), mix.large.request());
        let (small_expected, large_expected) = (mix.small_expected.clone(), mix.large_expected.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut round = worker;
            while Instant::now() < deadline {
                round += 1;
                match round % 8 {
                    0 => {
                        let answer = stable.infer(large.clone()).await?;
                        anyhow::ensure!(client::probabilities(&answer)? == large_expected, "large answer corrupted");
                        tally.large += 1;
                    }
                    1 | 2 => {
                        let code = intruder.infer(small.clone()).await.err().map(|s| s.code());
                        match code {
                            Some(Code::Unauthenticated) => tally.denied += 1,
                            Some(Code::ResourceExhausted) => tally.locked += 1,
                            other => anyhow::bail!("intruder got {other:?}"),
                        }
                    }
                    3 => {
                        let answer = canary.infer(small.clone()).await?;
                        anyhow::ensure!(client::probabilities(&answer)? == small_expected, "canary answer wrong");
                        tally.routed += 1;
                    }
                    _ => {
                        let answer = stable.infer(small.clone()).await?;
                        anyhow::ensure!(client::probabilities(&answer)? == small_expected, "answer wrong");
                        tally.authorised += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>(tally)
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        total = total.plus(worker.await??);
    }
    Ok(total)
}
