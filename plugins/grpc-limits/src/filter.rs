//! The shell: picks the limits at the request headers, then meters the body chunks as they stream (`Continue`
//! on every chunk, so Envoy buffers nothing), answering a violation in the client's protocol.

use crate::config::Limits;
use crate::policy::{Counter, Framing, Meter, Stop, Violation, content_length};
use crate::{Config, GrpcLimits, GrpcLimitsRequests, PLUGIN};
use std::rc::Rc;
use wasmgate_common::{
    ClientKind, Denial, Flow, GrpcStatus, Host, HostError, Level, Loaded, RequestLine, Shell, StreamFilter,
};

// The module's entry point, left out when another module (the suite) embeds this filter: the `grpc-limits` image,
// or without the `responses` feature the `grpc-limits-requests` one.
#[cfg(all(target_arch = "wasm32", feature = "entrypoint", feature = "responses", not(test)))]
wasmgate_common::plugin_main!(GrpcLimits);
#[cfg(all(target_arch = "wasm32", feature = "entrypoint", not(feature = "responses"), not(test)))]
wasmgate_common::plugin_main!(GrpcLimitsRequests);

impl Shell for GrpcLimits {
    fn counters(_config: &Config) -> Vec<String> {
        Counter::NAMES.iter().map(|c| c.to_string()).collect()
    }

    type Filter = Filter;

    fn filter(state: Rc<Loaded<Config>>) -> Filter {
        Filter { state, stream: None }
    }
}

impl Shell for GrpcLimitsRequests {
    fn counters(config: &Config) -> Vec<String> {
        GrpcLimits::counters(config)
    }

    type Filter = Filter;

