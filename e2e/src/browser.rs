//! A real browser: Debian's Chromium, headless, driven by Playwright (`e2e/browser/page_check.mjs`) through the
//! web page behind a gateway. The script reports each step as a JSON line and waits, where a step needs the test
//! to act, until the test says to go on.

use crate::workspace;
use anyhow::{Context, Result, bail, ensure};
use ndarray::Array1;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use wasmgate_inference::data;

/// A running page check: the steps it reported so far, keyed by step name.
pub struct PageCheck {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub steps: BTreeMap<String, Value>,
}

/// Whether Chromium and the script's npm packages are installed (both by `make setup`).
pub fn installed() -> Result<()> {
    let chromium = std::process::Command::new("sh").args(["-c", "command -v chromium"]).output()?;
    if !chromium.status.success() {
        bail!("Debian's chromium is not installed: run `make setup`");
    }
    if !workspace::root().join("e2e/browser/node_modules/playwright-core").is_dir() {
        bail!("playwright-core is not installed in e2e/browser: run `make setup` (npm ci)");
    }
    if !workspace::root().join("inference/web/dist/index.html").is_file() {
        bail!("the web page is not built: run `make web`");
    }
    Ok(())
}

impl PageCheck {
    /// Starts the script with its options (see the script's header).
    pub fn start(options: &Value) -> Result<Self> {
        installed()?;
        let mut child = Command::new("node")
            .arg(workspace::root().join("e2e/browser/page_check.mjs"))
            .arg(options.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting node (make setup installs it)")?;
        let stdout = child.stdout.take().context("the script's output")?;
        Ok(Self { child, lines: BufReader::new(stdout).lines(), steps: BTreeMap::new() })
    }

    /// Reads reports until the script waits for `step` (returned `true`) or ends (`false`).
    pub async fn until_waiting(&mut self) -> Result<Option<String>> {
        while let Some(line) = self.lines.next_line().await? {
            let report: Value = serde_json::from_str(&line).with_context(|| format!("the script printed {line}"))?;
            if let Some(waiting) = report["waiting"].as_str() {
                return Ok(Some(waiting.to_owned()));
            }
            let step = report["step"].as_str().with_context(|| format!("a report without a step: {line}"))?;
            self.steps.insert(step.to_owned(), report);
        }
        Ok(None)
    }

    /// Tells the waiting script to go on.
    pub async fn resume(&mut self) -> Result<()> {
        let stdin = self.child.stdin.as_mut().context("the script's input")?;
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Waits for the script to end, failing if it failed.
    pub async fn finish(mut self) -> Result<BTreeMap<String, Value>> {
        if let Some(waiting) = self.until_waiting().await? {
            bail!("the script still waits for {waiting}");
        }
        let status = self.child.wait().await?;
        if !status.success() {
            bail!("page_check.mjs failed ({status}) after steps {:?}", self.steps.keys().collect::<Vec<_>>());
        }
        Ok(self.steps)
    }

    /// The report of `step`, or why it is missing.
    pub fn step<'a>(steps: &'a BTreeMap<String, Value>, step: &str) -> Result<&'a Value> {
        steps.get(step).with_context(|| format!("no `{step}` step in {:?}", steps.keys().collect::<Vec<_>>()))
    }
}

/// The statuses the other site's visit got (`cross_site` step): three forms sent with the person's credentials,
/// then a fetch.
pub fn cross_site_statuses(steps: &BTreeMap<String, Value>) -> Result<Vec<u64>> {
    let attack = PageCheck::step(steps, "cross_site")?;
    let answers = attack["answers"].as_array().with_context(|| format!("no answers: {attack}"))?;
    Ok(answers.iter().map(|a| a["status"].as_u64().unwrap_or(0)).collect())
}

/// Whose gallery the page shows: the catvnoncat test set (the server was given the data set, which is here too)
/// or the server's generated images (its image ships no data set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gallery {
    TestSet,
    Generated,
}

