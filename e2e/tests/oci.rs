//! Plugin images through a real registry (docker-registry), read by an independent client (skopeo) and pulled
//! with Istio's rules, ending in an Envoy that runs the module that came out of the registry.

use anyhow::Result;
use oci_client::Reference;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmgate::oci::{self, Variant};
use wasmgate::progress::{Progress, silent};
use wasmgate_e2e::fixtures::HOST;
use wasmgate_e2e::registry::Registry;
use wasmgate_e2e::{Gateway, RawRequest, Upstream, workspace};

fn module() -> Vec<u8> {
    std::fs::read(workspace::plugin_wasm("basic-auth").expect("make build")).expect("module")
}

fn reference(registry: &Registry, name: &str, tag: &str) -> Reference {
    format!("{}/wasmgate/{name}:{tag}", registry.host()).parse().expect("reference")
}

async fn push(registry: &Registry, name: &str, tag: &str, variant: Variant, auth: &RegistryAuth) -> Result<String> {
    let package = oci::package(&module(), variant, &BTreeMap::new())?;
    let local = package.digest()?;
    let pushed = oci::push(&oci::client(true), &reference(registry, name, tag), package, auth, &silent()).await?;
    assert_eq!(local, pushed, "the digest computed before the push is the registry's");
    Ok(pushed)
}

fn skopeo(args: &[&str]) -> (bool, String) {
    let out = Command::new("skopeo").args(args).output().expect("skopeo (make setup installs it)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn both_variants_round_trip_and_skopeo_reads_them() -> Result<()> {
    let registry = Registry::start(None)?;
    let client = oci::client(true);
    let anon = RegistryAuth::Anonymous;
    for (variant, tag) in [(Variant::Oci, "oci"), (Variant::Compat, "compat")] {
        let digest = push(&registry, "basic-auth", tag, variant, &anon).await?;
        assert_eq!(
            digest,
            push(&registry, "basic-auth", tag, variant, &anon).await?,
            "reproducible: same module, same digest"
        );
        let pulled =
            oci::pull_verified(&client, &reference(&registry, "basic-auth", tag), &anon, Some(&digest), &silent())
                .await?;
        assert_eq!(pulled, module(), "{variant:?}");

        let src = format!("docker://{}/wasmgate/basic-auth:{tag}", registry.host());
        let (ok, out) = skopeo(&["inspect", "--raw", "--tls-verify=false", &src]);
        assert!(ok, "skopeo inspect: {out}");
        let dst = format!("docker://{}/copied/basic-auth:{tag}", registry.host());
        let (ok, out) = skopeo(&["copy", "--src-tls-verify=false", "--dest-tls-verify=false", &src, &dst]);
        assert!(ok, "skopeo copy: {out}");
        let copied = oci::pull_verified(
            &client,
            &format!("{}/copied/basic-auth:{tag}", registry.host()).parse()?,
            &anon,
            Some(&digest),
            &silent(),
        )
        .await?;
        assert_eq!(copied, module(), "skopeo copy keeps the digest");
    }
    Ok(())
}

#[tokio::test]
async fn istio_would_refuse_these_so_pull_does_too() -> Result<()> {
    let registry = Registry::start(None)?;
    let client = oci::client(true);
    let anon = RegistryAuth::Anonymous;
    let digest = push(&registry, "basic-auth", "1", Variant::Oci, &anon).await?;
    let wrong = format!("{}{}", &digest[..63], if digest.ends_with('0') { '1' } else { '0' });
    let err = oci::pull_verified(&client, &reference(&registry, "basic-auth", "1"), &anon, Some(&wrong), &silent())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("digest mismatch"), "{err:#}");
    let err = oci::pull_verified(
        &client,
        &reference(&registry, "basic-auth", "1"),
        &anon,
        Some(&format!("sha256:{digest}")),
        &silent(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("64 hex characters"), "{err:#}");

    // A CNCF Wasm artifact (what wasm-to-oci and oci-wasm push).
    let layers = vec![ImageLayer::new(module(), "application/wasm".to_string(), None)];
    let config = Config::new(b"{}".to_vec(), "application/vnd.wasm.config.v0+json".to_string(), None);
    let manifest = OciImageManifest::build(&layers, &config, None);
    client.push(&reference(&registry, "cncf", "1"), &layers, config, &anon, Some(manifest)).await?;
    let err =
        oci::pull_verified(&client, &reference(&registry, "cncf", "1"), &anon, None, &silent()).await.unwrap_err();
    assert!(format!("{err:#}").contains("CNCF Wasm artifact"), "{err:#}");

    // The oci layout around something that is not a Wasm module.
    let elf = b"\x7fELF\x02\x01\x01".to_vec();
    let layers = vec![
        ImageLayer::new(b"{}".to_vec(), oci::WASM_CONFIG.to_string(), None),
        ImageLayer::new(elf, oci::WASM_LAYER.to_string(), None),
    ];
    let config = Config::new(b"{}".to_vec(), oci::WASM_CONFIG.to_string(), None);
    let manifest = OciImageManifest::build(&layers, &config, None);
    client.push(&reference(&registry, "elf", "1"), &layers, config, &anon, Some(manifest)).await?;
    let err = oci::pull_verified(&client, &reference(&registry, "elf", "1"), &anon, None, &silent()).await.unwrap_err();
    assert!(format!("{err:#}").contains("does not start with \\0asm"), "{err:#}");
    Ok(())
}

#[tokio::test]
async fn registry_auth_and_registry_down() -> Result<()> {
    let registry = Registry::start(Some(("ci", "s3cret")))?;
    let right = RegistryAuth::Basic("ci".into(), "s3cret".into());
    let wrong = RegistryAuth::Basic("ci".into(), "guess".into());
    let digest = push(&registry, "basic-auth", "1", Variant::Oci, &right).await?;
    let refused = Arc::new(Recorded::default());
    let package = oci::package(&module(), Variant::Oci, &BTreeMap::new())?;
    let target = reference(&registry, "basic-auth", "2");
    let progress = refused.clone() as Arc<dyn Progress>;
    let client = oci::client(true);
    assert!(oci::push(&client, &target, package, &wrong, &progress).await.is_err(), "push with a wrong password");
    assert_eq!(refused.abandoned.load(Ordering::SeqCst), 1, "a failed push clears its progress");
    assert_eq!(refused.finished.load(Ordering::SeqCst), 0, "and reports no finished transfer");
    // A client keeps the first credentials it used for a registry: one client per attempt.
    let err = oci::pull_verified(&oci::client(true), &reference(&registry, "basic-auth", "1"), &wrong, None, &silent())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("Not authorized"), "{err:#}");
    let pulled = oci::pull_verified(
        &oci::client(true),
        &reference(&registry, "basic-auth", "1"),
        &right,
        Some(&digest),
        &silent(),
    )
    .await?;
    assert_eq!(pulled, module());

    let down: Reference = format!("{}/wasmgate/basic-auth:1", registry.host()).parse()?;
    drop(registry);
    let start = Instant::now();
    let err = oci::pull_verified(&oci::client(true), &down, &right, None, &silent()).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(15), "no hang: {:?}", start.elapsed());
    assert!(format!("{err:#}").contains("fetching the manifest"), "{err:#}");
    Ok(())
}

