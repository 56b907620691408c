//! The proxy-wasm shell: each section's own filter, run in order inside one stream context. A filter that stops
//! the request (a denial, a redirect, a direct response) ends the callback for the ones after it, as Envoy does
//! for separate filters. Built without the `responses` feature it is the `suite-requests` image: no response
//! callbacks (Makefile: its export list leaves them out too) and no config with a response limit.

use crate::section::Part;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use wasmgate_common::PluginConfig;
use wasmgate_common::host::{Active, load_configuration, log, sharing_request_headers, start_flushing_counters};

/// The image this build is, whose name and config parser it uses.
#[cfg(feature = "responses")]
type Image = crate::Suite;
#[cfg(not(feature = "responses"))]
type Image = crate::SuiteRequests;

wasmgate_common::plugin_main!(root: SuiteRoot, name: Image::NAME);

#[derive(Default)]
struct SuiteRoot {
    /// Whether any section acts on responses (only grpc-limits, when a response limit is configured).
    #[cfg(feature = "responses")]
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
        #[cfg(feature = "responses")]
        {
            self.responses = config.limits_responses();
        }
        self.parts = config.into_parts().into_iter().map(Part::load).collect();
        start_flushing_counters();
        true
    }

    fn on_tick(&mut self) {
        self.parts.iter().for_each(|part| part.flush());
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Suite {
            parts: self.parts.iter().map(|part| part.http_context()).collect(),
            #[cfg(feature = "responses")]
            responses: self.responses,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Suite {
    parts: Vec<Box<dyn HttpContext>>,
    /// False: the response callbacks return at once (Envoy calls them whatever the module does with them).
    #[cfg(feature = "responses")]
    responses: bool,
}

impl Suite {
    /// Runs `step` on each part in order until one does not continue.
    fn each(&mut self, mut step: impl FnMut(&mut dyn HttpContext) -> Action) -> Action {
        for part in &mut self.parts {
            match step(part.as_mut()) {
                Action::Continue => {}
                stop => return stop,
            }
        }
        Action::Continue
    }
}

impl Context for Suite {}

impl HttpContext for Suite {
    fn on_http_request_headers(&mut self, headers: usize, end_of_stream: bool) -> Action {
        // Each part reads the request headers; the proxy is asked once.
        sharing_request_headers(|| self.each(|part| part.on_http_request_headers(headers, end_of_stream)))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.each(|part| part.on_http_request_body(body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, trailers: usize) -> Action {
        self.each(|part| part.on_http_request_trailers(trailers))
    }

    #[cfg(feature = "responses")]
    fn on_http_response_headers(&mut self, headers: usize, end_of_stream: bool) -> Action {
        if !self.responses {
            return Action::Continue;
        }
        self.each(|part| part.on_http_response_headers(headers, end_of_stream))
    }

    #[cfg(feature = "responses")]
    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.responses {
            return Action::Continue;
        }
        self.each(|part| part.on_http_response_body(body_size, end_of_stream))
    }
}
