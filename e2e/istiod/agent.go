package main

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pkg/log"
	"istio.io/istio/pkg/wasm"
)

var agentLog = log.RegisterScope("wasmgate-agent", "the istio-agent step between Envoy and istiod")

// agent is the part of istio-agent's xDS proxy (pkg/istio-agent/xds_proxy.go) that matters for Wasm: Envoy's
// ADS stream is relayed to istiod, and each ECDS response goes through pkg/wasm before Envoy sees it.
type agent struct {
	listener net.Listener
	server   *grpc.Server
	upstream *grpc.ClientConn
	cache    wasm.Cache
	// The last ECDS version Envoy accepted: a NACK names it, as istio-agent's does.
	ecdsAcked atomic.Value
}

func newAgent(istiod string, cache wasm.Cache) (*agent, error) {
	upstream, err := grpc.NewClient(istiod, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return nil, err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &agent{listener: listener, server: grpc.NewServer(grpc.MaxRecvMsgSize(256 << 20)), upstream: upstream, cache: cache}
	a.ecdsAcked.Store("")
	discovery.RegisterAggregatedDiscoveryServiceServer(a.server, a)
	go func() { _ = a.server.Serve(listener) }()
	return a, nil
}

func (a *agent) addr() string { return a.listener.Addr().String() }

func (a *agent) stop() {
	a.server.Stop()
	_ = a.upstream.Close()
}

// StreamAggregatedResources relays one Envoy's ADS stream.
func (a *agent) StreamAggregatedResources(downstream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	ctx, cancel := context.WithCancel(downstream.Context())
	defer cancel()
	upstream, err := discovery.NewAggregatedDiscoveryServiceClient(a.upstream).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	errs := make(chan error, 2)
	// Envoy's requests (subscriptions, ACKs, NACKs) go to istiod as they are.
	go func() {
		for {
			request, err := downstream.Recv()
			if err != nil {
				errs <- err
				return
			}
			if request.TypeUrl == v3.ExtensionConfigurationType && request.ErrorDetail == nil {
				a.ecdsAcked.Store(request.VersionInfo)
			}
			if err := upstream.Send(request); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		for {
			response, err := upstream.Recv()
			if err != nil {
				errs <- err
				return
			}
			forward, nack := a.rewrite(response)
			if nack != nil {
				if err := upstream.Send(nack); err != nil {
					errs <- err
					return
				}
				continue
			}
			if err := downstream.Send(forward); err != nil {
				errs <- err
				return
			}
		}
	}()
	err = <-errs
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// rewrite gives what Envoy gets for a response from istiod, or the NACK istio-agent sends istiod instead.
func (a *agent) rewrite(response *discovery.DiscoveryResponse) (*discovery.DiscoveryResponse, *discovery.DiscoveryRequest) {
	switch response.TypeUrl {
	case v3.ExtensionConfigurationType:
		if err := wasm.MaybeConvertWasmExtensionConfig(response.Resources, a.cache); err != nil {
			agentLog.Warnf("NACK of ECDS version %s: %v", response.VersionInfo, err)
			return nil, &discovery.DiscoveryRequest{
				VersionInfo:   a.ecdsAcked.Load().(string),
				TypeUrl:       response.TypeUrl,
				ResponseNonce: response.Nonce,
				ErrorDetail:   &status.Status{Code: int32(codes.Internal), Message: err.Error()},
			}
		}
	}
	return response, nil
}

// DeltaAggregatedResources is not used: the bootstrap asks for state-of-the-world ADS.
func (a *agent) DeltaAggregatedResources(discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return errors.New("delta xDS is not relayed; use api_type GRPC")
}
