package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/internal/digest"
	"github.com/bulkhead-run/bulkhead/plugins"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// Supervisor deploys the plugins of one directory into a host and keeps
// them healthy. Its methods are safe for concurrent use.
type Supervisor struct {
	h    *host.Host
	reg  *plugins.Registry
	opts options
	log  *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	trig    map[string]Cause // rebuilds asked for, by plugin
	handled map[string]bool  // plugins whose events were handled, until ready
	waiting map[string]bool  // plugins of the initial scan not handled yet
	ready   chan struct{}
	queues  map[string][]job // pending work by plugin; present while its worker runs
	started bool
	stopped bool
	closing bool            // no new worker may start
	ctx     context.Context // lifetime: set by Start, cancelled by Stop
	cancel  context.CancelFunc
	unwatch func() // removes the supervisor's host.Watcher; set by Start

	wake     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// entry is one plugin. load serialises everything that loads or unloads
// it; the other fields are guarded by Supervisor.mu.
type entry struct {
	load sync.Mutex

	removed  bool
	working  bool // a version of it is loaded in the host
	manifest abi.Manifest
	st       Status

	traps       []time.Time
	steps       int // rebuilds since the plugin was last quiet
	lastRebuild time.Time
}

// New returns a supervisor of the plugins in dir, deployed into h. It
// creates the directory's plugins.Registry; it does no I/O and starts
// nothing.
func New(h *host.Host, dir string, opts ...Option) (*Supervisor, error) {
	if h == nil {
		return nil, errors.New("supervisor: nil host")
	}
	o := options{
		trapThreshold: DefaultTrapThreshold, trapWindow: DefaultTrapWindow,
		backoffMin: DefaultBackoffMin, backoffMax: DefaultBackoffMax,
		drain: DefaultDrainTimeout,
	}
	for _, opt := range opts {
		opt.apply(&o)
	}
	switch {
	case o.backoffMin <= 0 || o.backoffMax < o.backoffMin:
		return nil, fmt.Errorf("supervisor: backoff wants 0 < min <= max, got %s, %s", o.backoffMin, o.backoffMax)
	case o.trapThreshold > 0 && o.trapWindow <= 0:
		return nil, fmt.Errorf("supervisor: trap window must be positive, got %s", o.trapWindow)
	case o.drain <= 0:
		return nil, fmt.Errorf("supervisor: drain timeout must be positive, got %s", o.drain)
	}
	if err := o.defaultPolicy.Validate(); err != nil {
		return nil, fmt.Errorf("supervisor: default policy: %w", err)
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		h: h, opts: o, log: log,
		entries: make(map[string]*entry),
		trig:    make(map[string]Cause),
		queues:  make(map[string][]job),
		ready:   make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	regOpts := append(append([]plugins.Option{}, o.regOpts...),
		plugins.WithHandler(s.handle),
		plugins.WithPolicyValidator(ValidatePolicy),
		plugins.WithLogger(log))
	reg, err := plugins.New(dir, regOpts...)
	if err != nil {
		return nil, err
	}
	s.reg = reg
	return s, nil
}

// Registry is the catalogue the supervisor watches.
func (s *Supervisor) Registry() *plugins.Registry { return s.reg }

// Host is the host the supervisor deploys into.
func (s *Supervisor) Host() *host.Host { return s.h }

// Start scans the directory, starts loading every plugin found in it and
// returns: it does not wait for the loads, so a module that is slow to load
// delays nothing. Ready is closed once each plugin of the scan has been
// loaded, refused or quarantined. Start then keeps watching the directory
// and supervising the plugins until Stop. ctx bounds only the scan.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.stopped {
		s.mu.Unlock()
		return ErrStarted
	}
	s.started = true
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.handled = map[string]bool{}
	s.mu.Unlock()

	if err := s.reg.Start(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.waiting = map[string]bool{}
	for _, info := range s.reg.List() {
		if !s.handled[info.Name] {
			s.waiting[info.Name] = true
		}
	}
	s.checkReadyLocked()
	s.mu.Unlock()

	s.mu.Lock()
	s.unwatch = s.h.Watch(s.watcher())
	s.mu.Unlock()
	s.wg.Add(1)
	go s.loop(s.ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.ready:
			s.log.Info("plugins ready", keyDir, s.reg.Dir(), keyCount, len(s.Statuses()))
		case <-s.ctx.Done():
		}
	}()
	return nil
}

