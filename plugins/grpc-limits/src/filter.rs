//! The proxy-wasm shell: picks the limits at the request headers, then meters the body chunks as they stream
//! (`Continue` on every chunk, so Envoy buffers nothing), answering a violation in the client's protocol.

use crate::config::Limits;
use crate::policy::{Counter, Framing, Meter, Stop, Violation, content_length};
use crate::{Config, GrpcLimits, GrpcLimitsRequests, PLUGIN};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, Status};
use std::rc::Rc;
use wasmgate_common::host::{
    Loaded, Plugin, body_bytes, log, request_headers, response_headers_raw, send_local_response,
};
use wasmgate_common::{ClientKind, Denial, GrpcStatus, HeaderMapView, RequestLine};

// The module's entry point, left out when another module (the suite) embeds this filter: the `grpc-limits` image,
// or without the `responses` feature the `grpc-limits-requests` one.
#[cfg(all(feature = "entrypoint", feature = "responses"))]
wasmgate_common::plugin_main!(GrpcLimits);
#[cfg(all(feature = "entrypoint", not(feature = "responses")))]
wasmgate_common::plugin_main!(GrpcLimitsRequests);

impl Plugin for GrpcLimits {
    fn counters(_config: &Config) -> Vec<String> {
        Counter::NAMES.iter().map(|c| c.to_string()).collect()
    }

    fn http_context(state: Rc<Loaded<Config>>) -> Box<dyn HttpContext> {
        Box::new(Filter { state, stream: None })
    }
}

impl Plugin for GrpcLimitsRequests {
    fn counters(config: &Config) -> Vec<String> {
        GrpcLimits::counters(config)
    }

    fn http_context(state: Rc<Loaded<Config>>) -> Box<dyn HttpContext> {
        GrpcLimits::http_context(state)
    }
}

/// A request under limits.
struct Stream {
    meter: Meter,
    rule: String,
    client: ClientKind,
    /// Set once a denial has been sent: later callbacks have nothing to do.
    finished: bool,
}

struct Filter {
    state: Rc<Loaded<Config>>,
    stream: Option<Stream>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let result = self.start(end_of_stream);
        self.settle(result)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(stream) = self.stream.as_mut().filter(|s| !s.finished) else {
            return Action::Continue;
        };
        let counters = &self.state.counters;
        counters.add(Counter::RequestBytes.index(), body_size as u64);
        let before = stream.meter.messages();
        let result = stream.meter.on_request_chunk(body_size, |offset, len| body_bytes(false, offset, len));
        counters.add(Counter::Messages.index(), stream.meter.messages() - before);
        let result = match result {
            Ok(()) => {
                if end_of_stream {
                    stream.finished = true;
                    counters.inc(Counter::Accepted.index());
                    if stream.meter.ended_mid_message() {
                        counters.inc(Counter::Truncated.index());
                    }
                }
                Ok(())
            }
            Err(Stop::Limit(v)) => Err(Refusal::Limit(v)),
            Err(Stop::Host(status)) => Err(Refusal::Host(status)),
        };
        self.settle(result)
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(stream) = self.stream.as_ref().filter(|s| s.meter.limits_response()) else {
            return Action::Continue;
        };
        let result = match response_headers_raw() {
            Ok(raw) => {
                let declared = HeaderMapView::parse(&raw).ok().and_then(|h| content_length(h.get("content-length")));
                stream.meter.check_response_headers(declared).map_err(Refusal::Limit)
            }
            Err(status) => Err(Refusal::Host(status)),
        };
        self.settle(result)
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        let Some(stream) = self.stream.as_mut().filter(|s| s.meter.limits_response()) else {
            return Action::Continue;
        };
        let result = stream.meter.on_response_chunk(body_size).map_err(Refusal::Limit);
        self.settle(result)
    }
}

enum Refusal {
    Limit(Violation),
    Host(Status),
}

impl Filter {
    /// Chooses the limits and checks what the headers already tell.
    fn start(&mut self, end_of_stream: bool) -> Result<(), Refusal> {
        let shared = request_headers().map_err(Refusal::Host)?;
        let headers = shared.view();
        let [authority, path, method, length] = headers.find([":authority", ":path", ":method", "content-length"]);
        let (authority, path, method) = (authority.text(), path.text(), method.text());
        let client = ClientKind::from_content_types(headers.values("content-type"));
        let selected = match self.state.config.select(&RequestLine::new(&authority, &path, &method)) {
            Ok(Some(selected)) => selected,
            Ok(None) => return Ok(()),
            Err(violation) => {
                self.stream = Some(Stream {
                    meter: Meter::new(Limits::default(), Framing::Opaque),
                    rule: "-".into(),
                    client,
                    finished: true,
                });
                return Err(Refusal::Limit(violation));
            }
        };
        let meter = Meter::new(selected.limits, Framing::of(client, selected.grpc_rule));
        let declared = content_length(length.first);
        self.stream = Some(Stream { meter, rule: selected.rule.to_string(), client, finished: end_of_stream });
        selected.admit(client).map_err(Refusal::Limit)?;
        if let Some(stream) = &self.stream {
            stream.meter.check_request_headers(declared).map_err(Refusal::Limit)?;
        }
        if end_of_stream {
            self.state.counters.inc(Counter::Accepted.index());
        }
        Ok(())
    }

    /// Turns a step's result into the action for Envoy, answering a refusal.
    fn settle(&mut self, result: Result<(), Refusal>) -> Action {
        let refusal = match result {
            Ok(()) => return Action::Continue,
            Err(refusal) => refusal,
        };
        let (rule, client) = match self.stream.as_mut() {
            Some(stream) => {
                stream.finished = true;
                (stream.rule.as_str(), stream.client)
            }
            None => ("-", ClientKind::Http),
        };
        let counters = &self.state.counters;
        let (denial, details) = match refusal {
            Refusal::Limit(violation) => {
                counters.inc(violation.counter().index());
                (violation.denial(rule), "grpc_limits_exceeded")
            }
            // Fail closed: a body the plugin could not inspect does not pass.
            Refusal::Host(status) => {
                counters.inc(self.state.host_error);
                (
                    Denial::new(503, GrpcStatus::Unavailable, format!("limits unavailable ({status:?})")),
                    "grpc_limits_host_error",
                )
            }
        };
        log(LogLevel::Info, &format!("{PLUGIN}: refused: {}", denial.message));
        if let Err(status) = send_local_response(&denial.render(client), details) {
            log(LogLevel::Error, &format!("{PLUGIN}: cannot send the refusal: {status:?}"));
        }
        Action::Pause
    }
}
