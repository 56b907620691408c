//! The kind cluster (`make e2e-kind`): Istio installed by istioctl as the README says, the kind overlay applied
//! unchanged with `kubectl apply -k`, the plugins pulled by the gateway pod's own istio-agent from a registry on
//! the cluster's network, the model server's image built from inference/Dockerfile, and real clients through the
//! gateway's node port. `#[ignore]`d in a plain `cargo test`: e2e/kind/run.sh starts the cluster and runs them.

use anyhow::{Context, Result};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use wasmgate_e2e::RawRequest;
use wasmgate_e2e::clients;
use wasmgate_e2e::deployment_checks;
use wasmgate_e2e::kind::{self, Cluster, GATEWAY_NAMESPACE, MODEL_NAMESPACE, eventually};
use wasmgate_e2e::stack::{CANARY_HOST, HOST, PASSWORD, USER, model_cluster};
use wasmgate_e2e::tls::TestCertificates;

const ROLLOUT: Duration = Duration::from_secs(300);
/// How long istio-agent may take to pull the three plugins after the WasmPlugins are applied.
const PLUGINS_PULLED: Duration = Duration::from_secs(120);

/// The kind overlay on the cluster, once per test run: the Gateway's TLS Secret (a test CA's certificate for both
/// hosts), `kubectl apply -k manifests/overlays/kind`, both model Deployments rolled out, and the gateway
/// answering with the plugins in place. The certificates, for the clients to trust.
async fn deployed() -> Result<(Cluster, &'static TestCertificates)> {
    static CERTS: OnceLock<TestCertificates> = OnceLock::new();
    static SETUP: Mutex<()> = Mutex::new(());
    let cluster = Cluster::from_env()?;
    let certs = {
        let _once = SETUP.lock().map_err(|_| anyhow::anyhow!("an earlier setup panicked"))?;
        match CERTS.get() {
            Some(certs) => certs,
            None => {
                let certs = TestCertificates::new(&[HOST, CANARY_HOST])?;
                cluster.apply(&certs.secret("ml-example-com-tls", GATEWAY_NAMESPACE))?;
                cluster.apply_overlay("kind")?;
                for deployment in ["inference", "inference-canary"] {
                    cluster.rolled_out(MODEL_NAMESPACE, deployment, ROLLOUT)?;
                }
                CERTS.get_or_init(|| certs)
            }
        }
    };
    eventually(PLUGINS_PULLED, || async { plugins_answer(&cluster, certs).await }).await?;
    Ok((cluster, certs))
}

/// The gateway serves TLS with the Secret's certificate, basic-auth refuses a call without credentials, and
/// every plugin's counters exist on the merged Prometheus endpoint (each plugin defines them when it starts).
async fn plugins_answer(cluster: &Cluster, certs: &TestCertificates) -> Result<()> {
    let r = RawRequest::get("/").host(HOST).send_tls(kind::HTTPS, HOST, &certs.ca_pem).await?;
    anyhow::ensure!(r.status == 401, "without credentials: {} {:?}", r.status, r.headers);
    let stats = cluster.gateway_get(15020, "/stats/prometheus")?;
    for plugin in ["basic_auth", "grpc_limits", "host_router"] {
        anyhow::ensure!(stats.contains(&format!("wasmgate_{plugin}_")), "no {plugin} counters yet");
    }
    Ok(())
}

