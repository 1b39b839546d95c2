package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/sys"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/internal/fuel"
	"github.com/bulkhead-run/bulkhead/host/internal/pool"
	"github.com/bulkhead-run/bulkhead/host/internal/quota"
	"github.com/bulkhead-run/bulkhead/host/internal/xabi"
	"github.com/bulkhead-run/bulkhead/internal/digest"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// DefaultTimeout bounds a call when neither the caller nor the manifest sets
// a shorter deadline.
const DefaultTimeout = 30 * time.Second

// DefaultStartTimeout bounds the instantiation Load does to prove a module
// works: the module's start function (and a reactor's _initialize) must
// return within it.
const DefaultStartTimeout = 5 * time.Second

// Option configures a Host.
type Option interface{ apply(*options) }

type options struct {
	logger          *slog.Logger
	cacheDir        string
	defaultTimeout  time.Duration
	startTimeout    time.Duration
	compiles        int
	janitorEvery    time.Duration
	policy          resilience.Policy
	httpPolicy      resilience.Policy
	resOpts         []resilience.Option
	fuel            bool
	fuelFallback    bool
	checkpointEvery time.Duration
	httpHeaders     headerFunc
	engine          string
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithLogger sets the logger for the host and for guest log lines. Nil
// discards.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithCacheDir keeps compiled code in dir, so a restart does not recompile.
// Without it the cache lives in memory and is shared by every plugin.
func WithCacheDir(dir string) Option { return optionFunc(func(o *options) { o.cacheDir = dir }) }

// WithDefaultTimeout changes DefaultTimeout.
func WithDefaultTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.defaultTimeout = d })
}

// WithStartTimeout changes DefaultStartTimeout: how long Load lets a
// module's start function run before it refuses the module. It is separate
// from the call timeout, so a module that spins at start is refused within
// seconds whatever its manifest's timeout.
func WithStartTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.startTimeout = d })
}

// WithMaxCompiles bounds how many modules Load compiles at once (default
// GOMAXPROCS). Loads beyond it wait for a slot; instantiation, which runs
// guest code, is outside the bound, so a module that spins at start never
// holds a slot.
func WithMaxCompiles(n int) Option { return optionFunc(func(o *options) { o.compiles = n }) }

// WithPolicy sets the resilience policy of plugins that have none of
// their own (default: the zero Policy, whose fields mean their documented
// defaults).
func WithPolicy(p resilience.Policy) Option {
	return optionFunc(func(o *options) { o.policy = p })
}

// WithFuel turns CPU metering on or off (default on). A metered module is
// rewritten at load time to count its own instructions ("fuel"): a call's
// deadline, cancellation and CPU budget (the manifest's cpu_budget) stop it
// within about a millisecond, without wazero's close-on-context-done. Off,
// every module runs with close-on-context-done.
func WithFuel(on bool) Option { return optionFunc(func(o *options) { o.fuel = on }) }

// WithUnmeteredFallback says what happens to a module the fuel rewriter
// cannot meter (it uses a feature such as threads): with true (the default)
// it runs with close-on-context-done and its PluginInfo says why it is not
// metered; with false, Load refuses it.
func WithUnmeteredFallback(ok bool) Option {
	return optionFunc(func(o *options) { o.fuelFallback = ok })
}

// WithCheckpointInterval sets the automatic checkpoint interval every
// plugin reads from its config (abi.ConfigCheckpointInterval) unless its
// manifest sets the key itself.
func WithCheckpointInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.checkpointEvery = d })
}

// WithEngine selects the engine that runs plugins whose manifest names
// none (default DefaultEngine): abi.EngineNative, bulkhead's own
// implementation of the Extism ABI on wazero, or abi.EngineExtism, Extism's
// go-sdk, kept as the reference. The package documentation says what
// differs between them.
func WithEngine(name string) Option { return optionFunc(func(o *options) { o.engine = name }) }

// WithHTTPPolicy sets the policy of the breakers guarding guest HTTP
// requests, one per destination host.
func WithHTTPPolicy(p resilience.Policy) Option {
	return optionFunc(func(o *options) { o.httpPolicy = p })
}

// WithResilienceOptions passes options (a clock, a random source, …) to
// every executor the host creates. The classifier and the state-change
// hook are the host's own (Classify, and the Watchers of Watch).
func WithResilienceOptions(opts ...resilience.Option) Option {
	return optionFunc(func(o *options) { o.resOpts = append(o.resOpts, opts...) })
}

