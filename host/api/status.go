package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
)

func (a *API) breakers(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"breakers": a.deps.Host.Breakers()})
}

// HealthView is GET /v1/health: readiness (the same as /readyz, which
// sets the HTTP status of both), the worst status of the components and
// every component.
type HealthView struct {
	Status     resilience.Status `json:"status"`
	Ready      bool              `json:"ready"`
	Reason     string            `json:"reason,omitempty"`
	Draining   bool              `json:"draining"`
	Components []ComponentView   `json:"components"`
}

// ComponentView is one component of GET /v1/health, with durations as Go
// duration strings ("30s") like the rest of the API.
type ComponentView struct {
	resilience.ComponentStatus
	Interval resilience.Duration `json:"interval"`
	Latency  LatencyView         `json:"latency"`
}

// LatencyView is resilience.LatencyStats with duration strings.
type LatencyView struct {
	Count uint64              `json:"count"`
	Last  resilience.Duration `json:"last"`
	Min   resilience.Duration `json:"min"`
	Max   resilience.Duration `json:"max"`
	Mean  resilience.Duration `json:"mean"`
	P50   resilience.Duration `json:"p50"`
	P95   resilience.Duration `json:"p95"`
}

func componentView(c resilience.ComponentStatus) ComponentView {
	l := c.Latency
	return ComponentView{ComponentStatus: c, Interval: resilience.Duration(c.Interval), Latency: LatencyView{
		Count: l.Count, Last: resilience.Duration(l.Last), Min: resilience.Duration(l.Min), Max: resilience.Duration(l.Max),
		Mean: resilience.Duration(l.Mean), P50: resilience.Duration(l.P50), P95: resilience.Duration(l.P95),
	}}
}

func (a *API) health(w http.ResponseWriter, r *http.Request) error {
	v := HealthView{Status: resilience.StatusUnknown, Draining: a.Draining(), Components: []ComponentView{}}
	if m := a.deps.Monitor; m != nil {
		v.Status = m.Overall()
		for _, c := range m.Components() {
			v.Components = append(v.Components, componentView(c))
		}
	}
	_, v.Reason = a.readiness(r.Context())
	v.Ready = v.Reason == ""
	status := http.StatusOK
	if !v.Ready {
		status = http.StatusServiceUnavailable
	}
	return writeJSON(w, status, v)
}

// ResilienceView is GET /v1/config/resilience: the default policy and
// the per-plugin policies set through the API, as the plugins run them.
type ResilienceView struct {
	Preset  string                       `json:"preset,omitempty"`
	Policy  resilience.Policy            `json:"policy"`
	Plugins map[string]resilience.Policy `json:"plugins"`
}

// ResilienceUpdate is the body of PUT /v1/config/resilience. Policy holds
// only the fields to change; they are laid over Preset when given, else
// over the current policy (with Plugin set, the policy that plugin runs
// with). With Plugin set, the change applies to that plugin only and stays
// in force over its manifest's policy across reloads and rebuilds, until
// the service stops; without, to the default policy and to every loaded
// plugin without an override of its own.
type ResilienceUpdate struct {
	Plugin string          `json:"plugin,omitempty"`
	Preset string          `json:"preset,omitempty"`
	Policy json.RawMessage `json:"policy,omitempty"`
}

func (a *API) getResilience(w http.ResponseWriter, _ *http.Request) error {
	a.polMu.Lock()
	defer a.polMu.Unlock()
	return writeJSON(w, http.StatusOK, a.resilienceViewLocked())
}

func (a *API) resilienceViewLocked() ResilienceView {
	v := ResilienceView{Preset: a.preset, Policy: a.policy.WithDefaults(), Plugins: map[string]resilience.Policy{}}
	for n, p := range a.deps.Host.PolicyOverrides() {
		v.Plugins[n] = p.WithDefaults()
	}
	return v
}

func (a *API) putResilience(w http.ResponseWriter, r *http.Request) error {
	var req ResilienceUpdate
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	a.polMu.Lock()
	defer a.polMu.Unlock()
	base := a.policy
	if req.Plugin != "" {
		base = a.deps.Host.Policy(req.Plugin)
	}
	if req.Preset != "" {
		p, err := resilience.Preset(req.Preset)
		if err != nil {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "%v", err)
		}
		base = p
	}
	if len(req.Policy) > 0 {
		dec := json.NewDecoder(bytes.NewReader(req.Policy))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&base); err != nil {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "policy: %v", err)
		}
	}
	if err := base.Validate(); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "%v", err)
	}
	start := time.Now()
	if req.Plugin != "" {
		if _, ok := a.deps.Host.Plugin(req.Plugin); !ok {
			return Errorf(http.StatusNotFound, CodePluginNotFound, "no plugin %q is loaded", req.Plugin)
		}
		if err := a.deps.Host.OverridePolicy(req.Plugin, base); err != nil {
			return err
		}
	} else {
		own := a.deps.Host.PolicyOverrides()
		for _, p := range a.deps.Host.Plugins() {
			if _, ok := own[p.Name]; ok {
				continue
			}
			if err := a.deps.Host.SetPolicy(p.Name, base); err != nil {
				return err
			}
		}
		a.policy = base
		if req.Preset != "" {
			a.preset = req.Preset
		}
	}
	a.log.Info("resilience policy changed", "plugin", req.Plugin, "preset", req.Preset, "took", time.Since(start))
	return writeJSON(w, http.StatusOK, a.resilienceViewLocked())
}
