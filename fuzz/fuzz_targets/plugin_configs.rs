//! Every image's `pluginConfig` parser (as `on_configure` and `wasmgate check` run it, from the catalogue) on
//! arbitrary bytes: errors are values, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for image in wasmgate_catalogue::IMAGES {
        let _ = image.check(bytes);
    }
});
