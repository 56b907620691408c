//! The catalogue of gateways the request-rate and instruction benchmarks compare: what each is called in the
//! report, how its gateway is built, and what a right and a wrong password must get through it.

use super::floor;
use crate::istio::WasmPlugin;
use crate::{Gateway, workspace};
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Envoy with no HTTP filter but the router.
    Passthrough,
    /// Envoy's own `basic_auth` filter with the same user.
    NativeBasicAuth,
    /// The same, forwarding the user's name to the upstream in a header (`forward_username_header`).
    NativeBasicAuthForwarding,
    /// basic-auth as the committed CR configures it (bcrypt, lockout, forwarded identity).
    BasicAuth,
    /// basic-auth configured to do what the native filter does and no more: one `{SHA}` user.
    BasicAuthSameAsNative,
    /// The same, forwarding the user's name as [`Variant::NativeBasicAuthForwarding`] does.
    BasicAuthSameAsNativeForwarding,
    /// The committed basic-auth CR with another build of the module (`BENCH_ALT_WASM=<path>`).
    BasicAuthAlt,
    /// grpc-limits as the committed CR configures it (the `grpc-limits-requests` image).
    GrpcLimits,
    /// The same CR pulling the `grpc-limits` image, which also exports the response callbacks.
    GrpcLimitsResponses,
    HostRouter,
    /// host-router with 20 hosts × 10 rules ([`router_config`]).
    HostRouterManyRules,
    /// The three plugins as separate filters, as the committed CRs configure them.
    Chain,
    /// The suite: one filter with the same policies (the manifests' image, `suite-requests`).
    Suite,
    /// The same CR pulling the `suite` image, which also exports the response callbacks.
    SuiteResponses,
    /// Hand-written floor modules ([`floor`]).
    FloorNoop,
    FloorNoopThree,
    FloorHeaders,
    FloorValues,
    FloorForward,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Passthrough => "passthrough",
            Variant::NativeBasicAuth => "basic_auth (native)",
            Variant::NativeBasicAuthForwarding => "basic_auth (native), forwarding the user",
            Variant::BasicAuth => "basic-auth (wasm)",
            Variant::BasicAuthSameAsNative => "basic-auth (wasm), native's features only",
            Variant::BasicAuthSameAsNativeForwarding => "basic-auth (wasm), native's features, forwarding the user",
            Variant::BasicAuthAlt => "basic-auth (alt wasm)",
            Variant::GrpcLimits => "grpc-limits (wasm)",
            Variant::GrpcLimitsResponses => "grpc-limits, image with response callbacks (wasm)",
            Variant::HostRouter => "host-router (wasm)",
            Variant::HostRouterManyRules => "host-router (wasm), 20 hosts × 10 rules",
            Variant::Chain => "full chain, 3 filters (wasm)",
            Variant::Suite => "suite, 1 filter (wasm)",
            Variant::SuiteResponses => "suite, image with response callbacks (wasm)",
            Variant::FloorNoop => "no-op wasm, 1 filter (floor)",
            Variant::FloorNoopThree => "no-op wasm, 3 filters (floor)",
            Variant::FloorHeaders => "no-op wasm reading the headers (floor)",
            Variant::FloorValues => "no-op wasm reading 5 headers by name (floor)",
            Variant::FloorForward => "no-op wasm reading the headers and adding one (floor)",
        }
    }

    /// Whether a wrong password must be refused (401) through this gateway; `None`: not checked (another build
    /// is measured as it is, whatever it does).
    pub fn authenticates(self) -> Option<bool> {
        match self {
            Variant::BasicAuthAlt => None,
            Variant::NativeBasicAuth
            | Variant::NativeBasicAuthForwarding
            | Variant::BasicAuth
            | Variant::BasicAuthSameAsNative
            | Variant::BasicAuthSameAsNativeForwarding
            | Variant::Chain
            | Variant::Suite
            | Variant::SuiteResponses => Some(true),
            Variant::Passthrough
            | Variant::GrpcLimits
            | Variant::GrpcLimitsResponses
            | Variant::HostRouter
            | Variant::HostRouterManyRules
            | Variant::FloorNoop
            | Variant::FloorNoopThree
            | Variant::FloorHeaders
            | Variant::FloorValues
            | Variant::FloorForward => Some(false),
        }
    }

    /// The variant's gateway in front of `upstream` (Service `models`).
    pub fn gateway(self, upstream: SocketAddr, floors: &Floors) -> Result<Gateway> {
        let base = Gateway::new().upstream("models", upstream);
        let cr = workspace::plugin_cr;
        let with_module = |plugin: WasmPlugin, module: &PathBuf| {
            let module = module.clone();
            Gateway::new().upstream("models", upstream).plugin(plugin).resolver(move |_| Ok(module.clone()))
        };
        // A floor module stands in the basic-auth CR's place, with an empty config.
        let floor_cr = || Ok::<_, anyhow::Error>(cr("basic-auth")?.with_config(json!({})));
        Ok(match self {
            Variant::Passthrough => base,
            Variant::NativeBasicAuth => base.native_filter(native(None)),
            Variant::NativeBasicAuthForwarding => base.native_filter(native(Some(FORWARDED_USER))),
            Variant::BasicAuth => base.plugin(cr("basic-auth")?),
            Variant::BasicAuthSameAsNative => base.plugin(cr("basic-auth")?.with_config(same_as_native(None))),
            Variant::BasicAuthSameAsNativeForwarding => {
                base.plugin(cr("basic-auth")?.with_config(same_as_native(Some(FORWARDED_USER))))
            }
            Variant::BasicAuthAlt => {
                let path = std::env::var("BENCH_ALT_WASM").context("BENCH_ALT_WASM names the other build")?;
                with_module(cr("basic-auth")?, &PathBuf::from(path))
            }
            Variant::GrpcLimits => base.plugin(cr("grpc-limits")?),
            Variant::GrpcLimitsResponses => base.plugin(cr("grpc-limits")?.with_image("grpc-limits")),
            Variant::HostRouter => base.plugin(cr("host-router")?),
            Variant::HostRouterManyRules => base.plugin(cr("host-router")?.with_config(router_config())),
            Variant::Chain => base.plugins(workspace::plugin_crs()?),
            Variant::Suite => base.plugin(suite_cr()?),
            Variant::SuiteResponses => base.plugin(suite_cr()?.with_image("suite")),
            Variant::FloorNoop => with_module(floor_cr()?, &floors.noop),
            Variant::FloorNoopThree => {
                let noop = floors.noop.clone();
                let plugins = workspace::plugin_crs()?;
                base.plugins(plugins.into_iter().map(|p| p.with_config(json!({})))).resolver(move |_| Ok(noop.clone()))
            }
            Variant::FloorHeaders => with_module(floor_cr()?, &floors.headers),
            Variant::FloorValues => with_module(floor_cr()?, &floors.values),
            Variant::FloorForward => with_module(floor_cr()?, &floors.forward),
        })
    }
}

