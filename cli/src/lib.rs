//! The wasmgate command's library: Istio `WasmPlugin` resources ([`istio`]) and checking their
//! `pluginConfig` with the same parser each plugin runs at the gateway ([`check`]), the Helm chart that makes
//! them ([`chart`]), and the plugin images ([`oci`]).

pub mod chart;
pub mod check;
pub mod istio;
pub mod oci;
pub mod pin;
pub mod progress;
