"""The chart, rendered by the real Helm for each deployment, passes the validator, which catches each kind of
broken object; and what the chart makes of its values."""
import copy
import os
import subprocess

import json

import pytest
import yaml

import validate

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def crds():
    if not os.path.exists(validate.DEFAULT_CRDS):
        pytest.skip(f"Istio CRD schemas not found at {validate.DEFAULT_CRDS} (set ISTIO_CRDS)")
    return validate.load_crds(validate.DEFAULT_CRDS)


DEPLOYMENTS = ("default", "kind", "kind-suite", "eks", "eks-suite")


@pytest.fixture(scope="module")
def rendered():
    return {d: validate.helm_template(values=validate.values_files(d)) for d in DEPLOYMENTS}


def find(objs, kind, name):
    return copy.deepcopy(next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name))


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_each_deployment_renders_and_validates(crds, rendered, deployment):
    objs = rendered[deployment]
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Gateway", "VirtualService",
            "DestinationRule", "WasmPlugin"} <= kinds
    for obj in objs:
        validate.validate_object(obj, crds)


def broken(rendered, kind, name, change):
    obj = find(rendered["kind"], kind, name)
    change(obj)
    return obj


@pytest.mark.parametrize("kind,name,change,message", [
    ("Deployment", "inference", lambda o: o["spec"].update(replicas="two"), "replicas"),
    ("Deployment", "inference", lambda o: o["spec"].update(replica=2), "replica"),
    ("Service", "inference", lambda o: o["spec"]["ports"][0].update(port="grpc"), "port"),
    ("WasmPlugin", "basic-auth", lambda o: o["spec"].update(phase="AUTHORIZE"), "phase"),
    ("WasmPlugin", "basic-auth", lambda o: o["spec"].update(sha256="sha256:" + "a" * 64), "sha256"),
    ("WasmPlugin", "grpc-limits", lambda o: o["spec"].update(failStrategy="FAIL_SOMETIMES"), "failStrategy"),
    ("WasmPlugin", "host-router", lambda o: o["spec"].update(pluginconfig={}), "pluginconfig"),
    ("VirtualService", "inference", lambda o: o["spec"]["http"][0].update(rout=[]), "rout"),
    ("Gateway", "ml-gateway", lambda o: o["spec"]["servers"][0]["port"].update(number="eighty"), "number"),
])
def test_broken_objects_are_caught(crds, rendered, kind, name, change, message):
    obj = broken(rendered, kind, name, change)
    with pytest.raises(ValueError, match=message):
        validate.validate_object(obj, crds)


@pytest.mark.parametrize("change,message", [
    (lambda spec: spec["groups"][0]["rules"][0].update(expr="sum(rate(x[5m])"), "promtool"),
    (lambda spec: spec.update(rules=[]), "exactly `groups`"),
])
def test_a_broken_prometheus_rule_is_caught(crds, rendered, change, message):
    rule = find(rendered["eks"], "PrometheusRule", "wasmgate")
    change(rule["spec"])
    with pytest.raises(ValueError, match=message):
        validate.validate_object(rule, crds)


def test_pinned_sha256_passes(crds, rendered):
    obj = find(rendered["kind"], "WasmPlugin", "basic-auth")
    obj["spec"]["sha256"] = "a" * 64
    validate.validate_object(obj, crds)


@pytest.mark.parametrize("deployment", ["kind", "eks"])
def test_the_canary_deployment_is_the_stable_one_but_for_name_track_and_replicas(rendered, deployment):
    stable = find(rendered[deployment], "Deployment", "inference")
    canary = find(rendered[deployment], "Deployment", "inference-canary")
    assert canary["spec"]["template"]["metadata"]["labels"]["track"] == "canary"
    assert canary["spec"]["selector"]["matchLabels"] == {"app": "inference", "track": "canary"}
    for obj, track in ((stable, "stable"), (canary, "canary")):
        obj["metadata"]["name"] = "x"
        obj["spec"]["replicas"] = 0
        for labels in (obj["metadata"]["labels"], obj["spec"]["selector"]["matchLabels"],
                       obj["spec"]["template"]["metadata"]["labels"]):
            assert labels["track"] == track
            labels["track"] = "x"
    assert stable == canary


@pytest.mark.parametrize("deployment", ["kind-suite", "eks-suite"])
def test_the_suite_replaces_the_three_plugins(rendered, deployment):
    plugins = {o["metadata"]["name"] for o in rendered[deployment] if o["kind"] == "WasmPlugin"}
    assert plugins == {"suite"}


