package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// HostView is one host in GET /v1/hosts.
type HostView struct {
	ID        string    `json:"id"`
	Address   string    `json:"address,omitempty"`
	Version   string    `json:"version,omitempty"`
	State     string    `json:"state"` // live or stale
	Heartbeat string    `json:"heartbeat"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// Age is how long ago the host last beat, on the store's clock.
	Age     string                  `json:"age"`
	Plugins []statestore.HostPlugin `json:"plugins"`
}

// Host states.
const (
	HostLive  = "live"
	HostStale = "stale"
)

// ServedVersion is one plugin version in GET /v1/plugins and the live
// hosts that serve it.
type ServedVersion struct {
	Plugin  string   `json:"plugin"`
	Version string   `json:"version"`
	Hosts   []string `json:"hosts"`
}

// HostViewOf returns the API view of h.
func HostViewOf(h statestore.HostInfo) HostView {
	v := HostView{ID: h.ID, Address: h.Address, Version: h.Version, State: HostStale,
		Heartbeat: h.Heartbeat.String(), StartedAt: h.StartedAt, LastSeen: h.LastSeen,
		Age: h.Age.Round(time.Millisecond).String(), Plugins: h.Plugins}
	if h.Live() {
		v.State = HostLive
	}
	if v.Plugins == nil {
		v.Plugins = []statestore.HostPlugin{}
	}
	return v
}

func (a *API) listHosts(w http.ResponseWriter, r *http.Request) error {
	if a.deps.Hosts == nil {
		return writeJSON(w, http.StatusOK, map[string]any{"hosts": []HostView{}})
	}
	hs, err := a.deps.Hosts(r.Context())
	if err != nil {
		return hostsError(err)
	}
	out := make([]HostView, 0, len(hs))
	for _, h := range hs {
		out = append(out, HostViewOf(h))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"hosts": out})
}

// hostsError is a 503 when the store cannot be reached.
func hostsError(err error) error {
	if errors.Is(err, statestore.ErrUnavailable) {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "list hosts: %s", err)
	}
	return err
}

// servedVersions lists every plugin version the live hosts serve, by
// plugin then version.
func (a *API) servedVersions(ctx context.Context) ([]ServedVersion, error) {
	out := []ServedVersion{}
	if a.deps.Hosts == nil {
		return out, nil
	}
	hs, err := a.deps.Hosts(ctx)
	if err != nil {
		return nil, hostsError(err)
	}
	idx := map[statestore.HostPlugin]int{}
	for _, h := range hs {
		if !h.Live() {
			continue
		}
		for _, p := range h.Plugins {
			i, ok := idx[p]
			if !ok {
				i = len(out)
				idx[p] = i
				out = append(out, ServedVersion{Plugin: p.Plugin, Version: p.Version})
			}
			out[i].Hosts = append(out[i].Hosts, h.ID)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Plugin != out[j].Plugin {
			return out[i].Plugin < out[j].Plugin
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

// Hosts lists the hosts sharing the service's store.
func (c *Client) Hosts(ctx context.Context) ([]HostView, error) {
	var out struct {
		Hosts []HostView `json:"hosts"`
	}
	err := c.do(ctx, "GET", "/v1/hosts", nil, "", &out)
	return out.Hosts, err
}
