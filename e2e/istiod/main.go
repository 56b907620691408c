// Command wasmgate-istiod runs istiod's own config generator and istio-agent's own Wasm fetcher for one ingress
// gateway, without a cluster, and serves the result to a real Envoy over ADS on loopback.
//
// istiod: pilot/test/xds.NewFakeDiscoveryServer, fed the rendered manifests (Istio kinds) and the Kubernetes
// objects a cluster would hold (the gateway's Service and Pod, the model Services, Pods and EndpointSlices, TLS
// Secrets), with the mesh config from the install options. Its DiscoveryServer listens on a loopback port.
//
// istio-agent: between Envoy and istiod sits the step istio-agent's xDS proxy performs, with its code: ECDS
// resources pass through pkg/wasm's MaybeConvertWasmExtensionConfig, which pulls each module from its registry,
// checks its sha256, applies the pull policy, and puts an RBAC filter in place of a module it cannot fetch; a
// conversion error is answered upstream with a NACK, as the agent does. Everything else is forwarded as is:
// istiod is told, through its own flags and mesh config, to leave out the istio-proxy extensions an upstream
// Envoy lacks (see flags.go), so nothing needs stripping.
//
// On start it prints one JSON line: {"xds": "127.0.0.1:P", "control": "127.0.0.1:Q", "proxyConfig": {...}}, the
// last being what istio-agent puts in the gateway's node metadata (see gatewayProxyConfig). The control port takes
// PUT /config (a new set of Istio resources, applied as istiod's informers would: created, updated, deleted, then
// pushed). It stops on SIGTERM or when its standard input closes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
	agentvalidation "istio.io/istio/pkg/config/validation/agent"
	"istio.io/istio/pkg/log"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/util/protomarshal"
	"istio.io/istio/pkg/util/sets"
	"istio.io/istio/pkg/wasm"
	"sigs.k8s.io/yaml"
)

func main() {
	withIstiodFlags()
	configFile := flag.String("config", "", "Istio resources (YAML; other kinds are skipped), e.g. a rendered overlay")
	kubeFile := flag.String("kube", "", "Kubernetes objects the cluster holds (YAML)")
	meshFile := flag.String("mesh", "", "install options (IstioOperator) or a MeshConfig (YAML); Istio's defaults if empty")
	wasmDir := flag.String("wasm-dir", "", "where istio-agent's Wasm cache keeps the modules it pulls")
	insecure := flag.String("insecure-registries", "", "comma-separated registries pulled over plain HTTP (WASM_INSECURE_REGISTRIES)")
	logLevel := flag.String("log-level", "warn", "istiod's and istio-agent's log level")
	podProxyConfig := flag.String("proxy-config", "", "the gateway Pod's proxy.istio.io/config annotation (YAML or JSON)")
	flag.Parse()
	if *configFile == "" || *kubeFile == "" || *wasmDir == "" {
		fail("usage: wasmgate-istiod --config FILE --kube FILE --wasm-dir DIR [--mesh FILE] [--insecure-registries H,...]")
	}
	// Logs go to stderr: stdout carries the ready line.
	opts := log.DefaultOptions()
	opts.OutputPaths = []string{"stderr"}
	opts.ErrorOutputPaths = []string{"stderr"}
	opts.SetDefaultOutputLevel(log.OverrideScopeName, log.StringToLevel(*logLevel))
	if err := log.Configure(opts); err != nil {
		fail("configuring logs: %v", err)
	}
	config := read(*configFile)
	kube := read(*kubeFile)
	meshConfig := mesh.DefaultMeshConfig()
	if *meshFile != "" {
		var err error
		if meshConfig, err = meshFromFile(*meshFile); err != nil {
			fail("%s: %v", *meshFile, err)
		}
	}
	meshOverrides(meshConfig)
	proxyConfig, err := gatewayProxyConfig(meshConfig, *podProxyConfig)
	if err != nil {
		fail("the gateway's proxy.istio.io/config: %v", err)
	}
	cache := wasm.NewLocalFileCache(*wasmDir, wasm.Options{
		InsecureRegistries:    sets.New(splitList(*insecure)...),
		HTTPRequestTimeout:    10 * time.Second,
		HTTPRequestMaxRetries: 2,
		PurgeInterval:         wasm.DefaultPurgeInterval,
		ModuleExpiry:          wasm.DefaultModuleExpiry,
	})
	defer cache.Cleanup()

	err = test.Wrap(func(t test.Failer) {
		server := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
			ConfigString:               config,
			KubernetesObjectString:     kube,
			MeshConfig:                 meshConfig,
			DisableSecretAuthorization: true,
			ListenerBuilder:            func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
		})
		server.Discovery.Authenticators = append(server.Discovery.Authenticators, newGatewayIdentity())
		agent, err := newAgent(server.Listener.Addr().String(), cache)
		if err != nil {
			t.Fatalf("starting the agent: %v", err)
		}
		defer agent.stop()
		resources, err := newConfigs(server, config)
		if err != nil {
			t.Fatalf("reading the resources: %v", err)
		}
		control, err := serveControl(resources)
		if err != nil {
			t.Fatalf("starting the control port: %v", err)
		}
		defer control.Close()
		ready, _ := json.Marshal(map[string]any{
			"xds": agent.addr(), "control": control.Addr().String(), "proxyConfig": json.RawMessage(proxyConfig),
		})
		fmt.Println(string(ready))
		waitForStop()
	})
	if err != nil {
		fail("%v", err)
	}
}

