//! A stand-in for the AWS Network Load Balancer of the EKS overlay: it terminates TLS on its 443 listener (the
//! certificate ACM would hold, ALPN `h2,http/1.1` as the `HTTP2Preferred` policy offers) and forwards plain TCP
//! to the gateway Service's target ports, as the NLB's target groups do; its 80 listener forwards plain TCP.
//! It is an Envoy with a written bootstrap (`tcp_proxy`): the NLB is not Istio's to configure.

use crate::envoy::Envoy;
use crate::loopback;
use crate::tls::TestCertificates;
use anyhow::Result;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub struct Nlb {
    _envoy: Envoy,
    /// The TLS listener (the NLB's 443).
    pub https: SocketAddr,
    /// The plain listener (the NLB's 80).
    pub http: SocketAddr,
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

fn cluster(name: &str, target: SocketAddr) -> Value {
    json!({
        "name": name, "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(target)}}]}]}
    })
}

impl Nlb {
    /// Listeners in front of the gateway's target ports by Service port (`ports[&443]`, `ports[&80]`).
    pub async fn start(ports: &BTreeMap<u16, SocketAddr>, certificates: &TestCertificates) -> Result<Self> {
        let target =
            |port: u16| ports.get(&port).copied().ok_or_else(|| anyhow::anyhow!("the gateway has no port {port}"));
        let (https_target, http_target) = (target(443)?, target(80)?);
        let https: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, loopback::free_port()?).into();
        let http: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, loopback::free_port()?).into();
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
                    {"name": "http", "address": address(http), "filter_chains": [{"filters": [tcp_proxy("gateway-http")]}]}
                ],
                "clusters": [cluster("gateway-https", https_target), cluster("gateway-http", http_target)]
            }
        });
        let envoy = Envoy::start_static(bootstrap, https).await?;
        Ok(Self { _envoy: envoy, https, http })
    }
}