// Ready is closed once every plugin found by Start's scan has been loaded,
// refused or quarantined.
func (s *Supervisor) Ready() <-chan struct{} { return s.ready }

// WaitReady waits until Ready is closed or ctx ends (then it returns
// ctx.Err()).
func (s *Supervisor) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) checkReadyLocked() {
	if s.waiting != nil && len(s.waiting) == 0 {
		s.waiting, s.handled = nil, nil
		close(s.ready)
	}
}

// Stop stops watching, cancels the loads in progress, drops the work not
// started yet, stops supervising and waits for every goroutine the
// supervisor started. It leaves the plugins loaded: the host's Stop
// unloads them. It is idempotent.
func (s *Supervisor) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		started, unwatch := s.started, s.unwatch
		s.mu.Unlock()
		if unwatch != nil {
			unwatch()
		}
		if !started {
			return
		}
		err = s.reg.Stop(ctx)
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
			<-done // the goroutines only wait on loads, which s.cancel ends
		}
	})
	return err
}

// lifetime is the context loads run under: the supervisor's own once
// started, else the caller's.
func (s *Supervisor) lifetime(fallback context.Context) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx != nil {
		return s.ctx
	}
	return fallback
}

// lock returns name's entry, creating it, with its load lock held.
func (s *Supervisor) lock(name string) *entry {
	for {
		s.mu.Lock()
		e := s.entries[name]
		if e == nil {
			e = &entry{st: Status{Name: name, Causes: map[Cause]uint64{}}}
			s.entries[name] = e
		}
		s.mu.Unlock()
		e.load.Lock()
		if !e.removed {
			return e
		}
		e.load.Unlock()
	}
}

// lockExisting is lock for a plugin that must already be known.
func (s *Supervisor) lockExisting(name string) *entry {
	s.mu.Lock()
	e := s.entries[name]
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	e.load.Lock()
	if e.removed {
		e.load.Unlock()
		return nil
	}
	return e
}

// job is one piece of work on one plugin: an event, or a rebuild when
// rebuild is set.
type job struct {
	ev      plugins.Event
	rebuild Cause
}

// handle receives the registry's events, one at a time, and queues each
// for its plugin's worker, so the registry's delivery never waits on a
// load.
func (s *Supervisor) handle(ev plugins.Event) { s.enqueue(ev.Name, job{ev: ev}) }

// enqueue queues j for name's worker, starting the worker if none runs.
// Each plugin's work runs in order, one job at a time; different plugins'
// work runs at once.
func (s *Supervisor) enqueue(name string, j job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	q, running := s.queues[name]
	s.queues[name] = append(q, j)
	if running {
		return
	}
	s.wg.Add(1)
	go s.work(name)
}

// work runs name's queued jobs until none is left.
func (s *Supervisor) work(name string) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		q := s.queues[name]
		if len(q) == 0 {
			delete(s.queues, name)
			s.mu.Unlock()
			return
		}
		j := q[0]
		q[0] = job{}
		s.queues[name] = q[1:]
		s.mu.Unlock()
		if j.rebuild != "" {
			if s.ctx.Err() == nil {
				s.rebuild(s.ctx, name, j.rebuild)
			}
			continue
		}
		s.handleEvent(j.ev)
	}
}

