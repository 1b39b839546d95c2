package workflow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Invoker calls plugins; *host.Host is one.
type Invoker interface {
	Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error)
	// Plugin returns the loaded version of a plugin.
	Plugin(name string) (host.PluginInfo, bool)
}

// Run attribute keys the engine sets.
const (
	// AttrSource holds the workflow's YAML, so a run resumes on its own DAG.
	AttrSource = "workflow_source"
	// AttrFile is the file the workflow was read from.
	AttrFile = "workflow_file"
	// AttrDeadLetter is the ID of the dead letter that failed the run.
	AttrDeadLetter = "dead_letter"
	// AttrReplayedFrom is the ID of the dead letter a replay came from.
	AttrReplayedFrom = "replayed_from"
)

// DefaultWorkers is the default number of nodes run at once.
const DefaultWorkers = 32

// Option configures an Engine.
type Option interface{ apply(*options) }

type options struct {
	workers       int
	logger        *slog.Logger
	observer      func(Event)
	resume        bool
	progressEvery time.Duration
	maxAttempts   func(plugin string) int
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithWorkers bounds how many nodes run at once, over all runs
// (default DefaultWorkers).
func WithWorkers(n int) Option { return optionFunc(func(o *options) { o.workers = n }) }

// WithLogger sets the engine's logger (nil discards).
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithObserver receives every Event, synchronously on the goroutine that
// caused it: it must be quick and must not call the Engine back.
func WithObserver(f func(Event)) Option { return optionFunc(func(o *options) { o.observer = f }) }

// WithResumeOnStart sets whether Start resumes every unfinished run
// (default true). A one-shot CLI turns it off and resumes one run.
func WithResumeOnStart(on bool) Option { return optionFunc(func(o *options) { o.resume = on }) }

// WithProgressInterval sets how often reported progress is written to the
// runs (default 1s; progress is also written when a run finishes).
func WithProgressInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.progressEvery = d })
}

// WithMaxAttempts tells the engine how many attempts a plugin's own policy
// allows, for nodes without a workflow or node policy (default
// resilience.DefaultMaxAttempts). See "Attempt numbers" in the package doc.
func WithMaxAttempts(f func(plugin string) int) Option {
	return optionFunc(func(o *options) { o.maxAttempts = f })
}

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	EventRunStarted       EventKind = "run_started"  // a run was submitted or resumed
	EventNodeStarted      EventKind = "node_started" // a node's first attempt of this execution begins
	EventNodeFinished     EventKind = "node_finished"
	EventNodeFailed       EventKind = "node_failed"  // exhausted, no fallback: a dead letter was written
	EventNodeSkipped      EventKind = "node_skipped" // journaled before: not run again
	EventCheckpointSaved  EventKind = "checkpoint_saved"
	EventCheckpointLoaded EventKind = "checkpoint_loaded" // a node resumed from a checkpoint
	EventProgress         EventKind = "progress"
	EventRunFinished      EventKind = "run_finished"
	EventRunAccepted      EventKind = "run_accepted"   // Submit stored a new run
	EventAttemptFailed    EventKind = "attempt_failed" // one attempt of a node failed
	EventNodeRetried      EventKind = "node_retried"   // a node's next attempt starts after a failed one
)

// Event is one thing that happened in a run.
type Event struct {
	Time     time.Time
	Kind     EventKind
	RunID    string
	Workflow string
	Node     string
	// Attempt is the node's attempt number (node events).
	Attempt int
	// Seq is the checkpoint's sequence number (checkpoint events).
	Seq      uint64
	Progress statestore.Progress
	// Status is the run's status (run events).
	Status statestore.RunStatus
	// Resumed is set on EventRunStarted when the run existed before.
	Resumed bool
	Err     string
	// Version is the plugin version an attempt ran on (attempt events).
	Version string
	// Delay is the time since the failed attempt (EventNodeRetried).
	Delay time.Duration
	// DeadLetter is the dead letter's ID (EventNodeFailed).
	DeadLetter string
	// Ready lists the nodes a started run queues first (EventRunStarted).
	Ready []string
	// Attrs are the run's attributes (EventRunAccepted, EventRunStarted).
	Attrs map[string]string
}

