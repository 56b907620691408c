//! The proxy-wasm root: the sections loaded from the config, and per request their filters in one [`Chain`].
//! Built without the `responses` feature it is the `suite-requests` image: no response callbacks (its export list
//! leaves them out) and no config with a response limit.

use crate::chain::Chain;
use crate::section::Part;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use wasmgate_common::PluginConfig;
use wasmgate_common::host::{Active, InProxy, load_configuration, log, start_flushing_counters};

/// The image this build is, whose name and config parser it uses.
#[cfg(feature = "responses")]
type Image = crate::Suite;
#[cfg(not(feature = "responses"))]
type Image = crate::SuiteRequests;

wasmgate_common::plugin_main!(root: SuiteRoot, name: Image::NAME);

#[derive(Default)]
struct SuiteRoot {
    /// Whether any section acts on responses (only grpc-limits, when a response limit is configured).
    responses: bool,
    /// The configured sections, in the order they run.
    parts: Vec<Box<dyn Active>>,
}

impl Context for SuiteRoot {}

impl RootContext for SuiteRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = load_configuration(Image::NAME, Image::parse) else {
            return false;
        };
        log(LogLevel::Info, &format!("{}: configured: {}", Image::NAME, config.sections().join(", ")));
        self.responses = config.limits_responses();
        self.parts = config.into_parts().into_iter().map(Part::load).collect();
        start_flushing_counters();
        true
    }

    fn on_tick(&mut self) {
        self.parts.iter().for_each(|part| part.flush());
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let filters = self.parts.iter().map(|part| part.filter()).collect();
        Some(Box::new(InProxy::of_parts(Chain::new(filters, self.responses))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
