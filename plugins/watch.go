package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/bulkhead-run/bulkhead/internal/digest"
)

// Start scans the directory once (so List has every plugin present when it
// returns, and an Added event per plugin is queued for the handler), then
// watches it until Stop. A file that is being written during the scan is
// left to the watcher, which reports it once it is stable. Start fails if
// the directory cannot be read or watched; ctx bounds only the scan.
func (r *Registry) Start(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.started || r.stopped {
		r.mu.Unlock()
		return ErrStarted
	}
	r.started = true
	r.mu.Unlock()
	defer func() {
		if err != nil {
			r.mu.Lock()
			r.started = false
			r.plugins = make(map[string]*plugin)
			r.sidecars = make(map[string]*sidecar)
			r.mu.Unlock()
		}
	}()

	fi, err := os.Stat(r.dir)
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("plugins: %s is not a directory", r.dir)
	}
	l := &loop{r: r, pending: make(map[string]*pend), failed: make(map[string]fileStat)}
	if r.opts.fsnotify {
		// Watch before scanning, so that a file written during the
		// scan is not missed.
		w, err := fsnotify.NewBufferedWatcher(256)
		if err != nil {
			return fmt.Errorf("plugins: watch %s: %w", r.dir, err)
		}
		if err := w.Add(r.dir); err != nil {
			_ = w.Close()
			return fmt.Errorf("plugins: watch %s: %w", r.dir, err)
		}
		l.w = w
	}
	q := newQueue(r.opts.handler)
	r.mu.Lock()
	r.q = q
	r.mu.Unlock()
	if err := l.initialScan(ctx); err != nil {
		if l.w != nil {
			_ = l.w.Close()
		}
		return err
	}

	lctx, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	if r.stopped { // Stop ran during the scan
		r.mu.Unlock()
		cancel()
		if l.w != nil {
			_ = l.w.Close()
		}
		return ErrStarted
	}
	r.cancel = cancel
	r.loopDone = make(chan struct{})
	r.mu.Unlock()
	go q.run()
	go l.run(lctx, r.loopDone)
	return nil
}

// Stop stops watching and waits until the handler has been given every
// event queued before Stop. If ctx ends first, Stop returns ctx.Err() and
// the remaining events are dropped; the delivery goroutine then exits as
// soon as the handler call in progress returns. Stop is idempotent and may
// be called without Start.
func (r *Registry) Stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = true
	cancel, loopDone, q := r.cancel, r.loopDone, r.q
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-loopDone:
	case <-ctx.Done():
		q.abandon()
		return ctx.Err()
	}
	q.close()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		q.abandon()
		return ctx.Err()
	}
}

// pend is a file waiting to be looked at.
type pend struct {
	name   string
	module bool
	due    time.Time
	seen   fileStat // at the last event or look
}

// loop owns the watcher and the pending files; only its goroutine (and
// Start, before it) touches them.
type loop struct {
	r       *Registry
	w       *fsnotify.Watcher
	pending map[string]*pend    // by path
	failed  map[string]fileStat // unreadable files, until their stat changes
}

func (l *loop) initialScan(ctx context.Context) error {
	entries, err := os.ReadDir(l.r.dir)
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	var modules, sidecars []string
	for _, e := range entries {
		if _, module, ok := fileKind(e.Name()); ok {
			if module {
				modules = append(modules, e.Name())
			} else {
				sidecars = append(sidecars, e.Name())
			}
		}
	}
	// Sidecars first, so that each Added event carries its manifest.
	for _, base := range append(sidecars, modules...) {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(l.r.dir, base)
		name, module, _ := fileKind(base)
		b, st, err := l.r.readStable(path, module)
		var fe *FileError
		switch {
		case errors.As(err, &fe):
			l.refuse(path, name, module, st, fe)
		case err != nil:
			l.r.log.Debug("plugin file not ready at start", keyPath, path, keyErr, err)
			l.schedule(path, name, module, l.r.statFile(path), l.r.opts.now())
		case st.exists:
			l.apply(path, name, module, b, st)
		}
	}
	return nil
}

func (l *loop) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if l.w != nil {
		defer l.w.Close()
		events, errs = l.w.Events, l.w.Errors
	}
	var tick <-chan time.Time
	if l.r.opts.rescan > 0 {
		t := time.NewTicker(l.r.opts.rescan)
		defer t.Stop()
		tick = t.C
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.arm(timer)
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			l.notify(ev.Name)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			l.r.log.Warn("plugin directory watcher", keyErr, err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				l.rescan()
			}
		case <-tick:
			l.rescan()
		case <-timer.C:
			l.due(ctx)
		}
	}
}

// arm sets timer to the earliest due look, or far away.
func (l *loop) arm(timer *time.Timer) {
	var next time.Time
	for _, p := range l.pending {
		if next.IsZero() || p.due.Before(next) {
			next = p.due
		}
	}
	if next.IsZero() {
		timer.Reset(time.Hour)
		return
	}
	timer.Reset(max(next.Sub(l.r.opts.now()), 0))
}

