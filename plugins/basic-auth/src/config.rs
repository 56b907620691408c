//! The plugin's configuration: the `pluginConfig` of Istio's basic_auth extension, unchanged, plus
//! hashed credentials (see [`crate::credentials`]) and `exempt_paths` per rule.
//!
//! Every field, with an example, is in the plugin's reference, `plugins/basic-auth/README.md`
//! (cli/tests/plugin_readmes.rs checks that the two agree).
//!
//! Refused at load, with the field named: a config with no rules (Istio's plugin then lets everything through,
//! which is never what a deployment wants; `allow_all: true` says it is), an exempt path that covers all of its
//! rule, a bcrypt cost above 12, an `allow` entry that is none of the rule's users, and everything malformed.
//!
//! `forward_user_header` is removed from every request a client sends (with or without credentials, on any
//! path, matched by a rule or not): otherwise anyone could claim to be anyone to the upstream. An allowed request
//! with credentials then carries the user name in it.

use crate::budget::{BudgetSettings, RawBudget};
use crate::credentials::CredentialSet;
use crate::fingerprint::Fingerprinter;
use crate::lockout::{LockoutSettings, RawLockout};
use crate::user_id::UserId;
use serde::Deserialize;
use wasmgate_common::{ConfigError, HeaderMapView, HostPattern, MethodSet, PathMatch, RequestLine, parse_config};

pub const DEFAULT_REALM: &str = "istio";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    basic_auth_rules: Vec<RawRule>,
    realm: Option<String>,
    #[serde(default)]
    lockout: Option<RawLockout>,
    #[serde(default)]
    bcrypt_budget: Option<RawBudget>,
    #[serde(default)]
    allow_all: bool,
    forward_user_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    prefix: Option<String>,
    exact: Option<String>,
    suffix: Option<String>,
    #[serde(default)]
    request_methods: Vec<String>,
    #[serde(default)]
    credentials: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    exempt_paths: Vec<PathMatch>,
    allow: Option<Vec<String>>,
}

/// A validated configuration, ready for the request path.
#[derive(Debug)]
/// The validated config: what was loaded, never changed by a request (what requests change is in
/// [`crate::state::State`]).
pub struct Config {
    pub(crate) rules: Vec<Rule>,
    /// The `WWW-Authenticate` value, built once.
    pub(crate) challenge: String,
    pub(crate) lockout: Option<LockoutSettings>,
    /// Present when some rule has bcrypt credentials.
    pub(crate) budget: Option<BudgetSettings>,
    /// Whether some rule names hosts: then a request whose authority is not a host name is refused.
    pub(crate) host_scoped: bool,
    /// Every rule's user names, sorted, each once: a [`UserId`] indexes it (and the per-user counters).
    pub(crate) users: Vec<String>,
    pub(crate) forward_user_header: Option<String>,
    /// The key of every rule's credential fingerprints (and of the headers remembered).
    pub(crate) fingerprinter: Fingerprinter,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) path: PathMatch,
    pub(crate) methods: MethodSet,
    /// Empty: every host.
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) exempt: Vec<PathMatch>,
    pub(crate) credentials: CredentialSet,
    /// `allow`: the users of `credentials` that may pass (sorted); `None`, all of them.
    pub(crate) allow: Option<Vec<String>>,
}

