package main

import (
	"fmt"
	"net"

	"istio.io/istio/pkg/security"
)

// gatewayIdentity authenticates the agent's connection to istiod as the gateway's workload identity. On a
// cluster, istio-agent authenticates with the gateway Pod's service account token (or its mTLS certificate)
// and istiod sends the Wasm image pull secrets only to a proxy so authenticated (EcdsGenerator, "proxy ... is
// not authorized to receive secret"). Here the agent step runs in this process and only it connects, over
// loopback; anything else is refused.
type gatewayIdentity struct {
	identity string
}

const gatewayServiceAccount = "istio-ingressgateway-service-account"

func newGatewayIdentity() gatewayIdentity {
	return gatewayIdentity{identity: fmt.Sprintf("spiffe://cluster.local/ns/istio-system/sa/%s", gatewayServiceAccount)}
}

func (g gatewayIdentity) AuthenticatorType() string { return "WasmgateAgent" }

func (g gatewayIdentity) Authenticate(ctx security.AuthContext) (*security.Caller, error) {
	addr := ctx.RemoteAddress()
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("not the agent step: %s", addr)
	}
	return &security.Caller{AuthSource: security.AuthSourceIDToken, Identities: []string{g.identity}}, nil
}
