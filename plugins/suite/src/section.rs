//! The suite's parts: the table of plugins it runs, in order, each configured by the section named after it
//! (its metric name). A plugin joins the suite with one line in [`SECTIONS`] (and `part` in the catalogue).

use std::marker::PhantomData;
use wasmgate_common::{ConfigError, Shell};

/// The sections, in the order they run: the order the separate CRs' phases give the plugins (authentication,
/// then limits, then routing).
pub const SECTIONS: [Section; 3] = [
    Section::of::<basic_auth::BasicAuth>(),
    Section::of::<grpc_limits::GrpcLimits>(),
    Section::of::<host_router::HostRouter>(),
];

/// The config keys, for serde's "expected one of" answer.
pub const KEYS: [&str; SECTIONS.len()] = keys(&SECTIONS);

const fn keys<const N: usize>(sections: &[Section; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = sections[i].key;
        i += 1;
    }
    out
}

/// Parses a section into the part it configures.
type Parser = fn(&[u8]) -> Result<Box<dyn Part>, ConfigError>;

/// One row of the table: a config key and the parser of the plugin it configures.
pub struct Section {
    pub key: &'static str,
    parse: Parser,
}

impl Section {
    pub const fn of<P: Shell>() -> Self {
        Self { key: P::NAME, parse: parse::<P> }
    }

    /// Parses the section with its plugin's own parser, locating errors under the section's key.
    pub fn parse(&self, bytes: &[u8]) -> Result<Box<dyn Part>, ConfigError> {
        (self.parse)(bytes).map_err(|e| e.within(self.key))
    }
}

fn parse<P: Shell>(bytes: &[u8]) -> Result<Box<dyn Part>, ConfigError> {
    Ok(Box::new(Parsed::<P> { config: P::parse(bytes)?, plugin: PhantomData }))
}

/// A parsed section, whichever plugin it configures.
pub trait Part {
    fn key(&self) -> &'static str;
    fn summary(&self) -> String;
    fn sees_responses(&self) -> bool;
    /// The section for `image`, which exports no response callbacks (see `PluginConfig::for_requests_only`).
    fn for_requests_only(self: Box<Self>, image: &str, full_image: &str) -> Result<Box<dyn Part>, ConfigError>;
    /// Defines the plugin's counters and makes it ready to serve requests.
    #[cfg(all(target_arch = "wasm32", not(test)))]
    fn load(self: Box<Self>) -> Box<dyn wasmgate_common::host::Active>;
}

struct Parsed<P: Shell> {
    config: P::Config,
    plugin: PhantomData<fn() -> P>,
}

impl<P: Shell> Part for Parsed<P> {
    fn key(&self) -> &'static str {
        P::NAME
    }

    fn summary(&self) -> String {
        P::summary(&self.config)
    }

    fn sees_responses(&self) -> bool {
        P::sees_responses(&self.config)
    }

    fn for_requests_only(self: Box<Self>, image: &str, full_image: &str) -> Result<Box<dyn Part>, ConfigError> {
        let config = P::for_requests_only(self.config, image, full_image).map_err(|e| e.within(P::NAME))?;
        Ok(Box::new(Self { config, plugin: PhantomData }))
    }

    #[cfg(all(target_arch = "wasm32", not(test)))]
    fn load(self: Box<Self>) -> Box<dyn wasmgate_common::host::Active> {
        Box::new(wasmgate_common::host::Running::<P>::load(self.config))
    }
}
