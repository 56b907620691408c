//! The shell: reads the request headers once, asks the policy, then either answers (redirect, direct response,
//! denial) or changes the request and has Envoy pick the route again.

use crate::policy::{Request, Response};
use crate::{Config, HostRouter, PLUGIN};
use std::rc::Rc;
use wasmgate_common::{ClientKind, Flow, Host, HostError, Level, Loaded, LocalResponse, Shell, StreamFilter};

// The module's entry point, left out when another module (the suite) embeds this filter.
#[cfg(all(target_arch = "wasm32", feature = "entrypoint", not(test)))]
wasmgate_common::plugin_main!(HostRouter);

impl Shell for HostRouter {
    fn counters(config: &Config) -> Vec<String> {
        let mut names = config.counter_names();
        names.push(BAD_REQUEST_COUNTER.into());
        names
    }

    type Filter = Filter;

    fn filter(state: Rc<Loaded<Config>>) -> Filter {
        Filter { state }
    }
}

/// After the per-rule counters: requests refused because their host or path reads more than one way.
pub const BAD_REQUEST_COUNTER: &str = "refused.bad_request";

pub struct Filter {
    state: Rc<Loaded<Config>>,
}

impl StreamFilter for Filter {
    fn on_request_headers(&mut self, host: &dyn Host, _end_of_stream: bool) -> Flow {
        match self.route(host) {
            Ok(flow) => flow,
            Err(error) => {
                // Routing is not a security boundary: on a host failure the request goes on unchanged, counted.
                self.state.counters.inc(self.state.host_error);
                host.log(Level::Error, &format!("{PLUGIN}: host call failed ({error}); request passed unchanged"));
                Flow::Continue
            }
        }
    }
}

