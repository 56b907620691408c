//! `wasmgate check` as a user runs it, on the chart with each values file and on broken values.

use std::path::{Path, PathBuf};
use std::process::Command;

fn check(args: &[&Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmgate")).arg("check").args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wasmgate")
}

/// The chart checked with values files written from `docs`, in order.
fn check_with(docs: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, yaml)| {
            let file = dir.path().join(format!("values-{i}.yaml"));
            std::fs::write(&file, yaml).unwrap();
            file
        })
        .collect();
    let mut args = vec![chart()];
    for file in files {
        args.extend([PathBuf::from("-f"), file]);
    }
    check(&args.iter().map(PathBuf::as_path).collect::<Vec<_>>())
}

#[test]
fn the_chart_passes_with_each_values_file() {
    let (ok, out) = check(&[&chart()]);
    assert!(ok, "{out}");
    assert!(out.contains("ok      istio-system.basic-auth: basic-auth, 1 rule(s)"), "{out}");
    for file in ["values-eks.yaml", "values-kind.yaml", "values-suite.yaml"] {
        let (ok, out) = check(&[&chart(), Path::new("-f"), &chart().join(file)]);
        assert!(ok, "{file}: {out}");
    }
}

/// The committed basic-auth config with one change, as a values file.
fn basic_auth_with(from: &str, to: &str) -> String {
    let values = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let start = values.find("  basicAuth:\n").unwrap();
    let end = values[start..].find("\n  grpcLimits:").unwrap() + start;
    let block = &values[start..end];
    assert!(block.contains(from), "{from}");
    format!("plugins:\n{}\n", block.replace(from, to))
}

#[test]
fn a_broken_plugin_config_fails_with_the_field() {
    let credentials = r#"credentials: ["username:$2y$05$vibiPejn2cx/HHvreve3WeSdYxEI/4G1Xy1vtahB8AOx6h2R6bB3C"]"#;
    let cases = [
        (credentials, "credentials: []", "basic_auth_rules[0].credentials"),
        ("$2y$05$", "$2y$99$", "bcrypt cost 99 is above 12"),
        ("request_methods:", "request_method:", "unknown field `request_method`"),
        ("hosts: [ml.example.com, canary.ml.example.com]", "hosts: [\"ml.example.com:443\"]", "leave the port out"),
        ("image: basic-auth", "image: nope", "no wasmgate image is called `nope`"),
    ];
    for (from, to, want) in cases {
        let (ok, out) = check_with(&[&basic_auth_with(from, to)]);
        assert!(!ok, "{to}: passed\n{out}");
        assert!(out.contains(want), "{to}: want {want:?} in\n{out}");
    }
}

#[test]
fn rendered_yaml_on_standard_input_is_checked() {
    let rendered = wasmgate::chart::render(&chart(), &[], &["layout=suite"]).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(["check", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(rendered.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("suite-requests, sections basic_auth, grpc_limits, host_router"), "{text}");
}

#[test]
fn no_plugins_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check(&[dir.path()]);
    assert!(!ok && out.contains("no WasmPlugin"), "{out}");
}

/// The chart with a response limit in grpc-limits' first rule, checked with the `layout` and `image` given:
/// what `check` says.
fn checked_with_a_response_limit(extra: &str) -> (bool, String) {
    let values = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let start = values.find("  grpcLimits:\n").unwrap();
    let end = values[start..].find("\n  hostRouter:").unwrap() + start;
    let limit = "          max_message_bytes: 128Mi\n";
    let block = values[start..end].replacen(limit, &format!("{limit}          max_response_bytes: 16Mi\n"), 1);
    assert!(block.contains("max_response_bytes"));
    check_with(&[&format!("plugins:\n{block}\n"), extra])
}

#[test]
fn a_response_limit_in_the_suite_needs_the_image_that_sees_responses() {
    let (ok, out) = checked_with_a_response_limit("layout: suite\n");
    assert!(!ok, "{out}");
    assert!(out.contains("at `grpc_limits.rules[0].max_response_bytes`"), "{out}");
    assert!(out.contains("use the `suite` image"), "{out}");
    let (ok, out) = checked_with_a_response_limit("layout: suite\nplugins:\n  suite: {image: suite}\n");
    assert!(ok && out.contains("suite, sections"), "{out}");
}

#[test]
fn a_response_limit_in_grpc_limits_needs_the_image_that_sees_responses() {
    let (ok, out) = checked_with_a_response_limit("");
    assert!(!ok, "{out}");
    assert!(out.contains("at `rules[0].max_response_bytes`"), "{out}");
    assert!(out.contains("use the `grpc-limits` image"), "{out}");
    let (ok, out) = checked_with_a_response_limit("plugins:\n  grpcLimits: {image: grpc-limits}\n");
    assert!(ok && out.contains("grpc-limits, 5 rule(s)"), "{out}");
}
