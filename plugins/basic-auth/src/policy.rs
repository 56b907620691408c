//! The decision for one request, with no host calls: which rules apply, and whether the presented
//! credentials satisfy every one of them (Istio's semantics: all matching rules must pass; a request that
//! matches none passes). Before that, the request must read one way only: a host that is not a host name
//! (where rules name hosts) or a path another server would read as a path with other rules is refused.

use crate::authorization::{BasicCredentials, MAX_HEADER_LEN, Malformed, parse_basic};
use crate::budget::Budget;
use crate::config::{Config, Rule};
use crate::credentials::Check;
use crate::fingerprint::Fingerprint;
use crate::lockout::{Admission, Attempt, Client};
use crate::remembered::Remembered;
use crate::state::State;
use crate::user_id::UserId;
use std::cell::OnceCell;
use wasmgate_common::{ConfigError, Denial, GrpcStatus, RequestLine, Unreadable};

const NOT_FOUND_MESSAGE: &str = "Request denied by Basic Auth check. No Basic Authentication information found.";
const INVALID_MESSAGE: &str = "Request denied by Basic Auth check. Invalid username and/or password.";
const LOCKED_MESSAGE: &str = "Request denied by Basic Auth check. Too many failed attempts; try again later.";
const BUSY_MESSAGE: &str = "Request denied by Basic Auth check. Too many sign-in attempts; try again later.";
const FORBIDDEN_MESSAGE: &str = "Request denied by Basic Auth check. This user may not call this path.";

/// Every outcome, each with its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Valid credentials for every matching rule.
    Allowed,
    /// No rule covers the request.
    NoRule,
    /// Every matching rule lists the path as exempt.
    Exempt,
    DeniedMissing,
    DeniedMalformed(Malformed),
    DeniedInvalid,
    /// The client address is locked out for this user after repeated wrong passwords.
    DeniedLocked,
    /// The host or path can be read more than one way (see [`Unreadable`]).
    DeniedUnreadable(Unreadable),
    /// A bcrypt check was needed and the worker's budget for them is spent.
    DeniedBusy,
    /// Valid credentials of a user that a matching rule's `allow` list leaves out.
    DeniedForbidden,
}

impl Outcome {
    pub fn counter(self) -> Counter {
        match self {
            Self::Allowed => Counter::Allowed,
            Self::NoRule => Counter::NoRule,
            Self::Exempt => Counter::Exempt,
            Self::DeniedMissing => Counter::DeniedMissing,
            Self::DeniedMalformed(_) => Counter::DeniedMalformed,
            Self::DeniedInvalid => Counter::DeniedInvalid,
            Self::DeniedLocked => Counter::DeniedLocked,
            Self::DeniedUnreadable(_) => Counter::DeniedBadRequest,
            Self::DeniedBusy => Counter::DeniedBusy,
            Self::DeniedForbidden => Counter::DeniedForbidden,
        }
    }

    /// For the log: why, never with what credentials.
    pub fn describe(self) -> String {
        match self {
            Self::Allowed => "authenticated".into(),
            Self::NoRule => "no rule applies".into(),
            Self::Exempt => "exempt path".into(),
            Self::DeniedMissing => "no credentials".into(),
            Self::DeniedMalformed(why) => why.to_string(),
            Self::DeniedInvalid => "invalid credentials".into(),
            Self::DeniedLocked => "locked out after repeated failures".into(),
            Self::DeniedUnreadable(why) => why.to_string(),
            Self::DeniedBusy => "bcrypt budget spent".into(),
            Self::DeniedForbidden => "user not allowed on this path".into(),
        }
    }

    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed | Self::NoRule | Self::Exempt)
    }
}

wasmgate_common::counters! {
    /// basic-auth's fixed counters; each user's `user.<name>.allowed` follows them.
    pub enum Counter {
        Allowed = "allowed",
        NoRule = "no_rule",
        Exempt = "exempt",
        DeniedMissing = "denied.missing",
        DeniedMalformed = "denied.malformed",
        DeniedInvalid = "denied.invalid",
        DeniedLocked = "denied.locked",
        DeniedBadRequest = "denied.bad_request",
        DeniedBusy = "denied.busy",
        DeniedForbidden = "denied.forbidden",
        /// bcrypt verifications run (see [`Config::take_bcrypt_checks`]).
        BcryptChecks = "bcrypt_checks",
    }
}

/// Index of `user`'s counter `user.<name>.allowed`: after every fixed counter, in [`Config::users`] order.
pub fn user_counter(user: UserId) -> usize {
    Counter::NAMES.len() + user.0
}

/// What the shell does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid credentials of this user, allowed by every matching rule.
    Authenticated(UserId),
    /// No credentials needed: no rule covers the request, or it is exempt.
    Allow(Outcome),
    Deny(Outcome, Denial),
}

impl Verdict {
    /// What the verdict counts as.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Authenticated(_) => Outcome::Allowed,
            Self::Allow(outcome) | Self::Deny(outcome, _) => *outcome,
        }
    }
}

/// Whether a request needs credentials: the shell reads `authorization` only when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    None(Outcome),
    Credentials,
    /// Refused before any credentials are looked at.
    Refused(Verdict),
}

/// Who is asking, for the lockout and the bcrypt budget: the client's address and the clock (microseconds),
/// each read only when a decision needs it (asking the host costs thousands of instructions).
pub struct Caller<'a> {
    pub address: Address<'a>,
    pub now_us: &'a dyn Fn() -> u64,
}

