//! A test certificate authority and the gateway hosts' certificate it signs, as PEM files in a temporary
//! directory: what the NLB presents with the EKS values (an ACM certificate there) and the Gateway's
//! `credentialName` secret holds with the kind values.

use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use std::path::PathBuf;

pub struct TestCertificates {
    dir: tempfile::TempDir,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCertificates {
    /// A CA and a certificate for `hosts` signed by it.
    pub fn new(hosts: &[&str]) -> Result<Self> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "wasmgate test CA");
        let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, hosts.first().copied().unwrap_or("localhost"));
        let cert = params.signed_by(&key, &issuer)?;
        let certs = Self {
            dir: tempfile::tempdir()?,
            ca_pem: issuer.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        for (name, pem) in [("ca.pem", &certs.ca_pem), ("cert.pem", &certs.cert_pem), ("key.pem", &certs.key_pem)] {
            std::fs::write(certs.dir.path().join(name), pem)?;
        }
        Ok(certs)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// The `kubernetes.io/tls` Secret `name` in `namespace` holding the certificate, as `kubectl create secret
    /// tls` makes it.
    pub fn secret(&self, name: &str, namespace: &str) -> Value {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": b64(&self.cert_pem), "tls.key": b64(&self.key_pem)}
        })
    }
}