// notify handles a watcher event: it (re)starts the file's debounce.
func (l *loop) notify(path string) {
	if filepath.Clean(filepath.Dir(path)) != filepath.Clean(l.r.dir) {
		return
	}
	name, module, ok := fileKind(filepath.Base(path))
	if !ok {
		return
	}
	l.schedule(path, name, module, l.r.statFile(path), l.r.opts.now())
}

func (l *loop) schedule(path, name string, module bool, st fileStat, now time.Time) {
	p, ok := l.pending[path]
	if !ok {
		p = &pend{name: name, module: module}
		l.pending[path] = p
	}
	p.due, p.seen = now.Add(l.r.opts.debounce), st
	delete(l.failed, path)
	if f := l.r.opts.scheduled; f != nil {
		f(path, st.size)
	}
}

// rescan compares the directory with what the registry knows and schedules
// a look at every file that differs.
func (l *loop) rescan() {
	entries, err := os.ReadDir(l.r.dir)
	if err != nil {
		l.r.log.Warn("plugin directory rescan", keyErr, err)
		return
	}
	now := l.r.opts.now()
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		name, module, ok := fileKind(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(l.r.dir, e.Name())
		present[path] = true
		if _, ok := l.pending[path]; ok {
			continue
		}
		st := l.r.statFile(path)
		if known, ok := l.known(name, module); ok && known.same(st) {
			continue
		}
		if f, ok := l.failed[path]; ok && f.same(st) {
			continue
		}
		l.schedule(path, name, module, st, now)
	}
	l.r.mu.RLock()
	var gone []*pend
	for name, p := range l.r.plugins {
		if !present[p.path] {
			gone = append(gone, &pend{name: name, module: true})
		}
	}
	for name := range l.r.sidecars {
		if !present[filepath.Join(l.r.dir, name+ManifestExt)] {
			gone = append(gone, &pend{name: name})
		}
	}
	l.r.mu.RUnlock()
	for _, p := range gone {
		path := l.pathOf(p.name, p.module)
		if _, ok := l.pending[path]; !ok {
			l.schedule(path, p.name, p.module, l.r.statFile(path), now)
		}
	}
}

func (l *loop) pathOf(name string, module bool) string {
	if module {
		return filepath.Join(l.r.dir, name+ModuleExt)
	}
	return filepath.Join(l.r.dir, name+ManifestExt)
}

func (l *loop) known(name string, module bool) (fileStat, bool) {
	l.r.mu.RLock()
	defer l.r.mu.RUnlock()
	if module {
		if p, ok := l.r.plugins[name]; ok {
			return p.stat, true
		}
		return fileStat{}, false
	}
	if s, ok := l.r.sidecars[name]; ok {
		return s.stat, true
	}
	return fileStat{}, false
}

// due looks at every file whose debounce has run out: sidecars before
// modules, and a module waits for its own pending sidecar.
func (l *loop) due(ctx context.Context) {
	now := l.r.opts.now()
	var paths []string
	for path, p := range l.pending {
		if !p.due.After(now) {
			paths = append(paths, path)
		}
	}
	sort.Slice(paths, func(i, j int) bool {
		pi, pj := l.pending[paths[i]], l.pending[paths[j]]
		if pi.module != pj.module {
			return !pi.module
		}
		return paths[i] < paths[j]
	})
	for _, path := range paths {
		if ctx.Err() != nil {
			return
		}
		p := l.pending[path]
		if p.module {
			if s, ok := l.pending[l.pathOf(p.name, false)]; ok {
				p.due = s.due
				continue
			}
		}
		l.look(path, p, now)
	}
}

// look is the stability check: the file must be as it was at the previous
// look (or event), a debounce ago, and unchanged across the read.
func (l *loop) look(path string, p *pend, now time.Time) {
	st := l.r.statFile(path)
	if !st.same(p.seen) {
		p.seen, p.due = st, now.Add(l.r.opts.debounce)
		return
	}
	if st.bad {
		l.r.log.Warn("plugin file unreadable", keyPath, path, keyErr, st.err)
		delete(l.pending, path)
		l.failed[path] = st
		return
	}
	if !st.exists {
		delete(l.pending, path)
		l.gone(path, p.name, p.module)
		return
	}
	b, got, err := l.r.readStable(path, p.module)
	var fe *FileError
	switch {
	case errors.Is(err, ErrUnstable):
		p.seen, p.due = got, now.Add(l.r.opts.debounce)
		return
	case errors.As(err, &fe):
		delete(l.pending, path)
		l.refuse(path, p.name, p.module, got, fe)
		return
	case err != nil:
		l.r.log.Warn("plugin file unreadable", keyPath, path, keyErr, err)
		delete(l.pending, path)
		l.failed[path] = st
		return
	case !got.same(st):
		p.seen, p.due = got, now.Add(l.r.opts.debounce)
		return
	}
	delete(l.pending, path)
	l.apply(path, p.name, p.module, b, got)
}

