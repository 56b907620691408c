//! The EKS topology, configured by istiod from the chart's EKS values and driven by real clients over TLS: an NLB (a stand-in
//! here) terminates TLS with ALPN `h2,http/1.1` and forwards plain TCP to the gateway's 8080/8443 (the Gateway's 443
//! server speaks plain HTTP). The kind topology (TLS at the gateway from the Gateway's `credentialName`) runs the
//! same clients on a real cluster: e2e/tests/kind.rs.

use anyhow::{Context, Result};
use std::net::IpAddr;
use wasmgate_e2e::counters::BasicAuth;
use wasmgate_e2e::fixtures::{HOST, PASSWORD, USER};
use wasmgate_e2e::stack::{FullStack, roomy_bcrypt_budget};
use wasmgate_e2e::{RawRequest, deployment_checks, workspace};

#[tokio::test(flavor = "multi_thread")]
async fn eks_behind_the_nlb_serves_tls_clients_and_redirects_plain_http() -> Result<()> {
    let stack = FullStack::start_with("eks").await?;
    let nlb = stack.envoy.nlb.as_ref().context("the EKS install puts an NLB in front")?;
    deployment_checks::over_tls(nlb.https, &stack.certificates).await?;
    assert_eq!(stack.stable.stats.snapshot().infer_ok, 3, "UINT8, FP32 and the 100 MB batch");
    deployment_checks::port_80_redirects_to_https(nlb.http).await
}

/// Behind the NLB every client arrives from the NLB's address unless the NLB says who it is: with PROXY protocol v2
/// (the Service's annotation for the NLB, the Pod's proxy config for the gateway), basic-auth's lockout holds the
/// client that guessed, not every client of the NLB.
#[tokio::test(flavor = "multi_thread")]
async fn behind_the_nlb_wrong_passwords_lock_out_only_the_client_that_sent_them() -> Result<()> {
    // The committed config, with room for the guesses' bcrypt checks: this is about whom the lockout holds.
    let stack = FullStack::start_overriding("eks", &roomy_bcrypt_budget()?).await?;
    let nlb = stack.envoy.nlb.as_ref().context("the EKS install puts an NLB in front")?;
    assert!(nlb.proxy_protocol, "the EKS gateway Service asks the NLB for PROXY protocol v2");
    let (guesser, other) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
    let attempt = |from: IpAddr, user: &str, password: &str| {
        RawRequest::get("/v2/health/ready").host(HOST).basic_auth(user, password).from(from)
    };
    // The shipped lockout: 20 wrong passwords from one address, for any users, lock that address.
    for i in 0..20 {
        let r = attempt(guesser, &format!("made-up-{i}"), "guess").send(nlb.plain_https).await?;
        assert_eq!(r.status, 401, "guess {i}");
    }
    let locked = attempt(guesser, USER, PASSWORD).send(nlb.plain_https).await?;
    assert_eq!(locked.status, 429, "the guesser is locked out, even with the right password");
    // Another client through the same NLB (its TLS listener too) signs in at once.
    let signed_in = attempt(other, USER, PASSWORD).send(nlb.plain_https).await?;
    assert!(!matches!(signed_in.status, 401 | 429), "{} {:?}", signed_in.status, signed_in.headers);
    let over_tls = attempt(other, USER, PASSWORD).send_tls(nlb.https, HOST, &stack.certificates.ca_pem).await?;
    assert!(!matches!(over_tls.status, 401 | 429), "{} {:?}", over_tls.status, over_tls.headers);
    assert_eq!(stack.counter(BasicAuth::DeniedLocked).await?, 1);
    // The gateway takes nothing that does not start with the header: a client cannot skip the NLB and name
    // itself, and the listener is not left open to connections without it.
    let direct =
        RawRequest::get("/v2/health/ready").host(HOST).basic_auth(USER, PASSWORD).send(stack.envoy.ports[&443]).await;
    assert!(direct.is_err(), "a connection without a PROXY header was answered: {:?}", direct.map(|r| r.status));
    Ok(())
}

/// The EKS install options and the chart agree on what the NLB forwards where: one gateway Service whose 443
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