impl Filter {
    fn route(&self, host: &dyn Host) -> Result<Flow, HostError> {
        let shared = host.request_headers()?;
        let headers = shared.view();
        let [authority, path, method, forwarded_proto, scheme] =
            headers.find([":authority", ":path", ":method", "x-forwarded-proto", ":scheme"]);
        let (authority, path, method) = (authority.text(), path.text(), method.text());
        let scheme = match forwarded_proto.text() {
            proto if proto.is_empty() => scheme.text(),
            proto => proto,
        };
        // Only the gateway sets these: a client's value goes before anything else happens.
        for name in self.state.config.gateway_headers() {
            if headers.get(name).is_some() {
                host.set_request_header(name, None)?;
            }
        }
        let request = Request::new(&authority, &path, &method, &scheme, &headers);
        let decision = match self.state.config.decide(&request) {
            Ok(Some(decision)) => decision,
            Ok(None) => return Ok(Flow::Continue),
            Err(why) => {
                self.state.counters.inc(self.state.config.counter_names.len());
                host.log(Level::Info, &format!("{PLUGIN}: refused {method} {}{path}: {why}", authority.escape_debug()));
                let client = ClientKind::of(&headers);
                host.send_local_response(&why.denial().render(client), "host_router")?;
                return Ok(Flow::Pause);
            }
        };
        self.state.counters.inc(decision.counter);
        if let Some(response) = decision.response {
            let reply = match response {
                Response::Redirect { status, location } => LocalResponse {
                    status,
                    headers: vec![("location".into(), location)],
                    body: String::new(),
                    grpc_status: None,
                },
                Response::Direct { status, body, content_type } => LocalResponse {
                    status,
                    headers: vec![("content-type".into(), content_type)],
                    body,
                    grpc_status: None,
                },
                Response::Deny(denial) => denial.render(ClientKind::of(&headers)),
            };
            host.send_local_response(&reply, "host_router")?;
            return Ok(Flow::Pause);
        }
        let changed = decision.changes_route_inputs();
        // Let go of the headers first: a part after this one then shares them changed in place, not on a copy.
        drop(shared);
        for name in decision.remove_headers {
            host.set_request_header(name, None)?;
        }
        for (name, value) in decision.set_headers {
            host.set_request_header(name, Some(value))?;
        }
        for (name, value) in decision.append_headers {
            host.add_request_header(name, value)?;
        }
        if let Some(path) = &decision.path {
            host.set_request_header(":path", Some(path))?;
        }
        if let Some(authority) = decision.authority {
            host.set_request_header(":authority", Some(authority))?;
        }
        if changed {
            host.clear_route_cache();
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_common::fake::FakeHost;
    use wasmgate_common::{GrpcStatus, Level, PluginConfig};

    const CONFIG: &str = r#"{"hosts": [{"host": "ml.example.com", "rules": [
            {"name": "login", "match": {"prefix": "/login"}, "redirect": {"status": 308, "https": true}},
            {"name": "no-admin", "match": {"regex": "^/admin(/|$)"}, "deny": {"status": 403, "message": "internal"}}
        ]}],
        "default": {"name": "stable", "set_headers": {"x-wasmgate-route": "stable"}},
        "gateway_headers": ["x-wasmgate-route"]}"#;

    fn filter() -> (Rc<Loaded<Config>>, Filter) {
        let state = Rc::new(Loaded::new::<HostRouter>(HostRouter::parse(CONFIG.as_bytes()).unwrap()));
        (state.clone(), HostRouter::filter(state))
    }

    fn request(path: &str, extra: &[(&str, &str)]) -> FakeHost {
        let mut headers =
            vec![(":authority", "ml.example.com"), (":path", path), (":method", "GET"), (":scheme", "http")];
        headers.extend_from_slice(extra);
        FakeHost::request(&headers)
    }

    #[test]
    fn a_clients_own_route_header_is_replaced_and_the_route_picked_again() {
        let (_, mut filter) = filter();
        let host = request("/v2/models", &[("x-wasmgate-route", "canary"), ("x-wasmgate-route", "canary")]);
        assert_eq!(filter.on_request_headers(&host, true), Flow::Continue);
        assert_eq!(host.request_header("x-wasmgate-route"), ["stable"]);
        assert_eq!(host.route_cache_clears(), 1);
    }

    #[test]
    fn a_redirect_and_a_denial_are_answered_without_the_upstream() {
        let (state, mut filter) = filter();
        let host = request("/login?next=/", &[]);
        assert_eq!(filter.on_request_headers(&host, true), Flow::Pause);
        let (reply, _) = host.reply().unwrap();
        assert_eq!(reply.status, 308);
        assert_eq!(reply.headers, [("location".to_string(), "https://ml.example.com/login?next=/".to_string())]);

        // A gRPC client hears a denial in gRPC; another reading of the path (`//admin`) does not skip the rule,
        // it is refused as a bad request.
        for (path, status) in [("/admin", GrpcStatus::PermissionDenied), ("//admin", GrpcStatus::InvalidArgument)] {
            let host = request(path, &[("content-type", "application/grpc")]);
            assert_eq!(filter.on_request_headers(&host, true), Flow::Pause, "{path}");
            assert_eq!(host.reply().and_then(|(reply, _)| reply.grpc_status), Some(status as u32), "{path}");
        }
        let bad_request = state.config.counter_names.len();
        assert_eq!(state.counters.get(bad_request), 1);
    }

    /// Routing is not a security boundary: a request the host cannot show goes on unchanged, counted and logged.
    #[test]
    fn a_host_failure_lets_the_request_through_unchanged() {
        let (state, mut filter) = filter();
        let host = request("/v2/models", &[]);
        host.fail("request_headers");
        assert_eq!(filter.on_request_headers(&host, true), Flow::Continue);
        assert!(host.reply().is_none() && host.request_header("x-wasmgate-route").is_empty());
        assert_eq!(state.counters.get(state.host_error), 1);
        assert_eq!(host.logs()[0].0, Level::Error);
    }
}
