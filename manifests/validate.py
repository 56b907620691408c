#!/usr/bin/env python3
"""Offline validation of the rendered manifests, as strict as an API server with field validation on:
Kubernetes kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, strict), Istio kinds against
Istio's CRD schemas with unknown fields refused, a PrometheusRule's rules by Prometheus's own `promtool`.

usage: validate.py [--istio-crds FILE] [--kubernetes-version V] (CHART_DIR | FILE.yaml)...
A chart is rendered with `helm template` ($WASMGATE_HELM, else the project's target/helm, else helm) and its
default values; a file is read as rendered YAML.
"""
import argparse
import copy
import os
import subprocess
import sys
import tempfile

import jsonschema
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CRDS = os.environ.get(
    "ISTIO_CRDS", os.path.join(HERE, "..", "..", "shared", "schemas", "istio", "crd-all.gen.yaml"))
KUBERNETES_VERSION = "1.33"


def strict(schema):
    """The schema with `additionalProperties: false` wherever an object lists its properties and does not
    declare itself open: unknown fields are errors, as with kubectl's strict field validation."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def load_crds(path):
    """{(group, version, kind): strict schema} from a file of CustomResourceDefinitions."""
    schemas = {}
    with open(path) as f:
        for crd in yaml.safe_load_all(f):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema:
                    schema = copy.deepcopy(schema)
                    # apiVersion, kind and metadata are the API server's own, not in the CRD schema.
                    props = schema.setdefault("properties", {})
                    props.update({"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                  "metadata": {"type": "object"}})
                    schemas[(group, version["name"], kind)] = strict(schema)
    return schemas


def validate_object(obj, crds, kubernetes_version=KUBERNETES_VERSION):
    """Raises ValueError naming the object and the problem."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion", "")
    name = f"{kind}/{obj.get('metadata', {}).get('name')}"
    if not obj.get("metadata", {}).get("name"):
        raise ValueError(f"{name}: metadata.name is required")
    group, _, version = api_version.rpartition("/")
    if (api_version, kind) == ("monitoring.coreos.com/v1", "PrometheusRule"):
        validate_prometheus_rule(name, obj)
        return
    if group.endswith("istio.io"):
        schema = crds.get((group, version, kind))
        if schema is None:
            raise ValueError(f"{name}: no Istio schema for {api_version} {kind}")
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            raise ValueError(f"{name}: {'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}")
        return
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
        raise ValueError(f"{name}: {e}") from e


CHART = os.path.join(HERE, "..", "charts", "wasmgate")


def helm():
    built = os.path.join(HERE, "..", "target", "helm")
    return os.environ.get("WASMGATE_HELM") or (built if os.path.exists(built) else "helm")


def values_files(deployment, chart=CHART):
    """The values files of one of the project's deployments: `default` none, `eks-suite` values-eks.yaml then
    values-suite.yaml (as the Makefile and `wasmgate::chart` name them)."""
    if deployment == "default":
        return []
    return [os.path.join(chart, f"values-{part}.yaml") for part in deployment.split("-")]


def helm_template(chart=CHART, values=(), sets=(), release="wasmgate"):
    command = [helm(), "template", release, chart, "--namespace", "istio-system"]
    for file in values:
        command += ["--values", file]
    for assignment in sets:
        command += ["--set", assignment]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"helm template: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate_prometheus_rule(name, obj):
    """The Prometheus Operator's CRD schema is not at hand: its spec (`groups`, exactly a rules file) goes through
    Prometheus's own parser, `promtool check rules`."""
    spec = obj.get("spec") or {}
    if set(spec) != {"groups"}:
        raise ValueError(f"{name}: spec must hold exactly `groups`, not {sorted(spec)}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as rules:
        yaml.safe_dump(spec, rules)
        rules.flush()
        result = subprocess.run(["promtool", "check", "rules", rules.name], capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"{name}: promtool check rules: {result.stdout.strip()} {result.stderr.strip()}")


def render(path):
    if os.path.isdir(path):
        return helm_template(path)
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--istio-crds", default=DEFAULT_CRDS)
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args()
    if not os.path.exists(args.istio_crds):
        sys.exit(f"Istio CRD schemas not found at {args.istio_crds}: set ISTIO_CRDS or pass --istio-crds")
    crds = load_crds(args.istio_crds)
    failed = 0
    for path in args.paths:
        for obj in render(path):
            try:
                validate_object(obj, crds, args.kubernetes_version)
                print(f"ok      {path}: {obj['kind']}/{obj['metadata']['name']}")
            except ValueError as e:
                failed += 1
                print(f"FAILED  {path}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
