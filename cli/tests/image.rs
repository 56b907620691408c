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
    let pins_dir = tempfile::tempdir().unwrap();
    let pins_file = pins_dir.path().join("pins.yaml");
    let pins_path = pins_file.to_str().unwrap();
    let push = |extra: &[&str]| {
        let mut args = vec!["image", "push", "--insecure", "--user", "ci", "--registry", &repo, "--tag", "t1"];
        args.extend_from_slice(extra);
        args.push(wasm);
        wasmgate(&args)
    };
    let (ok, pushed, err) = push(&["--pin-values", pins_path]);
    assert!(ok, "{err}");
    assert!(err.contains("pushing"), "progress is shown: {err}");
    let (reference, digest) = pushed.trim().split_once("@sha256:").unwrap();
    assert_eq!(reference, format!("{repo}/basic-auth:t1"));
    assert!(local.trim().ends_with(&format!("sha256:{digest}")), "digest before push {local} vs {pushed}");
    // The pins, given to the chart, pin its basic-auth WasmPlugin to what was pushed.
    let pinned = |file: &std::path::Path| {
        let chart = workspace::root().join("charts/wasmgate");
        let yaml = wasmgate::chart::render(&chart, &[file.to_path_buf()], &[]).unwrap();
        let plugins = wasmgate::istio::parse_wasm_plugins(&yaml).unwrap();
        let cr = plugins.into_iter().find(|p| p.metadata.name == "basic-auth").unwrap();
        (cr.spec.url, cr.spec.sha256)
    };
    assert_eq!(pinned(&pins_file), (format!("oci://{reference}"), Some(digest.to_string())));

    // Pinned for a cluster that reaches the same registry under another name.
    let (ok, _, err) = push(&["--pin-values", pins_path, "--pull-registry", "kind-registry:5000/wasmgate"]);
    assert!(ok, "{err}");
    let url = "oci://kind-registry:5000/wasmgate/basic-auth:t1".to_string();
    assert_eq!(pinned(&pins_file), (url, Some(digest.to_string())), "same digest");

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