/// The client's address, or how to learn it; `None` when the host cannot tell.
#[derive(Clone, Copy)]
pub enum Address<'a> {
    Known(Option<&'a str>),
    Ask(&'a dyn Fn() -> Option<String>),
}

impl Caller<'_> {
    /// A caller with no address at time 0, for configs with neither lockout nor bcrypt.
    pub const ANONYMOUS: Caller<'static> = Caller { address: Address::Known(None), now_us: &|| 0 };

    fn now_ms(&self) -> u64 {
        (self.now_us)() / 1000
    }

    /// The address the lockout counts by. Addresses the host cannot tell share one tally: stricter, never looser.
    fn tally_address(&self) -> String {
        let address = match self.address {
            Address::Known(address) => address.map(str::to_owned),
            Address::Ask(ask) => ask(),
        };
        address.unwrap_or_else(|| "unknown".to_owned())
    }
}

/// The caller as the lockout sees it: the address asked of the host at most once per decision.
struct Asked<'c> {
    caller: &'c Caller<'c>,
    address: OnceCell<String>,
}

impl Client for Asked<'_> {
    fn address(&self) -> &str {
        self.address.get_or_init(|| self.caller.tally_address())
    }

    fn now_ms(&self) -> u64 {
        self.caller.now_ms()
    }
}

/// basic-auth's decision for each request: the config, and the state requests change.
#[derive(Debug)]
pub struct Authenticator {
    config: Config,
    state: State,
}

/// The credentials a request presented: its `authorization` header, decoded only if a decision needs it.
struct Presented<'h> {
    header: &'h [u8],
    decoded: OnceCell<Result<BasicCredentials, Malformed>>,
}

impl Presented<'_> {
    fn decoded(&self) -> &Result<BasicCredentials, Malformed> {
        self.decoded.get_or_init(|| parse_basic(self.header))
    }
}

/// Who the credentials name, as far as the checks need to know.
struct Claim<'l> {
    /// `None`: a user no rule has.
    user: Option<UserId>,
    /// The fingerprint of `user:password`.
    pair: Fingerprint,
    /// The lockout's view of this attempt (no lockout: `None`).
    attempt: Option<Attempt<'l>>,
}

impl Authenticator {
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Ok(Self { state: State::new(&config)?, config })
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::new(Config::from_json(bytes)?)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn requirement(&self, req: &RequestLine<'_>) -> Requirement {
        let rules = &self.config.rules;
        let readable =
            req.check_unambiguous(self.config.host_scoped, |a, b| rules.iter().all(|r| r.enforces(a) == r.enforces(b)));
        if let Err(why) = readable {
            return Requirement::Refused(self.refuse(Outcome::DeniedUnreadable(why)));
        }
        if self.config.enforcing_rules(req).next().is_some() {
            Requirement::Credentials
        } else if rules.iter().any(|r| r.applies_to(req)) {
            Requirement::None(Outcome::Exempt)
        } else {
            Requirement::None(Outcome::NoRule)
        }
    }

    /// The whole decision, given the raw `authorization` header if the request had one.
    pub fn decide(&self, req: &RequestLine<'_>, authorization: Option<&[u8]>, caller: &Caller<'_>) -> Verdict {
        match self.requirement(req) {
            Requirement::None(outcome) => Verdict::Allow(outcome),
            Requirement::Refused(verdict) => verdict,
            Requirement::Credentials => self.check_credentials(req, authorization, caller),
        }
    }

    /// The decision for a request whose [`requirement`](Self::requirement) is [`Requirement::Credentials`], for
    /// a caller that already asked (the filter does, to refuse duplicate headers first): who the credentials
    /// claim to be, whether the lockout lets them try, whether every rule takes the password, and whether every
    /// rule allows the user.
    pub fn check_credentials(
        &self,
        req: &RequestLine<'_>,
        authorization: Option<&[u8]>,
        caller: &Caller<'_>,
    ) -> Verdict {
        let Some(header) = authorization else {
            return self.refuse(Outcome::DeniedMissing);
        };
        let presented = Presented { header, decoded: OnceCell::new() };
        let claim = match self.claim(&presented) {
            Ok(claim) => claim,
            Err(outcome) => return self.refuse(outcome),
        };
        // Locks are checked before any password is: a locked client costs no bcrypt work and learns nothing. The
        // lockout asks for the address and the time only when its answer depends on them.
        let client = Asked { caller, address: OnceCell::new() };
        if let Some(attempt) = &claim.attempt {
            match attempt.admit(&client) {
                Admission::Open => {}
                Admission::Locked => return self.refuse(Outcome::DeniedLocked),
                Admission::Full => return self.refuse(Outcome::DeniedBusy),
            }
        }
        match self.check_password(req, &presented, &claim.pair, caller) {
            Check::Valid => {
                if let Some(attempt) = &claim.attempt {
                    attempt.succeeded(&client);
                }
                self.admit_user(req, claim.user)
            }
            Check::Invalid => {
                if let Some(attempt) = &claim.attempt {
                    attempt.failed(&client);
                }
                self.refuse(Outcome::DeniedInvalid)
            }
            Check::Busy => self.refuse(Outcome::DeniedBusy),
        }
    }