// Host loads plugins and calls them. Its methods are safe for concurrent use.
type Host struct {
	opts  options
	log   *slog.Logger
	cache wazero.CompilationCache

	execs    *resilience.Registry
	watchers watchers // the hooks of execs (watch.go)
	pols     policies
	// execByPlugin caches the executor of each plugin's own policy, by
	// plugin name, sparing a call the lookup by PolicyName (the registry
	// never drops the executors a Host creates).
	// It is copied on write (under execMu) and read without a lock.
	execMu       sync.Mutex
	execByPlugin atomic.Pointer[map[string]*resilience.Executor]
	compiles     chan struct{} // one token per compile running
	guestNet     guestNet      // transports of guest HTTP requests (http.go)
	// guestClient sends every guest HTTP request, on both engines.
	guestClient *http.Client

	mu      sync.RWMutex
	plugins map[string]*plugin
	// pluginsView is a copy of plugins, republished under mu after each
	// change, that the call path reads without taking mu.
	pluginsView atomic.Pointer[map[string]*plugin]
	pinned      map[string][]*generation // by plugin, oldest first (pinned.go)

	// accounts counts each plugin's state against its quota, by plugin
	// name, across versions and reloads (*quota.Account).
	accounts sync.Map

	closed   atomic.Bool
	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup // background drains and the janitor
}

type plugin struct {
	name string
	gen  atomic.Pointer[generation]
}

// generation is one loaded version of a plugin: its compiled module and
// the pool of its instances.
type generation struct {
	plugin   string
	version  string
	manifest abi.Manifest
	loadedAt time.Time
	module   *xabi.Module
	pool     *pool.Pool[*instance]
	timeout  time.Duration
	maxIn    int64
	maxOut   int64
	maxLog   int
	memCap   uint64
	maxErr   int
	// maxCheckpoint caps one checkpoint; stateLimits is the state quota.
	maxCheckpoint int
	stateLimits   quota.Limits
	// logLimit rates the guest's log lines, warnLimit the host's warnings
	// about its failed host function calls.
	logLimit, warnLimit *quota.Limiter

	calls, failures, fuelUsed atomic.Uint64
}

type instance struct {
	e *xabi.Instance
	// state of the call running on this instance; touched only by the
	// goroutine that holds the instance.
	state *callState
}

// New returns a Host. It does no I/O and starts no goroutine.
func New(opts ...Option) (*Host, error) {
	o := options{defaultTimeout: DefaultTimeout, startTimeout: DefaultStartTimeout, compiles: runtime.GOMAXPROCS(0), janitorEvery: 10 * time.Second, httpPolicy: defaultHTTPPolicy(),
		fuel: true, fuelFallback: true, checkpointEvery: abi.DefaultCheckpointInterval}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.defaultTimeout <= 0 {
		return nil, fmt.Errorf("host: default timeout must be positive, got %s", o.defaultTimeout)
	}
	if o.startTimeout <= 0 {
		return nil, fmt.Errorf("host: start timeout must be positive, got %s", o.startTimeout)
	}
	if o.compiles <= 0 {
		return nil, fmt.Errorf("host: max compiles must be positive, got %d", o.compiles)
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := o.policy.Validate(); err != nil {
		return nil, fmt.Errorf("host: default policy: %w", err)
	}
	if o.engine == "" {
		o.engine = DefaultEngine
	}
	if err := abi.ValidateEngine(o.engine); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	h := &Host{opts: o, log: log, plugins: make(map[string]*plugin), compiles: make(chan struct{}, o.compiles)}
	ropts := append(append([]resilience.Option{resilience.WithLogger(log)}, o.resOpts...),
		resilience.WithClassifier(h.watchers.classify), resilience.WithStateChange(h.watchers.breakerChanged))
	h.execs = resilience.NewRegistry(ropts...)
	h.guestClient = &http.Client{Transport: &guestTransport{h: h}}
	return h, nil
}

// Start opens the compilation cache and starts the janitor that closes idle
// instances. Calls and loads also work without Start, with an in-memory cache.
func (h *Host) Start(ctx context.Context) error {
	if err := h.ensureCache(); err != nil {
		return err
	}
	jctx, cancel := context.WithCancel(context.Background())
	h.mu.Lock()
	h.cancel = cancel
	h.mu.Unlock()
	h.wg.Add(1)
	go h.janitor(jctx)
	return nil
}

func (h *Host) ensureCache() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cache != nil {
		return nil
	}
	if h.opts.cacheDir == "" {
		h.cache = wazero.NewCompilationCache()
		return nil
	}
	c, err := wazero.NewCompilationCacheWithDir(h.opts.cacheDir)
	if err != nil {
		return fmt.Errorf("host: compilation cache in %s: %w", h.opts.cacheDir, err)
	}
	h.cache = c
	return nil
}

