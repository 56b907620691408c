package main

import (
	"os"
	"syscall"

	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// istiodFlags are istiod feature flags (environment variables, set on istiod by an install's values.pilot.env):
// the ones that keep istio-proxy's own extensions out of the generated config, so upstream Envoy can load it,
// and the one that lets the in-process agent step authenticate. istiod reads them as its packages initialise,
// so main starts the program again with them set.
var istiodFlags = map[string]string{
	// The istio.metadata_exchange filters (HTTP peer_metadata on listeners, TCP metadata exchange on
	// clusters) feed Istio's telemetry the peer's workload labels; nothing here reads telemetry.
	"PILOT_ENABLE_METADATA_EXCHANGE": "false",
	// istio.alpn sets the ALPN istio-proxy offers upstream in mTLS (istio-http/1.1, istio-h2) for protocol
	// sniffing; with auto mTLS off (meshOverrides) no upstream connection here is mTLS.
	"PILOT_ENABLE_ALPN_FILTER": "false",
	// istiod authenticates a proxy (and then sends it the Wasm image pull secrets) only on its TLS port; the
	// agent step reaches it over plaintext loopback in this process, authenticated by gatewayIdentity.
	"XDS_AUTH_PLAINTEXT": "true",
}

// meshOverrides are set on top of the install's mesh config, for what the gateway here runs without.
func meshOverrides(m *meshconfig.MeshConfig) {
	// Auto mTLS wraps each upstream cluster in a transport socket that takes workload certificates from
	// istio-agent's SDS server (the bootstrap's sds-grpc cluster), which is not run here: the model servers
	// run without sidecars, so there is no mTLS peer to upgrade to either.
	m.EnableAutoMtls = wrapperspb.Bool(false)
}

// withIstiodFlags re-executes the program with istiodFlags in its environment unless they are there already.
func withIstiodFlags() {
	missing := false
	for name, value := range istiodFlags {
		if os.Getenv(name) != value {
			missing = true
			_ = os.Setenv(name, value)
		}
	}
	if !missing {
		return
	}
	self, err := os.Executable()
	if err != nil {
		fail("finding my own executable: %v", err)
	}
	if err := syscall.Exec(self, os.Args, os.Environ()); err != nil {
		fail("starting again with istiod's flags: %v", err)
	}
}
