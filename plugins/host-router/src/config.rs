//! The plugin's configuration: an ordered list of hosts, each with ordered rules, a per-host default and a
//! global default. First matching host, then first matching rule, wins.
//!
//! Every field, with an example, is in the plugin's reference, `plugins/host-router/README.md`
//! (cli/tests/plugin_readmes.rs checks that the two agree).
//!
//! `gateway_headers` are headers only the gateway may set: a route header that a VirtualService matches on is
//! otherwise the client's to choose. They are removed from every request (matched by a rule or not) and rules
//! never see a client's value of them.

use regex::Regex;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use wasmgate_common::{ConfigError, HostPattern, PathMatch, parse_config, validate_methods};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    hosts: Vec<RawHost>,
    default: Option<RawRule>,
    #[serde(default)]
    gateway_headers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    host: String,
    #[serde(default)]
    rules: Vec<RawRule>,
    default: Option<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    #[serde(rename = "match")]
    matcher: Option<RawMatch>,
    #[serde(default)]
    set_headers: BTreeMap<String, String>,
    #[serde(default)]
    append_headers: BTreeMap<String, String>,
    #[serde(default)]
    remove_headers: Vec<String>,
    rewrite: Option<RawRewrite>,
    host: Option<String>,
    redirect: Option<RawRedirect>,
    direct_response: Option<RawDirect>,
    deny: Option<RawDeny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    prefix: Option<String>,
    exact: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    headers: Vec<RawHeaderMatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderMatch {
    name: String,
    exact: Option<String>,
    present: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum RawRewrite {
    Prefix { from: String, to: String },
    Regex { pattern: String, substitution: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedirect {
    status: Option<u32>,
    #[serde(default)]
    https: bool,
    host: Option<String>,
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirect {
    status: u32,
    #[serde(default)]
    body: String,
    content_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeny {
    status: Option<u32>,
    message: Option<String>,
}

#[derive(Debug)]
pub(crate) enum PathCondition {
    Match(PathMatch),
    Regex(Regex),
}

#[derive(Debug)]
pub(crate) enum HeaderCondition {
    Present(bool),
    Exact(String),
}

#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) path: Option<PathCondition>,
    pub(crate) methods: Vec<String>,
    pub(crate) headers: Vec<(String, HeaderCondition)>,
}

#[derive(Debug)]
pub(crate) enum Rewrite {
    Prefix { from: String, to: String },
    Regex { pattern: Regex, substitution: String },
}

#[derive(Debug)]
pub(crate) struct Redirect {
    pub(crate) status: u32,
    pub(crate) https: bool,
    pub(crate) host: Option<String>,
    pub(crate) path: Option<String>,
}

#[derive(Debug)]
pub(crate) enum Answer {
    Redirect(Redirect),
    Direct { status: u32, body: String, content_type: String },
    Deny { status: u32, message: String },
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: String,
    /// Index of this rule's counter.
    pub(crate) counter: usize,
    pub(crate) conditions: Conditions,
    pub(crate) set_headers: Vec<(String, String)>,
    pub(crate) append_headers: Vec<(String, String)>,
    pub(crate) remove_headers: Vec<String>,
    pub(crate) rewrite: Option<Rewrite>,
    pub(crate) host: Option<String>,
    pub(crate) answer: Option<Answer>,
}

#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) pattern: HostPattern,
    pub(crate) rules: Vec<Rule>,
    pub(crate) default: Option<Rule>,
}

#[derive(Debug)]
pub struct Config {
    pub(crate) hosts: Vec<Host>,
    pub(crate) default: Option<Rule>,
    /// Counter names, one per rule, in counter-index order.
    pub(crate) counter_names: Vec<String>,
    pub(crate) gateway_headers: Vec<String>,
    /// Whether some host entry names hosts: then a request whose authority is not a host name is refused.
    pub(crate) host_scoped: bool,
}

fn check_header_name(name: &str) -> Result<(), ConfigError> {
    if name.starts_with(':') {
        return Err(ConfigError::new(
            "",
            format!("`{name}` is a pseudo-header: use `rewrite` for the path and `host` for the authority"),
        ));
    }
    wasmgate_common::header_name::check_settable(name)
}

fn check_header_value(value: &str) -> Result<(), ConfigError> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ConfigError::new("", "header values may not contain control characters"));
    }
    Ok(())
}

fn compile_regex(pattern: &str) -> Result<Regex, ConfigError> {
    // A size limit keeps a pathological pattern from eating the VM's memory at load.
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ConfigError::new("", format!("bad regex `{pattern}`: {e}")))
}

