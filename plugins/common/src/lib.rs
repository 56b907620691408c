//! What every wasmgate plugin needs, written once: config loading with clear errors, host and path matching,
//! denial answers that suit HTTP and gRPC clients, metric naming, and the shape of a plugin's shell ([`shell`]: the
//! `Host` it asks, with a recording [`fake`] for tests). Everything here is pure Rust with no host calls, so it is
//! tested natively; only `host` (compiled for wasm32) talks to the proxy.

pub mod config;
pub mod deny;
pub mod duration;
pub mod fake;
pub mod fetch_once;
pub mod header_map;
pub mod header_name;
pub mod host_match;
pub mod method;
pub mod metrics;
pub mod path_match;
pub mod plugin;
pub mod request;
pub mod shell;
pub mod size;

#[cfg(target_arch = "wasm32")]
pub mod host;

pub use config::{ConfigError, parse_config};
pub use deny::{ClientKind, Denial, GrpcStatus, LocalResponse};
pub use duration::ConfigDuration;
pub use fetch_once::FetchOnce;
pub use header_map::{Found, HeaderMap, HeaderMapView};
pub use host_match::{BadAuthority, HostPattern, normalize_host};
pub use method::{MethodSet, validate_methods};
pub use path_match::{PathMatch, path_without_query};
pub use plugin::{PluginConfig, Registered};
pub use request::{RequestLine, Unreadable};
pub use shell::{Flow, Host, HostError, Level, Loaded, Shell, StreamFilter, Tally};
pub use size::ByteSize;