impl Config {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_config(bytes)?;
        // One key for every rule's credentials and the remembered headers: a request's pair is fingerprinted
        // once, whichever rules check it.
        let fingerprinter = Fingerprinter::random()?;
        let rules = raw
            .basic_auth_rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                Rule::compile(rule, &fingerprinter).map_err(|e| e.within(&format!("basic_auth_rules[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let realm = raw.realm.unwrap_or_else(|| DEFAULT_REALM.to_string());
        if realm.is_empty() || realm.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(ConfigError::new(
                "realm",
                "must be non-empty, without quotes, backslashes or control characters",
            ));
        }
        let lockout = raw.lockout.map(LockoutSettings::compile).transpose().map_err(|e| e.within("lockout"))?;
        match (rules.is_empty(), raw.allow_all) {
            (true, false) => {
                return Err(ConfigError::new(
                    "basic_auth_rules",
                    "no rules: every request would pass unauthenticated; add rules, or set `allow_all: true` to \
                     run the plugin deliberately open",
                ));
            }
            (false, true) => {
                return Err(ConfigError::new("allow_all", "is for a config without rules; remove it or the rules"));
            }
            _ => {}
        }
        let budget =
            raw.bcrypt_budget.map(BudgetSettings::compile).transpose().map_err(|e| e.within("bcrypt_budget"))?;
        let budget = rules.iter().any(|r| r.credentials.has_bcrypt()).then(|| budget.unwrap_or_default());
        let host_scoped = rules.iter().any(|r| !r.hosts.is_empty());
        let mut users: Vec<String> = rules.iter().flat_map(|r| r.credentials.users().iter().cloned()).collect();
        users.sort_unstable();
        users.dedup();
        check_counter_names(&users).map_err(|e| e.within("basic_auth_rules"))?;
        let forward_user_header = raw.forward_user_header.map(check_forward_header).transpose()?;
        Ok(Self {
            rules,
            challenge: format!("Basic realm=\"{realm}\""),
            lockout,
            budget,
            host_scoped,
            users,
            forward_user_header,
            fingerprinter,
        })
    }

    /// The user names, in [`UserId`] order.
    pub fn users(&self) -> &[String] {
        &self.users
    }

    pub fn user_name(&self, user: UserId) -> &str {
        self.users.get(user.0).map_or("", String::as_str)
    }

    pub(crate) fn user_id(&self, name: &str) -> Option<UserId> {
        self.users.binary_search_by(|u| u.as_str().cmp(name)).ok().map(UserId)
    }

    /// The header that carries the authenticated user to the upstream, and that no client may send.
    pub fn forward_user_header(&self) -> Option<&str> {
        self.forward_user_header.as_deref()
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The rules that ask `req` for credentials.
    pub(crate) fn enforcing_rules<'s>(&'s self, req: &'s RequestLine<'_>) -> impl Iterator<Item = &'s Rule> {
        self.rules.iter().filter(|r| r.enforces(req))
    }

    /// Every spelling of `forward_user_header` the client sent (any letter case, `_` for `-`, however many
    /// times), one name each: the shell removes them (every copy) before anything else, whatever the request's
    /// fate. Backends that fold `_` into `-` would read `x_wasmgate_user` as the gateway's word. Empty, and no
    /// allocation, on a request without one.
    pub fn client_identities(&self, headers: &HeaderMapView<'_>) -> Vec<String> {
        let Some(name) = self.forward_user_header() else { return Vec::new() };
        let mut names: Vec<String> = Vec::new();
        for spelling in headers.spellings_of(name) {
            let spelling = String::from_utf8_lossy(spelling).to_ascii_lowercase();
            if !names.contains(&spelling) {
                names.push(spelling);
            }
        }
        names
    }
}

impl Rule {
    pub(crate) fn applies_to(&self, req: &RequestLine<'_>) -> bool {
        self.path.matches(req.path) && self.methods.contains(req.method) && req.host_in(&self.hosts)
    }

    fn exempts(&self, req: &RequestLine<'_>) -> bool {
        self.exempt.iter().any(|p| p.matches(req.path))
    }

    /// Whether the rule asks this request for credentials.
    pub(crate) fn enforces(&self, req: &RequestLine<'_>) -> bool {
        self.applies_to(req) && !self.exempts(req)
    }

    fn compile(raw: RawRule, fingerprinter: &Fingerprinter) -> Result<Self, ConfigError> {
        let path = PathMatch::from_fields(raw.prefix, raw.exact, raw.suffix)?;
        if raw.request_methods.is_empty() {
            return Err(ConfigError::new("request_methods", "at least one method is required (`*` for every method)"));
        }
        let methods = MethodSet::parse("request_methods", raw.request_methods)?;
        let hosts = HostPattern::parse_list("hosts", &raw.hosts)?;
        for (i, exempt) in raw.exempt_paths.iter().enumerate() {
            let at = format!("exempt_paths[{i}]");
            exempt.validate().map_err(|e| e.within(&at))?;
            if exempt.covers(&path) {
                return Err(ConfigError::new(
                    at,
                    "exempts every path the rule covers: remove the rule instead, or exempt a narrower path",
                ));
            }
        }
        let credentials = CredentialSet::parse(&raw.credentials, fingerprinter).map_err(|e| e.within("credentials"))?;
        let allow = raw.allow.map(|allow| check_allow(allow, credentials.users())).transpose()?;
        Ok(Self { path, methods, hosts, exempt: raw.exempt_paths, credentials, allow })
    }
}

