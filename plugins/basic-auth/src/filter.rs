//! The shell: reads the request line and `authorization` from the host, asks the policy, and answers a denial
//! in the client's protocol. Nothing here decides anything.

use crate::authorization::Malformed;
use crate::config::counter_name;
use crate::policy::{Address, Counter, Requirement, user_counter};
use crate::{Authenticator, BasicAuth, Caller, Outcome, PLUGIN, RequestLine, Verdict};
use std::rc::Rc;
use wasmgate_common::{ClientKind, Denial, Flow, GrpcStatus, Host, HostError, Level, Loaded, Shell, StreamFilter};

// The module's entry point, left out when another module (the suite) embeds this filter.
#[cfg(all(target_arch = "wasm32", feature = "entrypoint", not(test)))]
wasmgate_common::plugin_main!(BasicAuth);

impl Shell for BasicAuth {
    fn counters(authenticator: &Authenticator) -> Vec<String> {
        let fixed = Counter::NAMES.iter().map(|c| c.to_string());
        let users = authenticator.config().users().iter();
        fixed.chain(users.map(|u| format!("user.{}.allowed", counter_name(u)))).collect()
    }

    type Filter = Filter;

    fn filter(state: Rc<Loaded<Authenticator>>) -> Filter {
        Filter { state }
    }
}

pub struct Filter {
    state: Rc<Loaded<Authenticator>>,
}

impl StreamFilter for Filter {
    fn on_request_headers(&mut self, host: &dyn Host, _end_of_stream: bool) -> Flow {
        let checked = self.check(host);
        self.fail_closed(host, checked)
    }

    /// HTTP/2 request trailers reach the upstream too: a client's identity header there goes like one in the
    /// headers.
    fn on_request_trailers(&mut self, host: &dyn Host) -> Flow {
        let removed = host.request_trailers().and_then(|trailers| {
            for name in self.state.config.config().client_identities(&trailers.view()) {
                host.set_request_trailer(&name, None)?;
            }
            Ok(Flow::Continue)
        });
        self.fail_closed(host, removed)
    }
}

impl Filter {
    /// A request the plugin could not inspect does not pass.
    fn fail_closed(&self, host: &dyn Host, result: Result<Flow, HostError>) -> Flow {
        result.unwrap_or_else(|error| {
            host.log(Level::Error, &format!("{PLUGIN}: host call failed ({error}); request refused"));
            self.state.counters.inc(self.state.host_error);
            let denial = Denial::new(503, GrpcStatus::Unavailable, "authentication unavailable");
            let _ = host.send_local_response(&denial.render(ClientKind::Http), "basic_auth_host_error");
            Flow::Pause
        })
    }