#[tokio::test]
async fn envoy_runs_the_module_pulled_from_the_registry() -> Result<()> {
    let registry = Registry::start(None)?;
    let digest = push(&registry, "basic-auth", "0.1.0", Variant::Compat, &RegistryAuth::Anonymous).await?;
    let mut cr = workspace::plugin_cr("basic-auth")?;
    cr.spec.url = format!("oci://{}/wasmgate/basic-auth:0.1.0", registry.host());
    cr.spec.sha256 = Some(digest);
    let dir = tempfile::tempdir()?;
    let fetched = dir.path().join("basic-auth.wasm");
    // istio-agent's part: pull by the CR's url, check its sha256, hand Envoy the file.
    let reference: Reference = cr.spec.url.trim_start_matches("oci://").parse()?;
    let module = oci::pull_verified(
        &oci::client(true),
        &reference,
        &RegistryAuth::Anonymous,
        cr.spec.sha256.as_deref(),
        &silent(),
    )
    .await?;
    std::fs::write(&fetched, module)?;
    let upstream = Upstream::start("models").await?;
    let path = fetched.clone();
    let envoy =
        Gateway::new().plugin(cr).upstream("models", upstream.addr).resolver(move |_| Ok(path.clone())).start().await?;
    let denied = RawRequest::get("/").host(HOST).send(envoy.listener).await?;
    assert_eq!(denied.status, 401);
    let allowed = RawRequest::get("/").host(HOST).basic_auth("username", "password").send(envoy.listener).await?;
    assert_eq!(allowed.status, 200);
    Ok(())
}