    /// Who a header names. One seen before names its user and pair without being decoded again; any other is
    /// decoded here and remembered. (Too long a header is refused before it is hashed.)
    fn claim<'s>(&'s self, presented: &'s Presented<'_>) -> Result<Claim<'s>, Outcome> {
        let (header, remembered) = (presented.header, &self.state.remembered);
        let key = (header.len() <= MAX_HEADER_LEN).then(|| remembered.key(header));
        let lockout = self.state.lockout.as_ref();
        if let Some(known) = key.and_then(|key| remembered.get(&key)) {
            let attempt = lockout.map(|lockout| lockout.attempt_of(known.lockout_user));
            return Ok(Claim { user: known.user, pair: known.pair, attempt });
        }
        let credentials = match presented.decoded() {
            Ok(credentials) => credentials,
            Err(Malformed::NotBasic) if header.is_empty() => return Err(Outcome::DeniedMissing),
            Err(why) => return Err(Outcome::DeniedMalformed(*why)),
        };
        let (user, pair) =
            (self.config.user_id(credentials.user()), credentials.fingerprint(&self.config.fingerprinter));
        if let Some(key) = key {
            let lockout_user = lockout.map_or([0; 16], |lockout| lockout.user_fingerprint(credentials.user()));
            remembered.remember(key, Remembered { user, pair, lockout_user });
        }
        Ok(Claim { user, pair, attempt: lockout.map(|lockout| lockout.attempt(credentials.user())) })
    }

    /// Whether every rule that covers the request takes the password. A remembered header is decoded only if a
    /// set must check its password against a hash (its caches were emptied, or another rule's set has not seen
    /// the pair); a bcrypt check runs when the budget has the time, and is charged what it took.
    fn check_password(
        &self,
        req: &RequestLine<'_>,
        presented: &Presented<'_>,
        pair: &Fingerprint,
        caller: &Caller<'_>,
    ) -> Check {
        let slow = |check: &dyn Fn() -> bool| {
            let Some(budget) = &self.state.budget else {
                return Some(check());
            };
            let started = (caller.now_us)();
            if !budget.admit(started) {
                return None;
            }
            let matched = check();
            budget.charge((caller.now_us)().saturating_sub(started));
            Some(matched)
        };
        for (rule, recalled) in self.config.rules.iter().zip(&self.state.recalled).filter(|(r, _)| r.enforces(req)) {
            let check = match rule.credentials.recall(recalled, pair) {
                Some(known) => known,
                None => match presented.decoded() {
                    Ok(credentials) => rule.credentials.verify(recalled, credentials, pair, slow),
                    Err(_) => Check::Invalid,
                },
            };
            if check != Check::Valid {
                return check;
            }
        }
        Check::Valid
    }

    /// The verdict for a user whose password every rule took: refused by a rule whose `allow` list leaves them
    /// out. Only now, with the password checked: a 403 before it would tell a guesser the name exists.
    fn admit_user(&self, req: &RequestLine<'_>, user: Option<UserId>) -> Verdict {
        let name = user.map_or("", |user| self.config.user_name(user));
        let allowed =
            |rule: &Rule| rule.allow.as_ref().is_none_or(|a| a.binary_search_by(|u| u.as_str().cmp(name)).is_ok());
        if !self.config.enforcing_rules(req).all(allowed) {
            return self.refuse(Outcome::DeniedForbidden);
        }
        // Valid credentials are always some configured user's.
        user.map_or(Verdict::Allow(Outcome::Allowed), Verdict::Authenticated)
    }

    /// The header and user name to set for the upstream: only on an authenticated request, and only when the
    /// config forwards the user.
    pub fn forwarded_user(&self, verdict: &Verdict) -> Option<(&str, &str)> {
        match verdict {
            Verdict::Authenticated(user) => Some((self.config.forward_user_header()?, self.config.user_name(*user))),
            _ => None,
        }
    }

    /// bcrypt verifications run since the last call, for the shell's counter.
    pub fn take_bcrypt_checks(&self) -> u64 {
        self.state.take_bcrypt_checks()
    }

    /// The denial for `outcome`; the shell also uses it for refusals it decides (several headers).
    pub fn refuse(&self, outcome: Outcome) -> Verdict {
        let challenge = || self.config.challenge.clone();
        let denial = match outcome {
            Outcome::DeniedLocked => Denial::new(429, GrpcStatus::ResourceExhausted, LOCKED_MESSAGE),
            // The budget earns one check per `refill`: a client that waits that long gets a turn.
            Outcome::DeniedBusy => {
                let after = self.state.budget.as_ref().map_or(1, Budget::retry_after_secs);
                Denial::new(429, GrpcStatus::ResourceExhausted, BUSY_MESSAGE)
                    .with_header("retry-after", after.to_string())
            }
            Outcome::DeniedUnreadable(why) => why.denial(),
            // No challenge: asking for other credentials would not help a user the rule leaves out.
            Outcome::DeniedForbidden => Denial::new(403, GrpcStatus::PermissionDenied, FORBIDDEN_MESSAGE),
            Outcome::DeniedMissing => Denial::new(401, GrpcStatus::Unauthenticated, NOT_FOUND_MESSAGE)
                .with_header("www-authenticate", challenge()),
            _ => Denial::new(401, GrpcStatus::Unauthenticated, INVALID_MESSAGE)
                .with_header("www-authenticate", challenge()),
        };
        Verdict::Deny(outcome, denial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use wasmgate_common::HeaderMapView;

    const REFERENCE: &str = r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET","PUT","POST","PATCH","DELETE"],"credentials":["username:password"],"hosts":["ml.example.com"]}]}"#;

    fn basic(pair: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(pair)).into_bytes()
    }

    fn outcome(config: &Authenticator, host: &str, path: &str, method: &str, auth: Option<&[u8]>) -> Outcome {
        config.decide(&RequestLine::new(host, path, method), auth, &Caller::ANONYMOUS).outcome()
    }

    /// A caller at `address` whose clock reads `now` (microseconds).
    fn at<'a>(address: &'a str, now: &'a dyn Fn() -> u64) -> Caller<'a> {
        Caller { address: Address::Known(Some(address)), now_us: now }
    }

    #[test]
    fn reference_config() {
        let c = Authenticator::from_json(REFERENCE.as_bytes()).unwrap();
        let good = basic("username:password");
        assert_eq!(outcome(&c, "ml.example.com", "/v1/models", "POST", Some(&good)), Outcome::Allowed);
        assert_eq!(outcome(&c, "ml.example.com:8080", "/", "GET", Some(&good)), Outcome::Allowed);
        assert_eq!(outcome(&c, "ml.example.com", "/", "GET", None), Outcome::DeniedMissing);
        assert_eq!(outcome(&c, "ml.example.com:443", "/", "GET", None), Outcome::DeniedMissing);
        assert_eq!(outcome(&c, "ml.example.com", "/", "GET", Some(&basic("username:wrong"))), Outcome::DeniedInvalid);
        assert_eq!(outcome(&c, "ml.example.com", "/", "OPTIONS", None), Outcome::NoRule);
        assert_eq!(outcome(&c, "other.example.com", "/", "GET", None), Outcome::NoRule);
        assert_eq!(
            outcome(&c, "ml.example.com", "/", "GET", Some(b"Basic %%%")),
            Outcome::DeniedMalformed(Malformed::BadBase64)
        );
    }

    #[test]
    fn denial_carries_the_challenge() {
        let c = Authenticator::from_json(br#"{"realm":"models","basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["a:b"]}]}"#).unwrap();
        let Verdict::Deny(_, denial) = c.decide(&RequestLine::new("h", "/", "GET"), None, &Caller::ANONYMOUS) else {
            panic!("allowed")
        };
        assert_eq!(denial.http_status, 401);
        assert_eq!(denial.grpc_status, GrpcStatus::Unauthenticated);
        assert_eq!(denial.headers, vec![("www-authenticate".into(), "Basic realm=\"models\"".into())]);
    }

    #[test]
    fn every_matching_rule_must_pass() {
        let c = Authenticator::from_json(
            br#"{"basic_auth_rules":[
                {"prefix":"/","request_methods":["GET"],"credentials":["a:1","b:2"]},
                {"prefix":"/admin","request_methods":["GET"],"credentials":["b:2"]}]}"#,
        )
        .unwrap();
        assert_eq!(outcome(&c, "h", "/x", "GET", Some(&basic("a:1"))), Outcome::Allowed);
        assert_eq!(outcome(&c, "h", "/admin/x", "GET", Some(&basic("a:1"))), Outcome::DeniedInvalid);
        assert_eq!(outcome(&c, "h", "/admin/x", "GET", Some(&basic("b:2"))), Outcome::Allowed);
    }

    #[test]
    fn exact_and_suffix_ignore_the_query() {
        let c = Authenticator::from_json(
            br#"{"basic_auth_rules":[{"exact":"/admin","request_methods":["GET"],"credentials":["a:1"]},
                                     {"suffix":".json","request_methods":["GET"],"credentials":["a:1"]}]}"#,
        )
        .unwrap();
        assert_eq!(outcome(&c, "h", "/admin?debug=1", "GET", None), Outcome::DeniedMissing);
        assert_eq!(outcome(&c, "h", "/data.json?x=.txt", "GET", None), Outcome::DeniedMissing);
        assert_eq!(outcome(&c, "h", "/admin/", "GET", None), Outcome::NoRule);
    }

    #[test]
    fn exempt_paths_skip_only_their_rule() {
        let c = Authenticator::from_json(
            br#"{"basic_auth_rules":[{"prefix":"/","request_methods":["POST"],"credentials":["a:1"],
                "exempt_paths":[{"prefix":"/grpc.health.v1.Health/"}]}]}"#,
        )
        .unwrap();
        assert_eq!(outcome(&c, "h", "/grpc.health.v1.Health/Check", "POST", None), Outcome::Exempt);
        assert_eq!(
            outcome(&c, "h", "/inference.GRPCInferenceService/ModelInfer", "POST", None),
            Outcome::DeniedMissing
        );
    }

    #[test]
    fn empty_header_counts_as_missing() {
        let c = Authenticator::from_json(REFERENCE.as_bytes()).unwrap();
        assert_eq!(outcome(&c, "ml.example.com", "/", "GET", Some(b"")), Outcome::DeniedMissing);
    }

    proptest! {
        /// Whatever the header holds, the reference config lets a request on its host through only with the
        /// one right password.
        #[test]
        fn only_the_right_credentials_pass(header in proptest::collection::vec(any::<u8>(), 0..120)) {
            let c = Authenticator::from_json(REFERENCE.as_bytes()).unwrap();
            let allowed = outcome(&c, "ml.example.com", "/", "GET", Some(&header)).is_allowed();
            let right = crate::authorization::parse_basic(&header).map(|c| c.pair() == "username:password").unwrap_or(false);
            prop_assert_eq!(allowed, right);
        }

        #[test]
        fn random_pairs_are_refused(user in "[a-z]{1,12}", password in "[ -~]{0,16}") {
            prop_assume!(user != "username" || password != "password");
            let c = Authenticator::from_json(REFERENCE.as_bytes()).unwrap();
            let header = basic(&format!("{user}:{password}"));
            prop_assert_eq!(outcome(&c, "ml.example.com", "/", "GET", Some(&header)), Outcome::DeniedInvalid);
        }
    }

    /// One user, locked out at an address after two wrong passwords for 10 s.
    const LOCKOUT_AFTER_TWO: &str = r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["username:password"]}],
        "lockout":{"max_failures":2,"window":"1m","duration":"10s"}}"#;

    #[test]
    fn lockout_refuses_the_right_password_from_a_locked_address_only() {
        let config = Authenticator::from_json(LOCKOUT_AFTER_TWO.as_bytes()).unwrap();
        let req = RequestLine::new("ml.example.com", "/", "GET");
        let (right, wrong) = (basic("username:password"), basic("username:guess"));
        let decide =
            |auth: &[u8], address: &str, ms: u64| config.decide(&req, Some(auth), &at(address, &move || ms * 1000));
        assert_eq!(decide(&wrong, "10.0.0.1", 0), config.refuse(Outcome::DeniedInvalid));
        assert_eq!(decide(&wrong, "10.0.0.1", 1), config.refuse(Outcome::DeniedInvalid));
        let locked = decide(&right, "10.0.0.1", 2);
        let Verdict::Deny(Outcome::DeniedLocked, denial) = locked else { panic!("{locked:?}") };
        assert_eq!((denial.http_status, denial.grpc_status), (429, GrpcStatus::ResourceExhausted));
        assert_eq!(decide(&right, "10.0.0.2", 2), Verdict::Authenticated(UserId(0)));
        assert_eq!(decide(&right, "10.0.0.1", 10_002), Verdict::Authenticated(UserId(0)));
    }

    #[test]
    fn lockout_config_is_validated() {
        let bad = |lockout: &str| {
            let json = format!(r#"{{"allow_all":true,"lockout":{lockout}}}"#);
            Authenticator::from_json(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(bad(r#"{"max_failures":0,"window":"1m","duration":"5m"}"#).contains("lockout.max_failures"));
        assert!(bad(r#"{"max_failures":3,"window":"0s","duration":"5m"}"#).contains("lockout.window"));
        assert!(bad(r#"{"max_failures":3,"window":"1m","duration":"5 weeks"}"#).contains("unknown unit"));
        assert!(bad(r#"{"max_failures":3,"window":"1m"}"#).contains("missing field `duration`"));
    }

    const ANY_METHOD: &str = r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["*"],"credentials":["username:password"],
        "hosts":["ml.example.com","*.ml.example.com"],"exempt_paths":[{"prefix":"/grpc.health.v1.Health/"}]}]}"#;

    /// The outside attack's first finding: with a method list, OPTIONS, TRACE or, over HTTP/2, `post` skipped
    /// the rule, and a gRPC server answered anyway. `*` leaves no method out.
    #[test]
    fn a_star_rule_needs_credentials_whatever_the_method() {
        let c = Authenticator::from_json(ANY_METHOD.as_bytes()).unwrap();
        let infer = "/inference.GRPCInferenceService/ModelInfer";
        for method in ["POST", "post", "OPTIONS", "TRACE", "PROPFIND", "FOO", "GET"] {
            assert_eq!(outcome(&c, "ml.example.com", infer, method, None), Outcome::DeniedMissing, "{method}");
        }
        let reference = Authenticator::from_json(REFERENCE.as_bytes()).unwrap();
        assert_eq!(
            outcome(&reference, "ml.example.com", infer, "OPTIONS", None),
            Outcome::NoRule,
            "what a list leaves open"
        );
    }

    #[test]
    fn hosts_that_are_not_host_names_are_refused_where_rules_name_hosts() {
        let c = Authenticator::from_json(ANY_METHOD.as_bytes()).unwrap();
        for host in ["a:b.ml.example.com:443", "[x]a.ml.example.com", "ml.example.com:1:2", "ml.example.com,x", ""] {
            let o = outcome(&c, host, "/", "POST", None);
            assert!(matches!(o, Outcome::DeniedUnreadable(Unreadable::Host(_))), "{host:?}: {o:?}");
        }
        assert_eq!(outcome(&c, "a.ML.example.com:443", "/", "POST", None), Outcome::DeniedMissing);
        // Rules without hosts never look at the host.
        let anywhere = Authenticator::from_json(
            br#"{"basic_auth_rules":[{"prefix":"/","request_methods":["*"],"credentials":["a:b"]}]}"#,
        )
        .unwrap();
        assert_eq!(outcome(&anywhere, "a:b:c", "/", "POST", None), Outcome::DeniedMissing);
    }

    #[test]
    fn paths_another_server_reads_differently_are_refused() {
        let c = Authenticator::from_json(ANY_METHOD.as_bytes()).unwrap();
        for path in [
            "/grpc.health.v1.Health/..%2Finference.GRPCInferenceService/ModelInfer",
            "/grpc.health.v1.Health//../inference.GRPCInferenceService/ModelInfer",
        ] {
            let o = outcome(&c, "ml.example.com", path, "POST", None);
            assert_eq!(o, Outcome::DeniedUnreadable(Unreadable::AmbiguousPath), "{path}");
        }
        // Spellings that need credentials either way are simply asked for them.
        assert_eq!(
            outcome(&c, "ml.example.com", "//inference.GRPCInferenceService/ModelInfer", "POST", None),
            Outcome::DeniedMissing
        );
        let admin = Authenticator::from_json(
            br#"{"basic_auth_rules":[{"prefix":"/admin","request_methods":["*"],"credentials":["a:b"]}]}"#,
        )
        .unwrap();
        for path in ["//admin/users", "/%2Fadmin", "/%61dmin", "/admin%2Fusers", "/x/..%2Fadmin"] {
            let o = outcome(&admin, "h", path, "GET", None);
            assert!(matches!(o, Outcome::DeniedUnreadable(_) | Outcome::DeniedMissing), "{path}: {o:?}");
        }
    }

    fn bcrypt_config(budget: &str, lockout: &str) -> Authenticator {
        let hash = bcrypt::hash_with_salt("password", 4, [3u8; 16]).unwrap().format_for_version(bcrypt::Version::TwoY);
        let json = format!(
            r#"{{"basic_auth_rules":[{{"prefix":"/","request_methods":["*"],"credentials":["username:{hash}"]}}]{budget}{lockout}}}"#
        );
        Authenticator::from_json(json.as_bytes()).unwrap()
    }

    /// A flood of made-up passwords gets at most the budget's bcrypt time; after that, 429 at once, and a client
    /// whose right password was verified before still gets in.
    #[test]
    fn bcrypt_work_is_bounded_by_the_budget() {
        let c = bcrypt_config(r#","bcrypt_budget":{"per_second":"10ms","burst":"30ms"}"#, "");
        let req = RequestLine::new("h", "/", "POST");
        // Each clock reading moves 10 ms on: every bcrypt check is measured as taking 10 ms.
        let clock = std::cell::Cell::new(1_000_000u64);
        let tick = || {
            clock.set(clock.get() + 10_000);
            clock.get()
        };
        let caller = at("10.0.0.1", &tick);
        assert_eq!(c.decide(&req, Some(&basic("username:password")), &caller), Verdict::Authenticated(UserId(0)));
        let mut outcomes = Vec::new();
        for i in 0..50 {
            let user = if i % 2 == 0 { "username".to_string() } else { format!("made-up-{i}") };
            outcomes.push(c.decide(&req, Some(&basic(&format!("{user}:guess-{i}"))), &caller).outcome());
        }
        // 30 ms of burst, 10 ms per check, and the clock's own steps earn a little: a handful of checks.
        let checked = outcomes.iter().filter(|o| **o == Outcome::DeniedInvalid).count();
        assert!((2..=4).contains(&checked), "{outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::DeniedBusy).count(), 50 - checked);
        assert_eq!(c.take_bcrypt_checks(), checked as u64 + 1);
        assert_eq!(c.decide(&req, Some(&basic("username:password")), &caller), Verdict::Authenticated(UserId(0)));
        let Verdict::Deny(_, busy) = c.refuse(Outcome::DeniedBusy) else { unreachable!() };
        assert_eq!(busy.headers[0].0, "retry-after");
        // Ten seconds later there is time for another check.
        clock.set(clock.get() + 10_000_000);
        let o = c.decide(&req, Some(&basic("username:another")), &caller);
        assert_eq!(o, c.refuse(Outcome::DeniedInvalid));
    }

    /// Asking the host for the address or the time costs thousands of instructions: a right password asks for
    /// neither unless a lock is active or its own user has failures to clear.
    #[test]
    fn the_address_and_clock_are_asked_for_only_when_the_tally_needs_them() {
        let c = Authenticator::from_json(
            br#"{"basic_auth_rules":[{"prefix":"/","request_methods":["*"],"credentials":["username:password"]}],
                 "lockout":{"max_failures":3,"window":"1m","duration":"5m"}}"#,
        )
        .unwrap();
        let req = RequestLine::new("h", "/", "GET");
        let (asked, read) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        let ask = || {
            asked.set(asked.get() + 1);
            Some("10.0.0.7".to_string())
        };
        let clock = || {
            read.set(read.get() + 1);
            1_000_000
        };
        let caller = Caller { address: Address::Ask(&ask), now_us: &clock };
        for _ in 0..3 {
            assert_eq!(c.decide(&req, Some(&basic("username:password")), &caller).outcome(), Outcome::Allowed);
        }
        assert_eq!((asked.get(), read.get()), (0, 0));
        assert_eq!(c.decide(&req, Some(&basic("username:wrong")), &caller).outcome(), Outcome::DeniedInvalid);
        assert_eq!((asked.get(), read.get()), (1, 1), "one question each per decision");
        assert_eq!(c.decide(&req, Some(&basic("username:password")), &caller).outcome(), Outcome::Allowed);
        assert_eq!((asked.get(), read.get()), (2, 1), "the user's failure is cleared: its address is asked for");
        for _ in 0..3 {
            assert_eq!(c.decide(&req, Some(&basic("username:password")), &caller).outcome(), Outcome::Allowed);
        }
        assert_eq!((asked.get(), read.get()), (2, 1), "only the address-wide count is left: nothing asked");
        // Another user's wrong password: the user's own entry and the address's count grow, nothing locks.
        assert_eq!(c.decide(&req, Some(&basic("other:wrong")), &caller).outcome(), Outcome::DeniedInvalid);
        assert_eq!(c.decide(&req, Some(&basic("username:password")), &caller).outcome(), Outcome::Allowed);
        assert_eq!((asked.get(), read.get()), (3, 2), "another user's failures are none of this request's");
        // Three wrong passwords lock `username` at this address: now every request asks, to find its lock.
        for _ in 0..3 {
            let _ = c.decide(&req, Some(&basic("username:wrong")), &caller);
        }
        let before = (asked.get(), read.get());
        assert_eq!(c.decide(&req, Some(&basic("username:password")), &caller).outcome(), Outcome::DeniedLocked);
        assert_eq!((asked.get(), read.get()), (before.0 + 1, before.1 + 1));
    }

    #[test]
    fn a_locked_client_costs_no_bcrypt_work() {
        let c = bcrypt_config(
            "",
            r#","lockout":{"max_failures":2,"max_address_failures":3,"window":"1m","duration":"5m"}"#,
        );
        let req = RequestLine::new("h", "/", "POST");
        let clock = || 5_000_000;
        let caller = at("10.0.0.9", &clock);
        for i in 0..20 {
            let _ = c.decide(&req, Some(&basic(&format!("user-{i}:guess"))), &caller);
        }
        assert_eq!(c.take_bcrypt_checks(), 3, "the address locked after three failures");
        assert_eq!(c.decide(&req, Some(&basic("username:password")), &caller), c.refuse(Outcome::DeniedLocked));
        let other = at("10.0.0.10", &clock);
        assert_eq!(c.decide(&req, Some(&basic("username:password")), &other), Verdict::Authenticated(UserId(0)));
    }

    const TEAMS: &str = r#"{"forward_user_header":"x-wasmgate-user","basic_auth_rules":[
        {"prefix":"/","request_methods":["*"],"credentials":["alice:a-pw","bob:b-pw","carol:c-pw"]},
        {"prefix":"/admin/","request_methods":["*"],"credentials":["alice:a-pw","bob:b-pw"],"allow":["alice"]}]}"#;

    fn teams_decide(path: &str, pair: &str) -> Verdict {
        let c = Authenticator::from_json(TEAMS.as_bytes()).unwrap();
        c.decide(&RequestLine::new("h", path, "POST"), Some(&basic(pair)), &Caller::ANONYMOUS)
    }

    #[test]
    fn allow_lists_refuse_other_users_with_403_only_once_the_password_is_right() {
        let c = Authenticator::from_json(TEAMS.as_bytes()).unwrap();
        assert_eq!(c.config().users(), ["alice", "bob", "carol"]);
        let alice = teams_decide("/admin/x", "alice:a-pw");
        assert_eq!(c.forwarded_user(&alice), Some(("x-wasmgate-user", "alice")));
        let Verdict::Deny(Outcome::DeniedForbidden, denial) = teams_decide("/admin/x", "bob:b-pw") else {
            panic!("bob on /admin/ must be forbidden");
        };
        assert_eq!((denial.http_status, denial.grpc_status), (403, GrpcStatus::PermissionDenied));
        assert!(denial.headers.is_empty(), "no challenge for a user who may not pass: {:?}", denial.headers);
        assert!(!denial.message.contains("b-pw"));
        // A wrong password is the 401 of anyone else: the allow list tells a guesser nothing.
        assert_eq!(teams_decide("/admin/x", "bob:guess").outcome(), Outcome::DeniedInvalid);
        assert_eq!(teams_decide("/admin/x", "carol:c-pw").outcome(), Outcome::DeniedInvalid);
        // Elsewhere bob is who he is.
        let bob = teams_decide("/models", "bob:b-pw");
        assert_eq!(c.forwarded_user(&bob), Some(("x-wasmgate-user", "bob")));
        assert_eq!(bob, Verdict::Authenticated(UserId(1)));
        assert_eq!(user_counter(UserId(1)), Counter::NAMES.len() + 1);
    }

    /// A header decided before is answered from what was remembered of it: the same answers as deciding it afresh,
    /// whatever came before, on every rule's own credentials and allow list.
    #[test]
    fn a_remembered_header_is_decided_as_a_fresh_one() {
        let c = Authenticator::from_json(TEAMS.as_bytes()).unwrap();
        let decide = |path: &str, header: &[u8]| {
            c.decide(&RequestLine::new("h", path, "POST"), Some(header), &Caller::ANONYMOUS)
        };
        assert_eq!(decide("/models", &basic("carol:c-pw")), Verdict::Authenticated(UserId(2)));
        assert_eq!(decide("/models", &basic("carol:c-pw")), Verdict::Authenticated(UserId(2)), "remembered");
        // Remembered from the first rule, and still none of the second's users.
        assert_eq!(decide("/admin/x", &basic("carol:c-pw")).outcome(), Outcome::DeniedInvalid);
        assert_eq!(decide("/admin/x", &basic("bob:b-pw")).outcome(), Outcome::DeniedForbidden);
        assert_eq!(decide("/admin/x", &basic("bob:b-pw")).outcome(), Outcome::DeniedForbidden, "remembered");
        assert_eq!(decide("/models", &basic("bob:guess")).outcome(), Outcome::DeniedInvalid);
        assert_eq!(decide("/models", &basic("bob:guess")).outcome(), Outcome::DeniedInvalid, "remembered");
    }

    /// A remembered header whose pair the credential set no longer holds in its caches is decoded again and its
    /// password checked against the hash.
    #[test]
    fn a_remembered_header_is_checked_again_when_the_set_forgot_its_pair() {
        let c = bcrypt_config("", "");
        let req = RequestLine::new("h", "/", "POST");
        let (right, wrong) = (basic("username:password"), basic("username:guess"));
        assert_eq!(c.decide(&req, Some(&right), &Caller::ANONYMOUS), Verdict::Authenticated(UserId(0)));
        assert_eq!(c.decide(&req, Some(&wrong), &Caller::ANONYMOUS).outcome(), Outcome::DeniedInvalid);
        assert_eq!(c.take_bcrypt_checks(), 2);
        c.state.recalled[0].forget();
        assert_eq!(c.decide(&req, Some(&right), &Caller::ANONYMOUS), Verdict::Authenticated(UserId(0)));
        assert_eq!(c.decide(&req, Some(&wrong), &Caller::ANONYMOUS).outcome(), Outcome::DeniedInvalid);
        assert_eq!(c.take_bcrypt_checks(), 2, "both checked against the hash again");
        assert_eq!(c.decide(&req, Some(&right), &Caller::ANONYMOUS), Verdict::Authenticated(UserId(0)));
        assert_eq!(c.take_bcrypt_checks(), 0, "and then answered from the caches");
    }

    /// Every well-formed header is remembered, whoever it names (so the answer's time does not tell which names
    /// exist), and a remembered one is tallied by the lockout as a fresh one.
    #[test]
    fn a_remembered_header_of_any_user_is_tallied_as_a_fresh_one() {
        let c = Authenticator::from_json(LOCKOUT_AFTER_TWO.as_bytes()).unwrap();
        let req = RequestLine::new("h", "/", "GET");
        let clock = || 1_000_000;
        for (header, address) in [(basic("ghost:guess"), "10.0.0.1"), (basic("username:guess"), "10.0.0.2")] {
            let decide = || c.decide(&req, Some(&header), &at(address, &clock)).outcome();
            assert_eq!(
                (decide(), decide(), decide()),
                (Outcome::DeniedInvalid, Outcome::DeniedInvalid, Outcome::DeniedLocked)
            );
            assert!(c.state.remembered.get(&c.state.remembered.key(&header)).is_some());
        }
        let ghost = c.state.remembered.get(&c.state.remembered.key(&basic("ghost:guess"))).unwrap();
        assert_eq!(ghost.user, None);
        let right = basic("username:password");
        assert_eq!(c.decide(&req, Some(&right), &at("10.0.0.2", &clock)).outcome(), Outcome::DeniedLocked);
        assert_eq!(c.decide(&req, Some(&right), &at("10.0.0.1", &clock)).outcome(), Outcome::Allowed);
        assert_eq!(c.decide(&req, Some(&right), &at("10.0.0.1", &clock)).outcome(), Outcome::Allowed, "remembered");
    }

    proptest! {
        /// Any sequence of headers on any path gets, at each step, what a config that never saw a header before
        /// answers.
        #[test]
        fn what_was_remembered_never_changes_an_answer(steps in proptest::collection::vec((0usize..9, any::<bool>()), 1..40)) {
            let headers: Vec<Vec<u8>> = vec![
                basic("alice:a-pw"), basic("bob:b-pw"), basic("carol:c-pw"), basic("bob:guess"), basic("mallory:x"),
                basic("alice:a-pw").to_ascii_lowercase(), b"Basic %%%".to_vec(), b"".to_vec(),
                format!("bAsIc   {}", STANDARD.encode("alice:a-pw")).into_bytes(),
            ];
            let c = Authenticator::from_json(TEAMS.as_bytes()).unwrap();
            for (i, admin) in steps {
                let path = if admin { "/admin/x" } else { "/models" };
                let req = RequestLine::new("h", path, "POST");
                let fresh = Authenticator::from_json(TEAMS.as_bytes()).unwrap();
                prop_assert_eq!(
                    c.decide(&req, Some(&headers[i]), &Caller::ANONYMOUS),
                    fresh.decide(&req, Some(&headers[i]), &Caller::ANONYMOUS)
                );
            }
        }
    }

    #[test]
    fn identity_config_errors_name_the_field() {
        let rule = |extra: &str| {
            format!(
                r#"{{"basic_auth_rules":[{{"prefix":"/","request_methods":["*"],"credentials":["a:1","b.c:2","b_c2:3"]{extra}}}]}}"#
            )
        };
        for (json, want) in [
            (rule(r#","allow":["z"]"#), "basic_auth_rules[0].allow[0]`: `z` is none of this rule's users"),
            (rule(r#","allow":[]"#), "basic_auth_rules[0].allow`: empty"),
            (rule("").replacen('{', r#"{"forward_user_header":"Authorization","#, 1), "forward_user_header"),
            (rule("").replacen('{', r#"{"forward_user_header":"authorization","#, 1), "credentials themselves"),
            (rule("").replacen('{', r#"{"forward_user_header":":authority","#, 1), "pseudo-header"),
            (rule("").replace("b_c2:3", "b_c:3"), "would share the counter `user.b_c.allowed`"),
        ] {
            let err = Authenticator::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
        assert_eq!(
            Authenticator::from_json(rule(r#","allow":["b.c","a","a"]"#).as_bytes()).unwrap().config().users(),
            ["a", "b.c", "b_c2"]
        );
    }

    fn headers_with(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        wasmgate_common::header_map::serialize(pairs)
    }

    proptest! {
        /// Whatever the request and whatever its fate, a client's copy of the identity header is found for
        /// removal, in any case, with `_` for `-`, and in any number; only an authenticated request gets the header set, to its user.
        #[test]
        fn the_identity_header_is_never_the_clients(
            path in "/(admin/)?[a-z]{0,6}",
            user in "(alice|bob|carol|mallory)",
            password in "(a-pw|b-pw|c-pw|guess)",
            spoof in "[xX][-_][wW]asmgate[-_][uU]ser",
            copies in 0usize..3,
            value in "[ -~]{0,12}",
        ) {
            let c = Authenticator::from_json(TEAMS.as_bytes()).unwrap();
            let mut pairs: Vec<(&str, &[u8])> = vec![(":path", path.as_bytes())];
            pairs.extend(std::iter::repeat_n((spoof.as_str(), value.as_bytes()), copies));
            let buf = headers_with(&pairs);
            let view = HeaderMapView::parse(&buf).unwrap();
            let expected: Vec<String> = if copies > 0 { vec![spoof.to_ascii_lowercase()] } else { vec![] };
            prop_assert_eq!(c.config().client_identities(&view), expected);
            let verdict = c.decide(&RequestLine::new("h", &path, "GET"), Some(&basic(&format!("{user}:{password}"))), &Caller::ANONYMOUS);
            match c.forwarded_user(&verdict) {
                Some((_, forwarded)) => {
                    prop_assert_eq!(forwarded, user.as_str());
                    prop_assert_eq!(&password[..1], &user[..1]);
                }
                None => prop_assert!(!matches!(verdict, Verdict::Authenticated(_))),
            }
        }
    }
}