// handleEvent applies one registry event.
func (s *Supervisor) handleEvent(ev plugins.Event) {
	defer func() {
		s.mu.Lock()
		if s.handled != nil {
			s.handled[ev.Name] = true
		}
		if s.waiting != nil {
			delete(s.waiting, ev.Name)
			s.checkReadyLocked()
		}
		s.mu.Unlock()
	}()
	ctx := s.lifetime(context.Background())
	if ctx.Err() != nil {
		return // stopping
	}
	if f := s.opts.onChange; f != nil {
		defer func() { f(ev.Name, ev.Kind == plugins.Removed) }()
	}
	switch ev.Kind {
	case plugins.Added, plugins.Changed:
		if info, ok := s.reg.Get(ev.Name); ok && info.Version != ev.Version {
			// A newer file was observed since; its own event follows.
			s.log.Debug("skip superseded version", keyPlugin, ev.Name, keyVersion, digest.Short(ev.Version))
			return
		}
		cause := CauseAdded
		if ev.Kind == plugins.Changed {
			cause = CauseChanged
		}
		e := s.lock(ev.Name)
		defer e.load.Unlock()
		switch {
		case ev.Invalid && ev.Version == "":
			s.refuse(e, cause, "", ev.Err) // the module file itself is refused
			return
		case ev.Invalid:
			s.refuse(e, cause, ev.Version, fmt.Errorf("manifest: %w", ev.Err))
			return
		}
		s.apply(ctx, e, cause, ev.Bytes, ev.Version, ev.Manifest, ev.Err)
		if ev.Kind == plugins.Changed {
			s.mu.Lock()
			delete(s.trig, ev.Name) // the new file supersedes a pending rebuild
			s.mu.Unlock()
		}
	case plugins.ManifestChanged:
		e := s.lock(ev.Name)
		defer e.load.Unlock()
		if ev.Invalid {
			s.refuse(e, CauseManifest, ev.Version, fmt.Errorf("manifest: %w", ev.Err))
			return
		}
		s.mu.Lock()
		policyOnly := e.working && e.st.Version == ev.Version && reflect.DeepEqual(e.manifest, ev.Manifest.Manifest)
		s.mu.Unlock()
		if policyOnly {
			s.applyPolicy(e, ev.Version, ev.Manifest, ev.Err)
			return
		}
		b, version, m, err := s.reg.Read(ev.Name)
		if err != nil {
			s.refuse(e, CauseManifest, ev.Version, fmt.Errorf("read: %w", err))
			return
		}
		s.apply(ctx, e, CauseManifest, b, version, m, ev.Err)
	case plugins.Removed:
		e := s.lockExisting(ev.Name)
		if e == nil {
			return
		}
		defer e.load.Unlock()
		s.unload(e, ev.Name)
	}
}

func (s *Supervisor) unload(e *entry, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.drain)
	defer cancel()
	start := time.Now()
	err := s.h.Unload(ctx, name)
	if errors.Is(err, host.ErrNoPlugin) {
		err = nil // quarantined: nothing was loaded
	}
	s.mu.Lock()
	e.removed = true
	delete(s.entries, name)
	delete(s.trig, name)
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("plugin unloaded before its calls drained", keyPlugin, name, keyErr, err)
		return
	}
	s.log.Info("plugin unloaded", keyPlugin, name, keyTook, time.Since(start))
}

// apply loads version (bytes b, manifest m) of e's plugin; merr is a
// problem of the sidecar that left m as the last good manifest.
func (s *Supervisor) apply(ctx context.Context, e *entry, cause Cause, b []byte, version string, m plugins.Manifest, merr error) error {
	name := e.st.Name
	pol, err := PolicyOf(m, s.opts.defaultPolicy)
	if err != nil {
		return s.refuse(e, cause, version, err)
	}
	start := time.Now()
	v, err := s.h.Load(ctx, name, b, m.Manifest)
	if err != nil {
		return s.refuse(e, cause, version, err)
	}
	if err := s.h.SetPolicy(name, pol); err != nil {
		// Unreachable: PolicyOf validated pol.
		s.log.Error("set policy", keyPlugin, name, keyErr, err)
	}
	if s.opts.onLoad != nil {
		s.opts.onLoad(name, v, b, m.Manifest)
	}
	took := time.Since(start)
	s.mu.Lock()
	e.working, e.manifest = true, m.Manifest
	st := &e.st
	st.Version, st.FileVersion, st.LoadedAt = v, version, time.Now()
	st.Loads++
	st.Causes[cause]++
	st.LastCause = cause
	st.State, st.Reason = StateOK, ""
	if merr != nil {
		st.State, st.Reason = StateFailed, "manifest: "+merr.Error()
	}
	n := st.Loads
	s.mu.Unlock()
	s.log.Info("plugin loaded", keyPlugin, name, keyVersion, digest.Short(v), keyCause, cause, keyTook, took, keyLoads, n)
	if merr != nil {
		s.log.Warn("plugin sidecar refused, last good manifest in force", keyPlugin, name, keyErr, merr)
	}
	return nil
}

// applyPolicy applies a sidecar change that touched only the preset or
// policy section: the loaded version stays, its policy changes.
func (s *Supervisor) applyPolicy(e *entry, version string, m plugins.Manifest, merr error) {
	pol, err := PolicyOf(m, s.opts.defaultPolicy)
	if err != nil {
		s.refuse(e, CauseManifest, version, err)
		return
	}
	if err := s.h.SetPolicy(e.st.Name, pol); err != nil {
		s.refuse(e, CauseManifest, version, err)
		return
	}
	s.mu.Lock()
	e.st.State, e.st.Reason = StateOK, ""
	if merr != nil {
		e.st.State, e.st.Reason = StateFailed, "manifest: "+merr.Error()
	}
	s.mu.Unlock()
	s.log.Info("plugin policy updated", keyPlugin, e.st.Name, keyVersion, digest.Short(version))
}