// Engine runs workflows durably. See the package documentation.
type Engine struct {
	store statestore.Store
	inv   Invoker
	o     options
	log   *slog.Logger

	wfMu      sync.RWMutex
	workflows map[string]*Workflow
	bySource  map[string]*Workflow

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []task
	runs    map[string]*runState
	state   int // 0 new, 1 started, 2 stopping/stopped
	base    context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped chan struct{}
	// stopping is closed when Stop begins; it wakes the progress flusher.
	stopping chan struct{}
	busy     int

	conflicts atomic.Int64
}

type task struct {
	rs   *runState
	node string
}

const (
	stateNew = iota
	stateStarted
	stateStopped
)

// New returns an Engine over store, calling plugins through inv. It does
// no I/O and starts no goroutine.
func New(store statestore.Store, inv Invoker, opts ...Option) (*Engine, error) {
	if store == nil || inv == nil {
		return nil, errors.New("workflow: New needs a store and an invoker")
	}
	o := options{workers: DefaultWorkers, resume: true, progressEvery: time.Second}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.workers < 1 {
		return nil, fmt.Errorf("workflow: workers must be at least 1, got %d", o.workers)
	}
	if o.progressEvery <= 0 {
		return nil, fmt.Errorf("workflow: progress interval must be positive, got %s", o.progressEvery)
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{store: store, inv: inv, o: o, log: log,
		workflows: map[string]*Workflow{}, bySource: map[string]*Workflow{},
		runs: map[string]*runState{}, stopped: make(chan struct{}), stopping: make(chan struct{})}
	e.cond = sync.NewCond(&e.mu)
	return e, nil
}

// AddWorkflow registers w (replacing one of the same name). Runs already
// going keep the definition they started with.
func (e *Engine) AddWorkflow(w *Workflow) {
	e.wfMu.Lock()
	defer e.wfMu.Unlock()
	e.workflows[w.Name] = w
	e.bySource[sourceKey(w.Source)] = w
}

// LoadWorkflows parses every workflow file of dir (see LoadDir) and
// registers those that are valid; the error lists the others' problems.
func (e *Engine) LoadWorkflows(dir string, opts ParseOptions) error {
	if opts.KnownPlugin == nil {
		opts.KnownPlugin = func(name string) bool { _, ok := e.inv.Plugin(name); return ok }
	}
	ws, err := LoadDir(dir, opts)
	for _, w := range ws {
		e.AddWorkflow(w)
	}
	return err
}

// Workflow returns a registered workflow.
func (e *Engine) Workflow(name string) (*Workflow, bool) {
	e.wfMu.RLock()
	defer e.wfMu.RUnlock()
	w, ok := e.workflows[name]
	return w, ok
}

// Workflows returns the registered workflows sorted by name.
func (e *Engine) Workflows() []*Workflow {
	e.wfMu.RLock()
	defer e.wfMu.RUnlock()
	out := make([]*Workflow, 0, len(e.workflows))
	for _, w := range e.workflows {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sourceKey(src []byte) string {
	sum := sha256.Sum256(src)
	return string(sum[:])
}

// Start starts the workers and, unless WithResumeOnStart(false), resumes
// every unfinished run: it returns once all of them are dispatched (their
// ready nodes are queued), not when they finish.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.state != stateNew {
		e.mu.Unlock()
		return errors.New("workflow: Start called twice")
	}
	e.base, e.cancel = context.WithCancel(context.Background())
	e.state = stateStarted
	for range e.o.workers {
		e.wg.Add(1)
		go e.worker()
	}
	e.wg.Add(1)
	go e.flusher()
	e.mu.Unlock()
	if !e.o.resume {
		return nil
	}
	runs, err := e.store.UnfinishedRuns(ctx)
	if err != nil {
		return fmt.Errorf("workflow: list unfinished runs: %w", err)
	}
	var errs []error
	for _, r := range runs {
		if err := e.activate(ctx, r, true); err != nil {
			errs = append(errs, fmt.Errorf("resume %s: %w", r.ID, err))
		}
	}
	if len(errs) > 0 {
		e.log.Warn("some runs could not be resumed", "err", errors.Join(errs...))
	}
	return nil
}

// Stop stops starting nodes, lets the nodes that run finish within ctx,
// then cancels the rest (they stay unfinished and resume on the next
// Start), writes pending progress and waits for every goroutine it
// started. It is idempotent.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	switch e.state {
	case stateNew:
		e.state = stateStopped
		e.mu.Unlock()
		return nil
	case stateStopped:
		e.mu.Unlock()
		select {
		case <-e.stopped:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.state = stateStopped
	close(e.stopping)
	e.cond.Broadcast()
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("workflow: nodes still running at the drain deadline were cancelled: %w", ctx.Err())
		e.cancel()
		<-done
	}
	e.cancel()
	e.flushProgress(context.Background())
	close(e.stopped)
	return err
}