impl Gallery {
    /// The test set when this machine has it (the loopback harness's servers read it from here).
    pub fn local() -> Self {
        if data::available(&data::default_dir()) { Self::TestSet } else { Self::Generated }
    }
}

/// What the person saw, whichever way the gateway was deployed: the challenge without credentials, the gallery
/// over h2 classified as the model does (the numpy reference's probabilities for the test set), the page still
/// working after the other site's visit, and the page's messages for what went wrong.
pub fn the_visit_went_as_a_person_expects(steps: &BTreeMap<String, Value>, gallery_source: Gallery) -> Result<()> {
    let step = |name: &str| PageCheck::step(steps, name);
    let challenged = |report: &Value| report["www_authenticate"].as_str().is_some_and(|v| v.starts_with("Basic "));

    // Without credentials: 401 with the challenge that makes the browser ask.
    let anonymous = step("anonymous")?;
    ensure!(anonymous["status"] == 401 && challenged(anonymous), "{anonymous}");

    // Signed in: the page, the model's metadata over gRPC-Web, and the gallery classified in one call.
    let gallery = step("gallery")?;
    ensure!(gallery["status"] == 200, "{gallery}");
    ensure!(gallery["protocol"] == "h2", "the browser's protocol to the gateway: {gallery}");
    ensure!(gallery["model"].as_str().is_some_and(|m| m.starts_with("Model catnet v1")), "{gallery}");
    let tiles = gallery["tiles"].as_array().context("tiles")?;
    let dir = data::default_dir();
    if gallery_source == Gallery::TestSet {
        // The test set: 40 of 50 right (the model's accuracy, 0.80), the wrong ones marked, each probability the
        // numpy reference's.
        ensure!((gallery["right"].as_u64(), gallery["known"].as_u64()) == (Some(40), Some(50)), "{gallery}");
        ensure!(tiles.iter().filter(|t| t["wrong"] == true).count() == 10, "{gallery}");
        let reference: Array1<f64> = ndarray_npy::read_npy(dir.join("reference_test_probs_2500.npy"))?;
        for (i, tile) in tiles.iter().enumerate() {
            let p = tile["probability"].as_f64().context("probability")?;
            ensure!((p - reference[i]).abs() < 1e-3, "test[{i}]: {p} vs numpy {}", reference[i]);
        }
        for (truth, name) in [(1, "classified_cat"), (0, "classified_non_cat")] {
            let classified = step(name)?;
            let index = classified["index"].as_u64().context("index")? as usize;
            ensure!(classified["label"] == if truth == 1 { "cat" } else { "non-cat" }, "{classified}");
            let p = classified["probability"].as_f64().context("probability")?;
            ensure!((p - reference[index]).abs() < 1e-3, "photo test[{index}]: {p} vs numpy {}", reference[index]);
        }
    } else {
        ensure!(gallery["known"] == 0, "{gallery}");
        let probability = |t: &Value| t["probability"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p));
        ensure!(tiles.iter().all(probability), "{gallery}");
    }

    // After the other site's visit the person's own page still classifies: the same photo, the same answer.
    let first = tiles.first().context("an empty gallery")?;
    ensure!(step("after_cross_site")?["label"] == first["label"], "{steps:?}");

    // The page's messages for what goes wrong, in words a person can act on.
    let message = |name: &str| -> Result<String> { Ok(step(name)?["message"].as_str().unwrap_or("").to_owned()) };
    ensure!(message("oversized")?.starts_with("This image is too large for the gateway"), "{steps:?}");
    ensure!(message("stale_password")?.contains("Reload the page to sign in again"), "{steps:?}");
    ensure!(message("server_down")?.starts_with("The model server is down"), "{steps:?}");
    let wrong = step("wrong_password")?;
    ensure!(wrong["status"] == 401 && challenged(wrong), "{wrong}");
    Ok(())
}
