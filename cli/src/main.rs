//! The `wasmgate` command.
//!
//! ```text
//! wasmgate check [PATH...] [-f VALUES...]   check WasmPlugin pluginConfigs with the plugins' own parsers
//! wasmgate image push --registry HOST[:PORT]/PREFIX [--tag T] [--variant oci|compat] [--insecure] [--user U]
//!                     [--pin-values FILE [--pull-registry HOST[:PORT]/PREFIX]] FILE.wasm...
//! wasmgate image pull REF [--sha256 HEX] [--insecure] [--user U] -o OUT.wasm
//! wasmgate image digest [--tag T] [--variant oci|compat] FILE.wasm...
//! ```
//! The registry password comes from `WASMGATE_REGISTRY_PASSWORD`, never from the command line. `--help` on each
//! command says the rest.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wasmgate::oci;

#[derive(Parser)]
#[command(version, about, after_help = "The registry password comes from WASMGATE_REGISTRY_PASSWORD.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check WasmPlugin pluginConfigs with the plugins' own parsers.
    Check {
        /// YAML files, directories of them, `-` (standard input), or a Helm chart, rendered with `helm template`
        /// (`$WASMGATE_HELM` or `helm`) and the --values files.
        #[arg(default_value = "charts/wasmgate")]
        paths: Vec<PathBuf>,
        /// Values files for the charts, in order (as `helm template -f`).
        #[arg(short = 'f', long = "values")]
        values: Vec<PathBuf>,
    },
    /// Package, push, pull and verify plugin images as Istio reads them.
    #[command(subcommand)]
    Image(Image),
}

#[derive(Subcommand)]
enum Image {
    /// Push each module as an image; prints `reference@sha256:digest`.
    Push {
        /// Where to push: HOST[:PORT]/PREFIX (each module goes to PREFIX/<file stem>:TAG).
        #[arg(long)]
        registry: String,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        access: Access,
        /// Write a Helm values file here pinning the chart's WasmPlugins to the images just pushed (registry,
        /// tag and each image's digest).
        #[arg(long)]
        pin_values: Option<PathBuf>,
        /// The registry as the cluster names it, for the pinned values (kind: kind-registry:5000/...).
        #[arg(long, requires = "pin_values")]
        pull_registry: Option<String>,
        /// Plugin modules, each named for its plugin (dist/plugins/basic-auth.wasm).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Pull a module and verify it (manifest digest with --sha256, layer digests always).
    Pull {
        /// The image, e.g. registry.example.com/wasmgate/basic-auth:0.1.0 (an `oci://` prefix is fine).
        reference: String,
        /// The manifest digest the image must have (what WasmPlugin.sha256 pins).
        #[arg(long)]
        sha256: Option<String>,
        #[command(flatten)]
        access: Access,
        /// Where to write the verified module.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// The digest a push will give each module, without a registry.
    Digest {
        #[command(flatten)]
        format: Format,
        /// Plugin modules, each named for its plugin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// How an image is made.
#[derive(Args)]
struct Format {
    /// The image tag.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
    /// `oci` (Wasm artifact) or `compat` (a one-layer image, for registries that refuse artifacts).
    #[arg(long, default_value = "oci")]
    variant: String,
}

/// How the registry is reached.
#[derive(Args)]
struct Access {
    /// Plain HTTP (a local registry).
    #[arg(long)]
    insecure: bool,
    /// User for the registry; the password comes from WASMGATE_REGISTRY_PASSWORD.
    #[arg(long)]
    user: Option<String>,
}

impl Access {
    fn client(&self) -> (oci_client::Client, oci_client::secrets::RegistryAuth) {
        let password = std::env::var("WASMGATE_REGISTRY_PASSWORD").ok();
        (oci::client(self.insecure), oci::auth(self.user.as_deref(), password.as_deref()))
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Check { paths, values } => return check(paths, &values),
        Command::Image(image) => run_image(image),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(paths: Vec<PathBuf>, values: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in paths {
        match wasmgate::check::check_path(&path, values) {
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

fn run_image(image: Image) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match image {
        Image::Push { registry, format, access, pin_values, pull_registry, files } => {
            let variant: oci::Variant = format.variant.parse()?;
            let (client, auth) = access.client();
            // The cluster may reach the same registry under another name (kind: kind-registry:5000).
            let registry_for_cluster = pull_registry.as_deref().unwrap_or(&registry).trim_end_matches('/');
            let mut pins = wasmgate::pin::Pins {
                registry: registry_for_cluster.to_string(),
                tag: format.tag.clone(),
                digests: BTreeMap::new(),
            };
            for file in &files {
                let (reference, digest) = push_one(&runtime, &client, &auth, &registry, &format.tag, variant, file)?;
                println!("{reference}@sha256:{digest}");
                pins.digests.insert(plugin_name(file)?.to_string(), digest);
            }
            if let Some(file) = pin_values {
                wasmgate::pin::write_values(&file, &pins)?;
                eprintln!("pinned {} image(s) in {}", pins.digests.len(), file.display());
            }
            Ok(())
        }
        Image::Digest { format, files } => {
            let variant: oci::Variant = format.variant.parse()?;
            for path in &files {
                let package = oci::package(&std::fs::read(path)?, variant, &annotations(path, &format.tag)?)?;
                println!("{}  sha256:{}", path.display(), package.digest()?);
            }
            Ok(())
        }
        Image::Pull { reference, sha256, access, output } => {
            let (client, auth) = access.client();
            let parsed: oci_client::Reference = reference
                .trim_start_matches("oci://")
                .parse()
                .with_context(|| format!("bad image reference {reference}"))?;
            eprintln!("pulling {parsed} ...");
            let module = runtime.block_on(oci::pull_verified(
                &client,
                &parsed,
                &auth,
                sha256.as_deref(),
                &wasmgate::progress::Bar::stderr(),
            ))?;
            std::fs::write(&output, &module).with_context(|| format!("writing {}", output.display()))?;
            eprintln!("verified {} bytes -> {}", module.len(), output.display());
            Ok(())
        }
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