// Submit starts a run of the named workflow with input. It is idempotent
// by runID ("" generates one): submitting an existing ID with the same
// workflow and input returns that run (resuming it if it is unfinished and
// not running); with another input it returns the stored run and an error
// matching ErrConflict. The run's input is durable when Submit returns.
func (e *Engine) Submit(ctx context.Context, workflow string, input []byte, runID string) (statestore.Run, error) {
	w, ok := e.Workflow(workflow)
	if !ok {
		return statestore.Run{}, fmt.Errorf("%w: %q", ErrUnknownWorkflow, workflow)
	}
	if !e.running() {
		return statestore.Run{}, ErrNotStarted
	}
	if runID == "" {
		runID = NewRunID()
	}
	versions := make(map[string]string, len(w.Nodes))
	var missing []error
	for _, name := range w.Order {
		n := w.Nodes[name]
		v, err := e.loadedVersion(n.Plugin, n.Version)
		if err != nil {
			missing = append(missing, fmt.Errorf("node %s (line %d): %w", name, n.Line, err))
			continue
		}
		versions[name] = v
	}
	if len(missing) > 0 {
		// Every node whose plugin is missing, not just the first.
		return statestore.Run{}, errors.Join(missing...)
	}
	r := statestore.Run{ID: runID, Workflow: w.Name, Input: input, Status: statestore.StatusRunning,
		Versions: versions, Attrs: map[string]string{AttrSource: string(w.Source)}}
	if w.File != "" {
		r.Attrs[AttrFile] = w.File
	}
	addRunAttrs(ctx, r.Attrs)
	stored, created, err := e.store.CreateRun(ctx, r)
	if err != nil {
		if errors.Is(err, statestore.ErrConflict) {
			return stored, fmt.Errorf("workflow: run %s exists with another workflow or input: %w", runID, err)
		}
		return statestore.Run{}, fmt.Errorf("workflow: create run: %w", err)
	}
	if created {
		e.emit(Event{Kind: EventRunAccepted, RunID: runID, Workflow: w.Name, Status: stored.Status, Attrs: stored.Attrs})
	}
	if !created && stored.Status.Finished() {
		return stored, nil
	}
	if err := e.activate(ctx, stored, !created); err != nil {
		return stored, err
	}
	return stored, nil
}

func (e *Engine) loadedVersion(plugin, pin string) (string, error) {
	info, ok := e.inv.Plugin(plugin)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnknownPlugin, plugin)
	}
	if pin != "" && !strings.HasPrefix(info.Version, pin) {
		return "", fmt.Errorf("%w: %s@%s (loaded: %s)", ErrUnknownPlugin, plugin, pin, shortVersion(info.Version))
	}
	return info.Version, nil
}

func (e *Engine) running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state == stateStarted
}

// NewRunID returns a fresh run ID that sorts by creation time.
func NewRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// workflowOf returns the DAG a stored run runs on: its own copy of the
// source, else the registered workflow of its name.
func (e *Engine) workflowOf(r statestore.Run) (*Workflow, error) {
	src := r.Attrs[AttrSource]
	if src == "" {
		if w, ok := e.Workflow(r.Workflow); ok {
			return w, nil
		}
		return nil, fmt.Errorf("%w: %q", ErrUnknownWorkflow, r.Workflow)
	}
	key := sourceKey([]byte(src))
	e.wfMu.RLock()
	w := e.bySource[key]
	e.wfMu.RUnlock()
	if w != nil {
		return w, nil
	}
	w, err := Parse(r.Attrs[AttrFile], []byte(src), ParseOptions{})
	if err != nil {
		return nil, err
	}
	e.wfMu.Lock()
	e.bySource[key] = w
	e.wfMu.Unlock()
	return w, nil
}

