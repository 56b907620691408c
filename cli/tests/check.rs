//! `wasmgate check` as a user runs it, on the committed manifests and on broken copies of them.

use std::path::Path;
use std::process::Command;

fn check(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmgate")).arg("check").arg(path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn manifests() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

#[test]
fn committed_manifests_pass() {
    let (ok, out) = check(&manifests());
    assert!(ok, "{out}");
    assert!(out.contains("ok      istio-system.basic-auth: basic-auth, 1 rule(s)"), "{out}");
}

#[test]
fn a_broken_plugin_config_fails_with_the_field() {
    let original = std::fs::read_to_string(manifests().join("base/plugins/basic-auth.yaml")).unwrap();
    let credentials = original.lines().find(|l| l.trim_start().starts_with("credentials:")).unwrap().trim();
    let cases = [
        (credentials, "credentials: []", "basic_auth_rules[0].credentials"),
        ("$2y$05$", "$2y$99$", "bcrypt cost 99 is above 12"),
        ("request_methods:", "request_method:", "unknown field `request_method`"),
        ("hosts: [ml.example.com, canary.ml.example.com]", "hosts: [\"ml.example.com:443\"]", "leave the port out"),
        (
            "oci://registry.example.com/wasmgate/basic-auth",
            "oci://registry.example.com/wasmgate/nope",
            "no wasmgate image is called `nope`",
        ),
    ];
    for (from, to, want) in cases {
        assert!(original.contains(from), "{from}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plugin.yaml");
        std::fs::write(&file, original.replace(from, to)).unwrap();
        let (ok, out) = check(&file);
        assert!(!ok, "{to}: passed\n{out}");
        assert!(out.contains(want), "{to}: want {want:?} in\n{out}");
    }
}

#[test]
fn no_plugins_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check(dir.path());
    assert!(!ok && out.contains("no WasmPlugin"), "{out}");
}

#[test]
fn the_suite_cr_holds_exactly_the_three_plugins_configs() {
    use wasmgate::istio::load_wasm_plugins;
    let base = load_wasm_plugins(&manifests().join("base/plugins")).unwrap();
    let suite = load_wasm_plugins(&manifests().join("components/suite")).unwrap();
    let suite_config = suite[0].spec.plugin_config.as_ref().unwrap();
    for (plugin, section) in
        [("basic-auth", "basic_auth"), ("grpc-limits", "grpc_limits"), ("host-router", "host_router")]
    {
        let own = base.iter().find(|p| p.metadata.name == plugin).unwrap().spec.plugin_config.as_ref();
        assert_eq!(suite_config.get(section), own, "the suite's {section} section differs from the {plugin} CR");
    }
    let (ok, out) = check(&manifests().join("components/suite/suite.yaml"));
    assert!(ok, "{out}");
    assert!(out.contains("suite-requests, sections basic_auth, grpc_limits, host_router"), "{out}");
}

/// The committed CR `file` with a response limit in its first rule (`indent`: the rule's keys'), checked as it is
/// and then pulling `full_image`: what `check` says each time.
fn checked_with_a_response_limit(file: &str, indent: &str, full_image: &str) -> [(bool, String); 2] {
    let original = std::fs::read_to_string(manifests().join(file)).unwrap();
    let limit = format!("{indent}max_message_bytes: 128Mi\n");
    assert!(original.contains(&limit));
    let limited = original.replacen(&limit, &format!("{limit}{indent}max_response_bytes: 16Mi\n"), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cr.yaml");
    std::fs::write(&path, &limited).unwrap();
    let as_committed = check(&path);
    let requests_image = format!("/wasmgate/{full_image}-requests:");
    assert!(limited.contains(&requests_image), "{file} pulls the {full_image}-requests image");
    std::fs::write(&path, limited.replace(&requests_image, &format!("/wasmgate/{full_image}:"))).unwrap();
    [as_committed, check(&path)]
}

#[test]
fn a_response_limit_in_the_suite_needs_the_image_that_sees_responses() {
    let [(ok, out), (full_ok, full_out)] =
        checked_with_a_response_limit("components/suite/suite.yaml", "          ", "suite");
    assert!(!ok, "{out}");
    assert!(out.contains("at `grpc_limits.rules[0].max_response_bytes`"), "{out}");
    assert!(out.contains("use the `suite` image"), "{out}");
    assert!(full_ok && full_out.contains("suite, sections"), "{full_out}");
}

#[test]
fn a_response_limit_in_grpc_limits_needs_the_image_that_sees_responses() {
    let [(ok, out), (full_ok, full_out)] =
        checked_with_a_response_limit("base/plugins/grpc-limits.yaml", "        ", "grpc-limits");
    assert!(!ok, "{out}");
    assert!(out.contains("at `rules[0].max_response_bytes`"), "{out}");
    assert!(out.contains("use the `grpc-limits` image"), "{out}");
    assert!(full_ok && full_out.contains("grpc-limits, 5 rule(s)"), "{full_out}");
}
