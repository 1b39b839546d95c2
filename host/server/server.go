package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

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

// Defaults of Config's zero fields.
const (
	DefaultListen              = "127.0.0.1:7070"
	DefaultPluginsDir          = "plugins"
	DefaultWorkflowsDir        = "workflows"
	DefaultDataDir             = ".bulkhead"
	DefaultHealthCheckInterval = 30 * time.Second
	DefaultGracePeriod         = 30 * time.Second
	// PluginsWait bounds how long Start waits for the plugins of the
	// start-up scan before it starts the workflow engine anyway.
	PluginsWait = time.Minute
	// StopSlack is what Run gives the server, supervisor, host and store
	// to stop after the drain's grace period.
	StopSlack = 30 * time.Second
)

// Config is the service's configuration. The zero value of a field means
// its default.
type Config struct {
	// Listen is the API's listen address ("127.0.0.1:0" picks a port;
	// Addr says which). Default DefaultListen.
	Listen string
	// PublicNames are the names ("host" or "host:port") clients reach the
	// service by besides its loopback names and the listen host; see
	// api.Config.
	PublicNames []string
	// Token is the bearer token every /v1 request must carry; "" serves
	// without one (loopback and PublicNames only).
	Token string
	// PluginsDir is the plugin directory, watched. Default DefaultPluginsDir.
	PluginsDir string
	// WorkflowsDir is the workflow directory. Default DefaultWorkflowsDir.
	WorkflowsDir string
	// DataDir holds the embedded store (StoreDir). Default DefaultDataDir.
	DataDir string
	// CacheDir holds compiled code; "" keeps it in memory.
	CacheDir string
	// Policy is the default policy of plugin calls; nil is the
	// production preset. Preset names it for the API.
	Policy *resilience.Policy
	Preset string
	// Dashboard serves the HTML dashboard at /.
	Dashboard bool
	// MaxBody and MaxRunInput bound what a client sends (0: the API's
	// defaults); MaxModuleSize caps a module file (0: the registry's).
	MaxBody, MaxRunInput, MaxModuleSize int64
	// StartTimeout bounds a module's start function (0: the host's default).
	StartTimeout time.Duration
	// Engine runs plugins whose manifest names none ("": the host's default).
	Engine string
	// HealthCheckInterval is how often components are checked. Default
	// DefaultHealthCheckInterval.
	HealthCheckInterval time.Duration
	// HTTP holds the API server's timeouts (Addr is Listen's).
	HTTP api.ServerConfig
	// Store selects and tunes the store opened at Start (its DataDir is
	// DataDir's) unless WithStore gives one.
	Store StoreOptions
	// HostID names this host in the store's claims (workflow.WithOwner);
	// Lease is workflow.WithLease and Heartbeat fleet.Config's (0: their
	// defaults).
	HostID    string
	Lease     time.Duration
	Heartbeat time.Duration
	// GracePeriod is how long running nodes may finish at Stop before they
	// are cancelled, to resume on the next start. Default
	// DefaultGracePeriod.
	GracePeriod time.Duration
	// Version is the bulkhead version the hosts sharing the store see.
	Version string
}

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Listen, DefaultListen)
	def(&c.PluginsDir, DefaultPluginsDir)
	def(&c.WorkflowsDir, DefaultWorkflowsDir)
	def(&c.DataDir, DefaultDataDir)
	def(&c.Version, "dev")
	if c.HealthCheckInterval <= 0 {
		c.HealthCheckInterval = DefaultHealthCheckInterval
	}
	if c.GracePeriod <= 0 {
		c.GracePeriod = DefaultGracePeriod
	}
	if c.Policy == nil {
		p, _ := resilience.Preset(resilience.PresetProduction)
		c.Policy = &p
		c.Preset = resilience.PresetProduction
	} else {
		p := *c.Policy // the caller's may change after New
		c.Policy = &p
	}
	c.HTTP.Addr = c.Listen
	c.Store.DataDir = c.DataDir
	return c
}

