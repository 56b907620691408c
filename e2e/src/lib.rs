//! The e2e harness: a real Envoy (V8, as in Istio's ingress gateway) configured by translating our
//! `WasmPlugin` CRs the way istiod does, upstreams of our own that record what reached them, and clients that
//! speak HTTP/1.1 byte for byte or gRPC through tonic. Every process it starts is torn down on drop.

pub mod bench;
pub mod envoy;
pub mod grpc;
pub mod http1;
pub mod http2;
pub mod model_server;
pub mod registry;
pub mod stack;
pub mod upstream;
pub mod workspace;

pub use envoy::{Envoy, Gateway, PathNormalization};
pub use http1::{RawRequest, RawResponse};
pub use upstream::{RecordedRequest, Upstream};
pub use wasmgate::istio::{self, WasmPlugin};