fn headers_map(map: BTreeMap<String, String>, field: &str) -> Result<Vec<(String, String)>, ConfigError> {
    map.into_iter()
        .map(|(k, v)| {
            check_header_name(&k)
                .and_then(|()| check_header_value(&v))
                .map_err(|e| e.within(&format!("{field}.{k}")))?;
            Ok((k, v))
        })
        .collect()
}

/// Rule names in counter order, with a set beside them so that a config of many thousand rules loads in
/// linear time.
#[derive(Default)]
struct Counters {
    names: Vec<String>,
    seen: HashSet<String>,
}

impl Counters {
    fn add(&mut self, name: &str) -> Result<usize, ConfigError> {
        if !self.seen.insert(name.to_string()) {
            return Err(ConfigError::new("name", format!("rule name `{name}` is used twice")));
        }
        self.names.push(name.to_string());
        Ok(self.names.len() - 1)
    }
}

impl Rule {
    fn compile(raw: RawRule, default_name: String, counters: &mut Counters) -> Result<Self, ConfigError> {
        let name = raw.name.unwrap_or(default_name);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(ConfigError::new("name", format!("`{name}`: use letters, digits, `-`, `_` or `.`")));
        }
        let conditions = match raw.matcher {
            Some(m) => Conditions::compile(m).map_err(|e| e.within("match"))?,
            None => Conditions::default(),
        };
        let rewrite = match raw.rewrite {
            None => None,
            Some(RawRewrite::Prefix { from, to }) => {
                if !from.starts_with('/') || !to.starts_with('/') {
                    return Err(ConfigError::new("rewrite.prefix", "`from` and `to` must start with `/`"));
                }
                Some(Rewrite::Prefix { from, to })
            }
            Some(RawRewrite::Regex { pattern, substitution }) => Some(Rewrite::Regex {
                pattern: compile_regex(&pattern).map_err(|e| e.within("rewrite.regex.pattern"))?,
                substitution,
            }),
        };
        if let Some(host) = &raw.host {
            HostPattern::parse(host)
                .ok()
                .filter(|p| matches!(p, HostPattern::Exact(_)))
                .ok_or_else(|| ConfigError::new("host", format!("`{host}` is not a host name")))?;
        }
        for (i, h) in raw.remove_headers.iter().enumerate() {
            check_header_name(h).map_err(|e| e.within(&format!("remove_headers[{i}]")))?;
        }
        let answers = [raw.redirect.is_some(), raw.direct_response.is_some(), raw.deny.is_some()];
        if answers.iter().filter(|a| **a).count() > 1 {
            return Err(ConfigError::new("", "at most one of `redirect`, `direct_response`, `deny`"));
        }
        let answer = if let Some(r) = raw.redirect {
            let status = r.status.unwrap_or(302);
            if ![301, 302, 303, 307, 308].contains(&status) {
                return Err(ConfigError::new(
                    "redirect.status",
                    format!("{status} is not a redirect (301, 302, 303, 307, 308)"),
                ));
            }
            if !r.https && r.host.is_none() && r.path.is_none() {
                return Err(ConfigError::new("redirect", "needs a target: `https: true`, `host` or `path`"));
            }
            if r.path.as_ref().is_some_and(|p| !p.starts_with('/')) {
                return Err(ConfigError::new("redirect.path", "must start with `/`"));
            }
            if let Some(host) = &r.host {
                check_header_value(host).map_err(|e| e.within("redirect.host"))?;
            }
            Some(Answer::Redirect(Redirect { status, https: r.https, host: r.host, path: r.path }))
        } else if let Some(d) = raw.direct_response {
            if !(200..=599).contains(&d.status) {
                return Err(ConfigError::new(
                    "direct_response.status",
                    format!("{} is not a status from 200 to 599", d.status),
                ));
            }
            let content_type = d.content_type.unwrap_or_else(|| "text/plain; charset=utf-8".into());
            check_header_value(&content_type).map_err(|e| e.within("direct_response.content_type"))?;
            Some(Answer::Direct { status: d.status, body: d.body, content_type })
        } else if let Some(d) = raw.deny {
            let status = d.status.unwrap_or(403);
            if !(400..=599).contains(&status) {
                return Err(ConfigError::new("deny.status", format!("{status} is not an error status")));
            }
            Some(Answer::Deny { status, message: d.message.unwrap_or_else(|| "denied by host-router".into()) })
        } else {
            None
        };
        let forwards = !raw.set_headers.is_empty()
            || !raw.append_headers.is_empty()
            || !raw.remove_headers.is_empty()
            || rewrite.is_some()
            || raw.host.is_some();
        if answer.is_none() && !forwards {
            return Err(ConfigError::new(
                "",
                "a rule needs an action (set/append/remove headers, rewrite, host, redirect, direct_response, deny)",
            ));
        }
        if answer.is_some() && forwards {
            return Err(ConfigError::new(
                "",
                "a rule that answers (redirect, direct_response, deny) cannot also change the request",
            ));
        }
        Ok(Self {
            counter: counters.add(&name).map_err(|e| e.within(""))?,
            name,
            conditions,
            set_headers: headers_map(raw.set_headers, "set_headers")?,
            append_headers: headers_map(raw.append_headers, "append_headers")?,
            remove_headers: raw.remove_headers,
            rewrite,
            host: raw.host,
            answer,
        })
    }
}