// runState is an active run: one the engine is executing.
type runState struct {
	id       string
	wf       *Workflow
	input    []byte
	versions map[string]string
	resumed  bool
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	results map[string]statestore.NodeResult
	waiting map[string]int // node → needs not finished yet
	running map[string]int // node → first attempt number of this execution
	// reserved maps a queued node to the first attempt number of the block
	// reserved with its last need's completion (see reserveNext).
	reserved  map[string]int
	progress  map[string]statestore.Progress
	dirty     bool
	finishing bool
}

// activate makes a stored unfinished run active and queues its ready nodes.
func (e *Engine) activate(ctx context.Context, r statestore.Run, resumed bool) error {
	w, err := e.workflowOf(r)
	if err != nil {
		return err
	}
	results, err := e.store.NodeResults(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("workflow: read journal of %s: %w", r.ID, err)
	}
	rs := &runState{id: r.ID, wf: w, input: r.Input, versions: r.Versions, resumed: resumed,
		done: make(chan struct{}), results: results, waiting: map[string]int{},
		running: map[string]int{}, reserved: map[string]int{}, progress: map[string]statestore.Progress{}}
	for k, v := range r.Progress {
		rs.progress[k] = v
	}
	e.mu.Lock()
	if e.state != stateStarted {
		e.mu.Unlock()
		return ErrNotStarted
	}
	if _, active := e.runs[r.ID]; active {
		e.mu.Unlock()
		return nil
	}
	rs.ctx, rs.cancel = context.WithCancel(e.base)
	e.runs[r.ID] = rs
	var ready []string
	for _, name := range w.Order {
		if _, ok := results[name]; ok {
			continue
		}
		c := 0
		for _, need := range w.Nodes[name].Needs {
			if _, ok := results[need]; !ok {
				c++
			}
		}
		rs.waiting[name] = c
		if c == 0 {
			ready = append(ready, name)
		}
	}
	allDone := len(rs.waiting) == 0
	var skipped []Event
	if resumed {
		for _, name := range w.Order {
			if res, ok := results[name]; ok {
				skipped = append(skipped, Event{Kind: EventNodeSkipped, RunID: r.ID, Workflow: w.Name, Node: name, Attempt: res.Attempts})
			}
		}
	}
	e.enqueue(rs, ready)
	e.mu.Unlock()
	e.emit(Event{Kind: EventRunStarted, RunID: r.ID, Workflow: w.Name, Resumed: resumed, Status: statestore.StatusRunning,
		Ready: slices.Clone(ready), Attrs: r.Attrs})
	for _, ev := range skipped {
		e.emit(ev)
	}
	if allDone {
		// Every node was journaled before a crash; only the run's end is missing.
		e.finishSuccess(rs)
	}
	return nil
}

// enqueue queues nodes of rs and wakes one idle worker per node (a
// broadcast would wake every idle worker for each node). e.mu is held.
func (e *Engine) enqueue(rs *runState, nodes []string) {
	for _, n := range nodes {
		e.queue = append(e.queue, task{rs, n})
		e.cond.Signal()
	}
}

func (e *Engine) worker() {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		for len(e.queue) == 0 && e.state == stateStarted {
			e.cond.Wait()
		}
		if e.state != stateStarted {
			e.mu.Unlock()
			return
		}
		t := e.queue[0]
		e.queue[0] = task{}
		e.queue = e.queue[1:]
		e.busy++
		e.mu.Unlock()
		for next := t.node; next != ""; {
			next = e.execNode(t.rs, next)
		}
		e.mu.Lock()
		e.busy--
		e.mu.Unlock()
	}
}

// maxAttempts is how many attempt numbers one execution of a node may use.
func (e *Engine) maxAttempts(w *Workflow, n *Node) int {
	if p := w.EffectivePolicy(n.Name); p != nil {
		return p.WithDefaults().Retry.MaxAttempts
	}
	return e.pluginAttempts(n.Plugin)
}

func (e *Engine) pluginAttempts(plugin string) int {
	if e.o.maxAttempts != nil {
		if m := e.o.maxAttempts(plugin); m > 0 {
			return m
		}
	}
	return resilience.DefaultMaxAttempts
}

