package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/fleet"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/internal/telemetry"
	"github.com/bulkhead-run/bulkhead/plugins"
	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// pluginsWait bounds how long the start waits for the plugins of the
// start-up scan before it starts the workflow engine anyway.
const pluginsWait = time.Minute

// StopSlack is added to the drain grace period for fx's stop timeout:
// the time the server, supervisor, host and store get to stop.
const StopSlack = 30 * time.Second

// Options returns the fx options of the service configured by cfg,
// logging to log.
func Options(cfg *config.Config, log *slog.Logger) fx.Option {
	if on, _ := telemetry.Configured(os.Getenv); on {
		log = slog.New(telemetry.LogHandler(log.Handler())) // trace_id and span_id on traced lines
	}
	return fx.Options(
		fx.Supply(cfg, log),
		fx.WithLogger(func() fxevent.Logger {
			if log.Enabled(context.Background(), slog.LevelDebug) {
				return &fxevent.SlogLogger{Logger: log.With("module", "fx")}
			}
			return fxevent.NopLogger
		}),
		fx.StartTimeout(2*time.Minute),
		fx.StopTimeout(cfg.Drain.GracePeriod.D()+StopSlack),
		fx.Provide(
			newPolicy,
			newStore,
			newTelemetry,
			supervisor.NewHooks,
			newHost,
			newPluginHealth,
			newSupervisor,
			newCounters,
			newEvents,
			newMetrics,
			newEngine,
			newMonitor,
			newAPIRef,
			newAPI,
			newServer,
			newMember,
		),
		fx.Invoke(register),
	)
}

func newPolicy(cfg *config.Config) (resilience.Policy, error) { return cfg.Policy() }

// StoreDir is where the store lives in the data directory (shared with
// the CLI commands that open it directly).
func StoreDir(data string) string { return filepath.Join(data, "store") }

// storeOpenTimeout bounds the connection to a PostgreSQL store and its
// migrations at start.
const storeOpenTimeout = time.Minute

func newStore(cfg *config.Config, log *slog.Logger) (statestore.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	return OpenStore(ctx, StoreOptionsOf(cfg, log.With("module", "store")))
}

func newHost(cfg *config.Config, log *slog.Logger, pol resilience.Policy, hooks *supervisor.Hooks, tel *telemetry.Telemetry) (*host.Host, error) {
	opts := append([]host.Option{
		host.WithLogger(log.With("module", "host")),
		host.WithCacheDir(cfg.CacheDir),
		host.WithPolicy(pol),
		host.WithStartTimeout(cfg.Plugins.StartTimeout.D()),
		host.WithEngine(cfg.Plugins.Engine),
	}, hooks.HostOptions()...)
	if tel.Enabled() {
		opts = append(opts, host.WithHTTPHeaders(tel.InjectHeaders))
	}
	return host.New(opts...)
}

func newSupervisor(cfg *config.Config, log *slog.Logger, h *host.Host, hooks *supervisor.Hooks, pol resilience.Policy,
	ph *pluginHealth, fm *fleet.Member) (*supervisor.Supervisor, error) {
	sv, err := NewLoader(h, cfg.PluginsDir, LoaderOptions{Logger: log.With("module", "supervisor"), Hooks: hooks,
		DefaultPolicy: pol, MaxModuleSize: int64(cfg.Plugins.MaxModuleSize), Watch: true,
		Extra: []supervisor.Option{supervisor.WithLoadHook(fm.Record), supervisor.WithChangeHook(ph.changed)}})
	ph.sv = sv
	return sv, err
}

// counters counts engine events the metrics report.
type counters struct {
	mu          sync.Mutex
	finished    map[statestore.RunStatus]uint64
	checkpoints uint64
	// engine is set once the engine exists (the metrics are made first:
	// the engine calls plugins through them).
	engine atomic.Pointer[workflow.Engine]
}

func newCounters() *counters { return &counters{finished: map[statestore.RunStatus]uint64{}} }

func (c *counters) observe(ev workflow.Event) {
	switch ev.Kind {
	case workflow.EventRunFinished:
		c.mu.Lock()
		c.finished[ev.Status]++
		c.mu.Unlock()
	case workflow.EventCheckpointSaved:
		c.mu.Lock()
		c.checkpoints++
		c.mu.Unlock()
	}
}

