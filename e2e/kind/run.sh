#!/usr/bin/env bash
# The kind e2e: a real Kubernetes cluster (kind) on this machine, everything it runs built here (e2e/kind/build.sh).
#
#   e2e/kind/run.sh [--keep | --keep-images | --down]
#
# At the end, also on failure, it deletes the cluster, the registry and the network, stops the Docker engine it
# started and removes that engine's images (its data root). --keep leaves all of it running; --keep-images removes
# all but the images, so that the next run builds only what changed. --down takes down what --keep left running.
#
# Steps: a Docker engine of its own (Debian's dockerd, runc behind runc-caps: this VM's kernel does not grant
# CAP_SYS_RESOURCE, which privileged containers such as kind's nodes ask for); the build; a network for the
# cluster with a registry container on it (Debian's docker-registry), which the node's containerd uses for
# registry.k8s.io, registry.istio.io, docker.io and localhost:5001 (certs.d); the cluster; Istio, installed as the
# deployment guide (docs/deployment.md) says; checks that they run; a Prometheus; our plugins pushed (make push); the
# tests through the cluster (e2e/tests/kind.rs), which install the chart with helm and its kind values.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT="$ROOT/target/kind"
BIN="$OUT/bin"
CLUSTER=${KIND_CLUSTER:-wasmgate}
KEEP=none
DOWN=0
case ${1:-} in
--keep) KEEP=all ;;
--keep-images) KEEP=images ;;
--down) DOWN=1 ;;
"") ;;
*)
  echo "usage: e2e/kind/run.sh [--keep | --keep-images | --down]" >&2
  exit 2
  ;;
esac

export DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER_HOST=unix:///run/wasmgate-docker.sock
DOCKER_ROOT=/var/lib/wasmgate-docker
# The cluster's network, made before the cluster so the registry is on it from the start.
export KIND_EXPERIMENTAL_DOCKER_NETWORK=wasmgate-kind
REGISTRY=127.0.0.1:5001
KUBECTL=(kubectl --context "kind-$CLUSTER")

step() { printf '\n== %s\n' "$*"; }
die() {
  printf 'kind e2e failed: %s\n' "$*" >&2
  exit 1
}
elapsed() { echo "$(($(date +%s) - $1)) s"; }

for tool in dockerd debootstrap skopeo kubectl go curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (make setup installs it)"
done
mkdir -p "$OUT"

DOCKERD_PID=""
RUN_START=$(date +%s)
cleanup() {
  local status=$?
  if [[ $KEEP == all ]]; then
    echo "kept: DOCKER_HOST=$DOCKER_HOST, registry http://$REGISTRY, kubectl context kind-$CLUSTER"
    return
  fi
  "$BIN/kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  "$DOCKER" rm -f kind-registry >/dev/null 2>&1 || true
  "$DOCKER" network rm "$KIND_EXPERIMENTAL_DOCKER_NETWORK" >/dev/null 2>&1 || true
  if [[ -n $DOCKERD_PID ]]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    # The engine is ours alone (its own socket and data root): its images go with it unless asked to stay.
    if [[ $KEEP == none ]] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      if grep -q " $DOCKER_ROOT/" /proc/self/mounts; then
        echo "left $DOCKER_ROOT in place: something is still mounted under it" >&2
      else
        rm -rf "$DOCKER_ROOT"
      fi
    fi
  fi
  echo "kind e2e: $(elapsed "$RUN_START") in all (exit $status)"
}
trap cleanup EXIT
if [[ $DOWN == 1 ]]; then
  DOCKERD_PID=$(cat /run/wasmgate-docker.pid 2>/dev/null || true)
  exit 0
fi

step "1. Docker engine (runc behind runc-caps), log in target/kind/dockerd.log"
start=$(date +%s)
(cd "$ROOT/e2e/kind/runc-caps" && CGO_ENABLED=0 go build -trimpath -o "$BIN/runc-caps" .)
if ! "$DOCKER" info >/dev/null 2>&1; then
  dockerd --host "$DOCKER_HOST" --data-root "$DOCKER_ROOT" --exec-root /run/wasmgate-docker \
    --pidfile /run/wasmgate-docker.pid --add-runtime "caps=$BIN/runc-caps" --default-runtime caps \
    >"$OUT/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 100); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 0.2; done
  "$DOCKER" info >/dev/null 2>&1 || { tail -20 "$OUT/dockerd.log"; die "dockerd did not start"; }
fi
echo "ready in $(elapsed "$start")"

step "2. build"
bash "$ROOT/e2e/kind/build.sh"

step "3. the cluster's network, and the registry on it (kind-registry:5000; $REGISTRY from here)"
start=$(date +%s)
if ! "$DOCKER" network inspect "$KIND_EXPERIMENTAL_DOCKER_NETWORK" >/dev/null 2>&1; then
  "$DOCKER" network create -d bridge -o com.docker.network.bridge.enable_ip_masquerade=true \
    "$KIND_EXPERIMENTAL_DOCKER_NETWORK" >/dev/null
fi
"$DOCKER" rm -f kind-registry >/dev/null 2>&1 || true
"$DOCKER" run -d --name kind-registry --network "$KIND_EXPERIMENTAL_DOCKER_NETWORK" -p "$REGISTRY:5000" \
  wasmgate-kind/registry >/dev/null
