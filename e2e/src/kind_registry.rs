//! A registry with a password inside the kind cluster: the stand-in for ECR in the pull-secret refresher's test.
//! Debian's docker-registry (the image run.sh's own registry runs) with htpasswd auth and a challenge realm
//! istio-agent follows (an https URL on a public name, as ECR's), its data on the node so that it outlives the
//! restart a password change needs (the registry reads its htpasswd file once). Beside it, the Secret that stands
//! for the cloud's token API: the refresher's token command reads the registry's current password there, as
//! `aws ecr get-login-password` asks ECR for one.

use crate::kind::{Cluster, GATEWAY_NAMESPACE};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};

pub const NAMESPACE: &str = "wasmgate-pull-test";
/// The registry as istio-agent reaches it (manifests/istio/kind-gateway.yaml lets it speak plain HTTP).
pub const HOST: &str = "auth-registry.wasmgate-pull-test.svc.cluster.local:5000";
pub const USER: &str = "puller";
/// The Secret whose `password` the token command prints: the "cloud's" current registry password.
pub const PASSWORD_SECRET: &str = "registry-password";
/// The image run.sh's registry runs, as the node pulls it (e2e/kind/build.sh's REGISTRY_IMAGE).
const IMAGE: &str = "localhost:5001/wasmgate-kind/registry:1";

/// The namespace, the registry (its config, its htpasswd Secret, Deployment and Service), the password Secret,
/// and a Role that lets the refresher's accounts read that one Secret (as an IAM role lets them ask for a token).
pub fn objects(password: &str) -> Result<Vec<Value>> {
    let config = "version: 0.1\nlog: {level: warn}\n\
                  storage: {filesystem: {rootdirectory: /var/lib/registry}, delete: {enabled: true}}\n\
                  http: {addr: \":5000\", secret: wasmgate-pull-test}\n\
                  auth: {htpasswd: {realm: \"https://registry.example.com/\", path: /auth/htpasswd}}\n";
    let meta = |name: &str| json!({"name": name, "namespace": NAMESPACE});
    let labels = json!({"app": "auth-registry"});
    let refresher_accounts = ["wasmgate-pull-secret-refresher", "wasmgate-pull-secret-refresher-hook"]
        .map(|name| json!({"kind": "ServiceAccount", "name": name, "namespace": GATEWAY_NAMESPACE}));
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("auth-registry"), "data": {"config.yml": config}}),
    ];
    objects.extend(password_secrets(password)?);
    objects.extend([
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("auth-registry"),
            "spec": {
                "replicas": 1, "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [{
                        "name": "registry", "image": IMAGE,
                        "command": ["/usr/bin/docker-registry", "serve", "/config/config.yml"],
                        "ports": [{"containerPort": 5000}],
                        "readinessProbe": {"tcpSocket": {"port": 5000}, "periodSeconds": 1},
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/config"},
                            {"name": "auth", "mountPath": "/auth"},
                            {"name": "data", "mountPath": "/var/lib/registry"},
                        ],
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "auth-registry"}},
                        {"name": "auth", "secret": {"secretName": "auth-registry-htpasswd"}},
                        {"name": "data", "hostPath": {"path": "/var/lib/wasmgate-pull-test-registry", "type": "DirectoryOrCreate"}},
                    ],
                }},
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": meta("auth-registry"),
            "spec": {"selector": labels, "ports": [{"port": 5000, "targetPort": 5000}]},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("read-registry-password"),
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [PASSWORD_SECRET], "verbs": ["get"]}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("read-registry-password"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-registry-password"},
            "subjects": refresher_accounts,
        }),
    ]);
    Ok(objects)
}

/// The registry's htpasswd Secret and the password Secret, for `password`: what a rotation changes.
pub fn password_secrets(password: &str) -> Result<[Value; 2]> {
    let secret = |name: &str, key: &str, value: String| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
               "stringData": {key: value}})
    };
    Ok([
        secret("auth-registry-htpasswd", "htpasswd", crate::registry::htpasswd(USER, password)?),
        secret(PASSWORD_SECRET, "password", password.to_owned()),
    ])
}

/// The refresher's token command here: the registry's current password, from its Secret.
pub fn token_command() -> Value {
    json!([
        "sh",
        "-c",
        format!("kubectl -n {NAMESPACE} get secret {PASSWORD_SECRET} -o jsonpath='{{.data.password}}' | base64 -d")
    ])
}

/// `kubectl port-forward` to the registry's Service: the registry on this machine's loopback while it lives.
pub struct PortForward {
    child: Child,
    pub addr: SocketAddr,
}

impl PortForward {
    pub fn start(cluster: &Cluster) -> Result<Self> {
        let mut child = cluster
            .kubectl_command(&["-n", NAMESPACE, "port-forward", "service/auth-registry", ":5000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running kubectl port-forward")?;
        let stdout = child.stdout.take().context("port-forward's output")?;
        // "Forwarding from 127.0.0.1:40527 -> 5000"
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let Some(addr) = line.split_whitespace().nth(2).and_then(|a| a.parse().ok()) else {
            let _ = child.kill();
            bail!("kubectl port-forward said {line:?}");
        };
        // It writes a line for each connection, and stops forwarding when it cannot: read them all.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        Ok(Self { child, addr })
    }

    /// Pushes each plugin image (`dist/plugins/<image>.wasm`) as `wasmgate/<image>:<tag>`, with the password;
    /// the digests by image.
    pub async fn push(&self, images: &[&str], tag: &str, password: &str) -> Result<BTreeMap<String, String>> {
        let mut digests = BTreeMap::new();
        for image in images {
            let wasm = std::fs::read(crate::workspace::plugin_wasm(image)?)?;
            let host = self.addr.to_string();
            let (_, digest) = crate::registry::push_module(&host, image, &wasm, tag, Some((USER, password))).await?;
            digests.insert(image.to_string(), digest);
        }
        Ok(digests)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