/// The header the forwarding variants name the user in: the committed CR's.
const FORWARDED_USER: &str = "x-wasmgate-user";

/// The benchmark's one user, as a `{SHA}` entry (the one hash the native filter knows).
fn sha_user() -> String {
    format!("username:{{SHA}}{}", STANDARD.encode(Sha1::digest(b"password")))
}

/// Envoy's `basic_auth` filter with the benchmark's user, forwarding the name in `forward` if given.
fn native(forward: Option<&str>) -> Value {
    let mut config = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
        "users": {"inline_string": sha_user()}
    });
    if let Some(header) = forward {
        config["forward_username_header"] = json!(header);
    }
    json!({"name": "envoy.filters.http.basic_auth", "typed_config": config})
}

/// basic-auth's config doing what [`native`] does: the same user on every path and method.
fn same_as_native(forward: Option<&str>) -> Value {
    let mut config = json!({"basic_auth_rules": [
        {"prefix": "/", "request_methods": ["*"], "credentials": [sha_user()]}
    ]});
    if let Some(header) = forward {
        config["forward_user_header"] = json!(header);
    }
    config
}

/// The chart's suite CR (`layout: suite`).
fn suite_cr() -> Result<WasmPlugin> {
    workspace::plugin_cr("suite")
}

/// The floor modules, written once per run into a directory that lives as long as this value.
pub struct Floors {
    noop: PathBuf,
    headers: PathBuf,
    values: PathBuf,
    forward: PathBuf,
    _dir: tempfile::TempDir,
}

impl Floors {
    pub fn write() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        Ok(Self {
            noop: floor::write_noop(dir.path())?,
            headers: floor::write_header_reader(dir.path())?,
            values: floor::write_value_reader(dir.path())?,
            forward: floor::write_header_forwarder(dir.path())?,
            _dir: dir,
        })
    }
}

/// 20 hosts × 10 rules; the benchmark's requests match only the last rule of the last host.
pub fn router_config() -> Value {
    let hosts: Vec<Value> = (0..20)
        .map(|h| {
            let rules: Vec<Value> = (0..10)
                .map(|r| {
                    json!({"name": format!("h{h}-r{r}"),
                           "match": {"prefix": format!("/r{r}/"), "methods": ["GET"], "headers": [{"name": "x-tenant", "present": true}]},
                           "set_headers": {"x-wasmgate-rule": format!("h{h}-r{r}")}})
                })
                .collect();
            json!({"host": format!("h{h}.example.com"), "rules": rules})
        })
        .collect();
    json!({ "hosts": hosts })
}

/// Those of `variants` that `only` (`BENCH_ONLY`: `<name>|<name>`) names as the report does, in their order; all of
/// them without it.
pub fn only_named(variants: Vec<Variant>, only: Option<&str>) -> Result<Vec<Variant>> {
    let Some(only) = only else { return Ok(variants) };
    let names: Vec<&str> = only.split('|').map(str::trim).collect();
    if let Some(unknown) = names.iter().find(|n| !variants.iter().any(|v| v.name() == **n)) {
        let known: Vec<&str> = variants.iter().map(|v| v.name()).collect();
        bail!("BENCH_ONLY names no variant `{unknown}`; the variants: {}", known.join(" | "));
    }
    Ok(variants.into_iter().filter(|v| names.contains(&v.name())).collect())
}

/// With `BENCH_ALT_WASM` set, `variants` and the other build of basic-auth.
pub fn with_alt(mut variants: Vec<Variant>) -> Vec<Variant> {
    if std::env::var_os("BENCH_ALT_WASM").is_some() {
        variants.push(Variant::BasicAuthAlt);
    }
    variants
}
