//! What a plugin is without the proxy: its names and how its `pluginConfig` is parsed and summarised. The wasm
//! shell (`Shell` builds on it), `wasmgate check` and the fuzz targets all go through this, so a
//! plugin is described once.

use crate::ConfigError;

pub trait PluginConfig: 'static {
    /// The image's name (`oci://…/<IMAGE>:<tag>`): how a `WasmPlugin` says which plugin it runs.
    const IMAGE: &'static str;
    /// For logs and metric names (`wasmgate.<NAME>.*`).
    const NAME: &'static str;
    type Config: 'static;
    fn parse(bytes: &[u8]) -> Result<Self::Config, ConfigError>;
    /// One line saying what a parsed config holds, for the log once configured and for `wasmgate check`.
    fn summary(config: &Self::Config) -> String;

    /// Whether `config` acts on responses, which a module without response callbacks cannot do.
    fn sees_responses(_config: &Self::Config) -> bool {
        false
    }

    /// `config` for `image`, a module that exports no response callbacks: refused at load if it acts on
    /// responses (never left unenforced), with an error naming `full_image`, which takes it.
    fn for_requests_only(config: Self::Config, image: &str, full_image: &str) -> Result<Self::Config, ConfigError> {
        if Self::sees_responses(&config) {
            return Err(ConfigError::new(
                "",
                format!("the {image} image does not see responses: use the `{full_image}` image for this config"),
            ));
        }
        Ok(config)
    }
}

/// A plugin behind plain functions, for code that goes through every plugin (the catalogue of images,
/// `plugins/catalogue`).
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    pub image: &'static str,
    pub name: &'static str,
    /// Parses a `pluginConfig` and summarises it, as the plugin's `on_configure` would.
    pub check: fn(&[u8]) -> Result<String, ConfigError>,
}

impl Registered {
    pub const fn of<P: PluginConfig>() -> Self {
        Self { image: P::IMAGE, name: P::NAME, check: check::<P> }
    }
}

fn check<P: PluginConfig>(bytes: &[u8]) -> Result<String, ConfigError> {
    P::parse(bytes).map(|config| P::summary(&config))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sizes;

    impl PluginConfig for Sizes {
        const IMAGE: &'static str = "sizes";
        const NAME: &'static str = "sizes";
        type Config = crate::ByteSize;

        fn parse(bytes: &[u8]) -> Result<crate::ByteSize, ConfigError> {
            crate::parse_config(bytes)
        }

        fn summary(config: &crate::ByteSize) -> String {
            format!("{} bytes", config.0)
        }
    }

    #[test]
    fn a_registered_plugin_parses_and_summarises() {
        let entry = Registered::of::<Sizes>();
        assert_eq!(entry.image, "sizes");
        assert_eq!((entry.check)(br#""2Ki""#).unwrap(), "2048 bytes");
        assert!((entry.check)(b"{").is_err());
    }
}
