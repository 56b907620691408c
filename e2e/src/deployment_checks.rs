//! What a client of a deployed gateway checks, whichever way it was deployed (the loopback harness's topologies
//! and the kind cluster): real clients over TLS to the hosts' certificate, and plain HTTP redirected.

use crate::RawRequest;
use crate::clients;
use crate::fixtures::{CANARY_HOST, HOST, PASSWORD, USER};
use crate::tls::TestCertificates;
use anyhow::Result;
use std::net::SocketAddr;

/// Through `address` (TLS with `certs`): tritonclient's checks (health, metadata, classifications, a 100 MB
/// batch accepted), the gateway's own answers (wrong password UNAUTHENTICATED, 130 MiB RESOURCE_EXHAUSTED,
/// health without credentials, the canary host), and an HTTP/1.1 client that reaches the plugins and is never
/// redirected: on the 443 path a redirect would be to itself, for ever. Three model calls reach the stable
/// track and one the canary.
pub async fn over_tls(address: SocketAddr, certs: &TestCertificates) -> Result<()> {
    tritonclient(address, certs).await?;
    let ca = certs.ca_file().display().to_string();
    let credentials = format!("{USER}:{PASSWORD}");
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
    anyhow::ensure!(checks.lines().filter(|l| l.starts_with("ok: ")).count() == 5, "{checks}");
    let ca_pem = &certs.ca_pem;
    let refused = RawRequest::get("/").host(HOST).send_tls(address, HOST, ca_pem).await?;
    anyhow::ensure!(refused.status == 401, "{} {:?} {}", refused.status, refused.headers, refused.text());
    let passed = RawRequest::get("/").host(HOST).basic_auth(USER, PASSWORD).send_tls(address, HOST, ca_pem).await?;
    anyhow::ensure!(
        !matches!(passed.status, 301 | 302 | 307 | 308 | 401 | 403),
        "{} {:?}",
        passed.status,
        passed.headers
    );
    Ok(())
}

/// tritonclient's checks through `address`, signed in, over TLS with `certs`: health, metadata,
/// classifications, a 100 MB batch accepted. Three of its calls reach a model.
pub async fn tritonclient(address: SocketAddr, certs: &TestCertificates) -> Result<()> {
    let ca = certs.ca_file().display().to_string();
    let credentials = format!("{USER}:{PASSWORD}");
    let args = clients::args(address, &["--authority", HOST, "--basic-auth", &credentials, "--tls-ca", &ca]);
    clients::classified("triton_check.py", args).await?;
    Ok(())
}

/// Plain HTTP on port 80 is redirected to https, path and query kept.
pub async fn port_80_redirects_to_https(address: SocketAddr) -> Result<()> {
    let r = RawRequest::get("/v2/models/catnet?x=1").host(HOST).send(address).await?;
    anyhow::ensure!(r.status == 301, "{} {:?}", r.status, r.headers);
    anyhow::ensure!(
        r.header("location") == Some("https://ml.example.com/v2/models/catnet?x=1"),
        "{:?}",
        r.header("location")
    );
    Ok(())
}
