//! The two topologies the manifests deploy, each configured by istiod from its overlay and driven by the same
//! real clients over TLS: EKS, where an NLB (a stand-in here) terminates TLS with ALPN `h2,http/1.1` and forwards
//! plain TCP to the gateway's 8080/8443 (the Gateway's 443 server speaks plain HTTP); and kind, where TLS ends
//! at the gateway (the Gateway's `credentialName`, served to Envoy by istiod over SDS).

use anyhow::Result;
use std::net::SocketAddr;
use wasmgate_e2e::clients;
use wasmgate_e2e::nlb::Nlb;
use wasmgate_e2e::stack::{CANARY_HOST, FullStack, HOST, PASSWORD, USER};
use wasmgate_e2e::{RawRequest, workspace};

/// What a client of either deployment checks, through `address` (TLS, the hosts' certificate).
async fn the_same_client_checks(stack: &FullStack, address: SocketAddr) -> Result<()> {
    let ca = stack.certificates.ca_file().display().to_string();
    let credentials = format!("{USER}:{PASSWORD}");
    // tritonclient over TLS, HTTP/2 by ALPN: health, metadata, classifications, a 100 MB batch accepted.
    let args = clients::args(address, &["--authority", HOST, "--basic-auth", &credentials, "--tls-ca", &ca]);
    clients::classified("triton_check.py", args).await?;
    // The gateway's own answers: wrong password UNAUTHENTICATED, 130 MiB RESOURCE_EXHAUSTED, health without
    // credentials, the canary host.
    let checks = clients::run(
        "gateway_check.py",
        vec![
            address.to_string(),
            "--host".into(),
            HOST.into(),
            "--canary-host".into(),
            CANARY_HOST.into(),
            "--basic-auth".into(),
            credentials,
            "--tls-ca".into(),
            ca,
        ],
    )
    .await?;
    assert_eq!(checks.lines().filter(|l| l.starts_with("ok: ")).count(), 5, "{checks}");
    // An HTTP/1.1 client over TLS reaches the plugins too, and is never redirected: on the 443 path a redirect
    // would be to itself, for ever.
    let ca_pem = &stack.certificates.ca_pem;
    let refused = RawRequest::get("/").host(HOST).send_tls(address, HOST, ca_pem).await?;
    assert_eq!(refused.status, 401, "{:?} {}", refused.headers, refused.text());
    let passed = RawRequest::get("/").host(HOST).basic_auth(USER, PASSWORD).send_tls(address, HOST, ca_pem).await?;
    assert!(!matches!(passed.status, 301 | 302 | 307 | 308 | 401 | 403), "{} {:?}", passed.status, passed.headers);
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 3, "UINT8, FP32 and the 100 MB batch");
    Ok(())
}

/// Plain HTTP on port 80 is redirected to https, path and query kept.
async fn port_80_redirects_to_https(address: SocketAddr) -> Result<()> {
    let r = RawRequest::get("/v2/models/catnet?x=1").host(HOST).send(address).await?;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://ml.example.com/v2/models/catnet?x=1"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn eks_behind_the_nlb_serves_tls_clients_and_redirects_plain_http() -> Result<()> {
    let stack = FullStack::start_with("eks").await?;
    let nlb = Nlb::start(&stack.envoy.ports, &stack.certificates).await?;
    the_same_client_checks(&stack, nlb.https).await?;
    port_80_redirects_to_https(nlb.http).await
}

#[tokio::test(flavor = "multi_thread")]
async fn kind_with_tls_at_the_gateway_serves_the_same_clients() -> Result<()> {
    let stack = FullStack::start_with("kind").await?;
    let https = stack.envoy.ports[&443];
    the_same_client_checks(&stack, https).await?;
    port_80_redirects_to_https(stack.envoy.ports[&80]).await
}

/// The EKS install options and the overlay agree on what the NLB forwards where: one gateway Service whose 443
/// goes to the Gateway's 443 server (plain HTTP), and whose 80 goes to the redirecting one.
#[test]
fn the_eks_gateway_service_sends_443_to_the_plain_http_server() -> Result<()> {
    let text = std::fs::read_to_string(workspace::manifests_dir().join("istio/eks-gateway.yaml"))?;
    let options: serde_json::Value = serde_yaml_ng::from_str(&text)?;
    let k8s = &options["spec"]["components"]["ingressGateways"][0]["k8s"];
    let ports = k8s["service"]["ports"].as_array().cloned().unwrap_or_default();
    let target = |port: u64| ports.iter().find(|p| p["port"] == port).map(|p| p["targetPort"].clone());
    assert_eq!(target(443), Some(serde_json::json!(8443)));
    assert_eq!(target(80), Some(serde_json::json!(8080)));
    let annotations = &k8s["serviceAnnotations"];
    assert_eq!(annotations["service.beta.kubernetes.io/aws-load-balancer-alpn-policy"], "HTTP2Preferred");
    assert_eq!(annotations["service.beta.kubernetes.io/aws-load-balancer-backend-protocol"], "tcp");
    Ok(())
}