// Option configures a Server.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	log    *slog.Logger
	store  statestore.Store
	getenv func(string) string
}

// WithLogger sets the logger; nil discards.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.log = l }) }

// WithStore serves runs from s instead of opening Config.Store at Start.
// The caller keeps it: Stop does not close it (CloseStore does). Config.Store
// still names it in the log. It must list hosts and share
// modules (fleet.Store), as the embedded and PostgreSQL stores do.
func WithStore(s statestore.Store) Option { return optionFunc(func(o *options) { o.store = s }) }

// WithGetenv traces runs with OpenTelemetry when the OTEL_* variables
// getenv returns ask for it (the command passes os.Getenv). Default: no
// tracing.
func WithGetenv(getenv func(string) string) Option {
	return optionFunc(func(o *options) { o.getenv = getenv })
}

// Server is `bulkhead serve`: the store, the host, the plugin supervisor,
// the workflow engine, the health monitor and the HTTP API, started and
// stopped together. Build one with New, then Start and Stop it, or Run it.
type Server struct {
	cfg  Config
	opts options
	log  *slog.Logger

	mu      sync.Mutex
	started bool
	stopped bool
	stops   []func(context.Context) error // what Start started, in start order
	addr    string                        // the API's, once it listens

	// Set by Start.
	store  statestore.Store
	tel    *telemetry.Telemetry
	h      *host.Host
	sv     *supervisor.Supervisor
	mon    *resilience.Monitor
	eng    *workflow.Engine
	api    *api.API
	events *api.Events // GET /v1/events
	srv    *api.Server
	member *fleet.Member
	ready  atomic.Bool // the engine started
}

// New checks cfg and returns a server. It does no I/O and starts nothing.
func New(cfg Config, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("server: policy: %w", err)
	}
	if o.store == nil {
		if err := CheckStoreURL(cfg.Store.URL); err != nil {
			return nil, fmt.Errorf("server: store: %w", err)
		}
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.getenv != nil {
		if on, _ := telemetry.Configured(o.getenv); on {
			log = slog.New(telemetry.LogHandler(log.Handler())) // trace_id and span_id on traced lines
		}
	}
	return &Server{cfg: cfg, opts: o, log: log}, nil
}

// ErrStarted is returned by a second Start, or a Start after Stop.
var ErrStarted = errors.New("server: already started")

// Start opens the store, starts every component in order (host,
// supervisor, monitor, HTTP server, fleet membership, workflow engine) and
// returns once the API listens and the engine runs. It waits up to
// PluginsWait for the plugins of the start-up scan before starting the
// engine, so resumed runs find them; /readyz fails until both are done. On
// error what was started is stopped again.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.stopped {
		s.mu.Unlock()
		return ErrStarted
	}
	s.started = true
	s.mu.Unlock()
	if err := s.start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.GracePeriod+StopSlack)
		defer cancel()
		return errors.Join(err, s.stopAll(sctx))
	}
	return nil
}

// onStop records a component's stop, run in reverse order by Stop.
func (s *Server) onStop(f func(context.Context) error) {
	s.mu.Lock()
	s.stops = append(s.stops, f)
	s.mu.Unlock()
}

