//! The suite's request filter: each section's own filter, run in order. A filter that stops the request (a
//! denial, a redirect, a direct response) ends the callback for the ones after it, as Envoy does for separate
//! filters.

use wasmgate_common::{Flow, Host, StreamFilter};

pub struct Chain {
    parts: Vec<Box<dyn StreamFilter>>,
    /// False: the response callbacks return at once (Envoy calls them whatever the module does with them).
    responses: bool,
}

impl Chain {
    pub fn new(parts: Vec<Box<dyn StreamFilter>>, responses: bool) -> Self {
        Self { parts, responses }
    }

    /// Runs `step` on each part in order until one does not continue.
    fn each(&mut self, mut step: impl FnMut(&mut dyn StreamFilter) -> Flow) -> Flow {
        for part in &mut self.parts {
            if step(part.as_mut()) == Flow::Pause {
                return Flow::Pause;
            }
        }
        Flow::Continue
    }
}

impl StreamFilter for Chain {
    fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        self.each(|part| part.on_request_headers(host, end_of_stream))
    }

    fn on_request_body(&mut self, host: &dyn Host, body_size: usize, end_of_stream: bool) -> Flow {
        self.each(|part| part.on_request_body(host, body_size, end_of_stream))
    }

    fn on_request_trailers(&mut self, host: &dyn Host) -> Flow {
        self.each(|part| part.on_request_trailers(host))
    }

    fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        if !self.responses {
            return Flow::Continue;
        }
        self.each(|part| part.on_response_headers(host, end_of_stream))
    }

    fn on_response_body(&mut self, host: &dyn Host, body_size: usize, end_of_stream: bool) -> Flow {
        if !self.responses {
            return Flow::Continue;
        }
        self.each(|part| part.on_response_body(host, body_size, end_of_stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basic_auth::BasicAuth;
    use grpc_limits::GrpcLimits;
    use host_router::HostRouter;
    use std::rc::Rc;
    use wasmgate_common::fake::FakeHost;
    use wasmgate_common::{Loaded, Shell};

    fn part<P: Shell>(config: &str) -> Box<dyn StreamFilter> {
        Box::new(P::filter(Rc::new(Loaded::new::<P>(P::parse(config.as_bytes()).unwrap()))))
    }

    fn chain(responses: bool) -> Chain {
        let auth =
            r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET", "POST"], "credentials": ["u:p"]}]}"#;
        let limits = r#"{"default": {"max_request_bytes": 4, "max_response_bytes": 10}}"#;
        let route = r#"{"hosts": [{"host": "ml.example.com", "default": {"name": "d", "set_headers": {"x-route": "stable"}}}]}"#;
        Chain::new(vec![part::<BasicAuth>(auth), part::<GrpcLimits>(limits), part::<HostRouter>(route)], responses)
    }

    fn request(authorization: Option<&str>) -> FakeHost {
        let mut headers = vec![(":authority", "ml.example.com"), (":path", "/m"), (":method", "POST")];
        headers.extend(authorization.map(|value| ("authorization", value)));
        FakeHost::request(&headers)
    }

    #[test]
    fn a_denial_ends_the_callback_for_the_parts_after_it() {
        let host = request(None);
        assert_eq!(chain(true).on_request_headers(&host, false), Flow::Pause);
        assert_eq!(host.reply().map(|(reply, _)| reply.status), Some(401));
        assert!(host.request_header("x-route").is_empty(), "host-router did not run");
    }

    #[test]
    fn each_part_runs_in_order_when_the_ones_before_continue() {
        let host = request(Some("Basic dTpw")); // u:p
        let mut chain = chain(true);
        assert_eq!(chain.on_request_headers(&host, false), Flow::Continue);
        assert_eq!(host.request_header("x-route"), ["stable"]);
        assert_eq!(host.send_body(&mut chain, b"12345", true), Flow::Pause, "over grpc-limits' 4 bytes");
        assert_eq!(
            host.reply().map(|(reply, details)| (reply.status, details)),
            Some((413, "grpc_limits_exceeded".into()))
        );
    }

    /// "Is this a gRPC client?" has one answer, whichever plugin refuses: a request whose `content-type`s are
    /// `text/plain` and then `application/grpc` (the server may take either) hears every refusal in gRPC.
    #[test]
    fn every_plugin_answers_the_same_kind_of_client() {
        let refusing: [(&str, Box<dyn StreamFilter>); 3] = [
            (
                "basic-auth",
                part::<BasicAuth>(
                    r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["*"], "credentials": ["u:p"]}]}"#,
                ),
            ),
            ("grpc-limits", part::<GrpcLimits>(r#"{"default": {"max_request_bytes": 1}}"#)),
            (
                "host-router",
                part::<HostRouter>(
                    r#"{"hosts": [{"host": "ml.example.com", "default": {"name": "no", "deny": {"status": 403}}}]}"#,
                ),
            ),
        ];
        for (plugin, mut filter) in refusing {
            let host = FakeHost::request(&[
                (":authority", "ml.example.com"),
                (":path", "/m"),
                (":method", "POST"),
                ("content-length", "2"),
                ("content-type", "text/plain"),
                ("content-type", "application/grpc"),
            ]);
            assert_eq!(filter.on_request_headers(&host, false), Flow::Pause, "{plugin}");
            assert!(host.reply().and_then(|(reply, _)| reply.grpc_status).is_some(), "{plugin} answered in HTTP");
        }
    }

    #[test]
    fn without_response_limits_the_response_callbacks_ask_nothing() {
        for (responses, want) in [(false, Flow::Continue), (true, Flow::Pause)] {
            let host = request(Some("Basic dTpw"));
            let mut chain = chain(responses);
            chain.on_request_headers(&host, true);
            host.set_response_headers(&[(":status", "200"), ("content-length", "11")]);
            assert_eq!(chain.on_response_headers(&host, false), want, "responses: {responses}");
            assert_eq!(host.reply().is_some(), responses);
        }
    }
}
