//! The proxy-wasm shell: reads the request headers once, asks the policy, then either answers (redirect,
//! direct response, denial) or changes the request and has Envoy pick the route again.

use crate::policy::{Request, Response};
use crate::{Config, HostRouter, PLUGIN};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, Status};
use std::rc::Rc;
use wasmgate_common::host::{
    Loaded, Plugin, add_request_header, log, request_headers, send_local_response, set_request_header,
};
use wasmgate_common::{ClientKind, LocalResponse};

// The module's entry point, left out when another module (the suite) embeds this filter.
#[cfg(feature = "entrypoint")]
wasmgate_common::plugin_main!(HostRouter);

impl Plugin for HostRouter {
    fn counters(config: &Config) -> Vec<String> {
        let mut names = config.counter_names();
        names.push(BAD_REQUEST_COUNTER.into());
        names
    }

    fn http_context(state: Rc<Loaded<Config>>) -> Box<dyn HttpContext> {
        Box::new(Filter { state })
    }
}

/// After the per-rule counters: requests refused because their host or path reads more than one way.
const BAD_REQUEST_COUNTER: &str = "refused.bad_request";

struct Filter {
    state: Rc<Loaded<Config>>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        match self.route() {
            Ok(action) => action,
            Err(status) => {
                // Routing is not a security boundary: on a host failure the request goes on unchanged, counted.
                self.state.counters.inc(self.state.host_error);
                log(LogLevel::Error, &format!("{PLUGIN}: host call failed ({status:?}); request passed unchanged"));
                Action::Continue
            }
        }
    }
}

impl Filter {
    fn route(&self) -> Result<Action, Status> {
        let shared = request_headers()?;
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
                set_request_header(name, None)?;
            }
        }
        let request = Request::new(&authority, &path, &method, &scheme, &headers);
        let decision = match self.state.config.decide(&request) {
            Ok(Some(decision)) => decision,
            Ok(None) => return Ok(Action::Continue),
            Err(why) => {
                self.state.counters.inc(self.state.config.counter_names.len());
                log(LogLevel::Info, &format!("{PLUGIN}: refused {method} {}{path}: {why}", authority.escape_debug()));
                let client = ClientKind::from_content_types(headers.values("content-type"));
                send_local_response(&why.denial().render(client), "host_router")?;
                return Ok(Action::Pause);
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
                Response::Deny(denial) => denial.render(ClientKind::from_content_types(headers.values("content-type"))),
            };
            send_local_response(&reply, "host_router")?;
            return Ok(Action::Pause);
        }
        let changed = decision.changes_route_inputs();
        // Let go of the headers first: a part after this one then shares them changed in place, not on a copy.
        drop(shared);
        for name in decision.remove_headers {
            set_request_header(name, None)?;
        }
        for (name, value) in decision.set_headers {
            set_request_header(name, Some(value))?;
        }
        for (name, value) in decision.append_headers {
            add_request_header(name, value)?;
        }
        if let Some(path) = &decision.path {
            set_request_header(":path", Some(path))?;
        }
        if let Some(authority) = decision.authority {
            set_request_header(":authority", Some(authority))?;
        }
        if changed {
            // Newer Envoys no longer re-pick the route by themselves after a header change; older ones lack
            // the function and re-pick anyway, so "not found" is fine.
            let _ = hostcalls::call_foreign_function("clear_route_cache", None);
        }
        Ok(Action::Continue)
    }
}