// execNode runs one node; it returns a dependent the calling worker runs
// next (see completed), or "".
func (e *Engine) execNode(rs *runState, name string) string {
	ctx := rs.ctx
	if ctx.Err() != nil {
		return ""
	}
	w := rs.wf
	n := w.Nodes[name]
	input, err := rs.inputFor(n)
	if err != nil {
		e.failNode(rs, n, nil, 0, "", err)
		return ""
	}
	// Attempt numbers: this execution's block is reserved before it
	// starts, so an execution after a crash numbers its attempts above every
	// one used. The completion that made the node ready usually reserved it
	// already, in the same fsynced write (see reserveNext).
	rs.mu.Lock()
	first, reserved := rs.reserved[name]
	delete(rs.reserved, name)
	rs.mu.Unlock()
	if !reserved {
		last := 0
		if rs.resumed {
			if last, err = e.store.LastAttempt(ctx, rs.id, name); err != nil {
				e.storeTrouble(rs, "read last attempt", err)
				return ""
			}
		}
		block := e.attemptBlock(w, n)
		for {
			err = e.store.StartAttempt(ctx, statestore.NodeAttempt{RunID: rs.id, Node: name, Attempt: last + block})
			if !errors.Is(err, statestore.ErrConflict) {
				break
			}
			if last, err = e.store.LastAttempt(ctx, rs.id, name); err != nil {
				break
			}
		}
		if err != nil {
			e.storeTrouble(rs, "record attempt", err)
			return ""
		}
		first = last + 1
	}
	rs.mu.Lock()
	rs.running[name] = first
	rs.mu.Unlock()
	e.emit(Event{Kind: EventNodeStarted, RunID: rs.id, Workflow: w.Name, Node: name, Attempt: first})

	started := time.Now()
	dur := &durable{e: e, rs: rs, node: name, plugin: n.Plugin, attempt: first}
	req := host.InvokeRequest{
		Plugin: n.Plugin, Function: n.Function, Input: input, Version: rs.versions[name],
		Invocation: abi.Invocation{RunID: rs.id, Workflow: w.Name, Node: name, Attempt: first,
			IdempotencyKey: abi.IdempotencyKey(rs.id, name)},
		Durable:   dur,
		Logger:    e.log,
		OnAttempt: e.attemptEvents(rs, name),
	}
	if req.Version == "" {
		req.Version = n.Version
	}
	if p := w.EffectivePolicy(name); p != nil {
		req.Policy = p
		req.PolicyKey = policyKey(w.Name, name, p)
	}
	res, err := e.inv.Invoke(ctx, req)
	attempts := first + res.Attempts - 1
	if err != nil && ctx.Err() != nil {
		// Cancelled or stopping: the node stays unfinished.
		rs.mu.Lock()
		delete(rs.running, name)
		rs.mu.Unlock()
		return ""
	}
	if serr := dur.refused(); err != nil && serr != nil {
		// The store refused the node's checkpoint or state for lack of
		// space: the node is not at fault, and the run resumes on the
		// next start instead of failing.
		rs.mu.Lock()
		delete(rs.running, name)
		rs.mu.Unlock()
		e.storeTrouble(rs, "node "+name, fmt.Errorf("node failed after the store refused its write: %w (node error: %v)", serr, err))
		return ""
	}
	if err != nil && n.Fallback != nil {
		res, err = e.fallback(ctx, rs, n, input, first, res.Attempts, err)
		if err != nil && ctx.Err() != nil {
			rs.mu.Lock()
			delete(rs.running, name)
			rs.mu.Unlock()
			return ""
		}
	}
	if err != nil {
		e.failNode(rs, n, input, first, req.Version, err)
		return ""
	}
	if res.Attempts == 0 {
		attempts = first
	}
	result := statestore.NodeResult{RunID: rs.id, Node: name, Output: res.Output, Attempts: attempts,
		PluginVersion: res.Version, StartedAt: started, FinishedAt: time.Now(), Fallback: res.Fallback}
	next, firsts := e.reserveNext(ctx, rs, name)
	err = e.store.CompleteNode(ctx, result, next...)
	if errors.Is(err, statestore.ErrConflict) && len(next) > 0 {
		// A reservation conflicted, or the node was journaled already:
		// journal it alone; the dependents reserve their own attempts.
		firsts = nil
		err = e.store.CompleteNode(ctx, result)
	}
	if errors.Is(err, statestore.ErrConflict) {
		// Another execution journaled this node first: its output stands.
		e.conflicts.Add(1)
		e.log.Warn("node completed twice; keeping the first journal entry", "run_id", rs.id, "node", name)
		all, rerr := e.store.NodeResults(ctx, rs.id)
		if prev, ok := all[name]; rerr == nil && ok {
			result, err = prev, nil
		}
	}
	if err != nil {
		rs.mu.Lock()
		delete(rs.running, name)
		rs.mu.Unlock()
		if ctx.Err() == nil {
			e.storeTrouble(rs, "journal node", err)
		}
		return ""
	}
	e.emit(Event{Kind: EventNodeFinished, RunID: rs.id, Workflow: w.Name, Node: name, Attempt: result.Attempts})
	return e.completed(rs, name, result, firsts)
}

