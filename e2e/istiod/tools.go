//go:build tools

// The Istio commands the kind e2e builds into its images (e2e/kind/build.sh) from the istio.io/istio this module
// pins, so the cluster runs the same Istio as the harness: istiod, istio-agent and istioctl.
package main

import (
	_ "istio.io/istio/istioctl/cmd/istioctl"
	_ "istio.io/istio/pilot/cmd/pilot-agent"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