impl Conditions {
    fn compile(raw: RawMatch) -> Result<Self, ConfigError> {
        let path = match (raw.prefix, raw.exact, raw.regex) {
            (None, None, None) => None,
            (Some(p), None, None) => Some(PathCondition::Match(PathMatch::from_fields(Some(p), None, None)?)),
            (None, Some(e), None) => Some(PathCondition::Match(PathMatch::from_fields(None, Some(e), None)?)),
            (None, None, Some(r)) => Some(PathCondition::Regex(compile_regex(&r).map_err(|e| e.within("regex"))?)),
            _ => return Err(ConfigError::new("", "at most one of `prefix`, `exact`, `regex`")),
        };
        validate_methods("methods", &raw.methods)?;
        let headers = raw
            .headers
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let at = format!("headers[{i}]");
                let name = h.name.to_ascii_lowercase();
                if name.is_empty() {
                    return Err(ConfigError::new(at, "empty header name"));
                }
                let condition = match (h.exact, h.present) {
                    (Some(v), None) => HeaderCondition::Exact(v),
                    (None, Some(p)) => HeaderCondition::Present(p),
                    (None, None) => HeaderCondition::Present(true),
                    (Some(_), Some(_)) => return Err(ConfigError::new(at, "`exact` or `present`, not both")),
                };
                Ok((name, condition))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { path, methods: raw.methods, headers })
    }
}

impl Config {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_config(bytes)?;
        let mut counters = Counters::default();
        let mut hosts: Vec<Host> = Vec::new();
        let mut patterns = HashSet::new();
        for (i, raw_host) in raw.hosts.into_iter().enumerate() {
            let at = format!("hosts[{i}]");
            let pattern = HostPattern::parse(&raw_host.host).map_err(|e| e.within(&format!("{at}.host")))?;
            if !patterns.insert(pattern.clone()) {
                return Err(ConfigError::new(format!("{at}.host"), format!("`{}` is listed twice", raw_host.host)));
            }
            let label = raw_host.host.trim().trim_start_matches("*.").replace('*', "any");
            let rules = raw_host
                .rules
                .into_iter()
                .enumerate()
                .map(|(j, r)| {
                    Rule::compile(r, format!("{label}.{j}"), &mut counters)
                        .map_err(|e| e.within(&format!("{at}.rules[{j}]")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let default = raw_host
                .default
                .map(|r| {
                    Rule::compile(r, format!("{label}.default"), &mut counters)
                        .map_err(|e| e.within(&format!("{at}.default")))
                })
                .transpose()?;
            hosts.push(Host { pattern, rules, default });
        }
        let default = raw
            .default
            .map(|r| Rule::compile(r, "default".into(), &mut counters).map_err(|e| e.within("default")))
            .transpose()?;
        for (i, name) in raw.gateway_headers.iter().enumerate() {
            check_header_name(name).map_err(|e| e.within(&format!("gateway_headers[{i}]")))?;
        }
        if hosts.is_empty() && default.is_none() && raw.gateway_headers.is_empty() {
            return Err(ConfigError::new(
                "",
                "no `hosts`, `default` or `gateway_headers`: the plugin would do nothing",
            ));
        }
        let host_scoped = hosts.iter().any(|h| h.pattern != HostPattern::Any);
        Ok(Self { hosts, default, counter_names: counters.names, gateway_headers: raw.gateway_headers, host_scoped })
    }

    /// Counter names, one per rule (`rules.<rule name>`), in the order of each rule's counter index.
    pub fn counter_names(&self) -> Vec<String> {
        self.counter_names.iter().map(|n| format!("rules.{n}")).collect()
    }

    /// Headers removed from every client request (see the module docs).
    pub fn gateway_headers(&self) -> &[String] {
        &self.gateway_headers
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }
}
