package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Config is the plain-data configuration of the API.
type Config struct {
	// Token is the bearer token every /v1 request must carry; "" turns
	// authentication off (only sound on loopback; cmd refuses otherwise).
	Token string
	// MaxBody caps request bodies. 0: DefaultMaxBody.
	MaxBody int64
	// MaxRunInput caps a run's input. 0: DefaultMaxRunInput.
	MaxRunInput int64
	// Dashboard serves the HTML dashboard at /.
	Dashboard bool
	// Listen is the listen address; without a token, its host is one of
	// the names the Host header may carry (with localhost and every
	// loopback address).
	Listen string
	// PublicNames are more names the service answers to ("host" or
	// "host:port"), for a service reached through a proxy or by a name;
	// their http and https origins count as the service's own.
	PublicNames []string
	// Preset and Policy are the default resilience policy as configured,
	// reported and changed by /v1/config/resilience.
	Preset string
	Policy resilience.Policy
}

// Defaults.
const (
	DefaultMaxBody     = 4 << 20
	DefaultMaxRunInput = 1 << 20
)

// Plugins is the deployment view of the plugins (a supervisor).
type Plugins interface {
	// Statuses lists every known plugin, loaded or not.
	Statuses() []supervisor.Status
	// Reload loads the plugin from disk now and returns its new status.
	Reload(ctx context.Context, name string) (supervisor.Status, error)
	// Invoke is host.Invoke for a deployed plugin (a quarantined one
	// fails fast).
	Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error)
}

// Workflows is the durable workflow engine; *workflow.Engine is one.
type Workflows interface {
	// Workflows lists the registered workflows.
	Workflows() []*workflow.Workflow
	// Submit starts a run; it is idempotent by runID ("" picks one).
	Submit(ctx context.Context, workflow string, input []byte, runID string) (statestore.Run, error)
	List(ctx context.Context, f statestore.RunFilter) ([]statestore.Run, string, error)
	// Get returns a run with per-node detail.
	Get(ctx context.Context, runID string) (workflow.RunInfo, error)
	Cancel(ctx context.Context, runID string) (statestore.Run, error)
	Resume(ctx context.Context, runID string, upgrade bool) (statestore.Run, error)
	Checkpoints(ctx context.Context, runID, node string) ([]statestore.Checkpoint, error)
	DeadLetters(ctx context.Context, f statestore.DeadLetterFilter) ([]statestore.DeadLetter, string, error)
	DeadLetter(ctx context.Context, id string) (statestore.DeadLetter, error)
	DeleteDeadLetter(ctx context.Context, id string) error
	Replay(ctx context.Context, deadLetterID string, upgrade bool) (statestore.Run, error)
}

// Deps are the components the API serves. Host is required; a nil
// Plugins calls the host directly; a nil Workflows answers the workflow,
// run and dead-letter endpoints with 503.
type Deps struct {
	Host      *host.Host
	Plugins   Plugins
	Workflows Workflows
	Monitor   *resilience.Monitor
	// Ready reports why the service is not ready (nil: ready); /readyz
	// also fails while draining.
	Ready func(ctx context.Context) error
	// MapError maps the components' own errors to API errors.
	MapError ErrorMapper
	// Hosts, when set, lists the hosts sharing the store (GET /v1/hosts,
	// and which of them serve each plugin version in GET /v1/plugins).
	Hosts func(ctx context.Context) ([]statestore.HostInfo, error)
	// Metrics, when set, is served at /metrics.
	Metrics *Metrics
	// Events, when set, is streamed at GET /v1/events (else 503).
	Events *Events
	Logger *slog.Logger
}

// API is the HTTP handler of `bulkhead serve`. It is safe for concurrent
// use; it starts no goroutine.
type API struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	mux      *http.ServeMux
	routes   []Route
	guard    *guard
	tokenSum [32]byte
	draining atomic.Bool

	polMu  sync.Mutex
	policy resilience.Policy
	preset string
}

// Route is one registered endpoint.
type Route struct {
	Method string
	Path   string
	// Public routes need no token.
	Public bool
}