// attemptBlock is how many attempt numbers one execution of n may use: its
// policy's max_attempts plus its fallback plugin's.
func (e *Engine) attemptBlock(w *Workflow, n *Node) int {
	block := e.maxAttempts(w, n)
	if f := n.Fallback; f != nil && f.Plugin != "" {
		block += e.pluginAttempts(f.Plugin)
	}
	return block
}

// reserveNext returns the attempt blocks to record with the completion of
// name: one for each dependent that this completion makes ready (name is
// its only need not journaled yet), and each such dependent's first
// attempt number. A dependent with other needs still running reserves its
// own block when it starts. Numbers start above the dependent's last
// recorded attempt: 0 in a run this engine created, read from the store
// in a resumed one. A failed read only costs the optimisation.
func (e *Engine) reserveNext(ctx context.Context, rs *runState, name string) ([]statestore.NodeAttempt, map[string]int) {
	var ready []string
	rs.mu.Lock()
	if _, dup := rs.results[name]; !dup {
		for _, d := range rs.wf.Dependents(name) {
			if c, ok := rs.waiting[d]; ok && c == 1 {
				ready = append(ready, d)
			}
		}
	}
	rs.mu.Unlock()
	if len(ready) == 0 {
		return nil, nil
	}
	next := make([]statestore.NodeAttempt, 0, len(ready))
	firsts := make(map[string]int, len(ready))
	for _, d := range ready {
		last := 0
		if rs.resumed {
			var err error
			if last, err = e.store.LastAttempt(ctx, rs.id, d); err != nil {
				continue
			}
		}
		next = append(next, statestore.NodeAttempt{RunID: rs.id, Node: d, Attempt: last + e.attemptBlock(rs.wf, rs.wf.Nodes[d])})
		firsts[d] = last + 1
	}
	return next, firsts
}

// fallback runs a node's fallback after its plugin failed for good.
func (e *Engine) fallback(ctx context.Context, rs *runState, n *Node, input []byte, first, ran int, cause error) (host.InvokeResult, error) {
	f := n.Fallback
	if f.HasValue {
		e.log.Warn("node failed, using its fallback value", "run_id", rs.id, "node", n.Name, "err", cause)
		return host.InvokeResult{Output: []byte(f.Value), Attempts: ran, Fallback: true}, nil
	}
	e.log.Warn("node failed, calling its fallback plugin", "run_id", rs.id, "node", n.Name, "fallback", f.Plugin, "err", cause)
	res, err := e.inv.Invoke(ctx, host.InvokeRequest{
		Plugin: f.Plugin, Function: f.Function, Input: input, Version: f.Version,
		Invocation: abi.Invocation{RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name, Attempt: first + ran,
			IdempotencyKey: abi.IdempotencyKey(rs.id, n.Name)},
		Durable: &durable{e: e, rs: rs, node: n.Name, plugin: f.Plugin, attempt: first + ran},
		Logger:  e.log,
	})
	if err != nil {
		return res, fmt.Errorf("%w (fallback plugin %s: %w)", cause, f.Plugin, err)
	}
	res.Fallback = true
	res.Attempts += ran
	return res, nil
}

func policyKey(wf, node string, p *resilience.Policy) string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return "workflow:" + wf + "/" + node + "#" + hex.EncodeToString(sum[:4])
}

