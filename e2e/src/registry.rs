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
    /// The basic-auth user and password it asks for, if any.
    pub credentials: Option<(String, String)>,
}

impl Registry {
    /// Starts a registry; with `credentials`, every request needs basic auth, challenged with realm `wasmgate`.
    pub fn start(credentials: Option<(&str, &str)>) -> Result<Self> {
        Self::start_with_realm(credentials, "wasmgate")
    }

    /// [`Registry::start`] with another realm in the 401 challenge (istio-agent follows only an http(s) URL with a
    /// public host).
    pub fn start_with_realm(credentials: Option<(&str, &str)>, realm: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        // The registry takes a fixed address: ask the kernel for a free port, then hand it over.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n\
             http: {{addr: \"{addr}\", secret: wasmgate-test}}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, self::htpasswd(user, password)?)?;
            config.push_str(&format!("auth:\n  htpasswd: {{realm: \"{realm}\", path: {}}}\n", htpasswd.display()));
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
        let credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        let mut registry = Self { child, _dir: dir, addr, credentials };
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

impl Registry {
    /// Stops it (a registry that is down, for a test).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What CI does before a cluster pulls: push each plugin's module from `dist/` to `registry` and pin its CR to the
/// pushed image (`url` and `sha256`, the manifest digest istio-agent checks). The gateway's istio-agent then pulls
/// them (see [`crate::gateway::Gateway::pulled`]).
pub async fn publish(registry: &Registry, plugins: Vec<WasmPlugin>) -> Result<Vec<WasmPlugin>> {
    let mut pinned = Vec::new();
    for plugin in plugins {
        let name = plugin.image_name().to_string();
        let wasm = std::fs::read(crate::workspace::plugin_wasm(&name)?)?;
        pinned.push(publish_module(registry, &plugin, &wasm, "test").await?);
    }
    Ok(pinned)
}

/// An htpasswd file with one user, bcrypt-hashed (the only scheme docker-registry reads).
pub fn htpasswd(user: &str, password: &str) -> Result<String> {
    let hash = bcrypt::hash_with_result(password, 5)?.format_for_version(bcrypt::Version::TwoY);
    Ok(format!("{user}:{hash}\n"))
}

/// Pushes `wasm` as `<registry>/wasmgate/<image name>:<tag>` and returns `plugin` pinned to it.
pub async fn publish_module(registry: &Registry, plugin: &WasmPlugin, wasm: &[u8], tag: &str) -> Result<WasmPlugin> {
    let credentials = registry.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let (reference, digest) = push_module(&registry.host(), plugin.image_name(), wasm, tag, credentials).await?;
    let mut pinned = plugin.clone();
    pinned.spec.url = format!("oci://{reference}");
    pinned.spec.sha256 = Some(digest);
    Ok(pinned)
}

/// Pushes `wasm` as `<host>/wasmgate/<image>:<tag>`, with basic `credentials` if given: the reference and the
/// manifest digest.
pub async fn push_module(
    host: &str,
    image: &str,
    wasm: &[u8],
    tag: &str,
    credentials: Option<(&str, &str)>,
) -> Result<(oci_client::Reference, String)> {
    let reference: oci_client::Reference = format!("{host}/wasmgate/{image}:{tag}").parse()?;
    let package = oci::package(wasm, oci::Variant::Oci, &std::collections::BTreeMap::new())?;
    let auth = match credentials {
        Some((user, password)) => oci_client::secrets::RegistryAuth::Basic(user.to_owned(), password.to_owned()),
        None => oci_client::secrets::RegistryAuth::Anonymous,
    };
    let digest = oci::push(&oci::client(true), &reference, package, &auth, &silent()).await?;
    Ok((reference, digest))
}