// New returns the API over deps.
func New(cfg Config, deps Deps) (*API, error) {
	if deps.Host == nil {
		return nil, errors.New("api: nil host")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxRunInput <= 0 {
		cfg.MaxRunInput = DefaultMaxRunInput
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g, err := newGuard(cfg)
	if err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, deps: deps, log: log, mux: http.NewServeMux(), guard: g,
		policy: cfg.Policy, preset: cfg.Preset}
	a.tokenSum = sha256.Sum256([]byte(cfg.Token))
	a.register()
	return a, nil
}

func (a *API) handle(method, path string, public bool, h func(w http.ResponseWriter, r *http.Request) error) {
	a.routes = append(a.routes, Route{Method: method, Path: path, Public: public})
	a.mux.HandleFunc(method+" "+path, func(w http.ResponseWriter, r *http.Request) {
		if !public && !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulkhead"`)
			writeError(w, Errorf(http.StatusUnauthorized, CodeUnauthorized, "missing or wrong bearer token"))
			return
		}
		if r.Body != nil {
			if r.ContentLength > a.cfg.MaxBody {
				writeError(w, Errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body of %d bytes is over the %d-byte limit", r.ContentLength, a.cfg.MaxBody))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBody)
		}
		if err := h(w, r); err != nil {
			e := a.toError(err)
			if e.Status >= 500 && e.Code != CodeDraining {
				a.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
			}
			writeError(w, bounded(e))
		}
	})
}

func (a *API) register() {
	a.handle("GET", "/healthz", true, a.healthz)
	a.handle("GET", "/readyz", true, a.readyz)
	if a.deps.Metrics != nil {
		a.routes = append(a.routes, Route{Method: "GET", Path: "/metrics", Public: true})
		a.mux.Handle("GET /metrics", a.deps.Metrics.Handler())
	}
	if a.cfg.Dashboard {
		a.routes = append(a.routes, Route{Method: "GET", Path: "/", Public: true})
		a.mux.HandleFunc("GET /{$}", serveDashboard)
	}
	a.handle("GET", "/v1/openapi.json", false, a.openAPI)
	a.handle("GET", "/v1/plugins", false, a.listPlugins)
	a.handle("GET", "/v1/hosts", false, a.listHosts)
	a.handle("POST", "/v1/plugins/{name}/reload", false, a.reloadPlugin)
	a.handle("POST", "/v1/plugins/{name}/call", false, a.callPlugin)
	a.handle("GET", "/v1/workflows", false, a.listWorkflows)
	a.handle("POST", "/v1/workflows/{name}/runs", false, a.submitRun)
	a.handle("GET", "/v1/runs", false, a.listRuns)
	a.handle("GET", "/v1/runs/{id}", false, a.getRun)
	a.handle("POST", "/v1/runs/{id}/cancel", false, a.cancelRun)
	a.handle("POST", "/v1/runs/{id}/resume", false, a.resumeRun)
	a.handle("POST", "/v1/runs/{id}/events/{name}", false, a.signalRun)
	a.handle("GET", "/v1/runs/{id}/checkpoints", false, a.runCheckpoints)
	a.handle("GET", "/v1/schedules", false, a.listSchedules)
	a.handle("GET", "/v1/events", false, a.events)
	a.handle("GET", "/v1/breakers", false, a.breakers)
	a.handle("GET", "/v1/health", false, a.health)
	a.handle("GET", "/v1/dlq", false, a.listDLQ)
	a.handle("GET", "/v1/dlq/{id}", false, a.getDLQ)
	a.handle("POST", "/v1/dlq/{id}/replay", false, a.replayDLQ)
	a.handle("DELETE", "/v1/dlq/{id}", false, a.deleteDLQ)
	a.handle("GET", "/v1/config/resilience", false, a.getResilience)
	a.handle("PUT", "/v1/config/resilience", false, a.putResilience)
}

// Routes lists the registered endpoints.
func (a *API) Routes() []Route { return append([]Route(nil), a.routes...) }

// ServeHTTP serves the API; unknown paths and methods get JSON errors.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := a.guard.check(r); e != nil {
		writeError(w, e)
		return
	}
	if _, pattern := a.mux.Handler(r); pattern == "" {
		var allow []string
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := a.mux.Handler(probe); p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", truncate(r.Method, 16), truncate(r.URL.Path, 256), strings.Join(allow, ", ")))
			return
		}
		writeError(w, Errorf(http.StatusNotFound, CodeNotFound, "no route %s %s", truncate(r.Method, 16), truncate(r.URL.Path, 256)))
		return
	}
	a.mux.ServeHTTP(w, r)
}

// authorized compares the bearer token in constant time (of the token's
// SHA-256, so the comparison does not leak the token's length either).
func (a *API) authorized(r *http.Request) bool {
	if a.cfg.Token == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

// Drain makes the API refuse new runs and calls (503 draining) and fail
// /readyz; reads keep working.
func (a *API) Drain() { a.draining.Store(true) }

// Draining reports whether Drain was called.
func (a *API) Draining() bool { return a.draining.Load() }

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	if err != nil {
		return nil // the client went away; nothing to tell it
	}
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	return io.ReadAll(r.Body)
}

