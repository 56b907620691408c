#!/usr/bin/env bash
# The kind e2e: the kind overlay on a real Kubernetes cluster with Istio, then the local e2e's client checks
# (auth, limits, routing, inference) against its ingress gateway.
#
#   e2e/kind/run.sh [--keep]     --keep leaves the cluster and the registry running afterwards
#
# Needs a running Docker engine and kind; without them it prints "skipped: needs docker and kind" and exits 0.
# Also needs kubectl and istioctl, and `make setup` done (Rust, .venv with tritonclient).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=${KIND_CLUSTER:-wasmgate}
REGISTRY=kind-registry
REGISTRY_PORT=5001
TAG=0.1.0
HOST=ml.example.com
CANARY_HOST=canary.ml.example.com
KEEP=0
if [[ ${1:-} == --keep ]]; then KEEP=1; fi

step() { printf '\n== %s\n' "$*"; }
die() { printf 'kind e2e failed: %s\n' "$*" >&2; exit 1; }

if ! command -v docker >/dev/null 2>&1 || ! command -v kind >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "skipped: needs docker and kind (a running Docker engine and the kind binary)"
  exit 0
fi
for tool in kubectl istioctl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

WORK=$(mktemp -d)
cleanup() {
  rm -rf "$WORK"
  if [[ $KEEP == 0 ]]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    docker rm -f "$REGISTRY" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

step "1. local registry: $REGISTRY, localhost:$REGISTRY_PORT from this machine"
if [[ $(docker inspect -f '{{.State.Running}}' "$REGISTRY" 2>/dev/null || true) != true ]]; then
  docker run -d --restart=always -p "127.0.0.1:${REGISTRY_PORT}:5000" --name "$REGISTRY" registry:2 >/dev/null
fi

step "2. kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config "$ROOT/e2e/kind/cluster.yaml" --wait 180s
fi
docker network connect kind "$REGISTRY" 2>/dev/null || true
# Nodes pull localhost:5001/... (the model server image) from the registry container.
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:${REGISTRY_PORT}"
  printf '[host."http://%s:5000"]\n' "$REGISTRY" |
    docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:${REGISTRY_PORT}/hosts.toml"
done

step "3. Istio: default profile with the mesh settings in manifests/istio (ingress gateway labelled istio=ingressgateway)"
istioctl install -y -f "$ROOT/manifests/istio/istio-operator.yaml" -f "$ROOT/manifests/istio/kind-gateway.yaml"
kubectl -n istio-system rollout status deploy/istio-ingressgateway --timeout=300s

step "4. images: plugins (pinned by digest into an overlay on top of overlays/kind) and the model server"
make -C "$ROOT" build
(cd "$ROOT" && cargo run -q --release -p wasmgate -- image push --insecure \
  --registry "localhost:${REGISTRY_PORT}/wasmgate" --tag "$TAG" \
  --pin-overlay "$WORK/overlay" --base "$ROOT/manifests/overlays/kind" --pull-registry "$REGISTRY:5000/wasmgate" \
  dist/plugins/basic-auth.wasm dist/plugins/grpc-limits-requests.wasm dist/plugins/host-router.wasm)
docker build -q -f "$ROOT/inference/Dockerfile" -t "localhost:${REGISTRY_PORT}/wasmgate/inference:${TAG}" "$ROOT"
docker push -q "localhost:${REGISTRY_PORT}/wasmgate/inference:${TAG}"

step "5. TLS credential for the Gateway and the manifests"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$HOST" \
  -addext "subjectAltName=DNS:$HOST,DNS:$CANARY_HOST" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
kubectl -n istio-system create secret tls ml-example-com-tls --key "$WORK/tls.key" --cert "$WORK/tls.crt" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl kustomize --load-restrictor LoadRestrictionsNone "$WORK/overlay" > "$WORK/rendered.yaml"
kubectl apply -f "$WORK/rendered.yaml"

step "6. waiting for the model servers and the plugins"
kubectl -n ml-serving rollout status deploy/inference --timeout=600s
kubectl -n ml-serving rollout status deploy/inference-canary --timeout=600s
for _ in $(seq 1 60); do
  stats=$(kubectl -n istio-system exec deploy/istio-ingressgateway -c istio-proxy -- \
    pilot-agent request GET stats 2>/dev/null || true)
  if grep -q 'wasmgate.basic_auth' <<<"$stats"; then break; fi
  sleep 5
done
grep -q 'wasmgate.basic_auth' <<<"$stats" || die "the gateway never loaded the plugins (check istio-proxy logs)"

step "7. client checks through the gateway (https://$HOST via 127.0.0.1:30443)"
PY="$ROOT/.venv/bin/python"
"$PY" "$ROOT/e2e/clients/triton_check.py" 127.0.0.1:30443 --authority "$HOST" --tls-ca "$WORK/tls.crt" \
  --basic-auth username:password
"$PY" "$ROOT/e2e/clients/gateway_check.py" 127.0.0.1:30443 --tls-ca "$WORK/tls.crt" \
  --host "$HOST" --canary-host "$CANARY_HOST" --basic-auth username:password
canary_calls=$(kubectl -n ml-serving logs deploy/inference-canary | grep -c '"ModelInfer"' || true)
[[ $canary_calls -ge 1 ]] || die "the canary host never reached the canary Deployment"

echo
echo "kind e2e passed"