// inputFor builds a node's input: the run's input (no needs), the output
// of its one need, or a JSON object of its needs' outputs; wrapped with
// the node's config when it has one.
func (rs *runState) inputFor(n *Node) ([]byte, error) {
	var in []byte
	rs.mu.Lock()
	switch len(n.Needs) {
	case 0:
		in = rs.input
	case 1:
		in = rs.results[n.Needs[0]].Output
	default:
		obj := make(map[string]json.RawMessage, len(n.Needs))
		for _, need := range n.Needs {
			obj[need] = jsonValue(rs.results[need].Output)
		}
		var err error
		if in, err = json.Marshal(obj); err != nil {
			rs.mu.Unlock()
			return nil, err
		}
	}
	rs.mu.Unlock()
	if n.Config == nil {
		return in, nil
	}
	return json.Marshal(struct {
		Config map[string]any  `json:"config"`
		Input  json.RawMessage `json:"input"`
	}{n.Config, jsonValue(in)})
}

// jsonValue embeds b as itself when it is JSON, else as a JSON string.
func jsonValue(b []byte) json.RawMessage {
	if len(b) > 0 && json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// completed records a journaled node and queues the dependents it freed;
// firsts are the attempt blocks reserved with the completion. When the
// queue is empty, the first freed dependent is returned instead of queued:
// the calling worker runs it next, which spares a chain one hand-off to
// another worker per step; with work queued, everything goes through the
// queue so other runs keep their turn.
func (e *Engine) completed(rs *runState, name string, res statestore.NodeResult, firsts map[string]int) string {
	rs.mu.Lock()
	delete(rs.running, name)
	if _, dup := rs.results[name]; dup {
		rs.mu.Unlock()
		return ""
	}
	rs.results[name] = res
	delete(rs.waiting, name)
	var ready []string
	for _, d := range rs.wf.Dependents(name) {
		if c, ok := rs.waiting[d]; ok {
			c--
			rs.waiting[d] = c
			if c == 0 {
				ready = append(ready, d)
				if first, ok := firsts[d]; ok {
					rs.reserved[d] = first
				}
			}
		}
	}
	finished := len(rs.waiting) == 0
	rs.mu.Unlock()
	var next string
	if len(ready) > 0 && rs.ctx.Err() == nil {
		e.mu.Lock()
		if len(e.queue) == 0 && e.state == stateStarted {
			next, ready = ready[0], ready[1:]
		}
		e.enqueue(rs, ready)
		e.mu.Unlock()
	}
	if finished {
		e.finishSuccess(rs)
	}
	return next
}

func (e *Engine) finishSuccess(rs *runState) {
	rs.mu.Lock()
	out := rs.results[rs.wf.Output].Output
	rs.mu.Unlock()
	e.finish(rs, statestore.StatusSucceeded, out, "", nil)
}

// finish writes the run's final state and deactivates it.
func (e *Engine) finish(rs *runState, status statestore.RunStatus, output []byte, msg string, attrs map[string]string) {
	rs.mu.Lock()
	if rs.finishing {
		rs.mu.Unlock()
		return
	}
	rs.finishing = true
	progress := maps(rs.progress)
	rs.mu.Unlock()
	rs.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	final, err := e.store.UpdateRun(ctx, rs.id, func(r *statestore.Run) error {
		if r.Status.Finished() {
			return nil // cancelled meanwhile: that stands
		}
		r.Status, r.Output, r.Error = status, output, msg
		if len(progress) > 0 {
			r.Progress = progress
		}
		for k, v := range attrs {
			if r.Attrs == nil {
				r.Attrs = map[string]string{}
			}
			r.Attrs[k] = v
		}
		return nil
	})
	if err != nil {
		e.log.Error("run end not recorded; it resumes on the next start", "run_id", rs.id, "err", err)
	}
	e.deactivate(rs)
	e.emit(Event{Kind: EventRunFinished, RunID: rs.id, Workflow: rs.wf.Name, Status: final.Status, Err: final.Error})
}

func (e *Engine) deactivate(rs *runState) {
	e.mu.Lock()
	if e.runs[rs.id] == rs {
		delete(e.runs, rs.id)
	}
	e.mu.Unlock()
	select {
	case <-rs.done:
	default:
		close(rs.done)
	}
}

func maps(m map[string]statestore.Progress) map[string]statestore.Progress {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]statestore.Progress, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// failNode writes a dead letter for a node that failed for good and fails
// its run.
func (e *Engine) failNode(rs *runState, n *Node, input []byte, first int, version string, err error) {
	var attempts []statestore.AttemptError
	var ex *resilience.ExhaustedError
	now := time.Now()
	if errors.As(err, &ex) {
		for i, ae := range ex.Errors {
			attempts = append(attempts, statestore.AttemptError{Attempt: first + i, Error: ae.Error(), At: now})
		}
		if ex.Cause != nil {
			attempts = append(attempts, statestore.AttemptError{Attempt: first + len(ex.Errors) - 1, Error: "stopped: " + ex.Cause.Error(), At: now})
		}
	} else {
		attempts = []statestore.AttemptError{{Attempt: first, Error: err.Error(), At: now}}
	}
	var ge *host.GuestError
	if errors.As(err, &ge) && ge.Version != "" {
		version = ge.Version
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dl, derr := e.store.PutDeadLetter(ctx, statestore.DeadLetter{RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name,
		Input: input, PluginVersion: version, Attempts: attempts})
	if derr != nil {
		e.log.Error("dead letter not written; the run stays unfinished", "run_id", rs.id, "node", n.Name, "err", derr)
		rs.cancel()
		e.deactivate(rs)
		return
	}
	e.emit(Event{Kind: EventNodeFailed, RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name, Attempt: first, Err: err.Error(),
		Version: version, DeadLetter: dl.ID})
	e.finish(rs, statestore.StatusFailed, nil, fmt.Sprintf("node %s failed: %v", n.Name, err),
		map[string]string{AttrDeadLetter: dl.ID})
}

// storeTrouble handles a store error that is not the node's fault: the
// run is left unfinished (it resumes on the next start).
func (e *Engine) storeTrouble(rs *runState, what string, err error) {
	if rs.ctx.Err() != nil {
		return
	}
	e.log.Error("store error; run paused until the next start", "run_id", rs.id, "op", what, "err", err)
	rs.cancel()
	e.deactivate(rs)
	e.emit(Event{Kind: EventRunFinished, RunID: rs.id, Workflow: rs.wf.Name, Status: statestore.StatusRunning, Err: err.Error()})
}

func (e *Engine) emit(ev Event) {
	if e.o.observer == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.o.observer(ev)
}

// flusher writes reported progress to the runs every progress interval.
// Stop wakes it, so it never holds Stop up for an interval; Stop writes
// what is left.
func (e *Engine) flusher() {
	defer e.wg.Done()
	t := time.NewTicker(e.o.progressEvery)
	defer t.Stop()
	for {
		select {
		case <-e.base.Done():
			return
		case <-e.stopping:
			return
		case <-t.C:
			e.mu.Lock()
			stopping := e.state != stateStarted
			e.mu.Unlock()
			if stopping {
				return
			}
			e.flushProgress(e.base)
		}
	}
}

func (e *Engine) flushProgress(ctx context.Context) {
	e.mu.Lock()
	runs := make([]*runState, 0, len(e.runs))
	for _, rs := range e.runs {
		runs = append(runs, rs)
	}
	e.mu.Unlock()
	for _, rs := range runs {
		rs.mu.Lock()
		if !rs.dirty || rs.finishing {
			rs.mu.Unlock()
			continue
		}
		rs.dirty = false
		p := maps(rs.progress)
		rs.mu.Unlock()
		_, err := e.store.UpdateRun(ctx, rs.id, func(r *statestore.Run) error {
			r.Progress = p
			return nil
		})
		if err != nil && ctx.Err() == nil {
			e.log.Warn("progress not written", "run_id", rs.id, "err", err)
		}
	}
}

// Wait blocks until the run is no longer active in this engine (finished,
// failed, cancelled, or paused by Stop) or ctx ends, and returns the run
// as stored.
func (e *Engine) Wait(ctx context.Context, runID string) (statestore.Run, error) {
	e.mu.Lock()
	rs := e.runs[runID]
	e.mu.Unlock()
	if rs != nil {
		select {
		case <-rs.done:
		case <-ctx.Done():
			return statestore.Run{}, ctx.Err()
		}
	}
	return e.store.GetRun(ctx, runID)
}

// Active reports how many runs the engine is executing.
func (e *Engine) Active() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.runs)
}

// Conflicts counts completions the journal refused because the node was
// already journaled (zero unless a node ran twice concurrently).
func (e *Engine) Conflicts() int64 { return e.conflicts.Load() }

func shortVersion(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

var _ = runtime.NumCPU
var _ = slices.Sort[[]string]
