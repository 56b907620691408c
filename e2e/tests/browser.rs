//! The web page in a real browser: Debian's Chromium, driven by Playwright, through the EKS topology (the NLB
//! stand-in terminating TLS, ALPN h2) and the whole gateway built by istiod from the overlay's CRs (basic-auth,
//! grpc-limits, host-router) to the model server, which serves the page and answers its gRPC-Web calls. Once with
//! the three plugin filters and once with the suite.

use anyhow::{Context, Result};
use ndarray::Array1;
use serde_json::json;
use wasmgate_e2e::browser::PageCheck;
use wasmgate_e2e::stack::{Filters, FullStack, HOST, PASSWORD, USER};
use wasmgate_inference::data;

/// 130 MiB: over grpc-limits' 128 MiB message limit for ModelInfer in the committed CR.
const OVERSIZED_BYTES: usize = 130 << 20;

async fn a_person_signs_in_and_classifies_photos(filters: Filters, screenshot: Option<&str>) -> Result<()> {
    let mut stack = FullStack::start_with(filters.overlay()).await?;
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
    let before = (model_calls(&stack), stack.counter("grpc_limits.refused.content_type").await?);
    check.resume().await?;
    assert_eq!(check.until_waiting().await?.as_deref(), Some("cross-site attack done"), "{:?}", check.steps);
    let after = (model_calls(&stack), stack.counter("grpc_limits.refused.content_type").await?);
    let attack = PageCheck::step(&check.steps, "cross_site")?.clone();
    let answers = attack["answers"].as_array().context("answers")?;
    let statuses: Vec<u64> = answers.iter().map(|a| a["status"].as_u64().unwrap_or(0)).collect();
    // The three forms went with the person's credentials and were refused by grpc-limits as not gRPC (a form's
    // content types are not); the fetch went without them (Chromium keeps credentials from cross-site
    // subresources) and was refused by basic-auth.
    assert_eq!(statuses, [415, 415, 415, 401], "{attack}");
    assert_eq!(after.1 - before.1, 3, "{attack}");
    // No gRPC method ran. (Other requests may reach the server, e.g. the browser's favicon.ico for the error page,
    // which the server refuses as not gRPC.)
    assert_eq!(after.0, before.0, "no model call during the visits: {attack}");
    check.resume().await?;

    let waiting = check.until_waiting().await?;
    assert_eq!(waiting.as_deref(), Some("stop the model server"), "{:?}", check.steps);
    // Down before the page's next call, so that call cannot race the shutdown and be answered.
    tokio::time::timeout(std::time::Duration::from_secs(30), stack.stable.shut_down())
        .await
        .context("the model server did not finish within 30 s of its shutdown")??;
    check.resume().await?;
    let steps = check.finish().await?;
    let step = |name: &str| PageCheck::step(&steps, name);

    // Without credentials: 401 with the challenge that makes the browser ask.
    let anonymous = step("anonymous")?;
    assert_eq!(anonymous["status"], 401, "{anonymous}");
    assert!(anonymous["www_authenticate"].as_str().is_some_and(|v| v.starts_with("Basic ")), "{anonymous}");

    // Signed in: the page, the model's metadata over gRPC-Web, and the gallery classified in one call.
    let gallery = step("gallery")?;
    assert_eq!(gallery["status"], 200, "{gallery}");
    assert_eq!(gallery["protocol"], "h2", "the browser's protocol through the NLB: {gallery}");
    assert!(gallery["model"].as_str().is_some_and(|m| m.starts_with("Model catnet v1")), "{gallery}");
    let tiles = gallery["tiles"].as_array().context("tiles")?;
    let dir = data::default_dir();
    if data::available(&dir) {
        // The test set: 40 of 50 right (the model's accuracy, 0.80), the wrong ones marked, each probability the
        // numpy reference's.
        assert_eq!((gallery["right"].as_u64(), gallery["known"].as_u64()), (Some(40), Some(50)), "{gallery}");
        assert_eq!(tiles.iter().filter(|t| t["wrong"] == true).count(), 10);
        let reference: Array1<f64> = ndarray_npy::read_npy(dir.join("reference_test_probs_2500.npy"))?;
        for (i, tile) in tiles.iter().enumerate() {
            let p = tile["probability"].as_f64().context("probability")?;
            assert!((p - reference[i]).abs() < 1e-3, "test[{i}]: {p} vs numpy {}", reference[i]);
        }
        for (truth, name) in [(1, "classified_cat"), (0, "classified_non_cat")] {
            let classified = step(name)?;
            let index = classified["index"].as_u64().context("index")? as usize;
            assert_eq!(classified["label"], if truth == 1 { "cat" } else { "non-cat" }, "{classified}");
            let p = classified["probability"].as_f64().context("probability")?;
            assert!((p - reference[index]).abs() < 1e-3, "photo test[{index}]: {p} vs numpy {}", reference[index]);
        }
    } else {
        eprintln!("catvnoncat data not found at {} (set {}): generated gallery", dir.display(), data::DATA_DIR_ENV);
        assert_eq!(gallery["known"], 0);
        assert!(tiles.iter().all(|t| t["probability"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p))));
    }

    // After the visit the person's own page still classifies: the same photo, the same answer as in the gallery.
    assert_eq!(step("after_cross_site")?["label"], tiles[0]["label"], "{steps:?}");

    // The page's messages for what goes wrong, in words a person can act on.
    let message = |name: &str| -> Result<String> { Ok(step(name)?["message"].as_str().unwrap_or("").to_owned()) };
    assert!(message("oversized")?.starts_with("This image is too large for the gateway"), "{steps:?}");
    assert!(message("stale_password")?.contains("Reload the page to sign in again"), "{steps:?}");
    assert!(message("server_down")?.starts_with("The model server is down"), "{steps:?}");
    let wrong = step("wrong_password")?;
    assert_eq!(wrong["status"], 401, "{wrong}");
    assert!(wrong["www_authenticate"].as_str().is_some_and(|v| v.starts_with("Basic ")), "{wrong}");

    // The 130 MiB upload was refused from its declared length (a browser's fetch sends `content-length`), before
    // any of it reached the model; the stale password was refused by basic-auth, not the server.
    assert_eq!(stack.counter("grpc_limits.refused.content_length").await?, 1);
    assert!(stack.counter("basic_auth.denied.invalid").await? >= 2);
    Ok(())
}

/// What the model servers (stable and canary) counted: every call of a gRPC method that names the model.
fn model_calls(stack: &FullStack) -> [wasmgate_inference::service::StatsSnapshot; 2] {
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
