//! Istio `VirtualService` HTTP routes → Envoy routes, for the part of the API the gateway's resources use: header
//! and URI matches, one weighted destination per route (host, subset, port), retries and timeouts. Anything else
//! is refused rather than translated into a route that behaves differently.
//!
//! As istiod does: routes keep their order (first match wins); a header match becomes an Envoy header matcher;
//! `retries.retryOn` goes to Envoy's `retry_on` unchanged (Envoy reads HTTP and gRPC conditions from the same
//! field) with `attempts` as `num_retries`; a route without `timeout` has none (`0s`), as istiod sets for
//! gateways. Destinations are resolved to cluster names by the caller (istiod names them
//! `outbound|<port>|<subset>|<host>`).

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct VirtualService {
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub http: Vec<HttpRoute>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRoute {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatch>,
    pub route: Vec<RouteDestination>,
    #[serde(default)]
    pub retries: Option<Retries>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMatch {
    #[serde(default)]
    pub uri: Option<StringMatch>,
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDestination {
    pub destination: Destination,
    #[serde(default)]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub host: String,
    #[serde(default)]
    pub subset: Option<String>,
    #[serde(default)]
    pub port: Option<Port>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub number: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retries {
    pub attempts: u32,
    #[serde(default)]
    pub retry_on: Option<String>,
    #[serde(default)]
    pub per_try_timeout: Option<String>,
}

impl StringMatch {
    fn envoy(&self) -> Value {
        match self {
            Self::Exact(v) => json!({"exact": v}),
            Self::Prefix(v) => json!({"prefix": v}),
            Self::Regex(v) => json!({"safe_regex": {"regex": v}}),
        }
    }
}

/// Every `VirtualService` in a rendered YAML stream.
pub fn parse_all(yaml: &str) -> Result<Vec<VirtualService>> {
    crate::istio::objects_of_kind(yaml, "VirtualService")
}

pub fn load_all(path: &Path) -> Result<Vec<VirtualService>> {
    parse_all(&std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)
}

impl VirtualService {
    /// The Envoy routes for this service's `http` section, in order; `cluster` names the cluster of a destination.
    pub fn envoy_routes(&self, cluster: impl Fn(&Destination) -> Result<String>) -> Result<Vec<Value>> {
        let mut routes = Vec::new();
        for (index, http) in self.spec.http.iter().enumerate() {
            let label = http.name.clone().unwrap_or_else(|| format!("http[{index}]"));
            let destination = match http.route.as_slice() {
                [only] => &only.destination,
                [] => bail!("{}: route {label} has no destination", self.metadata.name),
                _ => bail!(
                    "{}: route {label} splits traffic by weight, which this translation does not do",
                    self.metadata.name
                ),
            };
            let mut action =
                json!({"cluster": cluster(destination)?, "timeout": http.timeout.as_deref().unwrap_or("0s")});
            if let Some(retries) = &http.retries {
                let mut policy = json!({"num_retries": retries.attempts});
                if let Some(on) = &retries.retry_on {
                    policy["retry_on"] = json!(on);
                }
                if let Some(timeout) = &retries.per_try_timeout {
                    policy["per_try_timeout"] = json!(timeout);
                }
                action["retry_policy"] = policy;
            }
            let matches = if http.matches.is_empty() { vec![HttpMatch::default()] } else { http.matches.clone() };
            for m in matches {
                let mut route_match = match &m.uri {
                    None => json!({"prefix": "/"}),
                    Some(StringMatch::Exact(p)) => json!({"path": p}),
                    Some(StringMatch::Prefix(p)) => json!({"prefix": p}),
                    Some(StringMatch::Regex(r)) => json!({"safe_regex": {"regex": r}}),
                };
                if !m.headers.is_empty() {
                    let headers: Vec<Value> = m
                        .headers
                        .iter()
                        .map(|(name, matcher)| json!({"name": name, "string_match": matcher.envoy()}))
                        .collect();
                    route_match["headers"] = json!(headers);
                }
                routes.push(json!({"name": label, "match": route_match, "route": action.clone()}));
            }
        }
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: inference, namespace: ml-serving}
spec:
  hosts: [ml.example.com]
  gateways: [ml-gateway]
  http:
    - name: canary
      match:
        - headers:
            x-wasmgate-route: {exact: canary}
      route:
        - destination: {host: inference, subset: canary, port: {number: 8500}}
    - name: stable
      route:
        - destination: {host: inference, subset: stable, port: {number: 8500}}
      retries: {attempts: 2, retryOn: "unavailable,reset"}
"#;

    #[test]
    fn header_routes_come_first_and_retries_carry_over() {
        let vs = parse_all(VS).unwrap().remove(0);
        let routes = vs.envoy_routes(|d| Ok(d.subset.clone().unwrap_or_default())).unwrap();
        assert_eq!(
            routes[0],
            json!({"name": "canary",
                   "match": {"prefix": "/", "headers": [{"name": "x-wasmgate-route", "string_match": {"exact": "canary"}}]},
                   "route": {"cluster": "canary", "timeout": "0s"}})
        );
        assert_eq!(routes[1]["route"]["retry_policy"], json!({"num_retries": 2, "retry_on": "unavailable,reset"}));
        assert_eq!(routes[1]["match"], json!({"prefix": "/"}));
    }

    #[test]
    fn what_is_not_translated_is_refused() {
        let split = VS.replace(
            "        - destination: {host: inference, subset: stable, port: {number: 8500}}",
            "        - destination: {host: inference, subset: stable}\n          weight: 50\n        - destination: {host: inference, subset: canary}\n          weight: 50",
        );
        let err = parse_all(&split).unwrap().remove(0).envoy_routes(|_| Ok(String::new())).unwrap_err();
        assert!(err.to_string().contains("splits traffic by weight"), "{err}");
        let mirror = VS.replace("      retries:", "      mirror: {host: shadow}\n      retries:");
        assert!(parse_all(&mirror).is_err());
    }
}
