//! The Kubernetes objects istiod reads from a cluster, for a gateway on loopback: the ingress gateway's Service
//! and Pod (so istiod binds the Gateway's ports at the Service's target ports), and for each upstream a Service
//! with its Pods and EndpointSlices at the addresses where the harness's servers listen.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const GATEWAY_NAMESPACE: &str = "istio-system";
/// The labels of Istio's default ingress gateway, which the manifests' selectors name.
pub fn gateway_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), "istio-ingressgateway".to_string()),
        ("istio".to_string(), "ingressgateway".to_string()),
    ])
}
pub const GATEWAY_POD: &str = "istio-ingressgateway-0";
/// The gateway Pod's address: Envoy's node says it runs there.
pub const GATEWAY_IP: &str = "127.0.0.1";

/// A port of the gateway Service: what clients use (`port`), where Envoy listens here (`target_port`, a free
/// port) and where it listens on a cluster (`install_target_port`, e.g. 8443).
#[derive(Debug, Clone)]
pub struct GatewayPort {
    pub name: String,
    pub port: u16,
    pub target_port: u16,
    pub install_target_port: u16,
}

/// The ingress gateway's Service and Pod as an install creates them: the Service's ports, its annotations (on EKS,
/// the ones that make the AWS Load Balancer Controller put an NLB in front) and the Pod's annotations
/// (`proxy.istio.io/config`, which istio-agent merges into the gateway's proxy config).
#[derive(Debug, Clone, Default)]
pub struct GatewayInstall {
    pub ports: Vec<GatewayPort>,
    pub service_annotations: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
}

/// The Pod annotation istio-agent reads its proxy config overrides from.
pub const PROXY_CONFIG_ANNOTATION: &str = "proxy.istio.io/config";

/// One backend of a Service: a Pod with its labels, listening at `addr`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub pod: String,
    pub labels: BTreeMap<String, String>,
    pub addr: SocketAddr,
}

#[derive(Debug, Default, Clone)]
pub struct World {
    objects: Vec<Value>,
}

fn pod(name: &str, namespace: &str, labels: &BTreeMap<String, String>, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "wasmgate/test"}], "serviceAccountName": "default"},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    /// Istio's ingress gateway as an install creates it: the `istio-ingressgateway` Service with `ports` (and the
    /// status port), and its Pod at [`GATEWAY_IP`].
    pub fn ingress_gateway(mut self, install: &GatewayInstall) -> Self {
        let labels = gateway_labels();
        let mut service_ports: Vec<Value> = install
            .ports
            .iter()
            .map(|p| json!({"name": p.name, "port": p.port, "targetPort": p.target_port, "protocol": "TCP"}))
            .collect();
        service_ports.push(json!({"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"}));
        self.objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": GATEWAY_NAMESPACE, "labels": labels,
                         "annotations": install.service_annotations},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": labels, "ports": service_ports}
        }));
        let mut gateway_pod = pod(GATEWAY_POD, GATEWAY_NAMESPACE, &labels, GATEWAY_IP);
        gateway_pod["metadata"]["annotations"] = json!(install.pod_annotations);
        self.objects.push(gateway_pod);
        self
    }

    /// Pods and EndpointSlices for a Service defined elsewhere (e.g. in the manifests): one slice per endpoint,
    /// each with the port named `port_name` at the endpoint's own port.
    pub fn endpoints(mut self, service: &str, namespace: &str, port_name: &str, endpoints: &[Endpoint]) -> Self {
        for endpoint in endpoints {
            let ip = endpoint.addr.ip().to_string();
            self.objects.push(pod(&endpoint.pod, namespace, &endpoint.labels, &ip));
            self.objects.push(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{service}-{}", endpoint.pod), "namespace": namespace,
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "ports": [{"name": port_name, "port": endpoint.addr.port(), "protocol": "TCP"}],
                "endpoints": [{"addresses": [ip], "conditions": {"ready": true},
                               "targetRef": {"kind": "Pod", "name": endpoint.pod, "namespace": namespace}}]
            }));
        }
        self
    }

    /// A Service of the harness's own, `port` (named after its protocol: `grpc` for HTTP/2 to the backend, as
    /// the model server and the recording upstream speak) in front of `endpoints`.
    pub fn service(self, name: &str, namespace: &str, port: u16, endpoints: &[Endpoint], cluster_ip: &str) -> Self {
        let mut world = self;
        world.objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "selector": {"app": name},
                     "ports": [{"name": "grpc", "port": port, "targetPort": "grpc", "appProtocol": "grpc"}]}
        }));
        world.endpoints(name, namespace, "grpc", endpoints)
    }

    /// Any object as a cluster would hold it (a Service or Secret of the manifests, a TLS Secret).
    pub fn object(mut self, object: Value) -> Self {
        self.objects.push(object);
        self
    }

    /// The objects as one YAML stream.
    pub fn to_yaml(&self) -> Result<String> {
        let mut out = String::new();
        for object in &self.objects {
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(object)?);
        }
        Ok(out)
    }
}