func (c *counters) finishedCounts() map[statestore.RunStatus]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[statestore.RunStatus]uint64, len(c.finished))
	for k, v := range c.finished {
		out[k] = v
	}
	return out
}

func (c *counters) checkpointCount() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkpoints
}

// invoker is what the engine calls plugins through: the supervisor's
// Invoke (fast failure for quarantined plugins) and the host's versions.
type invoker struct {
	sv *supervisor.Supervisor
	h  *host.Host
}

func (i invoker) Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	return i.sv.Invoke(ctx, req)
}

func (i invoker) Plugin(name string) (host.PluginInfo, bool) { return i.h.Plugin(name) }

func newEngine(cfg *config.Config, log *slog.Logger, store statestore.Store, sv *supervisor.Supervisor, h *host.Host, m *api.Metrics, c *counters,
	tel *telemetry.Telemetry, fm *fleet.Member, es *api.Events) (*workflow.Engine, error) {
	var inv workflow.Invoker = m.Instrument(fm.Invoker(invoker{sv, h}))
	logEvents := workflow.LogEvents(log.With("module", "engine"))
	observe := func(ev workflow.Event) { c.observe(ev); logEvents(ev); es.Publish(ev) }
	if tel.Enabled() {
		inv = tel.Invoker(inv)
		logEvents = workflow.LogEventsContext(log.With("module", "engine"), tel.EventContext)
		observe = tel.Observer(observe)
	}
	e, err := workflow.New(store, inv,
		workflow.WithOwner(cfg.Store.HostID),
		workflow.WithLease(cfg.Store.Lease.D()),
		workflow.WithLogger(log.With("module", "engine")),
		workflow.WithObserver(observe),
		workflow.WithMaxAttempts(func(plugin string) int {
			return h.Policy(plugin).WithDefaults().Retry.MaxAttempts
		}))
	if err == nil {
		c.engine.Store(e)
		es.SetHost(e.Owner())
	}
	return e, err
}

// newEvents streams the engine's events at GET /v1/events.
func newEvents() *api.Events { return api.NewEvents("", 0) }

func newMetrics(store statestore.Store, h *host.Host, sv *supervisor.Supervisor, c *counters, mon *resilience.Monitor,
	ref *apiRef) *api.Metrics {
	return api.NewMetrics(api.Sources{
		Queue: func() (string, workflow.Stats) {
			if e := c.engine.Load(); e != nil {
				return e.Owner(), e.Stats()
			}
			return "", workflow.Stats{}
		},
		Host:     h,
		Monitor:  mon,
		Draining: ref.draining,
		PluginStates: func() map[string]string {
			out := map[string]string{}
			for _, st := range sv.Statuses() {
				out[st.Name] = string(st.State)
			}
			return out
		},
		Unfinished: func(ctx context.Context) (map[statestore.RunStatus]int, error) {
			out := map[statestore.RunStatus]int{}
			for _, st := range []statestore.RunStatus{statestore.StatusPending, statestore.StatusRunning} {
				n, err := store.CountRuns(ctx, st)
				if err != nil {
					return out, err
				}
				out[st] = n
			}
			return out, nil
		},
		Finished:           c.finishedCounts,
		DeadLetters:        store.CountDeadLetters,
		CheckpointsWritten: c.checkpointCount,
		Reloads: func() map[string]map[string]uint64 {
			out := map[string]map[string]uint64{}
			for _, st := range sv.Statuses() {
				m := map[string]uint64{}
				for cause, n := range st.Causes {
					m[string(cause)] = n
				}
				out[st.Name] = m
			}
			return out
		},
	})
}

func newMonitor(log *slog.Logger) *resilience.Monitor {
	return resilience.NewMonitor(resilience.WithLogger(log.With("module", "monitor")))
}

// pluginsView adapts the supervisor to api.Plugins.
type pluginsView struct {
	sv *supervisor.Supervisor
	h  *host.Host
}

