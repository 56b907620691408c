"""The validator accepts the committed overlays and catches each kind of broken object."""
import copy
import os

import pytest

import validate

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def crds():
    if not os.path.exists(validate.DEFAULT_CRDS):
        pytest.skip(f"Istio CRD schemas not found at {validate.DEFAULT_CRDS} (set ISTIO_CRDS)")
    return validate.load_crds(validate.DEFAULT_CRDS)


@pytest.fixture(scope="module")
def rendered():
    return {o: validate.render(os.path.join(HERE, "overlays", o)) for o in ("kind", "kind-suite", "eks", "eks-suite")}


def find(objs, kind, name):
    return copy.deepcopy(next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name))


@pytest.mark.parametrize("overlay", ["kind", "kind-suite", "eks", "eks-suite"])
def test_overlays_render_and_validate(crds, rendered, overlay):
    objs = rendered[overlay]
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


def test_pinned_sha256_passes(crds, rendered):
    obj = find(rendered["kind"], "WasmPlugin", "basic-auth")
    obj["spec"]["sha256"] = "a" * 64
    validate.validate_object(obj, crds)


@pytest.mark.parametrize("overlay", ["kind", "eks"])
def test_the_canary_deployment_is_the_stable_one_but_for_name_track_and_replicas(rendered, overlay):
    stable = find(rendered[overlay], "Deployment", "inference")
    canary = find(rendered[overlay], "Deployment", "inference-canary")
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


@pytest.mark.parametrize("overlay", ["kind-suite", "eks-suite"])
def test_the_suite_overlays_replace_the_three_plugins(rendered, overlay):
    plugins = {o["metadata"]["name"] for o in rendered[overlay] if o["kind"] == "WasmPlugin"}
    assert plugins == {"suite"}


def test_behind_the_nlb_the_443_server_speaks_plain_http(rendered):
    """The NLB terminates TLS and forwards plain TCP: a 443 server expecting TLS, or one that redirects to
    https, would answer every request with an error or a redirect to itself."""
    gateway = find(rendered["eks"], "Gateway", "ml-gateway")
    server = next(s for s in gateway["spec"]["servers"] if s["port"]["number"] == 443)
    assert server["port"]["protocol"] == "HTTP" and "tls" not in server


@pytest.mark.parametrize("overlay", ["kind", "eks", "kind-suite", "eks-suite"])
def test_the_gateway_service_is_the_one_istio_installs(rendered, overlay):
    """A second Service selecting the gateway's pods makes istiod's port resolution ambiguous: the ports are set
    through the install options (manifests/istio/*-gateway.yaml), not by another Service."""
    assert not [o for o in rendered[overlay] if o["kind"] == "Service" and o["metadata"]["namespace"] == "istio-system"]


def test_kind_keeps_tls_at_the_gateway(rendered):
    gateway = find(rendered["kind"], "Gateway", "ml-gateway")
    server = next(s for s in gateway["spec"]["servers"] if s["port"]["number"] == 443)
    assert server["port"]["protocol"] == "HTTPS" and server["tls"]["credentialName"]
