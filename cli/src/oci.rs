//! Plugin images as Istio reads them (istio `pkg/wasm/imagefetcher.go`), pushed and pulled with `oci-client`.
//!
//! - *oci* variant: an image manifest with exactly two layers, the Wasm config JSON
//!   (`application/vnd.module.wasm.config.v1+json`) and the raw module (`...content.layer.v1+wasm`).
//! - *compat* variant: the last layer a gzip tar (`application/vnd.oci.image.layer.v1.tar+gzip`, or Docker's
//!   `rootfs.diff.tar.gzip`) holding `plugin.wasm`.
//!
//! `WasmPlugin.spec.sha256` for `oci://` URLs is the manifest digest as 64 hex characters. Pulling checks it
//! against the manifest bytes actually received, then each blob against its descriptor, then the module.

use crate::progress::Progress;
use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;

pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
pub const OCI_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What the CNCF "wasm OCI artifact" layout (wasm-to-oci, oci-wasm) uses, which Istio does not read.
pub const CNCF_WASM: &str = "application/wasm";
/// Istio refuses larger modules.
pub const MAX_MODULE_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Oci,
    Compat,
}

impl std::str::FromStr for Variant {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "oci" => Ok(Self::Oci),
            "compat" => Ok(Self::Compat),
            other => bail!("unknown image variant `{other}` (oci or compat)"),
        }
    }
}

/// A module is what Envoy can load: `\0asm` magic and at most 256 MiB.
pub fn check_module(bytes: &[u8]) -> Result<()> {
    ensure!(bytes.starts_with(b"\0asm"), "not a Wasm module: it does not start with \\0asm");
    ensure!(bytes.len() <= MAX_MODULE_BYTES, "module of {} bytes is over Istio's 256 MiB limit", bytes.len());
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An image ready to push.
pub struct Package {
    pub layers: Vec<ImageLayer>,
    pub config: Config,
    pub manifest: OciImageManifest,
}

/// Packages `wasm` as `variant`. Everything is derived from the module and the annotations (no timestamps), so
/// the same module gives the same manifest digest.
pub fn package(wasm: &[u8], variant: Variant, annotations: &BTreeMap<String, String>) -> Result<Package> {
    check_module(wasm)?;
    let (layers, config) = match variant {
        Variant::Oci => {
            let config =
                serde_json::to_vec(&serde_json::json!({"type": "envoy_proxy", "abiVersions": ["proxy-wasm-0.2.1"]}))?;
            (
                vec![
                    ImageLayer::new(config.clone(), WASM_CONFIG.to_string(), None),
                    ImageLayer::new(wasm.to_vec(), WASM_LAYER.to_string(), None),
                ],
                Config::new(config, WASM_CONFIG.to_string(), None),
            )
        }
        Variant::Compat => {
            let tar = plugin_tar(wasm)?;
            let diff_id = format!("sha256:{}", sha256_hex(&tar));
            let gz = gzip(&tar)?;
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": "wasm", "os": "wasip1", "rootfs": {"type": "layers", "diff_ids": [diff_id]}
            }))?;
            (
                vec![ImageLayer::new(gz, OCI_TAR_GZIP.to_string(), None)],
                Config::new(config, OCI_IMAGE_CONFIG.to_string(), None),
            )
        }
    };
    let manifest = OciImageManifest::build(&layers, &config, Some(annotations.clone()));
    Ok(Package { layers, config, manifest })
}

impl Package {
    /// The manifest digest (64 hex) the registry will store: the sha256 of the canonical JSON that `oci-client`
    /// pushes. What `WasmPlugin.spec.sha256` pins, known before any push.
    pub fn digest(&self) -> Result<String> {
        use serde::Serialize;
        let manifest = oci_client::manifest::OciManifest::Image(self.manifest.clone());
        let mut body = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut body, olpc_cjson::CanonicalFormatter::new());
        manifest.serialize(&mut ser)?;
        Ok(sha256_hex(&body))
    }
}