// gatewayProxyConfig is the ProxyConfig istio-agent puts in the gateway's node metadata (PROXY_CONFIG), as
// pilot-agent's config.ConstructProxyConfig builds it: the mesh's defaultConfig with the Pod's
// proxy.istio.io/config annotation merged over it by mesh.ApplyProxyConfig, then validated. istiod reads gateway
// settings from it, gatewayTopology among them (a PROXY protocol listener filter, trusted hops).
func gatewayProxyConfig(meshConfig *meshconfig.MeshConfig, annotation string) ([]byte, error) {
	merged := meshConfig
	if strings.TrimSpace(annotation) != "" {
		var err error
		if merged, err = mesh.ApplyProxyConfig(annotation, meshConfig); err != nil {
			return nil, err
		}
	}
	proxyConfig := merged.GetDefaultConfig()
	if proxyConfig == nil {
		proxyConfig = mesh.DefaultProxyConfig()
	}
	if result := agentvalidation.ValidateMeshConfigProxyConfig(proxyConfig); result.Err != nil {
		return nil, result.Err
	}
	return protomarshal.Marshal(proxyConfig)
}

// meshFromFile reads a MeshConfig, alone or as the meshConfig of an IstioOperator, on top of Istio's defaults.
func meshFromFile(path string) (*meshconfig.MeshConfig, error) {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(read(path)), &doc); err != nil {
		return nil, err
	}
	meshDoc := any(doc)
	if doc["kind"] == "IstioOperator" {
		spec, _ := doc["spec"].(map[string]any)
		meshDoc = spec["meshConfig"]
		if meshDoc == nil {
			meshDoc = map[string]any{}
		}
	}
	text, err := yaml.Marshal(meshDoc)
	if err != nil {
		return nil, err
	}
	return mesh.ApplyMeshConfigDefaults(string(text))
}

func waitForStop() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	closed := make(chan struct{})
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := os.Stdin.Read(buf); err != nil {
				close(closed)
				return
			}
		}
	}()
	select {
	case <-stop:
	case <-closed:
	}
}

func serveControl(c *configs) (net.Listener, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /config", c.replace)
	go func() { _ = http.Serve(listener, mux) }()
	return listener, nil
}

func read(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return string(data)
}

func splitList(list string) []string {
	var out []string
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wasmgate-istiod: "+format+"\n", args...)
	os.Exit(1)
}
