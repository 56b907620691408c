//! Every plugin's `pluginConfig` parser (as `on_configure` and `wasmgate check` run it) on arbitrary bytes:
//! errors are values, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = basic_auth::Config::from_json(bytes);
    let _ = grpc_limits::Config::from_json(bytes);
    let _ = host_router::Config::from_json(bytes);
    let _ = suite::Config::from_json(bytes);
});
