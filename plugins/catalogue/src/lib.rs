//! The catalogue of wasmgate's images, read from `images.txt` at build time: for each image the crate, features
//! and export list `make build` builds it from (plugins/images.sh reads the same file), the committed
//! `WasmPlugin` that pulls it, whether the suite runs it as a section, and its config parser, through which
//! `wasmgate check` and the config fuzz target reach every plugin. `tests/consistency.rs` checks each line
//! against the tree, as Envoy's `extensions_check.py` checks its build config against the registered factories.

use wasmgate_common::{ConfigError, Registered};

/// One image `make build` ships as `dist/plugins/<name>.wasm`.
#[derive(Debug)]
pub struct Image {
    /// `oci://…/<name>:<tag>`, and the `IMAGE` of its config type.
    pub name: &'static str,
    /// The crate under `plugins/` it is built from.
    pub crate_name: &'static str,
    pub features: Features,
    /// The file in the crate's directory listing the proxy-wasm callbacks the module keeps.
    pub exports: &'static str,
    /// The chart's `WasmPlugin` that pulls this image by default.
    pub pins: Option<&'static str>,
    /// Whether the suite runs this plugin as one of its sections.
    pub suite_part: bool,
    pub registered: Registered,
}

/// The cargo features an image is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Features {
    /// The crate's defaults, in the cargo run shared by every such image.
    Default,
    /// Exactly these, in a target dir of the image's own.
    Exactly(&'static [&'static str]),
}

impl Image {
    /// Parses a `pluginConfig` with this image's parser and says what it holds, as `on_configure` would.
    pub fn check(&self, config: &[u8]) -> Result<String, ConfigError> {
        (self.registered.check)(config)
    }
}

include!(concat!(env!("OUT_DIR"), "/images.rs"));

/// The image called `name`.
pub fn image(name: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|image| image.name == name)
}

/// The committed `WasmPlugin` that pulls the image called `name`, if any.
pub fn wasm_plugin_of(name: &str) -> Option<&'static str> {
    image(name)?.pins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_image_is_found_by_its_name_and_parses_with_its_plugins_parser() {
        let image = image("grpc-limits-requests").unwrap();
        assert_eq!((image.crate_name, image.pins), ("grpc-limits", Some("grpc-limits")));
        assert_eq!(image.features, Features::Exactly(&["entrypoint"]));
        let response_limit = br#"{"default": {"max_response_bytes": 5}}"#;
        assert!(image.check(response_limit).is_err(), "the requests-only image refuses a response limit");
        assert!(super::image("grpc-limits").unwrap().check(response_limit).is_ok());
        assert!(super::image("nope").is_none());
        assert_eq!(wasm_plugin_of("suite-requests"), Some("suite"));
        assert_eq!(wasm_plugin_of("suite"), None);
    }
}
