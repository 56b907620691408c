//! Every plugin's `pluginConfig` parser (as `on_configure` and `wasmgate check` run it) on arbitrary bytes:
//! errors are values, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for plugin in suite::PLUGINS {
        let _ = (plugin.check)(bytes);
    }
});
