//! The real model server (`wasmgate-inference`) with the committed weights, in-process on a loopback port.

use crate::workspace;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmgate_inference::model::{DEFAULT_SIZES, Network, weights};
use wasmgate_inference::oip::service::{ModelService, Stats};
use wasmgate_inference::server::{self, ServerOptions};

pub struct ModelServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    pub network: Arc<Network<f32>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl ModelServer {
    /// With the server's defaults, and the web page as `make web` built it.
    pub async fn start() -> Result<Self> {
        let web_dir = workspace::root().join(wasmgate_inference::web::page::DEFAULT_WEB_DIR);
        Self::start_with(ServerOptions { web_dir, ..ServerOptions::default() }).await
    }

    pub async fn start_with(options: ServerOptions) -> Result<Self> {
        let path = workspace::committed_model();
        let network =
            weights::load(&path, Some(&DEFAULT_SIZES)).with_context(|| format!("loading {}", path.display()))?.network;
        let service = ModelService::new(network.clone()).map_err(anyhow::Error::msg)?;
        let stats = service.stats();
        let listener = tokio::net::TcpListener::bind((crate::loopback::next_address(), 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server::serve(listener, service, &options, async {
                let _ = stop.await;
            })
            .await
        });
        Ok(Self { addr, stats, network: Arc::new(network), shutdown: Some(shutdown), task: Some(task) })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Asks the server to stop without waiting: it refuses new connections and finishes calls in flight.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Stops gracefully and waits until the server has finished.
    pub async fn stop(mut self) -> Result<()> {
        self.shut_down().await
    }

    /// Stops gracefully and waits until the server has finished, so that a call sent afterwards cannot reach it
    /// (after [`begin_shutdown`](Self::begin_shutdown) alone, a call racing the shutdown may still be served).
    pub async fn shut_down(&mut self) -> Result<()> {
        self.begin_shutdown();
        match self.task.take() {
            Some(task) => task.await.context("server task")?,
            None => Ok(()),
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The model server as its own process (`wasmgate-inference serve`), for faults an in-process server cannot
/// show: killed mid-request, restarted on the same port.
pub struct ModelProcess {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl ModelProcess {
    /// The binary cargo built next to the running test or tool.
    pub fn binary() -> Result<std::path::PathBuf> {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().and_then(|d| if d.ends_with("deps") { d.parent() } else { Some(d) });
        let bin = dir.context("no target dir")?.join("wasmgate-inference");
        anyhow::ensure!(bin.is_file(), "{} is missing: cargo build -p wasmgate-inference", bin.display());
        Ok(bin)
    }

    /// Starts on `addr` (use a fixed port to restart in place) and waits until it answers health checks.
    pub async fn start(addr: SocketAddr) -> Result<Self> {
        let child = std::process::Command::new(Self::binary()?)
            .args(["serve", "--listen", &addr.to_string(), "--model"])
            .arg(workspace::committed_model())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let process = Self { addr, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            anyhow::ensure!(std::time::Instant::now() < deadline, "model server not listening on {addr}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(process)
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ModelProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback address of its own (see [`crate::loopback`]) with a port nothing listens on right now.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind((crate::loopback::next_address(), 0))?.local_addr()?)
}
