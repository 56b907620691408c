//! The decision for one request, with no host calls: which rules apply, and whether the presented
//! credentials satisfy every one of them (Istio's semantics: all matching rules must pass; a request that
//! matches none passes).

use crate::authorization::{Malformed, parse_basic};
use crate::config::{Config, Rule};
use crate::credentials::digest;
use wasmgate_common::{Denial, GrpcStatus, RequestLine};

const NOT_FOUND_MESSAGE: &str = "Request denied by Basic Auth check. No Basic Authentication information found.";
const INVALID_MESSAGE: &str = "Request denied by Basic Auth check. Invalid username and/or password.";
const LOCKED_MESSAGE: &str = "Request denied by Basic Auth check. Too many failed attempts; try again later.";

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
}

impl Outcome {
    /// Counter names, in the order of [`Outcome::counter`].
    pub const COUNTERS: [&'static str; 7] =
        ["allowed", "no_rule", "exempt", "denied.missing", "denied.malformed", "denied.invalid", "denied.locked"];

    pub fn counter(self) -> usize {
        match self {
            Self::Allowed => 0,
            Self::NoRule => 1,
            Self::Exempt => 2,
            Self::DeniedMissing => 3,
            Self::DeniedMalformed(_) => 4,
            Self::DeniedInvalid => 5,
            Self::DeniedLocked => 6,
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
        }
    }

    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed | Self::NoRule | Self::Exempt)
    }
}

/// What the shell does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow(Outcome),
    Deny(Outcome, Denial),
}

/// Whether a request needs credentials: the shell reads `authorization` only when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    None(Outcome),
    Credentials,
}

impl Rule {
    fn applies_to(&self, req: &RequestLine<'_>) -> bool {
        self.path.matches(req.path)
            && self.methods.iter().any(|m| m == req.method)
            && (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(&req.host)))
    }

    fn exempts(&self, req: &RequestLine<'_>) -> bool {
        self.exempt.iter().any(|p| p.matches(req.path))
    }
}