@pytest.mark.parametrize("deployment", ["eks", "eks-suite"])
def test_on_eks_every_plugin_pulls_with_the_secret_the_refresher_keeps(rendered, deployment):
    plugins = [o for o in rendered[deployment] if o["kind"] == "WasmPlugin"]
    assert plugins and all(p["spec"]["imagePullSecret"] == "ecr-pull" for p in plugins)
    role = find(rendered[deployment], "Role", "wasmgate-pull-secret-refresher")
    named = [r for r in role["rules"] if set(r["verbs"]) & {"get", "patch", "update"}]
    assert named == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["ecr-pull"],
                      "verbs": ["get", "patch", "update"]}], "only the one Secret"
    # The Secret is written before the WasmPlugins that pull with it (a Job, with its own account, as hooks before
    # the release's objects, removed once they ran), and then well inside the 12 hours an ECR password lasts.
    job = find(rendered[deployment], "Job", "wasmgate-pull-secret")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    cron = find(rendered[deployment], "CronJob", "wasmgate-pull-secret")
    hours = cron["spec"]["schedule"].split()[1]
    assert hours.startswith("*/") and int(hours[2:]) < 12
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]
    accounts = {}
    for run in (pod, job["spec"]["template"]):
        name = run["spec"].pop("serviceAccountName")
        accounts[name] = find(rendered[deployment], "ServiceAccount", name)
        role = find(rendered[deployment], "RoleBinding", name)
        assert role["subjects"][0]["name"] == name and role["roleRef"]["name"] == name
    assert pod == job["spec"]["template"], "the Job's pod is the CronJob's"
    for name, account in accounts.items():
        annotations = account["metadata"]["annotations"]
        assert annotations["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::"), name
    assert "helm.sh/hook" not in accounts["wasmgate-pull-secret-refresher"]["metadata"]["annotations"]
    hook = accounts["wasmgate-pull-secret-refresher-hook"]["metadata"]["annotations"]
    assert hook["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert pod["spec"]["initContainers"][0]["args"][:3] == ["aws", "ecr", "get-login-password"]
    secret_env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert secret_env["SECRET"] == "ecr-pull" and secret_env["SERVER"].endswith(".amazonaws.com")


@pytest.mark.parametrize("deployment", ["default", "kind"])
def test_without_a_pull_secret_there_is_no_refresher(rendered, deployment):
    kinds = {o["kind"] for o in rendered[deployment]}
    assert not kinds & {"CronJob", "Job", "Role", "ServiceAccount"}
    assert all("imagePullSecret" not in o["spec"] for o in rendered[deployment] if o["kind"] == "WasmPlugin")


def test_the_hpa_owns_the_stable_replica_count(rendered):
    """With the HPA on, a `helm upgrade` must not reset the replicas it chose: the stable Deployment leaves the
    count out. Without it, the value is the count."""
    assert "replicas" not in find(rendered["default"], "Deployment", "inference")["spec"]
    fixed = validate.helm_template(sets=["inference.autoscaling.enabled=false", "inference.replicas=3"])
    assert find(fixed, "Deployment", "inference")["spec"]["replicas"] == 3
    assert not [o for o in fixed if o["kind"] == "HorizontalPodAutoscaler"]


def test_without_the_canary_no_route_or_subset_names_it(crds):
    objs = validate.helm_template(sets=["inference.canary.enabled=false"])
    assert not [o for o in objs if o["metadata"]["name"] == "inference-canary"]
    subsets = [s["name"] for s in find(objs, "DestinationRule", "inference")["spec"]["subsets"]]
    routes = [r["route"][0]["destination"]["subset"] for r in find(objs, "VirtualService", "inference")["spec"]["http"]]
    assert subsets == ["stable", "stable-health"] and routes == ["stable-health", "stable"]
    for obj in objs:
        validate.validate_object(obj, crds)


def test_the_prometheus_rule_is_the_plain_rules_file(tmp_path):
    objs = validate.helm_template(sets=["monitoring.prometheusRule.enabled=true",
                                        "monitoring.prometheusRule.labels.release=prometheus"])
    rule = find(objs, "PrometheusRule", "wasmgate")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    with open(os.path.join(validate.CHART, "files", "wasmgate-rules.yaml")) as f:
        assert rule["spec"] == yaml.safe_load(f)
    # And Prometheus reads it.
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    subprocess.run(["promtool", "check", "rules", str(rules)], check=True, capture_output=True)


def test_the_dashboard_config_map_holds_the_dashboard():
    objs = validate.helm_template(sets=["monitoring.grafanaDashboard.enabled=true"])
    config_map = find(objs, "ConfigMap", "wasmgate-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    with open(os.path.join(validate.CHART, "files", "wasmgate-dashboard.json")) as f:
        assert json.loads(config_map["data"]["wasmgate.json"]) == json.load(f)


@pytest.mark.parametrize("assignment,field", [
    ("layout=both", "/layout"),
    ("gateway.tls=none", "/gateway/tls"),
    ("images.digests.basic-auth=sha256:" + "a" * 64, "/images/digests/basic-auth"),
    ("inference.replica=3", "replica"),
    ("pullSecretRefresher.schedule=hourly", "/pullSecretRefresher/schedule"),
])
def test_a_bad_value_is_refused_with_its_field(assignment, field):
    with pytest.raises(ValueError, match=field):
        validate.helm_template(sets=[assignment])


def test_the_refresher_needs_the_secret_it_refreshes():
    with pytest.raises(ValueError, match="images.pullSecret"):
        validate.helm_template(sets=["pullSecretRefresher.enabled=true", "pullSecretRefresher.server=r.example"])


def test_behind_the_nlb_the_443_server_speaks_plain_http(rendered):
    """The NLB terminates TLS and forwards plain TCP: a 443 server expecting TLS, or one that redirects to
    https, would answer every request with an error or a redirect to itself."""
    gateway = find(rendered["eks"], "Gateway", "ml-gateway")
    server = next(s for s in gateway["spec"]["servers"] if s["port"]["number"] == 443)
    assert server["port"]["protocol"] == "HTTP" and "tls" not in server


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_the_gateway_service_is_the_one_istio_installs(rendered, deployment):
    """A second Service selecting the gateway's pods makes istiod's port resolution ambiguous: the ports are set
    through the install options (manifests/istio/*-gateway.yaml), not by another Service."""
    assert not [o for o in rendered[deployment]
                if o["kind"] == "Service" and o["metadata"]["namespace"] == "istio-system"]


def test_kind_keeps_tls_at_the_gateway(rendered):
    gateway = find(rendered["kind"], "Gateway", "ml-gateway")
    server = next(s for s in gateway["spec"]["servers"] if s["port"]["number"] == 443)
    assert server["port"]["protocol"] == "HTTPS" and server["tls"]["credentialName"]


def test_the_readmes_argo_cd_application_points_at_the_chart_and_its_values():
    """The README's Argo CD example: its path is the chart, its value files are the chart's, and the chart renders
    with them as Argo CD would (the release name and namespace it gives)."""
    with open(os.path.join(HERE, "..", "README.md")) as f:
        blocks = f.read().split("```yaml\n")[1:]
    apps = [yaml.safe_load(b.split("```")[0]) for b in blocks if "kind: Application" in b]
    assert len(apps) == 1
    source = apps[0]["spec"]["source"]
    chart = os.path.join(HERE, "..", source["path"])
    assert os.path.samefile(chart, validate.CHART)
    values = [os.path.join(chart, v) for v in source["helm"]["valueFiles"]]
    assert all(os.path.isfile(v) for v in values), values
    assert apps[0]["spec"]["destination"]["namespace"] == "istio-system"
    objs = validate.helm_template(values=values)
    assert {o["metadata"]["name"] for o in objs if o["kind"] == "WasmPlugin"} == {"basic-auth", "grpc-limits",
                                                                               "host-router"}


def istio_chart(name):
    """One of Istio's own Helm charts, from the istio.io/istio module e2e/istiod pins (the Istio the tests run)."""
    module = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio"], check=True, text=True,
                            capture_output=True, cwd=os.path.join(HERE, "..", "e2e", "istiod")).stdout.strip()
    return os.path.join(module, "manifests", "charts", name)


def test_istios_gateway_chart_with_the_eks_values_makes_the_gateway_istioctl_makes(crds):
    """Installing the ingress gateway with Helm (Istio's `gateway` chart and eks-gateway-values.yaml) gives the
    Service and Pod the IstioOperator options give istioctl: the NLB's annotations, the target ports the plugins
    attach to, PROXY protocol on the Pod, and the label the chart's WasmPlugins select."""
    with open(os.path.join(HERE, "istio", "eks-gateway.yaml")) as f:
        options = yaml.safe_load(f)["spec"]["components"]["ingressGateways"][0]["k8s"]
    objs = validate.helm_template(chart=istio_chart("gateway"), release="istio-ingressgateway",
                                  values=[os.path.join(HERE, "istio", "eks-gateway-values.yaml")])
    service = find(objs, "Service", "istio-ingressgateway")
    assert service["spec"]["type"] == options["service"]["type"]
    assert service["metadata"]["annotations"] == options["serviceAnnotations"]
    ports = [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]]
    assert ports == [(p["name"], p["port"], p["targetPort"]) for p in options["service"]["ports"]]
    pod = find(objs, "Deployment", "istio-ingressgateway")["spec"]["template"]["metadata"]
    assert options["podAnnotations"].items() <= pod["annotations"].items()
    with open(os.path.join(validate.CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    assert values["istio"]["gatewaySelector"].items() <= pod["labels"].items()
    https = next(p for p in service["spec"]["ports"] if p["port"] == 443)
    assert https["targetPort"] == values["gateway"]["pluginPort"], "the plugins attach to the 443 server's port"
    for obj in objs:
        validate.validate_object(obj, crds)
