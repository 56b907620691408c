//! The proxy-wasm shell: reads the request line and `authorization` from the host, asks the policy, and
//! answers a denial in the client's protocol. Nothing here decides anything.

use crate::authorization::Malformed;
use crate::{Config, Outcome, PLUGIN, RequestInfo, Verdict, policy::Requirement};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use wasmgate_common::host::{Counters, log, plugin_configuration, request_headers_raw, send_local_response};
use wasmgate_common::{ClientKind, HeaderMapView};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { state: None }) });
}}

struct State {
    config: Config,
    counters: Counters,
}

struct Root {
    state: Option<Rc<State>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match plugin_configuration() {
            Ok(bytes) => bytes,
            Err(status) => {
                log(LogLevel::Critical, &format!("{PLUGIN}: cannot read plugin configuration: {status:?}"));
                return false;
            }
        };
        match Config::from_json(&bytes) {
            Ok(config) => {
                log(LogLevel::Info, &format!("{PLUGIN}: configured with {} rule(s)", config.rule_count()));
                let counters = Counters::define(PLUGIN, &Outcome::COUNTERS);
                self.state = Some(Rc::new(State { config, counters }));
                true
            }
            Err(e) => {
                // Returning false makes Envoy refuse the plugin: fail closed on a bad config.
                log(LogLevel::Critical, &format!("{PLUGIN}: {e}; plugin refused"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let state = self.state.clone()?;
        Some(Box::new(Filter { state }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    state: Rc<State>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        match self.check() {
            Ok(action) => action,
            Err(status) => {
                log(LogLevel::Error, &format!("{PLUGIN}: host call failed ({status:?}); request refused"));
                self.state.counters.inc(Outcome::DeniedMissing.counter());
                let _ = send_local_response(
                    &wasmgate_common::Denial::new(
                        500,
                        wasmgate_common::GrpcStatus::Unavailable,
                        "authentication unavailable",
                    )
                    .render(ClientKind::Http),
                    "basic_auth_host_error",
                );
                Action::Pause
            }
        }
    }
}

impl Filter {
    fn check(&self) -> Result<Action, proxy_wasm::types::Status> {
        let state = &self.state;
        // One host call for every header: cheaper than one per header, and it shows duplicates.
        let raw = request_headers_raw()?;
        let Ok(headers) = HeaderMapView::parse(&raw) else {
            return Err(proxy_wasm::types::Status::ParseFailure);
        };
        let (authority, path, method) = (headers.text(":authority"), headers.text(":path"), headers.text(":method"));
        let request = RequestInfo::new(&authority, &path, &method);
        if let Requirement::None(outcome) = state.config.requirement(&request) {
            state.counters.inc(outcome.counter());
            return Ok(Action::Continue);
        }
        let verdict = if headers.count("authorization") > 1 {
            // Proxies and servers may each pick a different one of several: refuse the ambiguity.
            state.config.refuse(Outcome::DeniedMalformed(Malformed::Duplicate))
        } else {
            state.config.decide(&request, headers.get("authorization"))
        };
        match verdict {
            Verdict::Allow(outcome) => {
                state.counters.inc(outcome.counter());
                Ok(Action::Continue)
            }
            Verdict::Deny(outcome, denial) => {
                state.counters.inc(outcome.counter());
                let reason = match outcome {
                    Outcome::DeniedMalformed(why) => why.to_string(),
                    Outcome::DeniedMissing => "no credentials".to_string(),
                    _ => "invalid credentials".to_string(),
                };
                log(LogLevel::Info, &format!("{PLUGIN}: denied {method} {authority}{}: {reason}", request_path(&path)));
                let client = ClientKind::from_content_type(
                    std::str::from_utf8(headers.get("content-type").unwrap_or_default()).ok(),
                );
                send_local_response(&denial.render(client), "basic_auth_denied")?;
                Ok(Action::Pause)
            }
        }
    }
}

/// The path without its query, which may carry tokens that do not belong in logs.
fn request_path(path: &str) -> &str {
    wasmgate_common::path_without_query(path)
}