impl Config {
    fn enforcing_rules<'s>(&'s self, req: &'s RequestLine<'_>) -> impl Iterator<Item = &'s Rule> {
        self.rules.iter().filter(|r| r.applies_to(req) && !r.exempts(req))
    }

    pub fn requirement(&self, req: &RequestLine<'_>) -> Requirement {
        if self.enforcing_rules(req).next().is_some() {
            Requirement::Credentials
        } else if self.rules.iter().any(|r| r.applies_to(req)) {
            Requirement::None(Outcome::Exempt)
        } else {
            Requirement::None(Outcome::NoRule)
        }
    }

    /// The whole decision, given the raw `authorization` header if the request had one.
    pub fn decide(&self, req: &RequestLine<'_>, authorization: Option<&[u8]>) -> Verdict {
        self.decide_from(req, authorization, None)
    }

    /// [`Config::decide`] with the lockout applied, when configured: `client` is the client's address and the
    /// current time in milliseconds.
    pub fn decide_from(
        &self,
        req: &RequestLine<'_>,
        authorization: Option<&[u8]>,
        client: Option<(&str, u64)>,
    ) -> Verdict {
        if let Requirement::None(outcome) = self.requirement(req) {
            return Verdict::Allow(outcome);
        }
        let Some(header) = authorization else {
            return self.refuse(Outcome::DeniedMissing);
        };
        let credentials = match parse_basic(header) {
            Ok(c) => c,
            Err(Malformed::NotBasic) if header.is_empty() => return self.refuse(Outcome::DeniedMissing),
            Err(why) => return self.refuse(Outcome::DeniedMalformed(why)),
        };
        let lockout = self.lockout.as_ref().zip(client);
        if let Some((lockout, (address, now))) = lockout
            && lockout.is_locked(address, credentials.user(), now)
        {
            return self.refuse(Outcome::DeniedLocked);
        }
        let pair_digest = digest(&credentials);
        if self.enforcing_rules(req).all(|rule| rule.credentials.verify(&credentials, &pair_digest)) {
            if let Some((lockout, (address, _))) = lockout {
                lockout.record_success(address, credentials.user());
            }
            Verdict::Allow(Outcome::Allowed)
        } else {
            if let Some((lockout, (address, now))) = lockout {
                lockout.record_failure(address, credentials.user(), now);
            }
            self.refuse(Outcome::DeniedInvalid)
        }
    }

    /// The denial for `outcome`; the shell also uses it for refusals it decides (several headers).
    pub fn refuse(&self, outcome: Outcome) -> Verdict {
        if outcome == Outcome::DeniedLocked {
            return Verdict::Deny(outcome, Denial::new(429, GrpcStatus::ResourceExhausted, LOCKED_MESSAGE));
        }
        let message = if outcome == Outcome::DeniedMissing { NOT_FOUND_MESSAGE } else { INVALID_MESSAGE };
        let denial = Denial::new(401, GrpcStatus::Unauthenticated, message)
            .with_header("www-authenticate", self.challenge.clone());
        Verdict::Deny(outcome, denial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    const REFERENCE: &str = r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET","PUT","POST","PATCH","DELETE"],"credentials":["username:password"],"hosts":["ml.example.com"]}]}"#;

    fn basic(pair: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(pair)).into_bytes()
    }

    fn outcome(config: &Config, host: &str, path: &str, method: &str, auth: Option<&[u8]>) -> Outcome {
        match config.decide(&RequestLine::new(host, path, method), auth) {
            Verdict::Allow(o) | Verdict::Deny(o, _) => o,
        }
    }

    #[test]
    fn reference_config() {
        let c = Config::from_json(REFERENCE.as_bytes()).unwrap();
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
        let c = Config::from_json(br#"{"realm":"models","basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["a:b"]}]}"#).unwrap();
        let Verdict::Deny(_, denial) = c.decide(&RequestLine::new("h", "/", "GET"), None) else { panic!("allowed") };
        assert_eq!(denial.http_status, 401);
        assert_eq!(denial.grpc_status, GrpcStatus::Unauthenticated);
        assert_eq!(denial.headers, vec![("www-authenticate".into(), "Basic realm=\"models\"".into())]);
    }

    #[test]
    fn every_matching_rule_must_pass() {
        let c = Config::from_json(
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
        let c = Config::from_json(
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
        let c = Config::from_json(
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
        let c = Config::from_json(REFERENCE.as_bytes()).unwrap();
        assert_eq!(outcome(&c, "ml.example.com", "/", "GET", Some(b"")), Outcome::DeniedMissing);
    }

    proptest! {
        /// Whatever the header holds, the reference config lets a request on its host through only with the
        /// one right password.
        #[test]
        fn only_the_right_credentials_pass(header in proptest::collection::vec(any::<u8>(), 0..120)) {
            let c = Config::from_json(REFERENCE.as_bytes()).unwrap();
            let allowed = outcome(&c, "ml.example.com", "/", "GET", Some(&header)).is_allowed();
            let right = crate::authorization::parse_basic(&header).map(|c| c.pair() == "username:password").unwrap_or(false);
            prop_assert_eq!(allowed, right);
        }

        #[test]
        fn random_pairs_are_refused(user in "[a-z]{1,12}", password in "[ -~]{0,16}") {
            prop_assume!(user != "username" || password != "password");
            let c = Config::from_json(REFERENCE.as_bytes()).unwrap();
            let header = basic(&format!("{user}:{password}"));
            prop_assert_eq!(outcome(&c, "ml.example.com", "/", "GET", Some(&header)), Outcome::DeniedInvalid);
        }
    }

    #[test]
    fn lockout_refuses_the_right_password_from_a_locked_address_only() {
        let config = Config::from_json(
            br#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["username:password"]}],
                 "lockout":{"max_failures":2,"window":"1m","duration":"10s"}}"#,
        )
        .unwrap();
        let req = RequestLine::new("ml.example.com", "/", "GET");
        let (right, wrong) = (basic("username:password"), basic("username:guess"));
        let at = |address: &'static str, t: u64| Some((address, t));
        assert_eq!(config.decide_from(&req, Some(&wrong), at("10.0.0.1", 0)), config.refuse(Outcome::DeniedInvalid));
        assert_eq!(config.decide_from(&req, Some(&wrong), at("10.0.0.1", 1)), config.refuse(Outcome::DeniedInvalid));
        let locked = config.decide_from(&req, Some(&right), at("10.0.0.1", 2));
        let Verdict::Deny(Outcome::DeniedLocked, denial) = locked else { panic!("{locked:?}") };
        assert_eq!((denial.http_status, denial.grpc_status), (429, GrpcStatus::ResourceExhausted));
        assert_eq!(config.decide_from(&req, Some(&right), at("10.0.0.2", 2)), Verdict::Allow(Outcome::Allowed));
        assert_eq!(config.decide_from(&req, Some(&right), at("10.0.0.1", 10_002)), Verdict::Allow(Outcome::Allowed));
        // Without a client (no lockout configured or no address) nothing is counted.
        assert_eq!(config.decide(&req, Some(&right)), Verdict::Allow(Outcome::Allowed));
    }

    #[test]
    fn lockout_config_is_validated() {
        let bad = |lockout: &str| {
            let json = format!(r#"{{"basic_auth_rules":[],"lockout":{lockout}}}"#);
            Config::from_json(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(bad(r#"{"max_failures":0,"window":"1m","duration":"5m"}"#).contains("lockout.max_failures"));
        assert!(bad(r#"{"max_failures":3,"window":"0s","duration":"5m"}"#).contains("lockout.window"));
        assert!(bad(r#"{"max_failures":3,"window":"1m","duration":"5 weeks"}"#).contains("unknown unit"));
        assert!(bad(r#"{"max_failures":3,"window":"1m"}"#).contains("missing field `duration`"));
    }
}
