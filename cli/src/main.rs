//! The `wasmgate` command.
//!
//! ```text
//! wasmgate check [PATH...]                  check WasmPlugin pluginConfigs with the plugins' own parsers
//! wasmgate image push --registry HOST[:PORT]/PREFIX [--tag T] [--variant oci|compat] [--insecure] [--user U]
//!                     [--pin-overlay DIR [--base ../../base] [--pull-registry HOST[:PORT]/PREFIX]] FILE.wasm...
//! wasmgate image pull REF [--sha256 HEX] [--insecure] [--user U] -o OUT.wasm
//! wasmgate image digest [--tag T] [--variant oci|compat] FILE.wasm...
//! ```
//! The registry password comes from `WASMGATE_REGISTRY_PASSWORD`, never from the command line.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wasmgate::oci;

const USAGE: &str = "usage:
  wasmgate check [PATH...]   (files or directories of YAML; default: manifests)
  wasmgate image push --registry HOST[:PORT]/PREFIX [--tag T] [--variant oci|compat] [--insecure] [--user U]
                      [--pin-overlay DIR [--base ../../base] [--pull-registry HOST[:PORT]/PREFIX]] FILE.wasm...
                      (--pull-registry: the registry as the cluster names it, for the pinned urls)
  wasmgate image pull REF [--sha256 HEX] [--insecure] [--user U] -o OUT.wasm
  wasmgate image digest [--tag T] [--variant oci|compat] FILE.wasm...   (the digest a push will give)
  (registry password: WASMGATE_REGISTRY_PASSWORD)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check") => return check(args[1..].iter().map(PathBuf::from).collect()),
        Some("image") => image(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(mut paths: Vec<PathBuf>) -> ExitCode {
    if paths.is_empty() {
        paths.push(PathBuf::from("manifests"));
    }
    let mut failed = false;
    for path in paths {
        match wasmgate::check::check_path(&path) {
            Ok(findings) => {
                for finding in findings {
                    match finding.result {
                        Ok(summary) => println!("ok      {}: {summary}", finding.plugin),
                        Err(error) => {
                            failed = true;
                            println!("FAILED  {}: {error}", finding.plugin);
                        }
                    }
                }
            }
            Err(error) => {
                failed = true;
                println!("FAILED  {}: {error:#}", path.display());
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Flags (`--name value`, `--switch`) and positional arguments.
struct Args {
    flags: BTreeMap<String, String>,
    positional: Vec<String>,
}

fn parse_args(args: &[String], switches: &[&str]) -> Result<Args> {
    let mut flags = BTreeMap::new();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            if switches.contains(&name) {
                flags.insert(name.to_string(), String::new());
            } else {
                let value = it.next().with_context(|| format!("--{name} needs a value"))?;
                flags.insert(name.to_string(), value.clone());
            }
        } else {
            positional.push(arg.clone());
        }
    }
    Ok(Args { flags, positional })
}

fn image(args: &[String]) -> Result<()> {
    let Some((verb, rest)) = args.split_first() else { bail!("{USAGE}") };
    let a = parse_args(rest, &["insecure"])?;
    let insecure = a.flags.contains_key("insecure");
    let password = std::env::var("WASMGATE_REGISTRY_PASSWORD").ok();
    let auth = oci::auth(a.flags.get("user").map(String::as_str), password.as_deref());
    let client = oci::client(insecure);
    let runtime = tokio::runtime::Runtime::new()?;
    match verb.as_str() {
        "push" => {
            let registry = a.flags.get("registry").context("--registry HOST[:PORT]/PREFIX is required")?;
            let tag = a.flags.get("tag").cloned().unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
            let variant: oci::Variant = a.flags.get("variant").map_or("oci", String::as_str).parse()?;
            if a.positional.is_empty() {
                bail!("no .wasm files to push");
            }
            let mut pins = Vec::new();
            for file in &a.positional {
                let (reference, digest) = push_one(&runtime, &client, &auth, registry, &tag, variant, Path::new(file))?;
                println!("{reference}@sha256:{digest}");
                let plugin = plugin_name(Path::new(file))?.to_string();
                // The cluster may reach the same registry under another name (kind: kind-registry:5000).
                let reference = match a.flags.get("pull-registry") {
                    Some(pull) => format!("{}/{plugin}:{tag}", pull.trim_end_matches('/')),
                    None => reference,
                };
                pins.push(wasmgate::pin::Pin { plugin, reference, sha256: digest });
            }
            if let Some(dir) = a.flags.get("pin-overlay") {
                let base = a.flags.get("base").map_or("../../base", String::as_str);
                wasmgate::pin::write_overlay(Path::new(dir), base, &pins)?;
                eprintln!("pinned {} WasmPlugin(s) in {dir}/kustomization.yaml", pins.len());
            }
            Ok(())
        }
        "digest" => {
            let variant: oci::Variant = a.flags.get("variant").map_or("oci", String::as_str).parse()?;
            let tag = a.flags.get("tag").cloned().unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
            for file in &a.positional {
                let path = Path::new(file);
                let package = oci::package(&std::fs::read(path)?, variant, &annotations(path, &tag)?)?;
                println!("{}  sha256:{}", path.display(), package.digest()?);
            }
            Ok(())
        }
        "pull" => {
            let [reference] = a.positional.as_slice() else { bail!("pull takes one image reference") };
            let out = a.flags.get("o").or_else(|| a.flags.get("output")).context("-o OUT.wasm is required")?;
            let reference: oci_client::Reference = reference
                .trim_start_matches("oci://")
                .parse()
                .with_context(|| format!("bad image reference {reference}"))?;
            eprintln!("pulling {reference} ...");
            let module = runtime.block_on(oci::pull_verified(
                &client,
                &reference,
                &auth,
                a.flags.get("sha256").map(String::as_str),
                &wasmgate::progress::Bar::stderr(),
            ))?;
            std::fs::write(out, &module).with_context(|| format!("writing {out}"))?;
            eprintln!("verified {} bytes -> {out}", module.len());
            Ok(())
        }
        other => bail!("unknown image command `{other}`\n{USAGE}"),
    }
}

fn push_one(
    runtime: &tokio::runtime::Runtime,
    client: &oci_client::Client,
    auth: &oci_client::secrets::RegistryAuth,
    registry: &str,
    tag: &str,
    variant: oci::Variant,
    file: &Path,
) -> Result<(String, String)> {
    let name = plugin_name(file)?;
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let package = oci::package(&wasm, variant, &annotations(file, tag)?)
        .with_context(|| format!("packaging {}", file.display()))?;
    let reference: oci_client::Reference = format!("{}/{name}:{tag}", registry.trim_end_matches('/')).parse()?;
    eprintln!("pushing {reference} ({} bytes, {variant:?} variant) ...", wasm.len());
    let digest = runtime.block_on(oci::push(client, &reference, package, auth, &wasmgate::progress::Bar::stderr()))?;
    Ok((reference.to_string(), digest))
}

fn plugin_name(file: &Path) -> Result<&str> {
    file.file_stem().and_then(|s| s.to_str()).with_context(|| format!("no plugin name in {}", file.display()))
}

/// OCI annotations: nothing time-dependent, so the same module and revision give the same digest.
fn annotations(file: &Path, tag: &str) -> Result<BTreeMap<String, String>> {
    Ok(BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), plugin_name(file)?.to_string()),
        ("org.opencontainers.image.version".to_string(), tag.to_string()),
        ("org.opencontainers.image.source".to_string(), env!("CARGO_PKG_REPOSITORY").to_string()),
        ("org.opencontainers.image.revision".to_string(), std::env::var("WASMGATE_REVISION").unwrap_or_default()),
    ]))
}
