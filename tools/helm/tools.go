//go:build tools

// Package helm pins the Helm command the project builds (`make helm`): helm.sh/helm/v4 from the Go module proxy,
// in a module of its own so that its Kubernetes libraries do not meet istio.io/istio's.
package helm

import _ "helm.sh/helm/v4/cmd/helm"