func (s *Server) start(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	if err := s.openStore(ctx); err != nil {
		return err
	}
	var err error
	s.tel = telemetry.Disabled()
	if s.opts.getenv != nil {
		if s.tel, err = telemetry.FromEnv(ctx, s.opts.getenv, telemetry.WithRunLookup(s.store.GetRun)); err != nil {
			return err
		}
		if s.tel.Enabled() {
			log.Info("tracing runs with OpenTelemetry", "exporter", "otlp")
		}
	}
	// Stopped after the engine: ends the spans of runs cut off by the drain.
	s.onStop(s.tel.Shutdown)
	if err := s.build(); err != nil {
		return err
	}
	if err := s.h.Start(ctx); err != nil {
		return err
	}
	s.onStop(s.h.Stop)
	// The supervisor's Start does not wait for the loads: the service
	// serves while a slow or bad module is still being loaded or
	// quarantined, and /readyz says so until every plugin of the scan is
	// settled.
	if err := s.sv.Start(ctx); err != nil {
		return err
	}
	s.onStop(s.sv.Stop)
	if err := s.startMonitor(ctx); err != nil {
		return err
	}
	s.onStop(s.mon.Stop)
	if err := s.srv.Start(ctx); err != nil {
		return err
	}
	s.onStop(s.srv.Stop)
	// Stopped before the server, after the drain: event streams see the
	// drain's events, then end, so the server's shutdown does not wait
	// for them.
	s.onStop(func(context.Context) error { s.events.Close(); return nil })
	s.mu.Lock()
	s.addr = s.srv.Addr()
	s.mu.Unlock()
	// The membership starts once the server listens: its address is known.
	if err := s.member.Start(ctx); err != nil {
		return err
	}
	s.onStop(s.member.Stop)
	// Runs resumed by the engine's start call plugins: let the scan's
	// plugins settle first (each load is bounded by the host's start
	// timeout), while the server already answers.
	wctx, cancel := context.WithTimeout(ctx, PluginsWait)
	err = s.sv.WaitReady(wctx)
	cancel()
	if err != nil {
		log.Warn("starting the workflow engine before every plugin is loaded", "waited", PluginsWait)
	}
	if err := s.eng.LoadWorkflows(cfg.WorkflowsDir, workflow.ParseOptions{}); err != nil {
		log.Warn("some workflows were not loaded", "dir", cfg.WorkflowsDir, "err", err)
	}
	// Registered first: a Start that fails while it resumes runs (its
	// context cancelled, the store gone) has started the workers already.
	s.onStop(s.stopEngine)
	if err := s.eng.Start(ctx); err != nil {
		return err
	}
	s.ready.Store(true)
	log.Info("serving", "addr", s.Addr(), "store", storeName(s.cfg.Store), "plugins", len(s.h.Plugins()), "workflows", len(s.eng.Workflows()))
	return nil
}

// storeOpenTimeout bounds the connection to a PostgreSQL store and its
// migrations at start.
const storeOpenTimeout = time.Minute

