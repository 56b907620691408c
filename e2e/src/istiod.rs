//! istiod's own config generator and istio-agent's own Wasm fetcher (`e2e/istiod`, a Go program on
//! `istio.io/istio`), run for one gateway: given the Istio resources, the Kubernetes objects a cluster would
//! hold and the mesh config, it serves Envoy over ADS on loopback, and takes new resources while it runs.

use crate::workspace;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// What istiod reads: the Istio resources (other kinds are skipped), the Kubernetes objects, and the install
/// options (an `IstioOperator`, YAML) whose `meshConfig` it runs with.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub istio: String,
    pub kube: String,
    pub mesh: String,
    /// Registries istio-agent pulls from over plain HTTP (`WASM_INSECURE_REGISTRIES`).
    pub insecure_registries: Vec<String>,
    /// The gateway Pod's `proxy.istio.io/config` annotation (empty if none).
    pub proxy_config: String,
}

/// A running istiod (with the agent step in front of it). Dropping it stops the process.
pub struct Istiod {
    child: Child,
    /// Keeps the process's standard input open: it stops when this closes.
    _stdin: Option<ChildStdin>,
    dir: tempfile::TempDir,
    /// Where Envoy's ADS connects (the agent step, which relays to istiod).
    pub xds: SocketAddr,
    control: SocketAddr,
    /// The gateway's proxy config as istio-agent builds it (the mesh's `defaultConfig` with the Pod's annotation
    /// merged over it), protobuf JSON: what the agent puts in Envoy's node metadata as `PROXY_CONFIG`.
    pub proxy_config: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ready {
    xds: SocketAddr,
    control: SocketAddr,
    proxy_config: serde_json::Value,
}

/// The Go program, built by `make istiod` into `target/wasmgate-istiod` (or `$WASMGATE_ISTIOD`).
pub fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("WASMGATE_ISTIOD") {
        return Ok(PathBuf::from(path));
    }
    let path = workspace::root().join("target/wasmgate-istiod");
    if !path.is_file() {
        bail!("{} is missing: run `make istiod` (builds e2e/istiod, istio.io/istio as a library)", path.display());
    }
    Ok(path)
}

impl Istiod {
    pub async fn start(inputs: &Inputs) -> Result<Self> {
        let inputs = inputs.clone();
        tokio::task::spawn_blocking(move || Self::start_blocking(&inputs)).await?
    }

    fn start_blocking(inputs: &Inputs) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let write = |name: &str, text: &str| -> Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        let istio = write("istio.yaml", &inputs.istio)?;
        let kube = write("kube.yaml", &inputs.kube)?;
        let mesh = write("mesh.yaml", &inputs.mesh)?;
        let wasm = dir.path().join("wasm");
        std::fs::create_dir_all(&wasm)?;
        let log = std::fs::File::create(dir.path().join("istiod.log"))?;
        let mut child = Command::new(binary()?)
            .arg("--config")
            .arg(&istio)
            .arg("--kube")
            .arg(&kube)
            .arg("--mesh")
            .arg(&mesh)
            .arg("--wasm-dir")
            .arg(&wasm)
            .arg("--insecure-registries")
            .arg(inputs.insecure_registries.join(","))
            .arg("--proxy-config")
            .arg(&inputs.proxy_config)
            .arg("--log-level")
            .arg(std::env::var("WASMGATE_ISTIOD_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting wasmgate-istiod")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout")?;
        // The ready line, or the process's end (its log says why).
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver.recv_timeout(Duration::from_secs(120)).unwrap_or_default();
        let ready: Ready = match serde_json::from_str(line.trim()) {
            Ok(ready) => ready,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("istiod did not start:\n{}", tail(&dir.path().join("istiod.log"), 40));
            }
        };
        Ok(Self { child, _stdin: stdin, dir, xds: ready.xds, control: ready.control, proxy_config: ready.proxy_config })
    }

    /// Replaces the Istio resources, as `kubectl apply` plus pruning would: istiod validates them (an invalid
    /// one is refused whole, with its reason), updates its store and pushes to the connected Envoys.
    pub async fn apply(&self, istio: &str) -> Result<()> {
        let url = format!("http://{}/config", self.control);
        let request = http::Request::put(&url)
            .header(http::header::HOST, self.control.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::from(istio.to_owned())))?;
        let stream = tokio::net::TcpStream::connect(self.control).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        let status = response.status();
        if !status.is_success() {
            use http_body_util::BodyExt;
            let body = response.into_body().collect().await?.to_bytes();
            bail!("istiod refused the resources ({status}): {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }

    /// istiod's and the agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("istiod.log")).unwrap_or_default()
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Istiod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
