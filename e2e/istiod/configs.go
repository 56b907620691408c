package main

import (
	"fmt"
	"io"
	"net/http"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
)

// configs applies a new set of Istio resources to istiod's store the way its informers would: each resource
// created, updated or deleted; the store's handlers then push to the connected Envoys. Only the resources it
// was given are its to delete: the store also holds what istiod derives from them (a TrafficExtension for each
// WasmPlugin).
type configs struct {
	server  *xds.FakeDiscoveryServer
	managed map[string]config.Config
}

func newConfigs(server *xds.FakeDiscoveryServer, initial string) (*configs, error) {
	parsed, _, err := crd.ParseInputs(initial)
	if err != nil {
		return nil, err
	}
	c := &configs{server: server, managed: map[string]config.Config{}}
	for _, cfg := range parsed {
		if cfg.Namespace == "" {
			cfg.Namespace = "default"
		}
		c.managed[key(cfg)] = cfg
	}
	return c, nil
}

func key(c config.Config) string {
	return fmt.Sprintf("%s/%s/%s", c.GroupVersionKind, c.Namespace, c.Name)
}

func (c *configs) replace(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Validated as istiod validates what it reads: an invalid resource is refused whole.
	wanted, _, err := crd.ParseInputs(string(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	store := c.server.Store()
	stale := map[string]config.Config{}
	for k, v := range c.managed {
		stale[k] = v
	}
	managed := map[string]config.Config{}
	for _, cfg := range wanted {
		if cfg.Namespace == "" {
			cfg.Namespace = "default"
		}
		managed[key(cfg)] = cfg
		if _, ok := stale[key(cfg)]; ok {
			delete(stale, key(cfg))
			old := store.Get(cfg.GroupVersionKind, cfg.Name, cfg.Namespace)
			if old != nil {
				cfg.ResourceVersion = old.ResourceVersion
				cfg.CreationTimestamp = old.CreationTimestamp
			}
			if _, err := store.Update(cfg); err != nil {
				http.Error(w, fmt.Sprintf("updating %s: %v", key(cfg), err), http.StatusInternalServerError)
				return
			}
		} else if _, err := store.Create(cfg); err != nil {
			http.Error(w, fmt.Sprintf("creating %s: %v", key(cfg), err), http.StatusInternalServerError)
			return
		}
	}
	for _, gone := range stale {
		if err := store.Delete(gone.GroupVersionKind, gone.Name, gone.Namespace, nil); err != nil {
			http.Error(w, fmt.Sprintf("deleting %s: %v", key(gone), err), http.StatusInternalServerError)
			return
		}
	}
	c.managed = managed
	w.WriteHeader(http.StatusNoContent)
}