func (s *Server) openStore(ctx context.Context) error {
	if s.opts.store != nil {
		s.store = s.opts.store
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	defer cancel()
	o := s.cfg.Store
	o.Logger = s.log.With("module", "store")
	st, err := OpenStore(sctx, o)
	if err != nil {
		return err
	}
	s.store = st
	s.onStop(func(ctx context.Context) error { return CloseStore(ctx, st) })
	return nil
}

// build makes the components over the open store; none starts yet.
func (s *Server) build() error {
	cfg, log := s.cfg, s.log
	fs, ok := s.store.(fleet.Store)
	if !ok {
		return fmt.Errorf("server: store %T cannot list hosts or share modules", s.store)
	}
	hopts := []host.Option{
		host.WithLogger(log.With("module", "host")),
		host.WithCacheDir(cfg.CacheDir),
		host.WithPolicy(*cfg.Policy),
		host.WithEngine(cfg.Engine),
	}
	if cfg.StartTimeout > 0 {
		hopts = append(hopts, host.WithStartTimeout(cfg.StartTimeout))
	}
	if s.tel.Enabled() {
		hopts = append(hopts, host.WithHTTPHeaders(s.tel.InjectHeaders))
	}
	var err error
	if s.h, err = host.New(hopts...); err != nil {
		return err
	}
	if s.member, err = fleet.New(fs, s.h, fleet.Config{Version: cfg.Version, Heartbeat: cfg.Heartbeat, Address: s.Addr},
		log.With("module", "fleet")); err != nil {
		return err
	}
	s.mon = resilience.NewMonitor(resilience.WithLogger(log.With("module", "monitor")))
	ph := &pluginHealth{mon: s.mon, h: s.h, every: cfg.HealthCheckInterval, log: log.With("module", "health")}
	if s.sv, err = NewLoader(s.h, cfg.PluginsDir, LoaderOptions{Logger: log.With("module", "supervisor"),
		DefaultPolicy: *cfg.Policy, MaxModuleSize: cfg.MaxModuleSize, Watch: true,
		Extra: []supervisor.Option{supervisor.WithLoadHook(s.member.Record), supervisor.WithChangeHook(ph.changed)}}); err != nil {
		return err
	}
	ph.sv = s.sv
	s.events = api.NewEvents("", 0)
	m := s.metrics()
	if err := s.newEngine(m); err != nil {
		return err
	}
	var wf api.Workflows = s.eng
	if s.tel.Enabled() {
		wf = s.tel.Workflows(wf)
	}
	if s.api, err = api.New(api.Config{
		Token: cfg.Token, MaxBody: cfg.MaxBody, MaxRunInput: cfg.MaxRunInput,
		Dashboard: cfg.Dashboard, Preset: cfg.Preset, Policy: *cfg.Policy,
		Listen: cfg.Listen, PublicNames: cfg.PublicNames,
	}, api.Deps{
		Host: s.h, Plugins: s.sv, Workflows: wf, Monitor: s.mon, Metrics: m,
		Logger:   log.With("module", "api"),
		Hosts:    s.member.Hosts,
		Events:   s.events,
		MapError: s.mapError,
		Ready:    s.readiness,
	}); err != nil {
		return err
	}
	var handler http.Handler = s.api
	if s.tel.Enabled() {
		handler = s.tel.Middleware(handler)
	}
	s.srv = api.NewServer(cfg.HTTP, handler, log.With("module", "http"))
	return nil
}

func (s *Server) newEngine(m *api.Metrics) error {
	cfg, log := s.cfg, s.log.With("module", "engine")
	var inv workflow.Invoker = m.Instrument(s.member.Invoker(s.sv))
	logEvents := workflow.LogEvents(log)
	if s.tel.Enabled() {
		inv = s.tel.Invoker(inv)
		logEvents = workflow.LogEventsContext(log, s.tel.EventContext)
	}
	observe := func(ev workflow.Event) { m.Observe(ev); logEvents(ev); s.events.Publish(ev) }
	if s.tel.Enabled() {
		observe = s.tel.Observer(observe)
	}
	opts := []workflow.Option{
		workflow.WithLogger(log),
		workflow.WithObserver(observe),
		workflow.WithMaxAttempts(func(plugin string) int {
			return s.h.Policy(plugin).WithDefaults().Retry.MaxAttempts
		}),
	}
	if cfg.HostID != "" {
		opts = append(opts, workflow.WithOwner(cfg.HostID))
	}
	if cfg.Lease > 0 {
		opts = append(opts, workflow.WithLease(cfg.Lease))
	}
	var err error
	if s.eng, err = workflow.New(s.store, inv, opts...); err != nil {
		return err
	}
	s.events.SetHost(s.eng.Owner())
	return nil
}

// metrics reads the components at scrape time; the engine and the API,
// made after it, are set before the server serves.
func (s *Server) metrics() *api.Metrics {
	return api.NewMetrics(api.Sources{
		Queue:    func() (string, workflow.Stats) { return s.eng.Owner(), s.eng.Stats() },
		Host:     s.h,
		Monitor:  s.mon,
		Draining: func() bool { return s.api.Draining() },
		PluginStates: func() map[string]string {
			out := map[string]string{}
			for _, st := range s.sv.Statuses() {
				out[st.Name] = string(st.State)
			}
			return out
		},
		Unfinished: func(ctx context.Context) (map[statestore.RunStatus]int, error) {
			out := map[statestore.RunStatus]int{}
			for _, st := range []statestore.RunStatus{statestore.StatusPending, statestore.StatusRunning} {
				n, err := s.store.CountRuns(ctx, st)
				if err != nil {
					return out, err
				}
				out[st] = n
			}
			return out, nil
		},
		DeadLetters: s.store.CountDeadLetters,
		Reloads: func() map[string]map[string]uint64 {
			out := map[string]map[string]uint64{}
			for _, st := range s.sv.Statuses() {
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

// readiness is what /readyz checks besides draining.
func (s *Server) readiness(ctx context.Context) error {
	select {
	case <-s.sv.Ready():
	default:
		return errors.New("plugins not loaded yet")
	}
	if !s.ready.Load() {
		return errors.New("workflow engine not started")
	}
	return storeCheck(ctx, s.store)
}

func (s *Server) startMonitor(ctx context.Context) error {
	every := s.cfg.HealthCheckInterval
	if err := s.mon.Register("store", func(ctx context.Context) resilience.CheckResult {
		if err := storeCheck(ctx, s.store); err != nil {
			return resilience.CheckResult{Message: err.Error()}
		}
		return resilience.CheckResult{OK: true}
	}, every); err != nil {
		return err
	}
	if err := s.mon.Register("plugins", func(ctx context.Context) resilience.CheckResult {
		return pluginDirCheck(s.sv)
	}, every); err != nil {
		return err
	}
	// The plugin:NAME components follow the directory (pluginHealth).
	return s.mon.Start(ctx)
}

// stopEngine drains the engine: it stops starting nodes and lets running
// ones finish within the grace period, then cancels them so they resume on
// the next start.
func (s *Server) stopEngine(ctx context.Context) error {
	grace := s.cfg.GracePeriod
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	start := time.Now()
	if err := s.eng.Stop(gctx); err != nil {
		s.log.Warn("drain: nodes cancelled at the grace period; they resume on the next start", "grace", grace, "err", err)
	} else {
		s.log.Info("drain: engine stopped", "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Stop drains and stops the service: the API refuses new runs and calls
// (503, /readyz fails), the engine lets running nodes finish within the
// grace period, then the HTTP server, membership, monitor, supervisor and
// host stop and the store it opened is closed (flushed). It is
// idempotent; ctx bounds it. Call it once Start returned (Run does).
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	if s.api != nil {
		s.log.Info("draining: refusing new runs and calls")
		s.api.Drain()
	}
	return s.stopAll(ctx)
}

func (s *Server) stopAll(ctx context.Context) error {
	s.mu.Lock()
	stops := s.stops
	s.stops = nil
	s.stopped = true
	s.mu.Unlock()
	var errs []error
	for i := len(stops) - 1; i >= 0; i-- {
		errs = append(errs, stops[i](ctx))
	}
	return errors.Join(errs...)
}

// Run starts the server, serves until ctx is done and stops it, giving
// the drain GracePeriod plus StopSlack.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // cancelled while starting: Start stopped what it had started
		}
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.GracePeriod+StopSlack)
	defer cancel()
	return s.Stop(sctx)
}

// Addr is the API's address once it listens ("" before).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Host, Supervisor, Engine and Store are the service's components, nil
// before Start.
func (s *Server) Host() *host.Host                   { return s.h }
func (s *Server) Supervisor() *supervisor.Supervisor { return s.sv }
func (s *Server) Engine() *workflow.Engine           { return s.eng }
func (s *Server) Store() statestore.Store            { return s.store }

// mapError maps the engine's and supervisor's errors to API errors.
func (s *Server) mapError(err error) *api.Error {
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
		if s.api != nil && s.api.Draining() {
			return api.Errorf(http.StatusServiceUnavailable, api.CodeDraining, "%s", msg)
		}
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "%s", msg)
	case errors.Is(err, workflow.ErrInvalid):
		return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%s", msg)
	}
	return nil
}

// CloseStore closes a store within ctx when it can be bounded (Badger
// retries a failed flush forever on a full disk): the stop then fails with
// the store's error instead of hanging.
func CloseStore(ctx context.Context, st statestore.Store) error {
	if c, ok := st.(interface{ CloseContext(context.Context) error }); ok {
		return c.CloseContext(ctx)
	}
	return st.Close()
}