// decodeJSON decodes the body, which must be one JSON value declared as
// such (or empty, leaving v as is), into v.
func decodeJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if e := checkJSON(r, b); e != nil {
		return e
	}
	if len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "body: %s", truncate(err.Error(), 256))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "body: data after the JSON value")
	}
	return nil
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) error {
	status, reason := a.readiness(r.Context())
	if reason != "" {
		return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": status, "reason": reason})
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": status})
}

// readiness is what /readyz and /v1/health answer: "ready" and no
// reason, or "draining" or "not ready" and why.
func (a *API) readiness(ctx context.Context) (status, reason string) {
	if a.Draining() {
		return "draining", "draining"
	}
	if a.deps.Ready != nil {
		if err := a.deps.Ready(ctx); err != nil {
			return "not ready", err.Error()
		}
	}
	return "ready", ""
}

// PluginStatus is one plugin in GET /v1/plugins.
type PluginStatus struct {
	Name string `json:"name"`
	// State is ok, failed (the last change was refused; the previous
	// version serves) or quarantined (no working version).
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Version serves; FileVersion is the newest seen on disk.
	Version     string            `json:"version,omitempty"`
	FileVersion string            `json:"file_version,omitempty"`
	LoadedAt    time.Time         `json:"loaded_at,omitzero"`
	Loads       uint64            `json:"loads"`
	Failures    uint64            `json:"load_failures"`
	Rebuilds    uint64            `json:"rebuilds"`
	Causes      map[string]uint64 `json:"causes,omitempty"`
	Breaker     string            `json:"breaker"`
	Exports     []string          `json:"exports,omitempty"`
	Calls       uint64            `json:"calls"`
	CallFails   uint64            `json:"call_failures"`
	PoolIdle    int               `json:"pool_idle"`
	PoolInUse   int               `json:"pool_in_use"`
	PoolMax     int               `json:"pool_max"`
	Manifest    *abi.Manifest     `json:"manifest,omitempty"`
}

func (a *API) listPlugins(w http.ResponseWriter, r *http.Request) error {
	// The hosts' versions come from the store: without it, the list
	// still says what this host serves.
	body := map[string]any{}
	if served, err := a.servedVersions(r.Context()); err == nil {
		body["versions"] = served
	} else {
		a.log.Warn("plugin versions of the other hosts not listed", "err", err)
	}
	out := []PluginStatus{}
	if a.deps.Plugins != nil {
		for _, st := range a.deps.Plugins.Statuses() {
			out = append(out, a.pluginStatus(st))
		}
		body["plugins"] = out
		return writeJSON(w, http.StatusOK, body)
	}
	breakers := a.deps.Host.Breakers()
	for _, p := range a.deps.Host.Plugins() {
		st := PluginStatus{Name: p.Name, State: "ok", Breaker: resilience.Closed.String()}
		if b, ok := breakers[host.PolicyName(p.Name)]; ok {
			st.Breaker = b.State.String()
		}
		fillFromHost(&st, p)
		out = append(out, st)
	}
	body["plugins"] = out
	return writeJSON(w, http.StatusOK, body)
}

// pluginStatus is a supervisor's status of a plugin with the host's figures
// of its loaded version.
func (a *API) pluginStatus(st supervisor.Status) PluginStatus {
	out := PluginStatus{Name: st.Name, State: string(st.State), Reason: st.Reason, Version: st.Version,
		FileVersion: st.FileVersion, LoadedAt: st.LoadedAt, Loads: st.Loads, Failures: st.LoadFailures,
		Rebuilds: st.Rebuilds, Breaker: st.Breaker.String(), PoolIdle: st.PoolIdle, PoolInUse: st.PoolInUse, PoolMax: st.PoolMax}
	if len(st.Causes) > 0 {
		out.Causes = map[string]uint64{}
		for c, n := range st.Causes {
			out.Causes[string(c)] = n
		}
	}
	if info, ok := a.deps.Host.Plugin(st.Name); ok {
		fillFromHost(&out, info)
	}
	return out
}

// fillFromHost sets the host's figures of a loaded plugin in st.
func fillFromHost(st *PluginStatus, p host.PluginInfo) {
	m := p.Manifest
	st.Version, st.LoadedAt, st.Exports, st.Manifest = p.Version, p.LoadedAt, p.Exports, &m
	st.Calls, st.CallFails = p.Calls, p.Failures
	st.PoolIdle, st.PoolInUse, st.PoolMax = p.PoolIdle, p.PoolInUse, p.PoolMax
}

func (a *API) reloadPlugin(w http.ResponseWriter, r *http.Request) error {
	if a.deps.Plugins == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "no plugin directory is deployed")
	}
	if err := checkName("plugin", CodePluginNotFound, r.PathValue("name")); err != nil {
		return err
	}
	st, err := a.deps.Plugins.Reload(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if a.deps.Metrics != nil {
		a.deps.Metrics.reloads.WithLabelValues(r.PathValue("name")).Inc()
	}
	return writeJSON(w, http.StatusOK, a.pluginStatus(st))
}

func (a *API) callPlugin(w http.ResponseWriter, r *http.Request) error {
	if a.Draining() {
		return ErrDraining
	}
	in, err := readBody(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := checkName("plugin", CodePluginNotFound, name); err != nil {
		return err
	}
	req := host.InvokeRequest{Plugin: name, Function: r.URL.Query().Get("function"), Input: in, Logger: a.log}
	start := time.Now()
	var res host.InvokeResult
	if a.deps.Plugins != nil {
		res, err = a.deps.Plugins.Invoke(r.Context(), req)
	} else {
		res, err = a.deps.Host.Invoke(r.Context(), req)
	}
	if a.deps.Metrics != nil {
		a.deps.Metrics.ObserveCall(name, Outcome(err), time.Since(start))
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Bulkhead-Attempts", itoa(res.Attempts))
	if res.Version != "" {
		w.Header().Set("Bulkhead-Plugin-Version", res.Version)
	}
	if res.Fallback {
		w.Header().Set("Bulkhead-Fallback", "true")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Output)
	return nil
}