/// An image pull secret (`kubernetes.io/dockerconfigjson`) for `registry` (`host:port`), as `kubectl create secret
/// docker-registry` makes it, in the gateway's namespace, where istiod reads the plugins' secrets.
pub fn pull_secret(name: &str, registry: &str, (user, password): (&str, &str)) -> Value {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({"auths": {registry: {"auth": b64(&format!("{user}:{password}"))}}}).to_string();
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": GATEWAY_NAMESPACE},
        "data": {".dockerconfigjson": b64(&config)}
    })
}

/// The Kubernetes objects istiod would read from a rendered manifest (`Namespace`, `Service`, `Secret`); the
/// rest (Deployments, autoscalers, Istio resources) is not istiod's to read as Kubernetes objects.
pub fn cluster_objects(rendered: &str) -> Result<Vec<Value>> {
    Ok(objects(rendered)?
        .into_iter()
        .filter(|o| o["apiVersion"] == "v1" && matches!(o["kind"].as_str(), Some("Namespace" | "Service" | "Secret")))
        .collect())
}

fn objects(rendered: &str) -> Result<Vec<Value>> {
    serde_yaml_ng::Deserializer::from_str(rendered)
        .map(|doc| Ok(<Value as serde::Deserialize>::deserialize(doc)?))
        .filter(|o: &Result<Value>| o.as_ref().map_or(true, |o| !o.is_null()))
        .collect()
}

/// How a cluster would put a Deployment's pods behind a Service: the labels the pods get (what the Service's
/// selector and a DestinationRule's subsets match) and the name of the Service port their EndpointSlices carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedPods {
    pub labels: BTreeMap<String, String>,
    pub port_name: String,
}

/// The pods of `deployment` behind `service` (both in `namespace`) as a rendered manifest makes them, or why a
/// cluster would leave the Service without them: a selector the pod template's labels do not match, or a
/// `targetPort` that names no container port.
pub fn served_pods(rendered: &str, namespace: &str, service: &str, deployment: &str) -> Result<ServedPods> {
    let objects = objects(rendered)?;
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name && o["metadata"]["namespace"] == namespace)
            .with_context(|| format!("no {kind} {namespace}/{name} in the manifest"))
    };
    let (service_object, deployment_object) = (find("Service", service)?, find("Deployment", deployment)?);
    let labels: BTreeMap<String, String> =
        serde_json::from_value(deployment_object["spec"]["template"]["metadata"]["labels"].clone())
            .with_context(|| format!("Deployment {deployment}: its pod template's labels"))?;
    let selector: BTreeMap<String, String> = serde_json::from_value(service_object["spec"]["selector"].clone())
        .with_context(|| format!("Service {service}: its selector"))?;
    if let Some((key, value)) = selector.iter().find(|(k, v)| labels.get(*k) != Some(*v)) {
        bail!("Service {service} selects {key}={value}, which Deployment {deployment}'s pods ({labels:?}) lack");
    }
    let port = service_object["spec"]["ports"].get(0).with_context(|| format!("Service {service} has no port"))?;
    let port_name = port["name"].as_str().with_context(|| format!("Service {service}: an unnamed port"))?;
    if let Some(target) = port["targetPort"].as_str() {
        let containers = deployment_object["spec"]["template"]["spec"]["containers"].as_array();
        let mut named = containers.into_iter().flatten().flat_map(|c| c["ports"].as_array().into_iter().flatten());
        if !named.any(|p| p["name"] == target) {
            bail!("Service {service} targets port `{target}`, which no container of Deployment {deployment} names");
        }
    }
    Ok(ServedPods { labels, port_name: port_name.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::served_pods;

    const RENDERED: &str = "\
apiVersion: v1
kind: Service
metadata: {name: inference, namespace: ml}
spec:
  selector: {app: inference}
  ports: [{name: grpc, port: 8500, targetPort: grpc}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: inference, namespace: ml}
spec:
  template:
    metadata: {labels: {app: inference, track: stable}}
    spec:
      containers: [{name: server, ports: [{name: grpc, containerPort: 8500}]}]
";

    #[test]
    fn the_pods_get_their_templates_labels_and_the_services_port_name() {
        let served = served_pods(RENDERED, "ml", "inference", "inference").unwrap();
        assert_eq!(served.labels["track"], "stable");
        assert_eq!(served.port_name, "grpc");
    }

    #[test]
    fn a_selector_the_pods_do_not_match_or_an_unnamed_target_port_is_an_error() {
        let typo = RENDERED.replace("labels: {app: inference,", "labels: {app: inferense,");
        let error = served_pods(&typo, "ml", "inference", "inference").unwrap_err().to_string();
        assert!(error.contains("selects app=inference"), "{error}");
        let port = RENDERED.replace("{name: grpc, containerPort", "{name: http, containerPort");
        let error = served_pods(&port, "ml", "inference", "inference").unwrap_err().to_string();
        assert!(error.contains("targets port `grpc`"), "{error}");
        assert!(served_pods(RENDERED, "ml", "inference", "missing").is_err());
    }
}
