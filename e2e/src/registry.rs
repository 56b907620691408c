//! A real OCI registry (Debian's `docker-registry`, CNCF distribution) on loopback, with its own storage in
//! a temporary directory and, optionally, htpasswd basic auth. Stopped on drop.

use anyhow::{Context, Result, bail};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmgate::istio::WasmPlugin;
use wasmgate::oci;
use wasmgate::progress::silent;

pub struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Registry {
    /// Starts a registry; with `credentials`, every request needs basic auth.
    pub fn start(credentials: Option<(&str, &str)>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        // The registry takes a fixed address: ask the kernel for a free port, then hand it over.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n\
             http: {{addr: \"{addr}\", secret: wasmgate-test}}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            let hash = bcrypt::hash_with_result(password, 5)?.format_for_version(bcrypt::Version::TwoY);
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
            config.push_str(&format!("auth:\n  htpasswd: {{realm: wasmgate, path: {}}}\n", htpasswd.display()));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log"))?)
            .spawn()
            .context("starting docker-registry (make setup installs it)")?;
        let mut registry = Self { child, _dir: dir, addr };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("docker-registry exited ({status}) during start-up");
            }
            if std::net::TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("docker-registry not listening on {} after 20 s", self.addr)
    }

    /// `HOST:PORT`, as image references name it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Modules pulled from a registry for one gateway, by image name.
pub struct Fetched {
    _dir: tempfile::TempDir,
    files: std::collections::BTreeMap<String, std::path::PathBuf>,
}

impl Fetched {
    pub fn path(&self, plugin: &WasmPlugin) -> Result<std::path::PathBuf> {
        self.files
            .get(plugin.image_name())
            .cloned()
            .with_context(|| format!("{} was not fetched", plugin.filter_name()))
    }
}

/// What CI and a cluster do, in one step: push each plugin's module from `dist/` to `registry`, pin its CR to
/// the pushed image (`url` and `sha256`), then fetch it back as istio-agent does (digest, media types, `\0asm`).
/// Hand the returned CRs and [`Fetched`] to a [`crate::Gateway`], and Envoy runs the modules that came out of
/// the registry.
pub async fn publish_and_fetch(registry: &Registry, plugins: Vec<WasmPlugin>) -> Result<(Vec<WasmPlugin>, Fetched)> {
    let dir = tempfile::tempdir()?;
    let mut files = std::collections::BTreeMap::new();
    let mut pinned = Vec::new();
    let anonymous = oci_client::secrets::RegistryAuth::Anonymous;
    for mut plugin in plugins {
        let name = plugin.image_name().to_string();
        let wasm = std::fs::read(crate::workspace::plugin_wasm(&name)?)?;
        let reference: oci_client::Reference = format!("{}/wasmgate/{name}:test", registry.host()).parse()?;
        let package = oci::package(&wasm, oci::Variant::Oci, &std::collections::BTreeMap::new())?;
        let digest = oci::push(&oci::client(true), &reference, package, &anonymous, &silent()).await?;
        plugin.spec.url = format!("oci://{reference}");
        plugin.spec.sha256 = Some(digest);
        let module =
            oci::pull_verified(&oci::client(true), &reference, &anonymous, plugin.spec.sha256.as_deref(), &silent())
                .await?;
        let file = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&file, module)?;
        files.insert(name, file);
        pinned.push(plugin);
    }
    Ok((pinned, Fetched { _dir: dir, files }))
}