// refuse records a file the registry will not read (fe says why) and
// emits what changed: a module becomes an invalid plugin without a
// version, a sidecar a broken one.
func (l *loop) refuse(path, name string, module bool, st fileStat, fe *FileError) {
	r := l.r
	if !module {
		l.sidecar(path, name, nil, st, Manifest{}, fe)
		return
	}
	r.mu.Lock()
	p, known := r.plugins[name]
	if known && p.version == "" && p.stat.same(st) {
		r.mu.Unlock()
		return
	}
	kind := Added
	if known {
		kind = Changed
	}
	r.plugins[name] = &plugin{path: path, stat: st, refused: fe}
	m, _, _ := r.manifestLocked(name)
	r.mu.Unlock()
	r.log.Warn("plugin file refused", keyPlugin, name, keyErr, fe)
	r.q.push(Event{Kind: kind, Name: name, Manifest: m, Path: path, Err: fe, Invalid: true})
}

// apply records a stable file and emits what changed.
func (l *loop) apply(path, name string, module bool, b []byte, st fileStat) {
	r := l.r
	if module {
		version := digest.Of(b)
		r.mu.Lock()
		p, known := r.plugins[name]
		if known && p.version == version {
			p.stat = st
			r.mu.Unlock()
			return
		}
		kind := Added
		if known {
			kind = Changed
		}
		r.plugins[name] = &plugin{path: path, version: version, stat: st}
		m, merr, invalid := r.manifestLocked(name)
		r.mu.Unlock()
		r.log.Info("plugin "+kind.String(), keyPlugin, name, keyVersion, digest.Short(version), keySize, len(b))
		r.q.push(Event{Kind: kind, Name: name, Version: version, Bytes: b, Manifest: m, Path: path, Err: merr, Invalid: invalid})
		return
	}

	sum := digest.Of(b)
	r.mu.RLock()
	s, ok := r.sidecars[name]
	same := ok && s.sum == sum
	r.mu.RUnlock()
	if same {
		r.mu.Lock()
		s.stat = st
		r.mu.Unlock()
		return
	}
	m, err := r.parse(path, b) // outside the lock: the validator is caller code
	l.sidecar(path, name, b, st, m, err)
}

// sidecar records a sidecar read as b (nil when refused) that parsed as m,
// or failed with err, and emits ManifestChanged if its plugin runs.
func (l *loop) sidecar(path, name string, b []byte, st fileStat, m Manifest, err error) {
	r := l.r
	sum := ""
	if b != nil {
		sum = digest.Of(b)
	}
	r.mu.Lock()
	s, ok := r.sidecars[name]
	if !ok {
		// A plugin that ran without a sidecar ran with the zero
		// manifest: that is its last good one.
		_, running := r.plugins[name]
		s = &sidecar{hasGood: running}
		r.sidecars[name] = s
	}
	s.stat, s.sum = st, sum
	if err == nil {
		s.good, s.hasGood, s.err = m, true, nil
	} else {
		s.err = err
	}
	p, running := r.plugins[name]
	var ev Event
	if running {
		ev = Event{Kind: ManifestChanged, Name: name, Version: p.version, Path: p.path, Manifest: s.good, Err: s.err, Invalid: !s.hasGood}
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("plugin manifest rejected", keyPlugin, name, keyErr, err)
	} else {
		r.log.Info("plugin manifest read", keyPlugin, name, keyPath, path)
	}
	if running {
		r.q.push(ev)
	}
}

// gone records that a file disappeared.
func (l *loop) gone(path, name string, module bool) {
	r := l.r
	r.mu.Lock()
	var ev Event
	emit := false
	if module {
		if p, ok := r.plugins[name]; ok && p.path == path {
			delete(r.plugins, name)
			m, merr, invalid := r.manifestLocked(name)
			ev, emit = Event{Kind: Removed, Name: name, Version: p.version, Path: path, Manifest: m, Err: merr, Invalid: invalid}, true
		}
	} else if _, ok := r.sidecars[name]; ok {
		delete(r.sidecars, name)
		if p, running := r.plugins[name]; running {
			ev, emit = Event{Kind: ManifestChanged, Name: name, Version: p.version, Path: p.path}, true
		}
	}
	r.mu.Unlock()
	if emit {
		r.log.Info("plugin "+ev.Kind.String(), keyPlugin, name, keyVersion, digest.Short(ev.Version))
		r.q.push(ev)
	}
}

// queue delivers events to the handler from one goroutine, in order,
// without bound and without dropping any.
type queue struct {
	h         func(Event)
	mu        sync.Mutex
	items     []Event
	closed    bool
	wake      chan struct{}
	abandoned atomic.Bool
	done      chan struct{}
}

func newQueue(h func(Event)) *queue {
	return &queue{h: h, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (q *queue) push(ev Event) {
	if q.h == nil {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.mu.Unlock()
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *queue) abandon() {
	q.abandoned.Store(true)
	q.close()
}

func (q *queue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return
			}
			<-q.wake
			continue
		}
		ev := q.items[0]
		q.items[0] = Event{}
		q.items = q.items[1:]
		q.mu.Unlock()
		if q.abandoned.Load() {
			return
		}
		q.h(ev)
	}
}
