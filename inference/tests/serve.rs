//! The `serve` command as Kubernetes runs it: SIGTERM lets the request in flight finish, then the process exits 0;
//! a weights file of the wrong shape is refused at start.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use wasmgate_inference::client::{self, Target};
use wasmgate_inference::model::{Network, weights};

const BIN: &str = env!("CARGO_BIN_EXE_wasmgate-inference");

fn committed_model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model/catnet.safetensors")
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() -> Result<()> {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--model"])
        .arg(committed_model())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut log = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let serving = log.next().context("no log line")??;
    let line: serde_json::Value = serde_json::from_str(&serving)?;
    assert_eq!(line["fields"]["message"], "serving", "{serving}");
    let address = line["fields"]["address"].as_str().context("address")?.to_owned();

    let mut client = Target { address: format!("http://{address}"), ..Default::default() }.connect().await?;
    let images = client::generated(4000); // ~49 MB
    let call = tokio::spawn(async move { client.classify(&images).await });
    // The server logs nothing until the call completes, so wait for the upload to be well under way.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let pid = i32::try_from(child.id())?;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let answered = call.await?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = log.map_while(Result::ok).collect();
    let stopped = rest.iter().find(|l| l.contains("\"stopped\"")).context("no `stopped` line")?;
    // Whether the upload had started when the signal came decides if the call is served or refused; a served call
    // must be complete and counted.
    match answered {
        Ok(probabilities) => {
            assert_eq!(probabilities.len(), 4000);
            assert!(stopped.contains("infer_ok: 1"), "{stopped}");
        }
        Err(e) => assert!(stopped.contains("infer_ok: 0"), "refused ({e}) but {stopped}"),
    }
    Ok(())
}

#[test]
fn weights_of_another_shape_are_refused_at_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let other = dir.path().join("small.safetensors");
    let network: Network<f32> = Network::<f64>::numpy_init(&[10, 3, 1], 1)?.cast();
    weights::save(&network, &Default::default(), &other)?;
    let output = Command::new(BIN).args(["serve", "--listen", "127.0.0.1:0", "--model"]).arg(&other).output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("the file holds a network of sizes [10, 3, 1], but [12288, 20, 7, 5, 1] was expected"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn the_deployment_args_are_the_ones_this_binary_takes() -> Result<()> {
    // The Deployment as the chart renders it (`helm template`: the Helm `make helm` builds, which
    // .cargo/config.toml names in WASMGATE_HELM).
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wasmgate");
    let helm = std::env::var_os("WASMGATE_HELM").unwrap_or_else(|| "helm".into());
    let rendered = Command::new(&helm)
        .args(["template", "wasmgate"])
        .arg(&chart)
        .args(["--show-only", "templates/inference/deployments.yaml"])
        .output()
        .with_context(|| format!("running {helm:?} (make helm)"))?;
    anyhow::ensure!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    let text = String::from_utf8(rendered.stdout)?;
    let first = text.split("\n---\n").find(|doc| doc.contains("kind: Deployment")).context("no Deployment")?;
    let deployment: serde_yaml_ng::Value = serde_yaml_ng::from_str(first)?;
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .context("args")?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("serve"));
    // The image's model path does not exist here: the command must get as far as loading it.
    let output = Command::new(BIN).args(&args).output()?;
    let stderr = String::from_utf8(output.stderr)?;
    assert!(!output.status.success());
    assert!(stderr.contains("loading the model from /model/catnet.safetensors"), "{stderr}");
    Ok(())
}
