//! The web page in a real browser: Debian's Chromium, driven by Playwright, through the EKS topology (the NLB
//! stand-in terminating TLS, ALPN h2) and the whole gateway built by istiod from the chart's CRs (basic-auth,
//! grpc-limits, host-router) to the model server, which serves the page and answers its gRPC-Web calls. Once with
//! the three plugin filters and once with the suite.

use anyhow::{Context, Result};
use serde_json::json;
use wasmgate_e2e::browser::{self, PageCheck};
use wasmgate_e2e::counters::{BasicAuth, GrpcLimits};
use wasmgate_e2e::fixtures::{HOST, PASSWORD, USER};
use wasmgate_e2e::stack::{Filters, FullStack};

/// 130 MiB: over grpc-limits' 128 MiB message limit for ModelInfer in the committed CR.
const OVERSIZED_BYTES: usize = 130 << 20;

async fn a_person_signs_in_and_classifies_photos(filters: Filters, screenshot: Option<&str>) -> Result<()> {
    let mut stack = FullStack::start_with(filters.deployment()).await?;
    let nlb = stack.envoy.nlb.as_ref().context("the EKS install puts an NLB in front")?;
    let mut check = PageCheck::start(&json!({
        "url": format!("https://{HOST}/"),
        "host": HOST,
        "address": nlb.https.to_string(),
        "user": USER,
        "password": PASSWORD,
        "oversized_bytes": OVERSIZED_BYTES,
        "screenshot": screenshot,
    }))?;
    // A page on another origin, visited while signed in: nothing it makes the browser send reaches the model.
    assert_eq!(check.until_waiting().await?.as_deref(), Some("cross-site attack"), "{:?}", check.steps);
    let before = (model_calls(&stack), stack.counter(GrpcLimits::RefusedContentType).await?);
    check.resume().await?;
    assert_eq!(check.until_waiting().await?.as_deref(), Some("cross-site attack done"), "{:?}", check.steps);
    let after = (model_calls(&stack), stack.counter(GrpcLimits::RefusedContentType).await?);
    // The three forms went with the person's credentials and were refused by grpc-limits as not gRPC (a form's
    // content types are not); the fetch went without them (Chromium keeps credentials from cross-site
    // subresources) and was refused by basic-auth.
    assert_eq!(browser::cross_site_statuses(&check.steps)?, [415, 415, 415, 401], "{:?}", check.steps);
    assert_eq!(after.1 - before.1, 3);
    // No gRPC method ran. (Other requests may reach the server, e.g. the browser's favicon.ico for the error page,
    // which the server refuses as not gRPC.)
    assert_eq!(after.0, before.0, "no model call during the visits");
    check.resume().await?;

    let waiting = check.until_waiting().await?;
    assert_eq!(waiting.as_deref(), Some("stop the model server"), "{:?}", check.steps);
    // Down before the page's next call, so that call cannot race the shutdown and be answered.
    tokio::time::timeout(std::time::Duration::from_secs(30), stack.stable.shut_down())
        .await
        .context("the model server did not finish within 30 s of its shutdown")??;
    check.resume().await?;
    let steps = check.finish().await?;
    let gallery = browser::Gallery::local();
    if gallery == browser::Gallery::Generated {
        eprintln!("catvnoncat data not found (set {}): generated gallery", wasmgate_inference::data::DATA_DIR_ENV);
    }
    browser::the_visit_went_as_a_person_expects(&steps, gallery)?;

    // The 130 MiB upload was refused from its declared length (a browser's fetch sends `content-length`), before
    // any of it reached the model; the stale password was refused by basic-auth, not the server.
    assert_eq!(stack.counter(GrpcLimits::RefusedContentLength).await?, 1);
    assert!(stack.counter(BasicAuth::DeniedInvalid).await? >= 2);
    Ok(())
}

/// What the model servers (stable and canary) counted: every call of a gRPC method that names the model.
fn model_calls(stack: &FullStack) -> [wasmgate_inference::oip::service::StatsSnapshot; 2] {
    [stack.stable.stats.snapshot(), stack.canary.stats.snapshot()]
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_three_plugins() -> Result<()> {
    a_person_signs_in_and_classifies_photos(Filters::Separate, std::env::var("WASMGATE_SCREENSHOT").ok().as_deref())
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_suite() -> Result<()> {
    a_person_signs_in_and_classifies_photos(Filters::Suite, None).await
}