/// A tar holding just `plugin.wasm`, with fixed owner, mode and time.
fn plugin_tar(wasm: &[u8]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    builder.append_data(&mut header, "plugin.wasm", wasm)?;
    Ok(builder.into_inner()?)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// `plugin.wasm` from a gzip tar, reading at most the module limit.
fn extract_plugin(gz: &[u8]) -> Result<Vec<u8>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for entry in archive.entries().context("layer is not a gzip tar")? {
        let entry = entry.context("reading the layer's tar")?;
        let is_plugin = entry.path().ok().is_some_and(|p| p.file_name().is_some_and(|n| n == "plugin.wasm"));
        if is_plugin {
            let mut bytes = Vec::new();
            entry.take(MAX_MODULE_BYTES as u64 + 1).read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
    }
    bail!("the layer holds no plugin.wasm")
}

/// A client with timeouts, so a registry that is down gives an error rather than a hang.
pub fn client(insecure: bool) -> Client {
    Client::new(ClientConfig {
        protocol: if insecure { ClientProtocol::Http } else { ClientProtocol::Https },
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    })
}

pub fn auth(user: Option<&str>, password: Option<&str>) -> RegistryAuth {
    match (user, password) {
        (Some(u), Some(p)) => RegistryAuth::Basic(u.to_string(), p.to_string()),
        _ => RegistryAuth::Anonymous,
    }
}

/// Pushes `package` to `reference`, reporting every byte sent to `progress`; returns the manifest digest (64
/// hex) as the registry stores it. A blob the repository already holds is not sent again.
pub async fn push(
    client: &Client,
    reference: &Reference,
    package: Package,
    auth: &RegistryAuth,
    progress: &Arc<dyn Progress>,
) -> Result<String> {
    client.store_auth_if_needed(reference.resolve_registry(), auth).await;
    let config = (package.config.data, package.manifest.config.digest.clone());
    let mut blobs: Vec<(Bytes, String)> = package
        .layers
        .into_iter()
        .zip(&package.manifest.layers)
        .map(|(layer, descriptor)| (layer.data, descriptor.digest.clone()))
        .collect();
    blobs.push(config);
    let total = blobs.iter().map(|(data, _)| data.len() as u64).sum();
    progress.start(&reference.to_string(), total);
    let transfer = async {
        for (data, digest) in blobs {
            push_blob(client, reference, data, &digest, progress)
                .await
                .with_context(|| format!("pushing {reference}"))?;
        }
        client
            .push_manifest(reference, &OciManifest::Image(package.manifest))
            .await
            .with_context(|| format!("pushing the manifest of {reference}"))?;
        Ok(())
    };
    reported(progress, transfer).await?;
    let (raw, _) = client
        .pull_manifest_raw(reference, auth, &[OCI_MANIFEST, DOCKER_MANIFEST])
        .await
        .with_context(|| format!("reading back the manifest of {reference}"))?;
    Ok(sha256_hex(&raw))
}

/// Awaits a started transfer and ends its progress: `finish` when it succeeded, `abandon` when it failed.
async fn reported<T>(progress: &Arc<dyn Progress>, transfer: impl Future<Output = Result<T>>) -> Result<T> {
    let result = transfer.await;
    if result.is_ok() {
        progress.finish()
    } else {
        progress.abandon()
    }
    result
}

/// Sends one blob in chunks, counting each once the registry has taken it.
async fn push_blob(
    client: &Client,
    reference: &Reference,
    data: Bytes,
    digest: &str,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let size = data.len() as u64;
    // An error here only means "unknown": the push then happens anyway.
    if client.blob_exists(reference, digest).await.unwrap_or(false) {
        progress.advance(size);
        return Ok(());
    }
    client
        .push_blob_stream(reference, reporting_chunks(data, Arc::clone(progress)), digest, Some(size))
        .await
        .with_context(|| format!("pushing blob {digest}"))?;
    Ok(())
}

/// `oci-client`'s own chunk size: each chunk is one upload request.
const PUSH_CHUNK: usize = 4 << 20;

/// `data` as a stream of chunks. The uploader asks for the next chunk once it has sent the last one, so that is
/// when the last one is counted; the end of the stream counts the final chunk.
fn reporting_chunks(
    data: Bytes,
    progress: Arc<dyn Progress>,
) -> impl futures_util::Stream<Item = Result<Bytes, OciDistributionError>> + Send + 'static {
    futures_util::stream::unfold((data, 0_u64), move |(mut rest, sent)| {
        progress.advance(sent);
        let next = (!rest.is_empty()).then(|| {
            let chunk = rest.split_to(PUSH_CHUNK.min(rest.len()));
            let len = chunk.len() as u64;
            (Ok(chunk), (rest, len))
        });
        std::future::ready(next)
    })
}

/// Collects a pulled blob, reporting each piece as it arrives.
struct CountingWriter {
    bytes: Vec<u8>,
    progress: Arc<dyn Progress>,
}