/// An `allow` list names users of its rule's credentials: a name that is none of them (a typo, a user removed
/// from `credentials`) would silently let nobody of that name through.
fn check_allow(mut allow: Vec<String>, users: &[String]) -> Result<Vec<String>, ConfigError> {
    if allow.is_empty() {
        return Err(ConfigError::new("allow", "empty: no user could pass; remove the rule or name its users"));
    }
    if let Some((i, name)) = allow.iter().enumerate().find(|(_, name)| !users.contains(name)) {
        return Err(ConfigError::new(
            format!("allow[{i}]"),
            format!("`{}` is none of this rule's users ({})", name.escape_debug(), users.join(", ")),
        ));
    }
    allow.sort_unstable();
    allow.dedup();
    Ok(allow)
}

/// Per-user counters are named after the users: a name must make one stat name, and no two the same.
fn check_counter_names(users: &[String]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashMap::new();
    for user in users {
        if user.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "credentials",
                format!("user `{}` has a control character: no request could present it", user.escape_debug()),
            ));
        }
        if let Some(other) = seen.insert(counter_name(user), user) {
            return Err(ConfigError::new(
                "credentials",
                format!("users `{other}` and `{user}` would share the counter `user.{}.allowed`", counter_name(user)),
            ));
        }
    }
    Ok(())
}

/// A user's part of a stat name: letters, digits, `-`, `_` and `@` kept, anything else (`.` included, which
/// separates a stat name's parts) as `_`.
pub fn counter_name(user: &str) -> String {
    user.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@') { c } else { '_' }).collect()
}