for _ in $(seq 1 50); do curl -sf "http://$REGISTRY/v2/" >/dev/null && break; sleep 0.2; done
curl -sf "http://$REGISTRY/v2/" >/dev/null || { "$DOCKER" logs kind-registry; die "the registry did not start"; }
while read -r image; do
  skopeo copy -q --src-daemon-host "$DOCKER_HOST" --dest-tls-verify=false \
    "docker-daemon:$image" "docker://$REGISTRY/${image#*/}"
done < <(bash "$ROOT/e2e/kind/build.sh" --images)
# The node's containerd resolves these at the registry (mounted at /etc/containerd/certs.d): the upstream
# registries the images are named after, and localhost:5001, where values-kind.yaml names the model server's image.
for upstream in registry.k8s.io registry.istio.io docker.io localhost:5001; do
  mkdir -p "$OUT/certs.d/$upstream"
  printf 'server = "http://kind-registry:5000"\n\n[host."http://kind-registry:5000"]\n  capabilities = ["pull", "resolve"]\n' \
    >"$OUT/certs.d/$upstream/hosts.toml"
done
echo "ready in $(elapsed "$start")"

step "4. kind cluster $CLUSTER"
start=$(date +%s)
sed "s|@CERTS_D@|$OUT/certs.d|" "$ROOT/e2e/kind/cluster.yaml" >"$OUT/cluster.yaml"
"$BIN/kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
"$BIN/kind" create cluster --name "$CLUSTER" --image "$(bash "$ROOT/e2e/kind/build.sh" --node-image)" \
  --config "$OUT/cluster.yaml" --wait 180s
"${KUBECTL[@]}" -n kube-system rollout status deployment/coredns --timeout=180s
"${KUBECTL[@]}" -n kube-system rollout status daemonset/kube-proxy --timeout=180s
echo "ready in $(elapsed "$start")"

step "5. Istio: istioctl install with docs/deployment.md's options (and e2e/kind/istio-upstream-envoy.yaml)"
start=$(date +%s)
"$BIN/istioctl" --context "kind-$CLUSTER" install -y -f "$ROOT/manifests/istio/istio-operator.yaml" \
  -f "$ROOT/manifests/istio/kind-gateway.yaml" -f "$ROOT/e2e/kind/istio-upstream-envoy.yaml"
"${KUBECTL[@]}" -n istio-system rollout status deployment/istiod --timeout=180s
"${KUBECTL[@]}" -n istio-system rollout status deployment/istio-ingressgateway --timeout=180s
echo "ready in $(elapsed "$start")"

step "6. checks"
"${KUBECTL[@]}" get nodes -o wide
# A pod is scheduled, gets an address from the node's CNI, runs and completes.
"${KUBECTL[@]}" run pod-check --image="registry.k8s.io/coredns/coredns:v1.12.1" --restart=Never --command -- \
  /usr/local/bin/coredns -version >/dev/null
"${KUBECTL[@]}" wait --for=jsonpath='{.status.phase}'=Succeeded pod/pod-check --timeout=120s
"${KUBECTL[@]}" get pods -A -o wide
# The gateway (istio-agent and Envoy 1.40, configured by istiod) is ready: its status port, through the API
# server's proxy to the pod.
gateway_pod=$("${KUBECTL[@]}" -n istio-system get pod -l istio=ingressgateway -o jsonpath='{.items[0].metadata.name}')
"${KUBECTL[@]}" get --raw "/api/v1/namespaces/istio-system/pods/$gateway_pod:15021/proxy/healthz/ready" >/dev/null ||
  die "the ingress gateway is not ready"

step "7. Prometheus (Debian's), scraping the gateway, with wasmgate's rules (e2e/kind/prometheus.yaml)"
start=$(date +%s)
"${KUBECTL[@]}" apply -f "$ROOT/e2e/kind/prometheus.yaml" >/dev/null
"${KUBECTL[@]}" -n monitoring create configmap wasmgate-rules --dry-run=client -o yaml \
  --from-file="$ROOT/charts/wasmgate/files/wasmgate-rules.yaml" | "${KUBECTL[@]}" apply -f - >/dev/null
"${KUBECTL[@]}" -n monitoring rollout status deployment/prometheus --timeout=180s
echo "ready in $(elapsed "$start")"

step "8. our plugins, pushed as docs/deployment.md says (make push), for the gateway's istio-agent to pull"
start=$(date +%s)
# PIN: the digests, for the chart (the registry as the nodes reach it, kind-registry:5000).
make -s -C "$ROOT" push REGISTRY="$REGISTRY/wasmgate" INSECURE=1 PIN="$OUT/pins.yaml" \
  PULL_REGISTRY=kind-registry:5000/wasmgate
echo "ready in $(elapsed "$start")"

step "9. wasmgate installed with helm (the kind values and the pins), and the tests through the cluster (e2e/tests/kind.rs)"
start=$(date +%s)
WASMGATE_KIND_CONTEXT="kind-$CLUSTER" WASMGATE_KUBECTL="$BIN/kubectl" WASMGATE_ISTIOCTL="$BIN/istioctl" \
  WASMGATE_KIND_PINS="$OUT/pins.yaml" \
  cargo test -p wasmgate-e2e --test kind -- --ignored --test-threads=1 ||
  {
    "${KUBECTL[@]}" get pods -A -o wide || true
    "${KUBECTL[@]}" -n istio-system logs -l istio=ingressgateway --tail=60 || true
    die "the tests through the cluster failed"
  }
echo "done in $(elapsed "$start")"
