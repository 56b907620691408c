//! The e2e harness: a real Envoy (V8, as in Istio's ingress gateway) configured by istiod's own generator and
//! istio-agent's own Wasm fetcher from our manifests, upstreams of our own that record what reached them, and
//! clients that speak HTTP/1.1 byte for byte, HTTP/2 as given, or gRPC through tonic. Every process it starts is
//! torn down on drop.

pub mod bench;
pub mod browser;
pub mod clients;
pub mod counters;
pub mod deployment_checks;
pub mod envoy;
pub mod fixtures;
pub mod gateway;
pub mod grpc;
pub mod held_streams;
pub mod http1;
pub mod http2;
pub mod istiod;
pub mod kind;
pub mod kind_registry;
pub mod loopback;
pub mod model_server;
pub mod nlb;
pub mod plugin_gateway;
pub mod registry;
pub mod stack;
pub mod steady_traffic;
pub mod tls;
pub mod upstream;
pub mod workspace;
pub mod world;

pub use envoy::{Envoy, PathNormalization};
pub use gateway::{Gateway, RunningGateway};
pub use http1::{RawRequest, RawResponse};
pub use upstream::{RecordedRequest, Upstream};
pub use wasmgate::istio::{self, WasmPlugin};