func (p pluginsView) status(st supervisor.Status) api.PluginStatus {
	out := api.PluginStatus{Name: st.Name, State: string(st.State), Reason: st.Reason, Version: st.Version,
		FileVersion: st.FileVersion, LoadedAt: st.LoadedAt, Loads: st.Loads, Failures: st.LoadFailures,
		Rebuilds: st.Rebuilds, Breaker: st.Breaker.String(), PoolIdle: st.PoolIdle, PoolInUse: st.PoolInUse, PoolMax: st.PoolMax}
	if len(st.Causes) > 0 {
		out.Causes = map[string]uint64{}
		for c, n := range st.Causes {
			out.Causes[string(c)] = n
		}
	}
	if info, ok := p.h.Plugin(st.Name); ok {
		api.FillFromHost(&out, info)
	}
	return out
}

func (p pluginsView) Statuses() []api.PluginStatus {
	sts := p.sv.Statuses()
	out := make([]api.PluginStatus, 0, len(sts))
	for _, st := range sts {
		out = append(out, p.status(st))
	}
	return out
}

func (p pluginsView) Reload(ctx context.Context, name string) (api.PluginStatus, error) {
	st, err := p.sv.Reload(ctx, name)
	if err != nil {
		return p.status(st), err
	}
	return p.status(st), nil
}

func (p pluginsView) Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	return p.sv.Invoke(ctx, req)
}

// workflowsView adapts the engine to api.Workflows.
type workflowsView struct {
	*workflow.Engine
	tel *telemetry.Telemetry
}

func (w workflowsView) Submit(ctx context.Context, wf string, input []byte, runID string) (statestore.Run, error) {
	if !w.tel.Enabled() {
		return w.Engine.Submit(ctx, wf, input, runID)
	}
	return w.tel.Submit(ctx, wf, func(ctx context.Context) (statestore.Run, error) {
		return w.Engine.Submit(ctx, wf, input, runID)
	})
}

// WorkflowSummary is one workflow in GET /v1/workflows, as api.Client
// reads it.
type WorkflowSummary = api.WorkflowSummary

func (w workflowsView) Workflows() []any {
	ws := w.Engine.Workflows()
	out := make([]any, 0, len(ws))
	for _, wf := range ws {
		out = append(out, WorkflowSummary{Name: wf.Name, File: wf.File, Nodes: wf.Order, Output: wf.Output})
	}
	return out
}

func (w workflowsView) Get(ctx context.Context, id string) (any, error) { return w.Engine.Get(ctx, id) }

// mapError maps the engine's and supervisor's errors to API errors.
func mapError(a func() *api.API) api.ErrorMapper {
	return func(err error) *api.Error {
		msg := err.Error()
		switch {
		case errors.Is(err, workflow.ErrUnknownWorkflow), errors.Is(err, plugins.ErrNotFound):
			return api.Errorf(http.StatusNotFound, api.CodeNotFound, "%s", msg)
		case errors.Is(err, plugins.ErrInvalidName):
			return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%s", msg)
		case errors.Is(err, workflow.ErrFinished):
			return api.Errorf(http.StatusConflict, api.CodeConflict, "%s", msg)
		case errors.Is(err, workflow.ErrUnknownPlugin), errors.Is(err, supervisor.ErrQuarantined):
			return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "%s", msg)
		case errors.Is(err, workflow.ErrNotStarted):
			if a().Draining() {
				return api.Errorf(http.StatusServiceUnavailable, api.CodeDraining, "%s", msg)
			}
			return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "%s", msg)
		case errors.Is(err, workflow.ErrInvalid):
			return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%s", msg)
		}
		return nil
	}
}

// readiness is what /readyz checks besides draining and the plugins of
// the start-up scan.
type readiness struct {
	mu     sync.Mutex
	engine bool
}

func (r *readiness) set(f func()) { r.mu.Lock(); f(); r.mu.Unlock() }