func (h *Host) janitor(ctx context.Context) {
	defer h.wg.Done()
	t := time.NewTicker(h.opts.janitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, g := range h.generations() {
				g.pool.EvictIdle()
				g.summarize(ctx, h.log, time.Now())
			}
		}
	}
}

func (h *Host) generations() []*generation {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*generation, 0, len(h.plugins))
	for _, p := range h.plugins {
		if g := p.gen.Load(); g != nil {
			out = append(out, g)
		}
	}
	return out
}

// Stop refuses new calls, lets calls in flight finish within ctx, closes
// every instance and module, and waits for the host's goroutines. It is
// idempotent.
func (h *Host) Stop(ctx context.Context) error {
	var err error
	h.stopOnce.Do(func() {
		h.closed.Store(true)
		h.mu.Lock()
		if h.cancel != nil {
			h.cancel()
		}
		plugins := h.plugins
		h.plugins = map[string]*plugin{}
		h.publishPlugins()
		h.mu.Unlock()
		var errs []error
		for _, p := range plugins {
			if g := p.gen.Swap(nil); g != nil {
				errs = append(errs, h.retire(ctx, g))
			}
		}
		for _, g := range h.takePinned() {
			errs = append(errs, h.retire(ctx, g))
		}
		h.wg.Wait()
		h.guestNet.close()
		h.mu.Lock()
		if h.cache != nil {
			errs = append(errs, h.cache.Close(context.Background()))
		}
		h.mu.Unlock()
		err = errors.Join(errs...)
	})
	return err
}

// retire drains g's pool within ctx and frees its compiled module.
func (h *Host) retire(ctx context.Context, g *generation) error {
	err := g.pool.Close(ctx)
	if err != nil {
		return fmt.Errorf("drain %s@%s: %w", g.plugin, digest.Short(g.version), err)
	}
	return g.module.Close(context.Background())
}

// Version returns the content hash that names a module's version.
func Version(wasm []byte) string {
	return digest.Of(wasm)
}

// Load compiles wasm as plugin name and makes it the version new calls use.
// A plugin already loaded keeps serving until the new version is compiled
// and its first instances are ready; then the swap is atomic, calls in flight
// finish on the old version and its instances are closed once they return.
// If wasm does not compile or instantiate, the old version keeps serving and
// the error (a *LoadError, matching ErrInvalidModule) says why.
func (h *Host) Load(ctx context.Context, name string, wasm []byte, m abi.Manifest) (string, error) {
	if h.closed.Load() {
		return "", ErrClosed
	}
	if err := m.Validate(); err != nil {
		return "", &LoadError{Plugin: name, Err: fmt.Errorf("manifest: %w", err)}
	}
	if err := h.ensureCache(); err != nil {
		return "", err
	}
	g, err := h.compile(ctx, name, wasm, m)
	if err != nil {
		return "", &LoadError{Plugin: name, Err: err}
	}
	h.mu.Lock()
	if h.closed.Load() {
		h.mu.Unlock()
		_ = h.retire(ctx, g)
		return "", ErrClosed
	}
	p := h.plugins[name]
	if p == nil {
		p = &plugin{name: name}
		h.plugins[name] = p
		h.publishPlugins()
	}
	old := p.gen.Swap(g)
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		if old != nil {
			if err := h.retire(context.Background(), old); err != nil {
				h.log.Warn("retire old version", "plugin", name, "err", err)
			}
		}
	}()
	h.log.Debug("plugin loaded", "plugin", name, "version", digest.Short(g.version))
	return g.version, nil
}