/// What a transfer reported, to check the figures a user sees.
#[derive(Default)]
struct Recorded {
    starts: Mutex<Vec<u64>>,
    advances: Mutex<Vec<u64>>,
    finished: AtomicUsize,
    abandoned: AtomicUsize,
}

impl Progress for Recorded {
    fn start(&self, _what: &str, total: u64) {
        self.starts.lock().expect("lock").push(total);
    }
    fn advance(&self, bytes: u64) {
        self.advances.lock().expect("lock").push(bytes);
    }
    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
    fn abandon(&self) {
        self.abandoned.fetch_add(1, Ordering::SeqCst);
    }
}

impl Recorded {
    fn moved(&self) -> u64 {
        self.advances.lock().expect("lock").iter().sum()
    }
    fn steps(&self) -> usize {
        self.advances.lock().expect("lock").iter().filter(|b| **b > 0).count()
    }
}

/// A valid module of `size` bytes: the wasm header and one custom section of padding.
fn large_module(size: usize) -> Vec<u8> {
    let name = b"padding";
    let payload = size - 8 - 1 - 5 - 1 - name.len();
    let section_len = u32::try_from(1 + name.len() + payload).expect("size");
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.push(0);
    // The section length as a 5-byte LEB128, so the arithmetic above holds for any size.
    for shift in [0, 7, 14, 21] {
        module.push(((section_len >> shift) & 0x7f) as u8 | 0x80);
    }
    module.push((section_len >> 28) as u8);
    module.push(u8::try_from(name.len()).expect("name"));
    module.extend_from_slice(name);
    module.extend((0..payload).map(|i| (i % 251) as u8));
    assert_eq!(module.len(), size);
    module
}

#[tokio::test]
async fn large_layers_report_progress_byte_by_byte() -> Result<()> {
    let registry = Registry::start(None)?;
    let client = oci::client(true);
    let anon = RegistryAuth::Anonymous;
    let module = large_module(24 << 20);
    let reference = reference(&registry, "large", "1");

    let package = oci::package(&module, Variant::Oci, &BTreeMap::new())?;
    let blob_bytes: u64 =
        package.layers.iter().map(|l| l.data.len() as u64).sum::<u64>() + package.config.data.len() as u64;
    let local = package.digest()?;
    let push_progress = Arc::new(Recorded::default());
    let pushed = oci::push(&client, &reference, package, &anon, &(push_progress.clone() as Arc<dyn Progress>)).await?;
    assert_eq!(pushed, local);
    assert_eq!(*push_progress.starts.lock().expect("lock"), vec![blob_bytes], "one push, every blob counted");
    assert_eq!(push_progress.moved(), blob_bytes, "every byte sent is reported, none twice");
    assert!(
        push_progress.steps() >= 6,
        "24 MiB in 4 MiB requests, reported as each is sent: {}",
        push_progress.steps()
    );
    assert_eq!(push_progress.finished.load(Ordering::SeqCst), 1);

    // A second push finds the blobs there and sends none of them again, still accounting for them.
    let again = Arc::new(Recorded::default());
    let package = oci::package(&module, Variant::Oci, &BTreeMap::new())?;
    assert_eq!(oci::push(&client, &reference, package, &anon, &(again.clone() as Arc<dyn Progress>)).await?, pushed);
    assert_eq!(again.moved(), blob_bytes);

    let pull_progress = Arc::new(Recorded::default());
    let pulled =
        oci::pull_verified(&client, &reference, &anon, Some(&pushed), &(pull_progress.clone() as Arc<dyn Progress>))
            .await?;
    assert_eq!(pulled, module);
    assert_eq!(*pull_progress.starts.lock().expect("lock"), vec![module.len() as u64]);
    assert_eq!(pull_progress.moved(), module.len() as u64);
    assert!(pull_progress.steps() > 1, "reported as the bytes arrive, not at the end");

    // The independent client reads the large image too.
    let src = format!("docker://{}/wasmgate/large:1", registry.host());
    let (ok, out) = skopeo(&["inspect", "--raw", "--tls-verify=false", &src]);
    assert!(ok, "skopeo inspect: {out}");
    Ok(())
}