func newAPI(cfg *config.Config, log *slog.Logger, h *host.Host, sv *supervisor.Supervisor, eng *workflow.Engine,
	mon *resilience.Monitor, m *api.Metrics, store statestore.Store, pol resilience.Policy, ref *apiRef,
	tel *telemetry.Telemetry, fm *fleet.Member, es *api.Events) (*api.API, *readiness, error) {
	ready := &readiness{}
	var a *api.API
	deps := api.Deps{
		Host: h, Plugins: pluginsView{sv, h}, Workflows: workflowsView{eng, tel}, Monitor: mon, Metrics: m,
		Logger:   log.With("module", "api"),
		Hosts:    fm.Hosts,
		Events:   es,
		MapError: mapError(func() *api.API { return a }),
		Ready: func(ctx context.Context) error {
			ready.mu.Lock()
			e := ready.engine
			ready.mu.Unlock()
			select {
			case <-sv.Ready():
			default:
				return errors.New("plugins not loaded yet")
			}
			switch {
			case !e:
				return errors.New("workflow engine not started")
			}
			return storeCheck(ctx, store)
		},
	}
	a, err := api.New(api.Config{
		Token: cfg.Token(), MaxBody: int64(cfg.Limits.MaxBody), MaxRunInput: int64(cfg.Limits.MaxRunInput),
		Dashboard: cfg.DashboardEnabled(), Preset: cfg.Resilience.Preset, Policy: pol,
		Listen: cfg.Listen, PublicNames: cfg.PublicNames,
	}, deps)
	ref.a.Store(a)
	return a, ready, err
}

// apiRef lets the metrics, made before the API, read its draining flag.
type apiRef struct{ a atomic.Pointer[api.API] }

func newAPIRef() *apiRef { return &apiRef{} }

func (r *apiRef) draining() bool {
	a := r.a.Load()
	return a != nil && a.Draining()
}