func (h *Host) compile(ctx context.Context, name string, wasm []byte, m abi.Manifest) (*generation, error) {
	g := &generation{
		plugin:   name,
		version:  Version(wasm),
		manifest: m,
		loadedAt: time.Now(),
		timeout:  h.opts.defaultTimeout,
		maxIn:    int64(orDefault(m.MaxInput, abi.DefaultMaxInputBytes)),
		maxOut:   int64(orDefault(m.MaxOutput, abi.DefaultMaxOutputBytes)),
		maxLog:   int(orDefault(m.MaxLogLine, abi.DefaultMaxLogLineBytes)),
		memCap:   uint64(orDefault(m.Memory, abi.DefaultMemoryBytes)),
		maxErr:   int(orDefault(m.MaxError, abi.DefaultMaxErrorBytes)),

		maxCheckpoint: int(orDefault(m.MaxCheckpoint, abi.DefaultMaxCheckpoint)),
		stateLimits: quota.Limits{Keys: int64(orDefault(abi.Size(m.StateKeys), abi.DefaultStateKeys)),
			Bytes: int64(orDefault(m.StateBytes, abi.DefaultStateBytes))},
		logLimit: quota.NewLimiter(int64(orDefault(abi.Size(m.LogLinesPerSecond), abi.DefaultLogLinesPerSecond)),
			int64(orDefault(m.LogBytesPerSecond, abi.DefaultLogBytesPerSecond))),
		warnLimit: quota.NewLimiter(warnsPerSecond, 0),
	}
	if m.Timeout > 0 {
		g.timeout = time.Duration(m.Timeout)
	}
	config := make(map[string]string, len(m.Config)+1)
	config[abi.ConfigCheckpointInterval] = h.opts.checkpointEvery.String()
	for k, v := range m.Config {
		config[k] = v
	}
	select {
	case h.compiles <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mod, err := xabi.Compile(ctx, xabi.Config{
		Wasm:         wasm,
		MemoryPages:  uint32((g.memCap + xabi.PageSize - 1) / xabi.PageSize),
		AllowedHosts: m.AllowedHosts,
		AllowedPaths: m.AllowedPaths,
		Config:       config,
		HostFuncs:    hostFuncs(),
		Cache:        h.cache,
		Log:          func(e *xabi.Instance, l xabi.LogLevel, msg string) { h.guestLog(g, e, l, msg) },
		Native:       h.engineOf(m) == abi.EngineNative,
		HTTPClient:   h.guestClient,
		Sleep:        guestSleep,
		Fuel:         h.opts.fuel,
		FuelFallback: h.opts.fuelFallback,
		FuelCacheDir: h.fuelCacheDir(),
		MaxStack:     int64(orDefault(m.MaxStack, abi.DefaultMaxStackBytes)),
	})
	<-h.compiles
	if err != nil {
		return nil, err
	}
	g.module = mod
	if reason := mod.Unmetered(); reason != "" {
		h.log.Warn("plugin runs without CPU metering, under close-on-context-done", "plugin", name, "reason", reason)
	}
	max := m.Pool.Max
	if max <= 0 {
		max = 2 * runtime.GOMAXPROCS(0)
	}
	idle := time.Duration(m.Pool.IdleTimeout)
	if idle <= 0 {
		idle = time.Minute
	}
	g.pool = pool.New(pool.Config[*instance]{
		Min: m.Pool.Min, Max: max, IdleTimeout: idle,
		New: func(ctx context.Context) (*instance, error) {
			e, err := mod.Instantiate(ctx)
			if err != nil {
				return nil, err
			}
			inst := &instance{e: e}
			e.Tag = inst
			return inst, nil
		},
		Close: func(i *instance) { _ = i.e.Close(context.Background()) },
	})
	// One instance proves the module links (its imports resolve) before it
	// may replace a working version. Instantiating runs the module's start
	// function (and a reactor's _initialize), so it gets the start timeout:
	// a start function that does not return in time fails the load.
	ictx, cancel := context.WithTimeout(ctx, h.opts.startTimeout)
	defer cancel()
	err = g.pool.Warm(ictx)
	if err == nil && m.Pool.Min == 0 {
		var inst *instance
		if inst, err = g.pool.Acquire(ictx); err == nil {
			g.pool.Release(inst, true)
		}
	}
	if err != nil {
		_ = g.pool.Close(ctx)
		mod.Close(ctx)
		if cerr := ictx.Err(); cerr != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("instantiate: start function still running at the start timeout (%s): %w", h.opts.startTimeout, cerr)
		}
		return nil, err
	}
	return g, nil
}