fn metric(cluster: &Cluster, counter: &str) -> Result<f64> {
    // Istio's tag extraction turns `wasmcustom.wasmgate.<plugin>.<name>` into `wasmgate_<plugin>_<name>`.
    cluster.gateway_metric(&format!("wasmgate_{counter}"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the kind cluster: make e2e-kind"]
async fn real_clients_through_the_clusters_gateway() -> Result<()> {
    let (cluster, certs) = deployed().await?;
    let allowed = metric(&cluster, "basic_auth_allowed")?;
    let refused_too_big = metric(&cluster, "grpc_limits_refused_message_bytes")?;

    // tritonclient (its 100 MB batch accepted), the gateway's own answers (130 MiB refused), HTTP/1.1.
    deployment_checks::over_tls(kind::HTTPS, certs).await?;
    deployment_checks::port_80_redirects_to_https(kind::HTTP).await?;
    // TF Serving's own client, with the gateway's refusals.
    let ca = certs.ca_file().display().to_string();
    let credentials = format!("{USER}:{PASSWORD}");
    let args = ["--authority", HOST, "--basic-auth", &credentials, "--tls-ca", &ca, "--gateway"];
    let summary = clients::classified("tf_serving_check.py", clients::args(kind::HTTPS, &args)).await?;
    anyhow::ensure!(summary["wrong_password"].is_string() && summary["too_big"].is_string(), "{summary}");

    // The plugins counted it on the gateway pod's merged Prometheus endpoint.
    assert!(metric(&cluster, "basic_auth_allowed")? >= allowed + 20.0);
    assert!(metric(&cluster, "grpc_limits_refused_message_bytes")? >= refused_too_big + 2.0);
    assert!(metric(&cluster, "grpc_limits_request_bytes")? > 200_000_000.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the kind cluster: make e2e-kind"]
async fn model_pods_run_with_a_sidecar_and_the_gateway_reaches_them_over_mutual_tls() -> Result<()> {
    let (cluster, certs) = deployed().await?;
    let pods = cluster.get(MODEL_NAMESPACE, &["pods", "-l", "app=inference"])?;
    let pods = pods["items"].as_array().context("no pods")?;
    assert!(pods.len() >= 3, "two stable pods and one canary");
    for pod in pods {
        let containers = ["containers", "initContainers"]
            .iter()
            .flat_map(|list| pod["spec"][list].as_array().into_iter().flatten())
            .filter_map(|c| c["name"].as_str())
            .collect::<Vec<_>>();
        assert!(containers.contains(&"istio-proxy"), "{}: {containers:?}", pod["metadata"]["name"]);
    }

    // tritonclient's calls, a 100 MB one among them, reach the stable pods through a cluster whose transport is
    // Istio's mutual TLS. Istio's stats matcher keeps no cluster stats; the admin's per-host counters show where
    // the calls went.
    deployment_checks::tritonclient(kind::HTTPS, certs).await?;
    let stable = model_cluster("stable");
    let host_prefix = format!("{stable}::");
    let requests: u64 = cluster
        .gateway_admin("/clusters")?
        .lines()
        .filter_map(|l| l.strip_prefix(&host_prefix)?.split_once("::rq_total::")?.1.parse::<u64>().ok())
        .sum();
    assert!(requests >= 10, "{requests} requests to the stable pods");
    let clusters = cluster.gateway_admin("/config_dump?resource=dynamic_active_clusters")?;
    let dump: serde_json::Value = serde_json::from_str(&clusters)?;
    let stable_cluster = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["cluster"]["name"].as_str() == Some(stable.as_str()))
        .context("no stable cluster in the config dump")?;
    // Istio's mutual TLS: the workload certificate (SDS `default`) and the mesh's root (`ROOTCA`).
    let tls = serde_json::to_string(&stable_cluster["cluster"])?;
    assert!(tls.contains(r#""name":"default""#) && tls.contains(r#""name":"ROOTCA""#), "{tls}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the kind cluster: make e2e-kind"]
async fn the_api_server_accepts_the_hpa_and_pdb_and_the_hpa_reads_the_deployment() -> Result<()> {
    let (cluster, _) = deployed().await?;
    let hpa = cluster.get(MODEL_NAMESPACE, &["hpa/inference"])?;
    let conditions = hpa["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let able = conditions.iter().find(|c| c["type"] == "AbleToScale").context("no AbleToScale condition")?;
    assert_eq!((&able["status"], &able["reason"]), (&"True".into(), &"SucceededGetScale".into()), "{hpa}");
    // This cluster runs no metrics server, so the HPA cannot read CPU or memory: it says so, and scales nothing.
    if let Some(active) = conditions.iter().find(|c| c["type"] == "ScalingActive") {
        eprintln!("HPA ScalingActive: {} ({}): {}", active["status"], active["reason"], active["message"]);
    }
    let pdb = cluster.get(MODEL_NAMESPACE, &["pdb/inference"])?;
    assert_eq!(pdb["status"]["expectedPods"], 3, "the PDB covers both tracks: {pdb}");
    assert!(pdb["status"]["disruptionsAllowed"].as_u64() >= Some(1), "{pdb}");
    Ok(())
}