// storeCheck reads a key that does not exist: the store answers
// ErrNotFound when it is open and readable.
func storeCheck(ctx context.Context, s statestore.Store) error {
	_, err := s.GetRun(ctx, "\x01health")
	if err == nil || errors.Is(err, statestore.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("store: %w", err)
}

func newServer(cfg *config.Config, log *slog.Logger, a *api.API, tel *telemetry.Telemetry) *api.Server {
	var h http.Handler = a
	if tel.Enabled() {
		h = tel.Middleware(h)
	}
	return api.NewServer(api.ServerConfig{
		Addr:              cfg.Listen,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.D(),
		ReadTimeout:       cfg.HTTP.ReadTimeout.D(),
		WriteTimeout:      cfg.HTTP.WriteTimeout.D(),
		IdleTimeout:       cfg.HTTP.IdleTimeout.D(),
	}, h, log.With("module", "http"))
}

// newTelemetry traces runs when the OTEL_* environment asks for it.
func newTelemetry(log *slog.Logger, store statestore.Store) (*telemetry.Telemetry, error) {
	tel, err := telemetry.FromEnv(context.Background(), os.Getenv, telemetry.WithRunLookup(store.GetRun))
	if err != nil {
		return nil, err
	}
	if tel.Enabled() {
		log.Info("tracing runs with OpenTelemetry", "exporter", "otlp")
	}
	return tel, nil
}

type params struct {
	fx.In
	Cfg    *config.Config
	Log    *slog.Logger
	LC     fx.Lifecycle
	Store  statestore.Store
	Host   *host.Host
	Sup    *supervisor.Supervisor
	Engine *workflow.Engine
	Mon    *resilience.Monitor
	API    *api.API
	Ready  *readiness
	Server *api.Server
	Tel    *telemetry.Telemetry
	Member *fleet.Member
	Addr   *listenAddr
	Events *api.Events
}

// register appends the lifecycle hooks in start order.
func register(p params) {
	p.LC.Append(fx.Hook{OnStop: func(ctx context.Context) error { return closeStore(ctx, p.Store) }})
	// Stopped after the engine: ends the spans of runs cut off by the drain.
	p.LC.Append(fx.Hook{OnStop: p.Tel.Shutdown})
	p.LC.Append(fx.Hook{OnStart: p.Host.Start, OnStop: p.Host.Stop})
	// The supervisor's Start does not wait for the loads: the service
	// serves while a slow or bad module is still being loaded or
	// quarantined, and /readyz says so until every plugin of the scan is
	// settled.
	p.LC.Append(fx.Hook{OnStart: p.Sup.Start, OnStop: p.Sup.Stop})
	p.LC.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			every := p.Cfg.Resilience.HealthCheckInterval.D()
			if err := p.Mon.Register("store", func(ctx context.Context) resilience.CheckResult {
				if err := storeCheck(ctx, p.Store); err != nil {
					return resilience.CheckResult{Message: err.Error()}
				}
				return resilience.CheckResult{OK: true}
			}, every); err != nil {
				return err
			}
			if err := p.Mon.Register("plugins", func(ctx context.Context) resilience.CheckResult {
				return pluginDirCheck(p.Sup)
			}, every); err != nil {
				return err
			}
			// The plugin:NAME components follow the directory (pluginHealth).
			return p.Mon.Start(ctx)
		},
		OnStop: p.Mon.Stop,
	})
	p.LC.Append(fx.Hook{OnStart: p.Server.Start, OnStop: p.Server.Stop})
	// Stopped before the server, after the drain: event streams see the
	// drain's events, then end, so the server's shutdown does not wait
	// for them.
	p.LC.Append(fx.Hook{OnStop: func(context.Context) error { p.Events.Close(); return nil }})
	p.LC.Append(memberHook(p.Member, p.Addr, p.Server))
	p.LC.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			// Runs resumed by the engine's start call plugins: let the
			// scan's plugins settle first (each load is bounded by the
			// host's start timeout), while the server already answers.
			wctx, cancel := context.WithTimeout(ctx, pluginsWait)
			err := p.Sup.WaitReady(wctx)
			cancel()
			if err != nil {
				p.Log.Warn("starting the workflow engine before every plugin is loaded", "waited", pluginsWait)
			}
			if err := p.Engine.LoadWorkflows(p.Cfg.WorkflowsDir, workflow.ParseOptions{}); err != nil {
				p.Log.Warn("some workflows were not loaded", "dir", p.Cfg.WorkflowsDir, "err", err)
			}
			if err := p.Engine.Start(ctx); err != nil {
				return err
			}
			p.Ready.set(func() { p.Ready.engine = true })
			p.Log.Info("serving", "addr", p.Server.Addr(), "store", storeName(p.Cfg), "plugins", len(p.Host.Plugins()), "workflows", len(p.Engine.Workflows()))
			return nil
		},
		OnStop: func(ctx context.Context) error {
			grace := p.Cfg.Drain.GracePeriod.D()
			gctx, cancel := context.WithTimeout(ctx, grace)
			defer cancel()
			start := time.Now()
			err := p.Engine.Stop(gctx)
			if err != nil {
				p.Log.Warn("drain: nodes cancelled at the grace period; they resume on the next start", "grace", grace, "err", err)
			} else {
				p.Log.Info("drain: engine stopped", "took", time.Since(start).Round(time.Millisecond))
			}
			return nil
		},
	})
	p.LC.Append(fx.Hook{OnStop: func(context.Context) error {
		p.Log.Info("draining: refusing new runs and calls")
		p.API.Drain()
		return nil
	}})
}

// pluginDirCheck reports the plugin directory: failed when it cannot be
// read, degraded while a plugin is refused or quarantined (not while it
// is being loaded).
func pluginDirCheck(sup *supervisor.Supervisor) resilience.CheckResult {
	dir := sup.Registry().Dir()
	if _, err := os.ReadDir(dir); err != nil {
		return resilience.CheckResult{Message: err.Error()}
	}
	var bad []string
	for _, st := range sup.Statuses() {
		// A plugin still being loaded (no state yet) is not a fault.
		if st.State != supervisor.StateOK && st.State != "" {
			bad = append(bad, st.Name+" "+string(st.State)+": "+st.Reason)
		}
	}
	res := resilience.CheckResult{OK: true, Metadata: map[string]any{"dir": dir, "plugins": len(sup.Statuses())}}
	if len(bad) > 0 {
		res.Degraded, res.Message = true, strings.Join(bad, "; ")
	}
	return res
}

// closeStore closes the store within ctx when it can be bounded (Badger
// retries a failed flush forever on a full disk): the stop then fails with
// the store's error instead of hanging.
func closeStore(ctx context.Context, s statestore.Store) error {
	if c, ok := s.(interface{ CloseContext(context.Context) error }); ok {
		return c.CloseContext(ctx)
	}
	return s.Close()
}
