//! `wasmgate image` as a user runs it, against a real registry.

use std::path::PathBuf;
use std::process::Command;
use wasmgate_e2e::registry::Registry;
use wasmgate_e2e::workspace;

fn wasmgate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(args)
        .env("WASMGATE_REGISTRY_PASSWORD", "pw")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn module() -> PathBuf {
    workspace::plugin_wasm("basic-auth").expect("make build")
}

#[test]
fn push_digest_and_pull() {
    let registry = Registry::start(Some(("ci", "pw"))).unwrap();
    let wasm = module();
    let wasm = wasm.to_str().unwrap();
    let (ok, local, err) = wasmgate(&["image", "digest", "--tag", "t1", wasm]);
    assert!(ok, "{err}");
    let repo = format!("{}/wasmgate", registry.host());
    let overlay = tempfile::tempdir().unwrap();
    let overlay_dir = overlay.path().to_str().unwrap();
    let (ok, pushed, err) = wasmgate(&[
        "image",
        "push",
        "--insecure",
        "--user",
        "ci",
        "--registry",
        &repo,
        "--tag",
        "t1",
        "--pin-overlay",
        overlay_dir,
        wasm,
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("pushing"), "progress is shown: {err}");
    let (reference, digest) = pushed.trim().split_once("@sha256:").unwrap();
    assert_eq!(reference, format!("{repo}/basic-auth:t1"));
    assert!(local.trim().ends_with(&format!("sha256:{digest}")), "digest before push {local} vs {pushed}");
    let pins = std::fs::read_to_string(overlay.path().join("kustomization.yaml")).unwrap();
    assert!(
        pins.contains(&format!("value: oci://{reference}")) && pins.contains(&format!("value: \"{digest}\"")),
        "{pins}"
    );

    // Pinned for a cluster that reaches the same registry under another name, on top of another overlay.
    let (ok, _, err) = wasmgate(&[
        "image",
        "push",
        "--insecure",
        "--user",
        "ci",
        "--registry",
        &repo,
        "--tag",
        "t1",
        "--pin-overlay",
        overlay_dir,
        "--base",
        "../kind",
        "--pull-registry",
        "kind-registry:5000/wasmgate",
        wasm,
    ]);
    assert!(ok, "{err}");
    let pins = std::fs::read_to_string(overlay.path().join("kustomization.yaml")).unwrap();
    assert!(pins.contains("  - ../kind\n"), "{pins}");
    assert!(pins.contains("value: oci://kind-registry:5000/wasmgate/basic-auth:t1"), "{pins}");
    assert!(pins.contains(&format!("value: \"{digest}\"")), "same digest: {pins}");

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("pulled.wasm");
    let file = file.to_str().unwrap();
    let (ok, _, err) =
        wasmgate(&["image", "pull", "--insecure", "--user", "ci", reference, "--sha256", digest, "-o", file]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(file).unwrap(), std::fs::read(module()).unwrap());
    let wrong = "0".repeat(64);
    let (ok, _, err) =
        wasmgate(&["image", "pull", "--insecure", "--user", "ci", reference, "--sha256", &wrong, "-o", file]);
    assert!(!ok && err.contains("digest mismatch"), "{err}");
}

#[test]
fn clear_errors() {
    let (ok, _, err) = wasmgate(&["image", "push", "x.wasm"]);
    assert!(!ok && err.contains("--registry"), "{err}");
    let (ok, _, err) = wasmgate(&["image", "push", "--registry", "127.0.0.1:1/w", "--variant", "cncf", "x.wasm"]);
    assert!(!ok && err.contains("unknown image variant"), "{err}");
    let (ok, _, err) = wasmgate(&["image", "pull", "--insecure", "127.0.0.1:1/w/basic-auth:1", "-o", "/dev/null"]);
    assert!(!ok && err.contains("fetching the manifest"), "registry down: {err}");
}