fn check_forward_header(name: String) -> Result<String, ConfigError> {
    wasmgate_common::header_name::check_settable(&name).map_err(|e| e.within("forward_user_header"))?;
    if name == "authorization" {
        return Err(ConfigError::new("forward_user_header", "`authorization` carries the credentials themselves"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference deployment's config, as it stands in its WasmPlugin.
    pub const REFERENCE: &str = r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET","PUT","POST","PATCH","DELETE"],"credentials":["username:password"],"hosts":["ml.example.com"]}]}"#;

    fn bcrypt_entry(cost: u32) -> String {
        let hash = bcrypt::hash_with_salt("pw", 4, [1u8; 16]).unwrap().format_for_version(bcrypt::Version::TwoY);
        format!("u:{}", hash.replacen("$04$", &format!("${cost:02}$"), 1))
    }

    #[test]
    fn reference_config_loads() {
        let c = Config::from_json(REFERENCE.as_bytes()).unwrap();
        assert_eq!(c.rule_count(), 1);
        assert_eq!(c.challenge, "Basic realm=\"istio\"");
    }

    /// Istio's plugin lets everything through with an empty config; a gateway that loads one by mistake is
    /// open. It has to be said.
    #[test]
    fn an_empty_config_is_refused_unless_allow_all_says_so() {
        for empty in [&b""[..], b"{}", br#"{"basic_auth_rules":[]}"#] {
            let err = Config::from_json(empty).unwrap_err().to_string();
            assert!(err.contains("allow_all: true"), "{err}");
        }
        assert_eq!(Config::from_json(br#"{"allow_all":true}"#).unwrap().rule_count(), 0);
        let both = format!(r#"{{"allow_all":true,{}"#, &REFERENCE[1..]);
        assert!(Config::from_json(both.as_bytes()).unwrap_err().to_string().contains("allow_all"));
    }

    #[test]
    fn an_exempt_path_may_not_cover_its_whole_rule() {
        let rule = |path: &str, exempt: &str| {
            format!(
                r#"{{"basic_auth_rules":[{{{path},"request_methods":["*"],"credentials":["a:b"],"exempt_paths":[{exempt}]}}]}}"#
            )
        };
        for (path, exempt) in [
            (r#""prefix":"/""#, r#"{"prefix":"/"}"#),
            (r#""prefix":"/api/""#, r#"{"prefix":"/api"}"#),
            (r#""exact":"/admin""#, r#"{"exact":"/admin"}"#),
            (r#""exact":"/admin""#, r#"{"prefix":"/ad"}"#),
            (r#""suffix":".json""#, r#"{"suffix":"json"}"#),
            (r#""suffix":".json""#, r#"{"prefix":"/"}"#),
        ] {
            let err = Config::from_json(rule(path, exempt).as_bytes()).unwrap_err();
            assert_eq!(err.path, "basic_auth_rules[0].exempt_paths[0]", "{path} {exempt}");
            assert!(err.message.contains("every path the rule covers"), "{err}");
        }
        for (path, exempt) in [
            (r#""prefix":"/""#, r#"{"prefix":"/grpc.health.v1.Health/"}"#),
            (r#""prefix":"/api""#, r#"{"exact":"/api/health"}"#),
        ] {
            assert!(Config::from_json(rule(path, exempt).as_bytes()).is_ok(), "{path} {exempt}");
        }
    }

    #[test]
    fn bcrypt_costs_above_the_cap_are_refused_with_the_reason() {
        let config = |cost: u32| {
            format!(
                r#"{{"basic_auth_rules":[{{"prefix":"/","request_methods":["*"],"credentials":["{}"]}}]}}"#,
                bcrypt_entry(cost)
            )
        };
        assert!(Config::from_json(config(12).as_bytes()).unwrap().budget.is_some());
        for cost in [13, 20, 31] {
            let err = Config::from_json(config(cost).as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains(&format!("bcrypt cost {cost} is above 12")) && err.contains("hold a gateway worker"),
                "{err}"
            );
        }
        let plain = Config::from_json(REFERENCE.as_bytes()).unwrap();
        assert!(plain.budget.is_none(), "no bcrypt, no budget");
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (r#"{"basic_auth_rule":[]}"#, "unknown field `basic_auth_rule`"),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":[]}]}"#,
                "basic_auth_rules[0].credentials",
            ),
            (r#"{"basic_auth_rules":[{"prefix":"/","request_methods":[],"credentials":["a:b"]}]}"#, "request_methods"),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["get"],"credentials":["a:b"]}]}"#,
                "request_methods[0]",
            ),
            (r#"{"basic_auth_rules":[{"request_methods":["GET"],"credentials":["a:b"]}]}"#, "exactly one"),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","exact":"/a","request_methods":["GET"],"credentials":["a:b"]}]}"#,
                "several",
            ),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["a:b"],"hosts":["a:80"]}]}"#,
                "hosts[0]",
            ),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["a:$2y$05$bad"]}]}"#,
                "credentials[0]",
            ),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["a:b"],"exempt_paths":[{"prefix":"x"}]}]}"#,
                "exempt_paths[0]",
            ),
            (r#"{"realm":"a\"b","allow_all":true}"#, "realm"),
            (
                r#"{"basic_auth_rules":[{"prefix":"/","request_methods":["*","GET"],"credentials":["a:b"]}]}"#,
                "list it alone",
            ),
            (r#"{"allow_all":true,"bcrypt_budget":{"per_second":"0s","burst":"1s"}}"#, "bcrypt_budget.per_second"),
            (r#"{"allow_all":true,"bcrypt_budget":{"per_second":"600ms","burst":"1s"}}"#, "stall the worker"),
            (r#"{"allow_all":true,"bcrypt_budget":{"per_second":"10ms","burst":"5ms"}}"#, "bcrypt_budget.burst"),
            (
                r#"{"allow_all":true,"lockout":{"max_failures":5,"max_address_failures":4,"window":"1m","duration":"1m"}}"#,
                "lockout.max_address_failures",
            ),
            (r#"{"basic_auth_rules":{}}"#, "basic_auth_rules"),
        ];
        for (json, want) in cases {
            let err = Config::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn errors_never_echo_passwords() {
        let err = Config::from_json(br#"{"basic_auth_rules":[{"prefix":"/","request_methods":["GET"],"credentials":["alice:$2y$05$s3cretsecret"]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
