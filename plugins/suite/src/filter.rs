//! The proxy-wasm shell: each section's own filter, run in order inside one stream context. A filter that stops
//! the request (a denial, a redirect, a direct response) ends the callback for the ones after it, as Envoy does
//! for separate filters. Built without the `responses` feature it is the `suite-requests` image: no response
//! callbacks (Makefile: its export list leaves them out too) and no config with a response limit.

use basic_auth::BasicAuth;
use grpc_limits::GrpcLimits;
use host_router::HostRouter;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use wasmgate_common::PluginConfig;
use wasmgate_common::host::{
    Counters, Loaded, Plugin, load_configuration, log, sharing_request_headers, start_flushing_counters,
};

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
    basic_auth: Option<Rc<Loaded<basic_auth::Config>>>,
    grpc_limits: Option<Rc<Loaded<grpc_limits::Config>>>,
    host_router: Option<Rc<Loaded<host_router::Config>>>,
}

impl SuiteRoot {
    fn flush_counters(&self) {
        let sections = [
            self.basic_auth.as_ref().map(|s| &s.counters),
            self.grpc_limits.as_ref().map(|s| &s.counters),
            self.host_router.as_ref().map(|s| &s.counters),
        ];
        sections.into_iter().flatten().for_each(Counters::flush);
    }
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
        self.basic_auth = config.basic_auth.map(|c| Rc::new(Loaded::new::<BasicAuth>(c)));
        self.grpc_limits = config.grpc_limits.map(|c| Rc::new(Loaded::new::<GrpcLimits>(c)));
        self.host_router = config.host_router.map(|c| Rc::new(Loaded::new::<HostRouter>(c)));
        start_flushing_counters();
        true
    }

    fn on_tick(&mut self) {
        self.flush_counters();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let mut parts: Vec<Box<dyn HttpContext>> = Vec::with_capacity(3);
        parts.extend(self.basic_auth.clone().map(BasicAuth::http_context));
        parts.extend(self.grpc_limits.clone().map(GrpcLimits::http_context));
        parts.extend(self.host_router.clone().map(HostRouter::http_context));
        Some(Box::new(Suite {
            parts,
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