impl AsyncWrite for CountingWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.bytes.extend_from_slice(buf);
        self.progress.advance(buf.len() as u64);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn blob(
    client: &Client,
    reference: &Reference,
    descriptor: &OciDescriptor,
    progress: &Arc<dyn Progress>,
) -> Result<Vec<u8>> {
    let size = u64::try_from(descriptor.size).unwrap_or(u64::MAX);
    ensure!(
        usize::try_from(size).is_ok_and(|s| s <= MAX_MODULE_BYTES + (1 << 20)),
        "layer of {} bytes is over the module limit",
        descriptor.size
    );
    progress.start(&format!("{reference} {}", descriptor.digest), size);
    let mut out = CountingWriter { bytes: Vec::new(), progress: Arc::clone(progress) };
    let transfer = async {
        client
            .pull_blob(reference, descriptor, &mut out)
            .await
            .with_context(|| format!("pulling blob {}", descriptor.digest))
    };
    reported(progress, transfer).await?;
    let out = out.bytes;
    let got = format!("sha256:{}", sha256_hex(&out));
    ensure!(got == descriptor.digest, "blob digest mismatch: manifest says {}, content is {got}", descriptor.digest);
    Ok(out)
}

/// Pulls the module at `reference` the way istio-agent does, refusing anything Istio would refuse.
/// `expected_sha256` is `WasmPlugin.spec.sha256` (the manifest digest, 64 hex).
pub async fn pull_verified(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
    expected_sha256: Option<&str>,
    progress: &Arc<dyn Progress>,
) -> Result<Vec<u8>> {
    let (raw, _) = client
        .pull_manifest_raw(reference, auth, &[OCI_MANIFEST, DOCKER_MANIFEST])
        .await
        .with_context(|| format!("fetching the manifest of {reference}"))?;
    let digest = sha256_hex(&raw);
    if let Some(want) = expected_sha256 {
        ensure!(
            want.len() == 64 && want.bytes().all(|b| b.is_ascii_hexdigit()),
            "sha256 `{want}` must be 64 hex characters without `sha256:`"
        );
        ensure!(
            want.eq_ignore_ascii_case(&digest),
            "digest mismatch for {reference}: want {want}, registry has {digest}"
        );
    }
    let manifest: OciImageManifest = serde_json::from_slice(&raw).context("the manifest is not an image manifest")?;
    let cncf = manifest.config.media_type.starts_with("application/vnd.wasm.config")
        || manifest.layers.iter().any(|l| l.media_type == CNCF_WASM)
        || manifest.artifact_type.as_deref().is_some_and(|t| t.contains("wasm.config"));
    ensure!(
        !cncf,
        "{reference} is a CNCF Wasm artifact (wasm-to-oci / oci-wasm layout), which Istio does not read; \
         package it with `wasmgate image push` (oci or compat variant)"
    );
    let last = manifest.layers.last().context("the image has no layers")?;
    let module = if last.media_type == OCI_TAR_GZIP || last.media_type == DOCKER_TAR_GZIP {
        extract_plugin(&blob(client, reference, last, progress).await?)?
    } else {
        ensure!(
            manifest.layers.len() == 2,
            "not a Wasm image Istio reads: {} layer(s) of types [{}]; want a gzip tar with plugin.wasm last, or \
             exactly two layers {WASM_CONFIG} and {WASM_LAYER}",
            manifest.layers.len(),
            manifest.layers.iter().map(|l| l.media_type.as_str()).collect::<Vec<_>>().join(", ")
        );
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == WASM_LAYER)
            .with_context(|| format!("no layer of type {WASM_LAYER}"))?;
        blob(client, reference, layer, progress).await?
    };
    check_module(&module)?;
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn same_module_same_digest() {
        let ann = BTreeMap::from([("org.opencontainers.image.revision".to_string(), "abc".to_string())]);
        for variant in [Variant::Oci, Variant::Compat] {
            let a = serde_json::to_vec(&package(MODULE, variant, &ann).unwrap().manifest).unwrap();
            let b = serde_json::to_vec(&package(MODULE, variant, &ann).unwrap().manifest).unwrap();
            assert_eq!(sha256_hex(&a), sha256_hex(&b), "{variant:?}");
        }
    }

    #[test]
    fn shapes() {
        let oci = package(MODULE, Variant::Oci, &BTreeMap::new()).unwrap();
        let types: Vec<&str> = oci.manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
        assert_eq!(types, [WASM_CONFIG, WASM_LAYER]);
        let compat = package(MODULE, Variant::Compat, &BTreeMap::new()).unwrap();
        assert_eq!(compat.manifest.layers.len(), 1);
        assert_eq!(extract_plugin(&compat.layers[0].data).unwrap(), MODULE);
    }

    #[test]
    fn only_wasm_modules() {
        assert!(package(b"\x7fELF", Variant::Oci, &BTreeMap::new()).is_err());
        assert!(check_module(MODULE).is_ok());
        assert!(extract_plugin(&gzip(&[0u8; 1024]).unwrap()).is_err());
    }
}
