//! A real browser: Debian's Chromium, headless, driven by Playwright (`e2e/browser/page_check.mjs`) through the
//! web page behind a gateway. The script reports each step as a JSON line and waits, where a step needs the test
//! to act, until the test says to go on.

use crate::workspace;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

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