    fn check(&self, host: &dyn Host) -> Result<Flow, HostError> {
        let state = &self.state;
        // One host call for every header: cheaper than one per header, and it shows duplicates.
        let shared = host.request_headers()?;
        let headers = shared.view();
        let [authority, path, method, authorization] =
            headers.find([":authority", ":path", ":method", "authorization"]);
        let (authority, path, method) = (authority.text(), path.text(), method.text());
        // Only the gateway says who called: a client's value goes first, on every request, whatever follows.
        for name in state.config.config().client_identities(&headers) {
            host.set_request_header(&name, None)?;
        }
        let request = RequestLine::new(&authority, &path, &method);
        let verdict = match state.config.requirement(&request) {
            Requirement::None(outcome) => {
                state.counters.inc(outcome.counter().index());
                return Ok(Flow::Continue);
            }
            Requirement::Refused(verdict) => verdict,
            // Proxies and servers may each pick a different one of several: refuse the ambiguity.
            Requirement::Credentials if authorization.count > 1 => {
                state.config.refuse(Outcome::DeniedMalformed(Malformed::Duplicate))
            }
            Requirement::Credentials => {
                let (client_address, now_micros) = (|| host.client_address(), || host.now_micros());
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
                    host.set_request_header(name, Some(user))?;
                }
                Ok(Flow::Continue)
            }
            Verdict::Allow(outcome) => {
                state.counters.inc(outcome.counter().index());
                Ok(Flow::Continue)
            }
            Verdict::Deny(outcome, denial) => {
                state.counters.inc(outcome.counter().index());
                // Without the query string, which may carry tokens that do not belong in a log; the authority
                // escaped, since a refused one may hold anything.
                let path = wasmgate_common::path_without_query(&path);
                let user = claimed_user(authorization.first);
                host.log(
                    Level::Info,
                    &format!(
                        "{PLUGIN}: denied {method} {}{path}: {}{user}",
                        authority.escape_debug(),
                        outcome.describe()
                    ),
                );
                let client = ClientKind::of(&headers);
                host.send_local_response(&denial.render(client), "basic_auth_denied")?;
                Ok(Flow::Pause)
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use wasmgate_common::PluginConfig;
    use wasmgate_common::fake::FakeHost;

    const CONFIG: &str = r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["*"],
        "credentials": ["alice:s3cret"]}], "forward_user_header": "x-wasmgate-user"}"#;

    fn filter() -> (Rc<Loaded<Authenticator>>, Filter) {
        let state = Rc::new(Loaded::new::<BasicAuth>(BasicAuth::parse(CONFIG.as_bytes()).unwrap()));
        (state.clone(), BasicAuth::filter(state))
    }

    fn basic(credentials: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
    }

    fn request(extra: &[(&str, &str)]) -> FakeHost {
        let mut headers = vec![(":authority", "ml.example.com"), (":path", "/m?token=t0k"), (":method", "POST")];
        headers.extend_from_slice(extra);
        FakeHost::request(&headers).with_client_address("192.0.2.7")
    }

    #[test]
    fn the_user_signed_in_is_forwarded_and_a_clients_own_claim_is_dropped() {
        let (state, mut filter) = filter();
        let credentials = basic("alice:s3cret");
        let host = request(&[("authorization", &credentials), ("x-wasmgate-user", "admin")]);
        assert_eq!(filter.on_request_headers(&host, true), Flow::Continue);
        assert_eq!(host.request_header("x-wasmgate-user"), ["alice"]);
        assert_eq!(state.counters.get(Counter::Allowed.index()), 1);
        assert!(host.reply().is_none());
    }

    #[test]
    fn a_grpc_client_is_denied_in_grpc_and_the_log_names_the_user_never_the_password() {
        let (_, mut filter) = filter();
        let credentials = basic("alice:guess-1");
        let host = request(&[("content-type", "application/grpc"), ("authorization", &credentials)]);
        assert_eq!(filter.on_request_headers(&host, false), Flow::Pause);
        let (reply, details) = host.reply().unwrap();
        assert_eq!(
            (reply.grpc_status, details.as_str()),
            (Some(GrpcStatus::Unauthenticated as u32), "basic_auth_denied")
        );
        let logs = format!("{:?}", host.logs());
        assert!(logs.contains(r#"user \"alice\""#), "{logs}");
        assert!(!logs.contains("guess-1") && !logs.contains("t0k"), "no password, no query string: {logs}");
    }

    #[test]
    fn two_authorization_headers_are_refused_even_when_one_is_right() {
        let (state, mut filter) = filter();
        let (right, wrong) = (basic("alice:s3cret"), basic("alice:other"));
        let host = request(&[("authorization", &right), ("authorization", &wrong)]);
        assert_eq!(filter.on_request_headers(&host, false), Flow::Pause);
        assert_eq!(host.reply().map(|(reply, _)| reply.status), Some(401));
        assert_eq!(state.counters.get(Counter::Allowed.index()), 0);
        assert!(host.request_header("x-wasmgate-user").is_empty());
    }

    /// Whatever call fails (reading the request, dropping a client's identity header), the request does not
    /// pass: it gets a 503 and the failure is counted.
    #[test]
    fn a_request_the_host_cannot_show_or_change_is_refused() {
        for call in ["request_headers", "set_request_header"] {
            let (state, mut filter) = filter();
            let credentials = basic("alice:s3cret");
            let host = request(&[("authorization", &credentials), ("x-wasmgate-user", "admin")]);
            host.fail(call);
            assert_eq!(filter.on_request_headers(&host, false), Flow::Pause, "{call}");
            assert_eq!(host.reply().map(|(r, d)| (r.status, d)), Some((503, "basic_auth_host_error".into())), "{call}");
            assert_eq!(state.counters.get(state.host_error), 1, "{call}");
            assert_eq!(host.logs()[0].0, Level::Error);
        }
    }

    #[test]
    fn an_identity_header_in_the_trailers_is_removed_too() {
        let (_, mut filter) = filter();
        let host = request(&[]).with_trailers(&[("x-wasmgate-user", "admin"), ("x-checksum", "1")]);
        assert_eq!(filter.on_request_trailers(&host), Flow::Continue);
        assert!(host.request_trailer("x-wasmgate-user").is_empty());
        assert_eq!(host.request_trailer("x-checksum"), ["1"]);
        let host_failing = request(&[]).with_trailers(&[("x-wasmgate-user", "admin")]);
        host_failing.fail("set_request_trailer");
        assert_eq!(filter.on_request_trailers(&host_failing), Flow::Pause, "a claim that cannot be removed stops it");
    }
}