    fn filter(state: Rc<Loaded<Config>>) -> Filter {
        GrpcLimits::filter(state)
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

pub struct Filter {
    state: Rc<Loaded<Config>>,
    stream: Option<Stream>,
}

impl StreamFilter for Filter {
    fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        let result = self.start(host, end_of_stream);
        self.settle(host, result)
    }

    fn on_request_body(&mut self, host: &dyn Host, body_size: usize, end_of_stream: bool) -> Flow {
        let Some(stream) = self.stream.as_mut().filter(|s| !s.finished) else {
            return Flow::Continue;
        };
        let counters = &self.state.counters;
        counters.add(Counter::RequestBytes.index(), body_size as u64);
        let before = stream.meter.messages();
        let result = stream.meter.on_request_chunk(body_size, |offset, len| host.request_body(offset, len));
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
        self.settle(host, result)
    }

    fn on_response_headers(&mut self, host: &dyn Host, _end_of_stream: bool) -> Flow {
        let Some(stream) = self.stream.as_ref().filter(|s| s.meter.limits_response()) else {
            return Flow::Continue;
        };
        let result = match host.response_headers() {
            Ok(headers) => {
                let declared = content_length(headers.view().get("content-length"));
                stream.meter.check_response_headers(declared).map_err(Refusal::Limit)
            }
            Err(error) => Err(Refusal::Host(error)),
        };
        self.settle(host, result)
    }

    fn on_response_body(&mut self, host: &dyn Host, body_size: usize, _end_of_stream: bool) -> Flow {
        let Some(stream) = self.stream.as_mut().filter(|s| s.meter.limits_response()) else {
            return Flow::Continue;
        };
        let result = stream.meter.on_response_chunk(body_size).map_err(Refusal::Limit);
        self.settle(host, result)
    }
}

enum Refusal {
    Limit(Violation),
    Host(HostError),
}

impl Filter {
    /// Chooses the limits and checks what the headers already tell.
    fn start(&mut self, host: &dyn Host, end_of_stream: bool) -> Result<(), Refusal> {
        let shared = host.request_headers().map_err(Refusal::Host)?;
        let headers = shared.view();
        let [authority, path, method, length] = headers.find([":authority", ":path", ":method", "content-length"]);
        let (authority, path, method) = (authority.text(), path.text(), method.text());
        let client = ClientKind::of(&headers);
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
    fn settle(&mut self, host: &dyn Host, result: Result<(), Refusal>) -> Flow {
        let refusal = match result {
            Ok(()) => return Flow::Continue,
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
            Refusal::Host(error) => {
                counters.inc(self.state.host_error);
                (
                    Denial::new(503, GrpcStatus::Unavailable, format!("limits unavailable ({error})")),
                    "grpc_limits_host_error",
                )
            }
        };
        host.log(Level::Info, &format!("{PLUGIN}: refused: {}", denial.message));
        if let Err(error) = host.send_local_response(&denial.render(client), details) {
            host.log(Level::Error, &format!("{PLUGIN}: cannot send the refusal: {error}"));
        }
        Flow::Pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_common::PluginConfig;
    use wasmgate_common::fake::FakeHost;

    const CONFIG: &str =
        r#"{"default": {"max_request_bytes": 100, "max_message_bytes": 10, "max_response_bytes": 50}}"#;

    fn filter() -> (Rc<Loaded<Config>>, Filter) {
        let state = Rc::new(Loaded::new::<GrpcLimits>(GrpcLimits::parse(CONFIG.as_bytes()).unwrap()));
        (state.clone(), GrpcLimits::filter(state))
    }

    fn grpc_call() -> FakeHost {
        FakeHost::request(&[
            (":authority", "ml.example.com"),
            (":path", "/inference.GRPCInferenceService/ModelInfer"),
            (":method", "POST"),
            ("content-type", "application/grpc"),
        ])
    }

    /// A gRPC message prefix: not compressed, `len` bytes.
    fn prefix(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes
    }

    #[test]
    fn a_message_over_its_limit_is_refused_as_its_prefix_streams_by() {
        let (state, mut filter) = filter();
        let host = grpc_call();
        assert_eq!(filter.on_request_headers(&host, false), Flow::Continue);
        let mut body = prefix(3);
        body.extend_from_slice(b"abc");
        body.extend_from_slice(&prefix(11));
        // The second prefix is split over two chunks: nothing is decided until its last byte arrives.
        assert_eq!(host.send_body(&mut filter, &body[..8], false), Flow::Continue);
        assert_eq!(host.send_body(&mut filter, &body[8..], false), Flow::Pause);
        let (reply, details) = host.reply().unwrap();
        assert_eq!(
            (reply.grpc_status, details.as_str()),
            (Some(GrpcStatus::ResourceExhausted as u32), "grpc_limits_exceeded")
        );
        assert_eq!(state.counters.get(Counter::RefusedMessageBytes.index()), 1);
        assert_eq!(state.counters.get(Counter::RequestBytes.index()), body.len() as u64);
        // Later chunks are neither read nor answered again.
        host.fail("request_body");
        assert_eq!(host.send_body(&mut filter, b"more", true), Flow::Continue);
    }

    #[test]
    fn an_http_client_declaring_too_much_gets_413_before_any_body() {
        let (state, mut filter) = filter();
        let host = FakeHost::request(&[
            (":authority", "ml.example.com"),
            (":path", "/upload"),
            (":method", "POST"),
            ("content-length", "101"),
        ]);
        assert_eq!(filter.on_request_headers(&host, false), Flow::Pause);
        let (reply, _) = host.reply().unwrap();
        assert_eq!((reply.status, reply.grpc_status), (413, None));
        assert_eq!(state.counters.get(Counter::RefusedContentLength.index()), 1);
    }

    #[test]
    fn a_body_the_host_cannot_show_does_not_pass() {
        let (state, mut filter) = filter();
        let host = grpc_call();
        filter.on_request_headers(&host, false);
        host.fail("request_body");
        assert_eq!(host.send_body(&mut filter, &prefix(1), false), Flow::Pause);
        let (reply, details) = host.reply().unwrap();
        assert_eq!(
            (reply.grpc_status, details.as_str()),
            (Some(GrpcStatus::Unavailable as u32), "grpc_limits_host_error")
        );
        assert_eq!(state.counters.get(state.host_error), 1);
    }

    #[test]
    fn a_response_declaring_more_than_its_limit_is_refused_at_its_headers() {
        for (length, want) in [("50", Flow::Continue), ("51", Flow::Pause)] {
            let (state, mut filter) = filter();
            let host = grpc_call();
            filter.on_request_headers(&host, true);
            host.set_response_headers(&[(":status", "200"), ("content-length", length)]);
            assert_eq!(filter.on_response_headers(&host, false), want, "{length}");
            assert_eq!(state.counters.get(Counter::RefusedResponseBytes.index()), u64::from(want == Flow::Pause));
        }
    }
}