// DefaultEngine is the engine of plugins when neither WithEngine nor the
// manifest names one.
const DefaultEngine = abi.EngineNative

func engineName(native bool) string {
	if native {
		return abi.EngineNative
	}
	return abi.EngineExtism
}

// engineOf returns the engine plugin manifest m runs on.
func (h *Host) engineOf(m abi.Manifest) string {
	if m.Engine != "" {
		return m.Engine
	}
	return h.opts.engine
}

func (h *Host) fuelCacheDir() string {
	if h.opts.cacheDir == "" {
		return ""
	}
	return filepath.Join(h.opts.cacheDir, "fuel")
}

func orDefault(v abi.Size, d int64) abi.Size {
	if v > 0 {
		return v
	}
	return abi.Size(d)
}

// Unload removes a plugin. New calls fail with ErrNoPlugin at once; calls in
// flight finish within ctx, then the version's instances are closed.
func (h *Host) Unload(ctx context.Context, name string) error {
	h.mu.Lock()
	p := h.plugins[name]
	delete(h.plugins, name)
	h.publishPlugins()
	h.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: %s", ErrNoPlugin, name)
	}
	if g := p.gen.Swap(nil); g != nil {
		return h.retire(ctx, g)
	}
	return nil
}

// PluginInfo describes a loaded plugin.
type PluginInfo struct {
	Name      string
	Version   string
	LoadedAt  time.Time
	Manifest  abi.Manifest
	Exports   []string
	Calls     uint64
	Failures  uint64
	PoolIdle  int
	PoolInUse int
	PoolMax   int
	// Metered says whether calls are CPU-metered; Unmetered says why not
	// when metering was asked for. FuelUsed is the fuel of every call.
	Metered   bool
	Unmetered string
	FuelUsed  uint64
	// Engine is the engine that runs the plugin (abi.EngineNative or
	// abi.EngineExtism).
	Engine string
}

