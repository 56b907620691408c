//! A stand-in for the AWS Network Load Balancer of the EKS install: what the AWS Load Balancer Controller builds
//! from the gateway Service's annotations. It terminates TLS on its 443 listener (the certificate ACM would hold,
//! ALPN `h2,http/1.1` as the `HTTP2Preferred` policy offers) and forwards plain TCP to the gateway Service's
//! target ports, as the NLB's target groups do; its 80 listener forwards plain TCP. With
//! `aws-load-balancer-proxy-protocol: "*"` every forwarded connection starts with a PROXY protocol v2 header
//! naming the client's address, as the NLB's target groups then send it.
//! It is an Envoy with a written bootstrap (`tcp_proxy`): the NLB is not Istio's to configure.

use crate::envoy::Envoy;
use crate::loopback;
use crate::tls::TestCertificates;
use crate::world::GatewayInstall;
use anyhow::Result;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The annotation that makes the AWS Load Balancer Controller create an NLB for a Service (instead of the
/// in-tree controller's Classic ELB).
const LOAD_BALANCER_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";
/// The annotation that turns on PROXY protocol v2 on the NLB's target groups (`"*"`: all of them).
pub const PROXY_PROTOCOL: &str = "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol";

pub struct Nlb {
    _envoy: Envoy,
    _certificates: Arc<TestCertificates>,
    /// The TLS listener (the NLB's 443).
    pub https: SocketAddr,
    /// The plain listener (the NLB's 80).
    pub http: SocketAddr,
    /// The 443 listener without TLS: the stand-in's own, for scenarios that are not about TLS, so their clients
    /// speak h2c to the gateway and still arrive as the NLB delivers them (with its PROXY header).
    pub plain_https: SocketAddr,
    /// Whether forwarded connections start with a PROXY protocol v2 header.
    pub proxy_protocol: bool,
}

fn address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

fn tcp_proxy(cluster: &str) -> Value {
    json!({
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": cluster,
            "cluster": cluster
        }
    })
}

/// A target group: `target`, reached over plain TCP, each connection opened with a PROXY v2 header (the client's
/// address and port, the listener's) if `proxy_protocol`.
fn cluster(name: &str, target: SocketAddr, proxy_protocol: bool) -> Value {
    let mut cluster = json!({
        "name": name, "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(target)}}]}]}
    });
    if proxy_protocol {
        cluster["transport_socket"] = json!({
            "name": "envoy.transport_sockets.upstream_proxy_protocol",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
                "config": {"version": "V2"},
                "transport_socket": {
                    "name": "envoy.transport_sockets.raw_buffer",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}
                }
            }
        });
    }
    cluster
}

impl Nlb {
    /// Whether the install's gateway Service asks the AWS Load Balancer Controller for an NLB.
    pub fn in_front_of(install: &GatewayInstall) -> bool {
        install.service_annotations.get(LOAD_BALANCER_TYPE).is_some_and(|t| t == "external")
    }

    /// Listeners in front of the gateway's target ports by Service port (`ports[&443]`, `ports[&80]`), set up as
    /// the Service's `annotations` ask.
    pub async fn start(
        ports: &BTreeMap<u16, SocketAddr>,
        annotations: &BTreeMap<String, String>,
        certificates: Arc<TestCertificates>,
    ) -> Result<Self> {
        let target =
            |port: u16| ports.get(&port).copied().ok_or_else(|| anyhow::anyhow!("the gateway has no port {port}"));
        let (https_target, http_target) = (target(443)?, target(80)?);
        let proxy_protocol = match annotations.get(PROXY_PROTOCOL).map(String::as_str) {
            None => false,
            Some("*") => true,
            Some(other) => anyhow::bail!("{PROXY_PROTOCOL}: `{other}` (the controller takes only \"*\")"),
        };
        let free = || -> Result<SocketAddr> { Ok((std::net::Ipv4Addr::LOCALHOST, loopback::free_port()?).into()) };
        let (https, http, plain_https) = (free()?, free()?, free()?);
        let tls = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": {"filename": certificates.cert_file().display().to_string()},
                        "private_key": {"filename": certificates.key_file().display().to_string()}
                    }],
                    "alpn_protocols": ["h2", "http/1.1"]
                }
            }
        });
        let bootstrap = json!({
            "admin": {"address": address(([127, 0, 0, 1], 0).into())},
            "static_resources": {
                "listeners": [
                    {"name": "https", "address": address(https),
                     "filter_chains": [{"transport_socket": tls, "filters": [tcp_proxy("gateway-https")]}]},
                    {"name": "plain-https", "address": address(plain_https),
                     "filter_chains": [{"filters": [tcp_proxy("gateway-https")]}]},
                    {"name": "http", "address": address(http), "filter_chains": [{"filters": [tcp_proxy("gateway-http")]}]}
                ],
                "clusters": [
                    cluster("gateway-https", https_target, proxy_protocol),
                    cluster("gateway-http", http_target, proxy_protocol)
                ]
            }
        });
        let envoy = Envoy::start_static(bootstrap, https).await?;
        Ok(Self { _envoy: envoy, _certificates: certificates, https, http, plain_https, proxy_protocol })
    }
}