// refuse records a change that could not be applied and returns err.
func (s *Supervisor) refuse(e *entry, cause Cause, version string, err error) error {
	s.mu.Lock()
	st := &e.st
	if version != "" {
		st.FileVersion = version
	}
	st.LoadFailures++
	st.Causes[cause]++
	st.LastCause = cause
	st.Reason = err.Error()
	st.State = StateFailed
	if !e.working {
		st.State = StateQuarantined
	}
	state := st.State
	s.mu.Unlock()
	s.log.Warn("plugin change refused", keyPlugin, st.Name, keyVersion, digest.Short(version), keyCause, cause, keyState, state, keyErr, err)
	return err
}

// Reload loads name from disk now, whatever its state, and returns its
// status. It works before Start too, loading just that plugin (what
// `bulkhead plugins reload` does on a directory). The error is the load's
// (a *host.LoadError, a plugins error such as plugins.ErrNotFound, or a
// policy error); the status shows it as well.
func (s *Supervisor) Reload(ctx context.Context, name string) (Status, error) {
	if !plugins.ValidName(name) {
		return Status{}, fmt.Errorf("%w %q", plugins.ErrInvalidName, name)
	}
	b, version, m, rerr := s.reg.Read(name)
	if errors.Is(rerr, plugins.ErrNotFound) {
		return Status{}, rerr
	}
	e := s.lock(name)
	defer e.load.Unlock()
	var err error
	if rerr != nil {
		err = s.refuse(e, CauseManual, version, rerr)
	} else {
		err = s.apply(ctx, e, CauseManual, b, version, m, nil)
	}
	st, _ := s.Status(name)
	return st, err
}

// Check returns nil when calls to name can be made: it is loaded, possibly
// with a refused change pending. A quarantined plugin gives a
// *QuarantineError (ErrQuarantined) with the reason; an unknown one
// host.ErrNoPlugin.
func (s *Supervisor) Check(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	switch {
	case e == nil:
		return fmt.Errorf("%w: %s", host.ErrNoPlugin, name)
	case !e.working:
		return &QuarantineError{Plugin: name, Reason: e.st.Reason}
	}
	return nil
}

// Invoke is host.Invoke behind Check: a call to a quarantined plugin fails
// fast with its reason, before any retry or breaker.
func (s *Supervisor) Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	if err := s.Check(req.Plugin); err != nil {
		return host.InvokeResult{}, err
	}
	return s.h.Invoke(ctx, req)
}

// Plugin is host.Plugin: the loaded version of a plugin. With Invoke it
// makes the supervisor a workflow.Invoker, so a workflow engine calls its
// plugins through it.
func (s *Supervisor) Plugin(name string) (host.PluginInfo, bool) { return s.h.Plugin(name) }

// Status returns one plugin's status.
func (s *Supervisor) Status(name string) (Status, bool) {
	for _, st := range s.statuses(name) {
		return st, true
	}
	return Status{}, false
}

// Statuses returns every plugin's status, by name.
func (s *Supervisor) Statuses() []Status { return s.statuses("") }

func (s *Supervisor) statuses(only string) []Status {
	breakers := s.h.Breakers()
	pools := map[string]host.PluginInfo{}
	for _, p := range s.h.Plugins() {
		pools[p.Name] = p
	}
	s.mu.Lock()
	var out []Status
	for name, e := range s.entries {
		if only != "" && name != only {
			continue
		}
		st := e.st
		st.Causes = maps.Clone(e.st.Causes)
		st.Breaker = breakers[host.PolicyName(name)].State
		if p, ok := pools[name]; ok && e.working {
			st.PoolIdle, st.PoolInUse, st.PoolMax = p.PoolIdle, p.PoolInUse, p.PoolMax
		}
		out = append(out, st)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Policy returns the resilience policy that name's manifest, as the
// registry knows it now, asks for (PolicyOf with the default policy).
func (s *Supervisor) Policy(name string) (resilience.Policy, error) {
	info, ok := s.reg.Get(name)
	if !ok {
		return resilience.Policy{}, fmt.Errorf("%w: %s", plugins.ErrNotFound, name)
	}
	return PolicyOf(info.Manifest, s.opts.defaultPolicy)
}