// Plugins lists the loaded plugins by name.
func (h *Host) Plugins() []PluginInfo {
	var out []PluginInfo
	for _, g := range h.generations() {
		s := g.pool.Stats()
		out = append(out, PluginInfo{
			Name: g.plugin, Version: g.version, LoadedAt: g.loadedAt, Manifest: g.manifest,
			Exports: g.module.Exports(),
			Calls:   g.calls.Load(), Failures: g.failures.Load(),
			PoolIdle: s.Idle, PoolInUse: s.InUse, PoolMax: s.Max,
			Metered: g.module.Metered(), Unmetered: g.module.Unmetered(), FuelUsed: g.fuelUsed.Load(),
			Engine: engineName(g.module.Native()),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Plugin returns one loaded plugin.
func (h *Host) Plugin(name string) (PluginInfo, bool) {
	for _, p := range h.Plugins() {
		if p.Name == name {
			return p, true
		}
	}
	return PluginInfo{}, false
}

// publishPlugins republishes pluginsView after a change of plugins. h.mu
// is held.
func (h *Host) publishPlugins() {
	view := maps.Clone(h.plugins)
	h.pluginsView.Store(&view)
}

func (h *Host) current(name string) (*generation, error) {
	var p *plugin
	if view := h.pluginsView.Load(); view != nil {
		p = (*view)[name]
	}
	if p != nil {
		if g := p.gen.Load(); g != nil {
			return g, nil
		}
	}
	if h.closed.Load() {
		return nil, ErrClosed
	}
	return nil, fmt.Errorf("%w: %s", ErrNoPlugin, name)
}

// Call runs export fn (abi.ExportRun when empty) of plugin with input and
// returns its output. The call ends at the earliest of ctx's deadline and the
// plugin's timeout; a guest still running then is stopped. Failures are
// *GuestError or *LimitError values, matchable with the package's sentinels.
func (h *Host) Call(ctx context.Context, plugin, fn string, input []byte, opts ...CallOption) ([]byte, error) {
	out, _, err := h.call(ctx, plugin, fn, input, opts)
	return out, err
}

func (h *Host) call(ctx context.Context, plugin, fn string, input []byte, opts []CallOption) ([]byte, string, error) {
	if len(opts) == 0 {
		var co callOptions // stays on the stack: no option touches it
		return h.callWith(ctx, plugin, fn, input, &co)
	}
	co := new(callOptions)
	for _, o := range opts {
		o(co)
	}
	return h.callWith(ctx, plugin, fn, input, co)
}

func (h *Host) callWith(ctx context.Context, plugin, fn string, input []byte, co *callOptions) ([]byte, string, error) {
	if fn == "" {
		fn = abi.ExportRun
	}
	if h.closed.Load() {
		return nil, "", ErrClosed
	}
	for {
		g, err := h.resolve(plugin, co.version)
		if err != nil {
			return nil, "", err
		}
		out, err := h.callGen(ctx, g, fn, input, co)
		if errors.Is(err, pool.ErrClosed) {
			continue // swapped out between lookup and acquire: use the new version
		}
		return out, g.version, err
	}
}

func (h *Host) callGen(ctx context.Context, g *generation, fn string, input []byte, co *callOptions) ([]byte, error) {
	if !g.module.HasExport(fn) {
		return nil, &GuestError{Plugin: g.plugin, Version: g.version, Export: fn, Kind: KindPermanent,
			Msg: "the module has no export of that name", Err: ErrNoExport}
	}
	if int64(len(input)) > g.maxIn {
		return nil, &LimitError{Plugin: g.plugin, Limit: "max_input", Size: int64(len(input)), Max: g.maxIn}
	}
	start := time.Now()
	cc := newCallCtx(ctx, start, g.timeout)
	if !co.deadline.IsZero() && co.deadline.Before(cc.deadline) {
		cc.deadline = co.deadline
	}
	defer cc.release()
	ctx = cc
	inst, err := g.pool.Acquire(ctx)
	if err != nil {
		if errors.Is(err, pool.ErrClosed) {
			return nil, err
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, h.ctxError(g, fn, start, ctxErr)
		}
		return nil, &GuestError{Plugin: g.plugin, Version: g.version, Export: fn, Kind: KindTrap,
			Msg: capText("instantiate: "+err.Error(), g.maxErr, "max_error"), Err: err}
	}
	st := &cc.st
	*st = callState{host: h, gen: g, inv: co.inv, durable: co.durable, logger: co.logger, start: start, ctx: cc}
	st.inv.Plugin, st.inv.PluginVersion = g.plugin, g.version
	if st.inv.Attempt == 0 {
		st.inv.Attempt = 1
	}
	st.inv.DeadlineUnixMS = cc.deadline.UnixMilli()
	inst.state = st
	g.calls.Add(1)
	var meter *fuel.Meter
	if g.module.Metered() {
		meter = &cc.meter
		meter.Reset(g.manifest.CPUBudget, 0, start)
		cc.metered = true
	} else {
		// wazero's close-on-context-done watches Done from a goroutine
		// that may outlive the call: make Done now, so the context is
		// never reused.
		cc.Done()
	}
	res := inst.e.Call(ctx, fn, input)
	inst.state = nil
	if meter != nil {
		used := meter.Used()
		g.fuelUsed.Add(uint64(used))
		co.fuel = used
		if co.stats != nil {
			co.stats.Fuel = used
		}
	}
	if co.stats != nil {
		co.stats.Duration = time.Since(start)
		co.stats.Version = g.version
		co.stats.Metered = meter != nil
	}
	out, gerr := h.classify(ctx, g, fn, inst, res, st, meter)
	if gerr != nil {
		gerr.Msg = capText(gerr.Msg, g.maxErr, "max_error")
	}
	log := co.logger
	if log == nil {
		log = h.log
	}
	// The call's start is recent enough for a summary due once a second,
	// and spares a clock read.
	g.summarize(ctx, log, start)
	healthy := res.Exit == nil && res.Trap == nil && (gerr == nil || gerr.Kind == KindFailed || gerr.Kind == KindPermanent)
	g.pool.Release(inst, healthy)
	if gerr != nil {
		g.failures.Add(1)
		return nil, gerr
	}
	if int64(len(out)) > g.maxOut {
		g.failures.Add(1)
		return nil, &GuestError{Plugin: g.plugin, Version: g.version, Export: fn, Kind: KindLimit,
			Msg: fmt.Sprintf("output of %s is over the max_output limit of %s", abi.Size(len(out)), abi.Size(g.maxOut))}
	}
	return out, nil
}

func (h *Host) ctxError(g *generation, fn string, start time.Time, err error) *GuestError {
	ge := &GuestError{Plugin: g.plugin, Version: g.version, Export: fn, Err: err}
	if errors.Is(err, context.DeadlineExceeded) {
		ge.Kind = KindTimeout
		ge.Msg = fmt.Sprintf("stopped at its deadline after %s", time.Since(start).Round(time.Millisecond))
	} else {
		ge.Kind, ge.Msg = KindCanceled, "call cancelled"
	}
	return ge
}

// classify turns an engine result into output or a *GuestError.
// meter is the call's fuel meter, nil for an unmetered module.
func (h *Host) classify(ctx context.Context, g *generation, fn string, inst *instance, res xabi.Result, st *callState, meter *fuel.Meter) ([]byte, *GuestError) {
	if res.Exit == nil && res.Trap == nil && res.Code == uint32(abi.CodeOK) {
		return res.Output, nil
	}
	ge := &GuestError{Plugin: g.plugin, Version: g.version, Export: fn, Code: abi.Code(res.Code), Hint: st.hint}
	switch {
	case res.Exit != nil:
		switch res.Exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			cerr := ctx.Err()
			if cerr == nil {
				cerr = context.DeadlineExceeded
			}
			return nil, h.ctxError(g, fn, st.start, cerr)
		}
		if h.memoryExhausted(g, inst, meter) {
			ge.Kind, ge.Msg, ge.Err = KindMemory, fmt.Sprintf("memory limit %s reached", abi.Size(g.memCap)), ErrMemoryLimit
			return nil, ge
		}
		if res.Exit.ExitCode() == 0 {
			// The guest exited cleanly mid-call: its output stands, the
			// instance does not.
			return res.Output, nil
		}
		ge.Kind, ge.Code, ge.Err = KindTrap, abi.Code(res.Exit.ExitCode()), res.Exit
		ge.Msg = fmt.Sprintf("exited with code %d", res.Exit.ExitCode())
		if s := firstLine(inst.e.Stderr()); s != "" {
			ge.Msg += ": " + s
		}
		return nil, ge
	case res.Trap != nil:
		if cerr := ctx.Err(); cerr != nil {
			return nil, h.ctxError(g, fn, st.start, cerr)
		}
		if errors.Is(res.Trap, fuel.ErrStackExhausted) {
			ge.Kind, ge.Err = KindTrap, res.Trap
			ge.Msg = fmt.Sprintf("stack overflow: call stack over the max_stack bound of %s",
				orDefault(g.manifest.MaxStack, abi.DefaultMaxStackBytes))
			return nil, ge
		}
		if errors.Is(res.Trap, fuel.ErrBudgetExhausted) {
			ge.Kind, ge.Err = KindCPU, ErrCPUBudget
			ge.Msg = fmt.Sprintf("CPU budget of %d fuel units used up", g.manifest.CPUBudget)
			return nil, ge
		}
		if h.memoryExhausted(g, inst, meter) {
			ge.Kind, ge.Msg, ge.Err = KindMemory, fmt.Sprintf("memory limit %s reached", abi.Size(g.memCap)), ErrMemoryLimit
			return nil, ge
		}
		ge.Kind, ge.Err = KindTrap, res.Trap
		ge.Msg = firstLine(res.Trap.Error())
		if s := firstLine(inst.e.Stderr()); s != "" {
			ge.Msg = s + " (" + ge.Msg + ")"
		}
		return nil, ge
	case res.Code == uint32(abi.CodeOK):
		return res.Output, nil
	}
	ge.Msg = res.Err
	if ge.Msg == "" {
		ge.Msg = fmt.Sprintf("returned code %d without an error message", res.Code)
	}
	if ge.Code == abi.CodePermanent {
		ge.Kind = KindPermanent
	} else {
		ge.Kind = KindFailed
	}
	return nil, ge
}

// memoryExhausted reports whether a failed call hit its memory cap. wazero
// fails a memory.grow past the cap by returning -1 to the guest, without an
// error the host sees. The native engine allocates guest memory itself and
// records every grow the cap refuses, which decides, metered or not. A
// metered module reports every failed grow (see fuel.Meter.GrowFailed),
// which decides on go-sdk. For an unmetered one on go-sdk the host guesses
// from what the guest left behind: a runtime out-of-memory message, or
// memory within one allocation step (4 MiB) of the cap — the Extism
// kernel's memory, the only one go-sdk exposes (it holds inputs, outputs
// and variables), not the guest's own.
func (h *Host) memoryExhausted(g *generation, inst *instance, meter *fuel.Meter) bool {
	if inst.e.KernelFull() {
		return true
	}
	if g.module.Native() {
		// The native engine sees every grow the cap refuses.
		return inst.e.GrowRefused() || meter != nil && meter.GrowFailed()
	}
	if meter != nil {
		return meter.GrowFailed()
	}
	if strings.Contains(inst.e.Stderr(), "out of memory") {
		return true
	}
	return inst.e.MemoryBytes()+4<<20 >= g.memCap
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// guestSleep is a guest's sleep: real time, cut short when the call is
// cancelled or reaches its deadline, so a sleeping guest stops as promptly
// as a spinning one.
func guestSleep(e *xabi.Instance, d time.Duration) {
	var done <-chan struct{}
	if inst, _ := e.Tag.(*instance); inst != nil && inst.state != nil {
		done = inst.state.ctx.Done()
	}
	if done == nil {
		time.Sleep(d)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// warnsPerSecond is how many warnings about failed host function calls
// one plugin version logs a second; the rest are counted in a summary.
const warnsPerSecond = 10

// summarize logs what g's limiters dropped, at most once a second each.
func (g *generation) summarize(ctx context.Context, log *slog.Logger, now time.Time) {
	if lines, bytes, ok := g.logLimit.Summary(now); ok {
		log.WarnContext(ctx, "guest log lines suppressed over the plugin's log rate", "plugin", g.plugin,
			"version", digest.Short(g.version), "lines", lines, "bytes", bytes)
	}
	if lines, _, ok := g.warnLimit.Summary(now); ok {
		log.WarnContext(ctx, "host function warnings suppressed", "plugin", g.plugin, "version", digest.Short(g.version), "lines", lines)
	}
}

// capText cuts s to at most max bytes (on a UTF-8 boundary), ending it
// with a marker that says how many bytes were dropped at which limit.
func capText(s string, max int, limit string) string {
	if len(s) <= max {
		return s
	}
	marker := func(dropped int) string {
		return fmt.Sprintf("… [%d bytes dropped at %s %s]", dropped, limit, abi.Size(max))
	}
	keep := max - len(marker(len(s)))
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + marker(len(s)-keep)
}

// guestLog sends a guest log line of version g to the call's logger, cut
// at max_log_line and within the plugin's log rate. Lines logged while an
// instance starts have no call: they go to the host's logger.
func (h *Host) guestLog(g *generation, e *xabi.Instance, level xabi.LogLevel, msg string) {
	inst, _ := e.Tag.(*instance)
	var st *callState
	if inst != nil {
		st = inst.state
	}
	log := h.log
	if st != nil && st.logger != nil {
		log = st.logger
	}
	var lvl slog.Level
	switch level {
	case xabi.LogLevelTrace:
		lvl = slog.LevelDebug - 4
	case xabi.LogLevelDebug:
		lvl = slog.LevelDebug
	case xabi.LogLevelWarn:
		lvl = slog.LevelWarn
	case xabi.LogLevelError:
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	ctx := context.Background()
	if !log.Enabled(ctx, lvl) {
		return
	}
	if len(msg) > g.maxLog {
		msg = msg[:g.maxLog] + fmt.Sprintf("… [truncated at max_log_line %s]", abi.Size(g.maxLog))
	}
	now := time.Now()
	if !g.logLimit.Allow(now, len(msg)) {
		return
	}
	g.summarize(ctx, log, now)
	attrs := []slog.Attr{slog.String("plugin", g.plugin), slog.String("version", digest.Short(g.version))}
	if st != nil && st.inv.RunID != "" {
		attrs = append(attrs, slog.String("run_id", st.inv.RunID), slog.String("node", st.inv.Node))
	}
	log.LogAttrs(ctx, lvl, msg, attrs...)
}

// account returns the state quota account of plugin.
func (h *Host) account(plugin string) *quota.Account {
	if a, ok := h.accounts.Load(plugin); ok {
		return a.(*quota.Account)
	}
	a, _ := h.accounts.LoadOrStore(plugin, new(quota.Account))
	return a.(*quota.Account)
}
