//! The proxy-wasm shell: reads the request line and `authorization` from the host, asks the policy, and
//! answers a denial in the client's protocol. Nothing here decides anything.

use crate::authorization::Malformed;
use crate::config::counter_name;
use crate::policy::{Address, Counter, Requirement, user_counter};
use crate::{BasicAuth, Caller, Config, Outcome, PLUGIN, RequestLine, Verdict};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};
use std::rc::Rc;
use wasmgate_common::host::{
    Loaded, Plugin, client_address, log, now_micros, request_headers, request_trailers, send_local_response,
    set_request_header, set_request_trailer,
};
use wasmgate_common::{ClientKind, Denial, GrpcStatus};

// The module's entry point, left out when another module (the suite) embeds this filter.
#[cfg(feature = "entrypoint")]
wasmgate_common::plugin_main!(BasicAuth);

impl Plugin for BasicAuth {
    fn counters(config: &Config) -> Vec<String> {
        let fixed = Counter::NAMES.iter().map(|c| c.to_string());
        fixed.chain(config.users().iter().map(|u| format!("user.{}.allowed", counter_name(u)))).collect()
    }

    fn http_context(state: Rc<Loaded<Config>>) -> Box<dyn HttpContext> {
        Box::new(Filter { state })
    }
}

struct Filter {
    state: Rc<Loaded<Config>>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let checked = self.check();
        self.fail_closed(checked)
    }

    /// HTTP/2 request trailers reach the upstream too: a client's identity header there goes like one in the
    /// headers.
    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        let removed = request_trailers().and_then(|trailers| {
            for name in self.state.config.client_identities(&trailers.view()) {
                set_request_trailer(&name, None)?;
            }
            Ok(Action::Continue)
        });
        self.fail_closed(removed)
    }
}

impl Filter {
    /// A request the plugin could not inspect does not pass.
    fn fail_closed(&self, result: Result<Action, proxy_wasm::types::Status>) -> Action {
        result.unwrap_or_else(|status| {
            log(LogLevel::Error, &format!("{PLUGIN}: host call failed ({status:?}); request refused"));
            self.state.counters.inc(self.state.host_error);
            let denial = Denial::new(503, GrpcStatus::Unavailable, "authentication unavailable");
            let _ = send_local_response(&denial.render(ClientKind::Http), "basic_auth_host_error");
            Action::Pause
        })
    }

    fn check(&self) -> Result<Action, proxy_wasm::types::Status> {
        let state = &self.state;
        // One host call for every header: cheaper than one per header, and it shows duplicates.
        let shared = request_headers()?;
        let headers = shared.view();
        let [authority, path, method, authorization] =
            headers.find([":authority", ":path", ":method", "authorization"]);
        let (authority, path, method) = (authority.text(), path.text(), method.text());
        // Only the gateway says who called: a client's value goes first, on every request, whatever follows.
        for name in state.config.client_identities(&headers) {
            set_request_header(&name, None)?;
        }
        let request = RequestLine::new(&authority, &path, &method);
        let verdict = match state.config.requirement(&request) {
            Requirement::None(outcome) => {
                state.counters.inc(outcome.counter().index());
                return Ok(Action::Continue);
            }
            Requirement::Refused(verdict) => verdict,
            // Proxies and servers may each pick a different one of several: refuse the ambiguity.
            Requirement::Credentials if authorization.count > 1 => {
                state.config.refuse(Outcome::DeniedMalformed(Malformed::Duplicate))
            }
            Requirement::Credentials => {
                let caller = Caller { address: Address::Ask(&client_address), now_us: &now_micros };
                let verdict = state.config.check_credentials(&request, authorization.first, &caller);
                state.counters.add(Counter::BcryptChecks.index(), state.config.take_bcrypt_checks());
                verdict
            }
        };
        match verdict {
            Verdict::Authenticated(user) => {
                state.counters.inc(Counter::Allowed.index());
                state.counters.inc(user_counter(user));
                if let Some((name, user)) = state.config.forwarded_user(&verdict) {
                    // Let go of the headers first: the parts after this one then share them with the user added
                    // in place, not on a copy.
                    drop(shared);
                    set_request_header(name, Some(user))?;
                }
                Ok(Action::Continue)
            }
            Verdict::Allow(outcome) => {
                state.counters.inc(outcome.counter().index());
                Ok(Action::Continue)
            }
            Verdict::Deny(outcome, denial) => {
                state.counters.inc(outcome.counter().index());
                // Without the query string, which may carry tokens that do not belong in a log; the authority
                // escaped, since a refused one may hold anything.
                let path = wasmgate_common::path_without_query(&path);
                let user = claimed_user(authorization.first);
                log(
                    LogLevel::Info,
                    &format!(
                        "{PLUGIN}: denied {method} {}{path}: {}{user}",
                        authority.escape_debug(),
                        outcome.describe()
                    ),
                );
                let client = ClientKind::from_content_types(headers.values("content-type"));
                send_local_response(&denial.render(client), "basic_auth_denied")?;
                Ok(Action::Pause)
            }
        }
    }
}

/// ` (user "name")` for a denial's log line when the request named a user: the name only, escaped and cut short
/// (a guesser chooses it), never the password.
fn claimed_user(authorization: Option<&[u8]>) -> String {
    match authorization.map(crate::authorization::parse_basic) {
        Some(Ok(credentials)) => {
            let name: String = credentials.user().chars().take(64).collect();
            format!(" (user \"{}\")", name.escape_debug())
        }
        _ => String::new(),
    }
}
