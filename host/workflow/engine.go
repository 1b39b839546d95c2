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
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/internal/digest"
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
	owner         string
	lease         time.Duration
	poll          time.Duration
	clock         func() time.Time
	noSchedules   bool
	rescue        rescueOptions
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

// WithResumeOnStart sets whether the engine executes every unfinished run
// of its store (default true): it claims any queued task, and Start
// requeues runs that lost their tasks. Off, it executes only the runs it
// is asked to (Submit, Resume, Replay): a one-shot CLI turns it off.
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

// WithOwner names the engine in the store's claims (default: host name,
// process ID and a random suffix). Every live engine sharing a store needs
// its own name: at Start an engine takes back the nodes claimed under its
// name, which an engine of that name that died held.
func WithOwner(name string) Option { return optionFunc(func(o *options) { o.owner = name }) }

// WithLease sets how long a claimed node stays this engine's without a
// heartbeat (default DefaultLease). Heartbeats extend the leases of the
// nodes the engine holds every lease/3 (at most every second); a node
// whose lease ends is rescued by any engine sharing the store, and the
// writes of its first owner are then refused.
func WithLease(d time.Duration) Option { return optionFunc(func(o *options) { o.lease = d }) }

// WithPollInterval sets how often an idle engine looks for tasks queued by
// other engines sharing its store (default 100ms). Tasks it queues itself
// wake it at once.
func WithPollInterval(d time.Duration) Option { return optionFunc(func(o *options) { o.poll = d }) }

// DefaultLease is the default lease of a claimed node.
const DefaultLease = 15 * time.Second

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
	// EventRunPaused: the store refused a write of the run (no space, an
	// unreachable database); its node is queued again after a delay.
	EventRunPaused EventKind = "run_paused"
	// EventNodeLost: the engine lost its claim of a node (its lease ended
	// or its run was cancelled elsewhere); the node's writes are refused.
	EventNodeLost      EventKind = "node_lost"
	EventRunAccepted   EventKind = "run_accepted"   // Submit stored a new run
	EventAttemptFailed EventKind = "attempt_failed" // one attempt of a node failed
	EventNodeRetried   EventKind = "node_retried"   // a node's next attempt starts after a failed one
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
	// Resumed is set on EventRunStarted when the run existed before: it
	// was submitted again, resumed, or picked up from the store after a
	// restart or from another engine.
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

	mu sync.Mutex
	// work wakes workers when a claimed task is pending; claim wakes the
	// claimer when a worker becomes idle.
	work, claim *sync.Cond
	pending     []statestore.Task // claimed, not started yet
	idle        int               // workers waiting for a task
	runs        map[string]*runState
	held        map[statestore.Fence]*held // claims this engine holds
	only        map[string]bool            // runs to execute without resume
	seen        *recent                    // runs this engine executed lately
	submitted   submitted                  // runs created here, not executed yet
	paused      map[string]bool            // runs paused since their last node started
	state       int                        // 0 new, 1 started, 2 stopping/stopped
	base        context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	stopped     chan struct{}
	// stopping is closed when Stop begins; it wakes the flusher, the
	// claimer and the heartbeat.
	stopping chan struct{}
	// wake has a token when this engine queued a task the claimer may not
	// have seen; changed is closed when the engine stops; watch holds a
	// channel per run Wait waits for, closed when the run finishes or
	// pauses here.
	wake    chan struct{}
	changed chan struct{}
	watch   map[string]*watch
	busy    int
	parked  int // timers held until their due time (park.go)

	conflicts atomic.Int64
	stats     engineStats
	rescue    rescueState // under mu
}

// held is a claim of this engine: a node pending or running.
type held struct {
	cancel context.CancelCauseFunc // nil while pending
	// kept: the claim came with the completion of the node before it on
	// this engine (Completion.Keep), not from a claim.
	kept bool
	// completing: the node's completion is being written; its outcome,
	// not a heartbeat, says whether the claim held.
	completing bool
	// rescue: the node runs on a rescue slot (rescuer).
	rescue bool
}

type engineStats struct {
	claims, rescues, lost, fenced, heartbeats, heartbeatErrors atomic.Int64
}

// Stats counts what the engine did with the store's task queue.
type Stats struct {
	// Claims counts nodes claimed; Rescues those whose earlier owner's
	// lease had ended.
	Claims, Rescues int64
	// Lost counts claims that ended while the engine held them (the lease
	// ran out or the run was cancelled elsewhere); Fenced counts writes
	// the store refused because their claim was lost.
	Lost, Fenced int64
	// Heartbeats counts lease extensions; HeartbeatErrors those that failed.
	Heartbeats, HeartbeatErrors int64
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{Claims: e.stats.claims.Load(), Rescues: e.stats.rescues.Load(), Lost: e.stats.lost.Load(),
		Fenced: e.stats.fenced.Load(), Heartbeats: e.stats.heartbeats.Load(), HeartbeatErrors: e.stats.heartbeatErrors.Load()}
}

// Owner returns the name the engine claims nodes under.
func (e *Engine) Owner() string { return e.o.owner }

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
	o := options{workers: DefaultWorkers, resume: true, progressEvery: time.Second, lease: DefaultLease,
		poll: 100 * time.Millisecond}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.workers < 1 {
		return nil, fmt.Errorf("workflow: workers must be at least 1, got %d", o.workers)
	}
	if o.progressEvery <= 0 {
		return nil, fmt.Errorf("workflow: progress interval must be positive, got %s", o.progressEvery)
	}
	if o.lease < 100*time.Millisecond {
		return nil, fmt.Errorf("workflow: lease must be at least 100ms, got %s", o.lease)
	}
	if o.poll <= 0 {
		return nil, fmt.Errorf("workflow: poll interval must be positive, got %s", o.poll)
	}
	if o.rescue.slots < 0 {
		return nil, fmt.Errorf("workflow: rescue slots must not be negative, got %d", o.rescue.slots)
	}
	if o.owner == "" {
		o.owner = defaultOwner()
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{store: store, inv: inv, o: o, log: log,
		workflows: map[string]*Workflow{}, bySource: map[string]*Workflow{},
		runs: map[string]*runState{}, held: map[statestore.Fence]*held{}, only: map[string]bool{},
		seen: newRecent(4096), paused: map[string]bool{},
		stopped: make(chan struct{}), stopping: make(chan struct{}),
		wake: make(chan struct{}, 1), changed: make(chan struct{}), watch: map[string]*watch{}}
	e.work = sync.NewCond(&e.mu)
	e.claim = sync.NewCond(&e.mu)
	return e, nil
}

func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
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

// Start starts the workers, the claimer and the heartbeat. Unless
// WithResumeOnStart(false), it first takes back the nodes an engine of
// the same owner name held when it died (statestore.Queue.ClaimOwnTasks),
// as many as its workers and rescue slots start at once, without waiting
// for their leases to end; and it requeues the unfinished runs that have
// no task (runs stored before the store had a queue, runs whose end was
// not recorded): their other nodes are queued already and run as workers
// claim them. An error from that walk leaves the engine started: call
// Stop after a failed Start as after a successful one.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.state != stateNew {
		e.mu.Unlock()
		return errors.New("workflow: Start called twice")
	}
	e.mu.Unlock()
	// Nothing is claimed under this engine's name yet: what is, its
	// predecessor held.
	var own []statestore.Task
	if e.o.resume {
		var err error
		if own, err = e.store.ClaimOwnTasks(ctx, e.o.owner, e.o.workers+e.o.rescueSlots(), e.o.lease); err != nil {
			e.log.Warn("cannot take back the nodes this host held before; they run when their leases end", "err", err)
		}
	}
	e.mu.Lock()
	if e.state != stateNew {
		e.mu.Unlock()
		e.release(own)
		return errors.New("workflow: Start called twice, or Stop during Start")
	}
	e.base, e.cancel = context.WithCancel(context.Background())
	e.state = stateStarted
	for range e.o.workers {
		e.wg.Add(1)
		go e.worker()
	}
	for i, t := range own {
		e.stats.claims.Add(1)
		e.stats.rescues.Add(1)
		if i < e.o.workers {
			e.held[t.Fence()] = &held{}
			e.pending = append(e.pending, t)
			e.work.Signal()
			continue
		}
		e.held[t.Fence()] = &held{rescue: true}
		e.rescue.busy++
		e.wg.Add(1)
		go e.runRescued(t)
	}
	if len(own) > 0 {
		e.log.Info("took back the nodes this host held before it stopped", "nodes", len(own))
	}
	e.wg.Add(3)
	go e.flusher()
	go e.claimer()
	go e.heartbeat()
	if e.o.resume {
		e.wg.Add(1)
		go e.rescuer()
	}
	if e.o.resume && !e.o.noSchedules {
		e.wg.Add(1)
		go e.scheduler(e.now())
	}
	e.mu.Unlock()
	if !e.o.resume {
		return nil
	}
	var errs []error
	after := ""
	for {
		ids, next, err := e.store.UnqueuedRuns(ctx, after, 500)
		if err != nil {
			return fmt.Errorf("workflow: list runs to resume: %w", err)
		}
		for _, id := range ids {
			if err := e.requeue(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("resume %s: %w", id, err))
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(errs) > 0 {
		e.log.Warn("some runs could not be resumed", "err", errors.Join(errs...))
	}
	e.poke()
	return nil
}

// requeue queues the ready nodes of an unfinished run from its journal, or
// records its end when every node is journaled.
func (e *Engine) requeue(ctx context.Context, runID string) error {
	r, err := e.store.GetRun(ctx, runID)
	if err != nil {
		return err
	}
	if r.Status.Finished() {
		return nil
	}
	w, err := e.workflowOf(r)
	if err != nil {
		return err
	}
	results, err := e.store.NodeResults(ctx, runID)
	if err != nil {
		return err
	}
	if journaledAll(w, results) {
		rs := e.newRunState(r, w)
		e.finishSuccess(rs, results)
		return nil
	}
	var ready []statestore.ReadyNode
	for _, name := range w.Order {
		if _, done := results[name]; !done {
			ready = append(ready, e.readyNode(w, name))
		}
	}
	return e.store.EnqueueNodes(ctx, runID, ready)
}

// Stop stops claiming nodes, lets the nodes that run finish within ctx,
// then cancels the rest, gives their claims back (another engine sharing
// the store, or the next Start, runs them), writes pending progress and
// waits for every goroutine it started. It is idempotent.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	switch e.state {
	case stateNew:
		e.state = stateStopped
		e.mu.Unlock()
		close(e.stopped)
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
	pending := e.pending
	e.pending = nil
	for _, t := range pending {
		delete(e.held, t.Fence())
	}
	e.work.Broadcast()
	e.claim.Broadcast()
	e.mu.Unlock()
	e.release(pending)
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
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
	close(e.stopped)
	return err
}

// release gives claims back to the store, claimable at once.
func (e *Engine) release(tasks []statestore.Task) {
	if len(tasks) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, t := range tasks {
		if err := e.store.ReleaseTask(ctx, t.Fence(), 0); err != nil && !errors.Is(err, statestore.ErrFenced) {
			e.log.Warn("claim not given back; the node runs when its lease ends", "run_id", t.RunID, "node", t.Node, "err", err)
		}
	}
}

// Submit starts a run of the named workflow with input. It is idempotent
// by runID ("" generates one): submitting an existing ID with the same
// workflow and input returns that run (queueing its ready nodes again if
// it lost them); with another input it returns the stored run and an
// error matching ErrConflict. The run and its first nodes are durable
// when Submit returns.
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
		if n.Workflow != "" {
			continue // a child run pins its own
		}
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
	var roots []statestore.ReadyNode
	for _, name := range w.Order {
		if len(w.Nodes[name].Needs) == 0 {
			roots = append(roots, e.readyNode(w, name))
		}
	}
	addRunAttrs(ctx, r.Attrs)
	e.execute(runID)
	stored, created, first, claimed, err := e.submit(ctx, r, roots)
	if err != nil {
		if errors.Is(err, statestore.ErrConflict) {
			return stored, fmt.Errorf("workflow: run %s exists with another workflow or input: %w", runID, err)
		}
		return statestore.Run{}, fmt.Errorf("workflow: create run: %w", err)
	}
	if !created {
		if stored.Status.Finished() {
			return stored, nil
		}
		e.mu.Lock()
		e.seen.remove(runID) // its next node reports the resume
		e.mu.Unlock()
		if err := e.requeue(ctx, runID); err != nil {
			return stored, err
		}
	} else {
		e.mu.Lock()
		e.seen.add(runID)
		e.submitted.add(stored)
		e.mu.Unlock()
		e.emit(Event{Kind: EventRunAccepted, RunID: runID, Workflow: w.Name, Status: stored.Status, Attrs: stored.Attrs})
		ready := make([]string, len(roots))
		for i, n := range roots {
			ready[i] = n.Node
		}
		e.emit(Event{Kind: EventRunStarted, RunID: runID, Workflow: w.Name, Status: statestore.StatusRunning,
			Ready: ready, Attrs: stored.Attrs})
		if claimed {
			e.handOff(first)
			if len(roots) == 1 {
				return stored, nil // nothing else to claim
			}
		}
	}
	e.poke()
	return stored, nil
}

// execute lets an engine without resume claim the tasks of a run.
func (e *Engine) execute(runID string) {
	if e.o.resume {
		return
	}
	e.mu.Lock()
	e.only[runID] = true
	e.mu.Unlock()
}

// poke wakes the claimer: a task was queued.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) loadedVersion(plugin, pin string) (string, error) {
	if plugin == "" {
		return "", nil // a timer or event node
	}
	info, ok := e.inv.Plugin(plugin)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnknownPlugin, plugin)
	}
	if pin != "" && !strings.HasPrefix(info.Version, pin) {
		return "", fmt.Errorf("%w: %s@%s (loaded: %s)", ErrUnknownPlugin, plugin, pin, digest.Short(info.Version))
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

// readyNode describes node name of w for the queue.
func (e *Engine) readyNode(w *Workflow, name string) statestore.ReadyNode {
	return statestore.ReadyNode{Node: name, Needs: w.Nodes[name].Needs, Block: e.attemptBlock(w, w.Nodes[name])}
}

// runState is a run this engine holds claims of: what its nodes share
// while they execute here. It is dropped when the last claim ends.
type runState struct {
	id       string
	wf       *Workflow
	input    []byte
	versions map[string]string
	created  time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	refs     int // claims of the run this engine holds; under Engine.mu

	mu        sync.Mutex
	running   map[string]int // node → first attempt number of this execution
	progress  map[string]statestore.Progress
	maps      map[string][]ItemError // failed items of the maps running here
	dirty     bool
	finishing bool
	// journal holds entries of the run's journal known to be committed:
	// read from the store, or journaled by this engine (see journal.go).
	journal map[string]statestore.NodeResult
	// fromSubmit: loaded from this engine's submit of the run, for the
	// first claim of one of its tasks.
	fromSubmit bool
}

func (e *Engine) newRunState(r statestore.Run, w *Workflow) *runState {
	rs := &runState{id: r.ID, wf: w, input: r.Input, versions: r.Versions, created: r.CreatedAt,
		running: map[string]int{}, progress: map[string]statestore.Progress{}, journal: map[string]statestore.NodeResult{}}
	for k, v := range r.Progress {
		rs.progress[k] = v
	}
	base := e.base
	if base == nil {
		base = context.Background()
	}
	rs.ctx, rs.cancel = context.WithCancel(base)
	return rs
}

// acquire returns the state of a run this engine is to execute a node of,
// loading it when no claim of the run is held. ok is false when the run is
// finished or gone (its task is then dropped).
func (e *Engine) acquire(ctx context.Context, t statestore.Task) (*runState, bool, error) {
	e.mu.Lock()
	if rs := e.runs[t.RunID]; rs != nil {
		rs.refs++
		e.mu.Unlock()
		return rs, true, nil
	}
	r, fromSubmit := e.submitted.take(t)
	e.mu.Unlock()
	if !fromSubmit {
		var err error
		r, err = e.store.GetRun(ctx, t.RunID)
		if errors.Is(err, statestore.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	if r.Status.Finished() {
		return nil, false, nil
	}
	w, err := e.workflowOf(r)
	if err != nil {
		return nil, false, err
	}
	rs := e.newRunState(r, w)
	rs.fromSubmit = fromSubmit
	e.mu.Lock()
	if cur := e.runs[t.RunID]; cur != nil {
		cur.refs++
		e.mu.Unlock()
		rs.cancel()
		return cur, true, nil
	}
	rs.refs = 1
	e.runs[t.RunID] = rs
	fresh := !e.seen.has(t.RunID)
	e.seen.add(t.RunID)
	e.mu.Unlock()
	if fresh {
		// Picked up from the store: after a restart, a Stop, or from
		// another engine.
		e.emit(Event{Kind: EventRunStarted, RunID: r.ID, Workflow: w.Name, Resumed: true, Status: statestore.StatusRunning,
			Ready: []string{t.Node}, Attrs: r.Attrs})
		if results, err := e.store.NodeResults(ctx, r.ID); err == nil {
			rs.remember(slices.Collect(maps.Values(results))...)
			for _, name := range w.Order {
				if res, ok := results[name]; ok {
					e.emit(Event{Kind: EventNodeSkipped, RunID: r.ID, Workflow: w.Name, Node: name, Attempt: res.Attempts})
				}
			}
		}
	}
	return rs, true, nil
}

// unref drops one claim's reference to rs; the last one writes its
// progress and forgets it.
func (e *Engine) unref(rs *runState) {
	e.mu.Lock()
	rs.refs--
	last := rs.refs == 0 && e.runs[rs.id] == rs
	if last {
		delete(e.runs, rs.id)
	}
	e.mu.Unlock()
	if !last {
		return
	}
	rs.mu.Lock()
	dirty := rs.dirty && !rs.finishing
	rs.dirty = false
	p := progressCopy(rs.progress)
	rs.mu.Unlock()
	if dirty {
		e.writeProgress(context.Background(), rs.id, p)
	}
	rs.cancel()
}

// claimer claims tasks for idle workers: as many as are idle and not
// served by a pending task. When the queue has nothing, it waits for a
// task this engine queued, or for the poll interval (tasks queued by other
// engines sharing the store).
func (e *Engine) claimer() {
	defer e.wg.Done()
	poll := time.NewTimer(e.o.poll)
	defer poll.Stop()
	backoff := e.o.poll
	for {
		e.mu.Lock()
		for e.state == stateStarted && e.idle <= len(e.pending) {
			e.claim.Wait()
		}
		if e.state != stateStarted {
			e.mu.Unlock()
			return
		}
		n := e.idle - len(e.pending)
		var only []string
		if !e.o.resume {
			for id := range e.only {
				only = append(only, id)
			}
		}
		e.mu.Unlock()

		tasks, err := e.claimTasks(n, only)
		if err != nil {
			if e.base.Err() == nil {
				e.log.Warn("cannot claim nodes", "err", err)
			}
			backoff = min(2*backoff, 5*time.Second)
		} else {
			backoff = e.o.poll
		}
		if len(tasks) > 0 {
			e.mu.Lock()
			if e.state != stateStarted {
				e.mu.Unlock()
				e.release(tasks)
				return
			}
			for _, t := range tasks {
				e.held[t.Fence()] = &held{}
				e.stats.claims.Add(1)
				if t.Claims > 1 {
					e.stats.rescues.Add(1)
				}
			}
			e.pending = append(e.pending, tasks...)
			for range tasks {
				e.work.Signal()
			}
			e.mu.Unlock()
			if len(tasks) == n {
				continue // more may be queued
			}
		}
		poll.Reset(backoff)
		select {
		case <-e.stopping:
			return
		case <-e.wake:
		case <-poll.C:
		}
	}
}

// claimTasks claims up to n tasks: of any run, or of the runs in only.
func (e *Engine) claimTasks(n int, only []string) ([]statestore.Task, error) {
	ctx, cancel := context.WithTimeout(e.base, 10*time.Second)
	defer cancel()
	if e.o.resume {
		return e.store.ClaimTasks(ctx, e.o.owner, n, e.o.lease)
	}
	var out []statestore.Task
	for _, id := range only {
		if len(out) == n {
			break
		}
		tasks, err := e.store.ClaimRunTasks(ctx, e.o.owner, id, n-len(out), e.o.lease)
		if err != nil {
			return out, err
		}
		out = append(out, tasks...)
	}
	return out, nil
}

func (e *Engine) worker() {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		for len(e.pending) == 0 && e.state == stateStarted {
			e.idle++
			e.claim.Signal()
			e.work.Wait()
			e.idle--
		}
		if e.state != stateStarted {
			e.mu.Unlock()
			return
		}
		t := e.pending[0]
		e.pending[0] = statestore.Task{}
		e.pending = e.pending[1:]
		e.busy++
		e.mu.Unlock()
		var carry *runState
		for ok := true; ok; {
			t, carry, ok = e.execTask(t, carry)
		}
		e.mu.Lock()
		e.busy--
		e.mu.Unlock()
	}
}

// heartbeat extends the leases of the claims this engine holds, and stops
// the nodes whose claim was lost. When no heartbeat succeeded for a whole
// lease, every held node is stopped: other engines may be running them
// already.
func (e *Engine) heartbeat() {
	defer e.wg.Done()
	every := min(e.o.lease/3, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-e.stopping:
			return
		case <-t.C:
		}
		e.mu.Lock()
		fences := make([]statestore.Fence, 0, len(e.held))
		for f := range e.held {
			fences = append(fences, f)
		}
		e.mu.Unlock()
		if len(fences) == 0 {
			lastOK = time.Now()
			continue
		}
		ctx, cancel := context.WithTimeout(e.base, every)
		lost, err := e.store.ExtendLeases(ctx, e.o.owner, fences, e.o.lease)
		cancel()
		if err != nil {
			e.stats.heartbeatErrors.Add(1)
			if time.Since(lastOK) < e.o.lease {
				e.log.Warn("lease heartbeat failed", "err", err)
				continue
			}
			e.log.Error("no lease heartbeat for a whole lease: stopping every held node", "err", err)
			lost = fences
		} else {
			e.stats.heartbeats.Add(1)
			lastOK = time.Now()
		}
		e.mu.Lock()
		for _, f := range lost {
			h := e.held[f]
			if h == nil || h.completing {
				continue // finished meanwhile, or its completion decides
			}
			e.stats.lost.Add(1)
			delete(e.held, f)
			if h.cancel != nil {
				h.cancel(statestore.ErrFenced)
			} else {
				e.pending = slices.DeleteFunc(e.pending, func(t statestore.Task) bool { return t.Fence() == f })
			}
		}
		e.mu.Unlock()
	}
}

// errClaimLost is the cause of a node context cancelled because its claim
// was lost.
var errClaimLost = statestore.ErrFenced

// execTask executes the node of a claimed task. It returns the next task
// to execute on the same worker (a dependent the completion claimed for
// this engine), the run's state with the reference the next task's claim
// holds on it, and true; or false. carry is such a state and reference
// from the task before, nil for a task from a claim.
func (e *Engine) execTask(t statestore.Task, carry *runState) (statestore.Task, *runState, bool) {
	f := t.Fence()
	ctx := e.base
	if carry != nil && !e.current(carry) {
		// Finished or cancelled meanwhile: load the run afresh.
		e.unref(carry)
		carry = nil
	}
	rs, ok, err := carry, true, error(nil)
	if rs == nil {
		rs, ok, err = e.acquire(ctx, t)
	}
	if err != nil || !ok {
		e.unhold(f)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("cannot load run; its node is queued again", "run_id", t.RunID, "node", t.Node, "err", err)
				e.releaseAfter(f, pauseDelay)
			}
			return statestore.Task{}, nil, false
		}
		// The run finished or is gone: its task is stale.
		if err := e.store.DropTasks(ctx, t.RunID); err != nil && ctx.Err() == nil {
			e.log.Warn("stale tasks not dropped", "run_id", t.RunID, "err", err)
		}
		return statestore.Task{}, nil, false
	}
	next, ok := e.execNode(rs, t)
	e.unhold(f)
	if ok && next.RunID == rs.id {
		// The next node's claim takes over this one's reference, so the
		// run's state (and the journal entries it holds) stays.
		return next, rs, true
	}
	e.unref(rs)
	return next, nil, ok
}

// hold records that a node of claim f runs, stoppable with cancel, and
// says whether the claim was kept from the completion before it. ok is
// false when the claim was lost meanwhile.
func (e *Engine) hold(f statestore.Fence, cancel context.CancelCauseFunc) (kept, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.held[f]
	if h == nil {
		return false, false
	}
	h.cancel = cancel
	return h.kept, true
}

func (e *Engine) unhold(f statestore.Fence) {
	e.mu.Lock()
	delete(e.held, f)
	e.mu.Unlock()
}

// pauseDelay is how long a node waits to be claimed again after the store
// refused one of its writes.
const pauseDelay = 5 * time.Second

func (e *Engine) releaseAfter(f statestore.Fence, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.ReleaseTask(ctx, f, d); err != nil && !errors.Is(err, statestore.ErrFenced) {
		e.log.Warn("claim not given back; the node runs when its lease ends", "run_id", f.RunID, "node", f.Node, "err", err)
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

// attemptBlock is how many attempt numbers one execution of n may use: its
// policy's max_attempts plus its fallback plugin's.
func (e *Engine) attemptBlock(w *Workflow, n *Node) int {
	block := e.maxAttempts(w, n)
	if f := n.Fallback; f != nil && f.Plugin != "" {
		block += e.pluginAttempts(f.Plugin)
	}
	return block
}

// execNode runs the node of claim t of run rs and journals it.
func (e *Engine) execNode(rs *runState, t statestore.Task) (statestore.Task, bool) {
	f := t.Fence()
	name := t.Node
	w := rs.wf
	n := w.Nodes[name]
	if n == nil {
		e.log.Error("task of a node the run's workflow does not have; dropped", "run_id", rs.id, "node", name)
		_ = e.store.DropTasks(e.base, rs.id)
		return statestore.Task{}, false
	}
	nctx, cancel := context.WithCancelCause(rs.ctx)
	defer cancel(nil)
	kept, ok := e.hold(f, cancel)
	if !ok {
		return statestore.Task{}, false // lost while pending
	}
	ctx := statestore.WithFence(nctx, f)
	// The first claim of a root of a run created here: only its holder
	// can journal the root, so the journal has nothing it needs.
	known := kept || (rs.fromSubmit && t.Claims == 1 && len(n.Needs) == 0)
	results, err := e.journalFor(ctx, rs, n, known)
	if err != nil {
		e.pause(rs, f, "read journal", err)
		return statestore.Task{}, false
	}
	if res, done := results[name]; done {
		// Journaled before its task was queued again (a resumed run):
		// only its dependents are missing.
		return e.completeTask(ctx, rs, f, res)
	}
	if next, ok, handled := e.beforeNode(ctx, rs, f, n, results); handled {
		return next, ok
	}
	if n.Workflow != "" {
		return e.execChild(ctx, rs, t, n, results)
	}
	input, err := inputFor(rs, n, results)
	if err != nil {
		e.failNode(ctx, rs, f, n, nil, 0, "", err)
		return statestore.Task{}, false
	}
	if n.builtin() {
		return e.execBuiltin(ctx, rs, t, n, input, results)
	}
	// Attempt numbers: the task's first claim uses the block reserved
	// when it was queued; a rescue reserves a block above every number
	// recorded, since its earlier owner may have used some.
	first := t.First
	if t.Claims != 1 || first < 1 {
		block := e.attemptBlock(w, n)
		last := 0
		for {
			if last, err = e.store.LastAttempt(ctx, rs.id, name); err != nil {
				break
			}
			err = e.store.StartAttempt(ctx, statestore.NodeAttempt{RunID: rs.id, Node: name, Attempt: last + block})
			if !errors.Is(err, statestore.ErrConflict) {
				break
			}
		}
		if err != nil {
			e.pause(rs, f, "record attempt", err)
			return statestore.Task{}, false
		}
		first = last + 1
	}
	rs.mu.Lock()
	rs.running[name] = first
	rs.mu.Unlock()
	defer func() {
		rs.mu.Lock()
		delete(rs.running, name)
		rs.mu.Unlock()
	}()
	e.mu.Lock()
	delete(e.paused, rs.id)
	e.mu.Unlock()
	e.emit(Event{Kind: EventNodeStarted, RunID: rs.id, Workflow: w.Name, Node: name, Attempt: first})
	if n.Map != nil {
		return e.execMap(ctx, nctx, rs, f, n, results, first)
	}

	started := time.Now()
	dur := &durable{e: e, rs: rs, node: name, plugin: n.Plugin, attempt: first, fence: f}
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
	if err != nil && nctx.Err() != nil {
		e.stopped_(rs, f, nctx)
		return statestore.Task{}, false
	}
	if ferr := dur.fenced(); ferr != nil {
		e.lostClaim(rs, f, ferr)
		return statestore.Task{}, false
	}
	if serr := dur.refused(); err != nil && serr != nil {
		// The store refused the node's checkpoint or state for lack of
		// space or could not be reached: the node is not at fault; it
		// runs again after a delay.
		e.pause(rs, f, "node "+name, fmt.Errorf("node failed after the store refused its write: %w (node error: %v)", serr, err))
		return statestore.Task{}, false
	}
	if err != nil && n.Fallback != nil {
		res, err = e.fallback(ctx, rs, n, input, first, res.Attempts, err, f)
		if err != nil && nctx.Err() != nil {
			e.stopped_(rs, f, nctx)
			return statestore.Task{}, false
		}
	}
	if err != nil {
		e.failNode(ctx, rs, f, n, input, first, req.Version, err)
		return statestore.Task{}, false
	}
	attempts := first + res.Attempts - 1
	if res.Attempts == 0 {
		attempts = first
	}
	result := statestore.NodeResult{RunID: rs.id, Node: name, Output: res.Output, Attempts: attempts,
		PluginVersion: res.Version, StartedAt: started, FinishedAt: time.Now(), Fallback: res.Fallback, Host: e.o.owner}
	return e.completeTask(ctx, rs, f, result)
}

// stopped_ handles a node whose context ended: the engine stops (the claim
// is given back), the run was cancelled (nothing to do) or the claim was
// lost.
func (e *Engine) stopped_(rs *runState, f statestore.Fence, nctx context.Context) {
	switch {
	case errors.Is(context.Cause(nctx), errClaimLost):
		e.lostClaim(rs, f, context.Cause(nctx))
	case e.base.Err() == nil && rs.ctx.Err() == nil:
		// Cancelled by neither: cannot happen; give the claim back.
		e.releaseAfter(f, 0)
	default:
		rs.mu.Lock()
		cancelled := rs.finishing
		rs.mu.Unlock()
		if !cancelled {
			// Stopping: another engine, or the next start, runs it.
			e.releaseAfter(f, 0)
		}
	}
}

func (e *Engine) lostClaim(rs *runState, f statestore.Fence, cause error) {
	e.stats.fenced.Add(1)
	e.log.Warn("claim of a node lost; its results are discarded", "run_id", rs.id, "node", f.Node, "err", cause)
	e.emit(Event{Kind: EventNodeLost, RunID: rs.id, Workflow: rs.wf.Name, Node: f.Node, Err: cause.Error()})
}

// completeTask journals a finished node under its claim, queues the
// dependents it makes ready and, when it was the run's last node, records
// the run's end. It returns a dependent claimed for this worker.
func (e *Engine) completeTask(ctx context.Context, rs *runState, f statestore.Fence, result statestore.NodeResult) (statestore.Task, bool) {
	w := rs.wf
	name := result.Node
	var next []statestore.ReadyNode
	for _, d := range w.Dependents(name) {
		next = append(next, e.readyNode(w, d))
	}
	// The worker keeps the dependent unless claimed tasks wait for a
	// worker: those a worker that is not busy is about to take do not
	// (a worker looks at the pending tasks before it waits).
	e.mu.Lock()
	keep := len(e.pending) <= e.o.workers-e.busy && e.state == stateStarted && !e.handBack(f)
	e.mu.Unlock()
	// The completion is written even when the node's context ends
	// meanwhile (the engine stops, a heartbeat finds the task gone after
	// the commit): abandoning the wait would not abandon the commit, and a
	// commit nobody follows up leaves the dependent it claimed, or the
	// run's end, to nobody. The store's fence decides whether the claim
	// still holds.
	e.mu.Lock()
	if h := e.held[f]; h != nil {
		h.completing = true
	}
	e.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	c := statestore.Completion{Fence: f, Result: result, Next: next, Keep: keep, Lease: e.o.lease}
	var (
		kept        statestore.Task
		ok, ended   bool
		final       statestore.Run
		err         error
		lastResults map[string]statestore.NodeResult
	)
	ec, canEnd := e.store.(statestore.EndingCompleter)
	if canEnd && len(next) == 0 {
		lastResults = rs.endsWith(result)
	}
	endApplied := new(bool)
	if lastResults != nil {
		// The run's last node: its end commits with its completion.
		var update func(*statestore.Run) error
		update, endApplied = e.endUpdate(rs, statestore.StatusSucceeded, lastResults[w.Output].Output, "", nil)
		final, ended, err = ec.CompleteTaskEnd(wctx, c, update)
	} else {
		kept, ok, err = e.store.CompleteTask(wctx, c)
	}
	if err != nil && !errors.Is(err, statestore.ErrFenced) && !errors.Is(err, statestore.ErrConflict) && e.journaled(rs.id, result) {
		// The commit's answer was lost (a timeout, a dropped connection)
		// but the commit was not: the dependents were queued with it.
		err, ok = nil, false
	}
	if err == nil {
		// The claim ended with the commit: a heartbeat must not count it
		// lost while the run's end is written.
		e.unhold(f)
	}
	switch {
	case errors.Is(err, statestore.ErrFenced):
		e.lostClaim(rs, f, err)
		return statestore.Task{}, false
	case errors.Is(err, statestore.ErrConflict):
		// Journaled before: that entry stands. Its dependents are queued
		// unless they are already.
		e.conflicts.Add(1)
		e.log.Warn("node completed twice; keeping the first journal entry", "run_id", rs.id, "node", name)
		if err := e.store.EnqueueNodes(wctx, rs.id, next); err != nil {
			e.log.Warn("dependents not queued", "run_id", rs.id, "node", name, "err", err)
		}
		e.poke()
		return statestore.Task{}, false
	case err != nil:
		e.pause(rs, f, "journal node", err)
		return statestore.Task{}, false
	}
	rs.remember(result)
	e.emit(Event{Kind: EventNodeFinished, RunID: rs.id, Workflow: w.Name, Node: name, Attempt: result.Attempts})
	if len(next) > 0 {
		if ok {
			e.mu.Lock()
			e.held[kept.Fence()] = &held{kept: true}
			e.stats.claims.Add(1)
			e.mu.Unlock()
		}
		if !ok || len(next) > 1 {
			// Other dependents may be queued: claim them.
			e.poke()
		}
		return kept, ok
	}
	if ended {
		e.ended(rs, final, *endApplied)
		return statestore.Task{}, false
	}
	// A node without dependents may be the run's last: the last node
	// journaled always is one, and reading the journal after the commit
	// sees every earlier completion.
	results, err := e.journalComplete(rs)
	if err != nil {
		e.log.Warn("journal not read after the run's last node; the run ends when resumed", "run_id", rs.id, "err", err)
		return statestore.Task{}, false
	}
	if journaledAll(w, results) {
		e.finishSuccess(rs, results)
	}
	return statestore.Task{}, false
}

// journaled reports whether the journal holds result as this engine wrote
// it: a completion whose answer was lost may have committed.
func (e *Engine) journaled(runID string, result statestore.NodeResult) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.base), 10*time.Second)
	defer cancel()
	results, err := e.store.NodeResultsOf(ctx, runID, []string{result.Node})
	if err != nil {
		return false
	}
	got, ok := results[result.Node]
	return ok && got.Host == result.Host && got.Attempts == result.Attempts
}

// fallback runs a node's fallback after its plugin failed for good.
func (e *Engine) fallback(ctx context.Context, rs *runState, n *Node, input []byte, first, ran int, cause error, f statestore.Fence) (host.InvokeResult, error) {
	fb := n.Fallback
	if fb.HasValue {
		e.log.Warn("node failed, using its fallback value", "run_id", rs.id, "node", n.Name, "err", cause)
		return host.InvokeResult{Output: []byte(fb.Value), Attempts: ran, Fallback: true}, nil
	}
	e.log.Warn("node failed, calling its fallback plugin", "run_id", rs.id, "node", n.Name, "fallback", fb.Plugin, "err", cause)
	res, err := e.inv.Invoke(ctx, host.InvokeRequest{
		Plugin: fb.Plugin, Function: fb.Function, Input: input, Version: fb.Version,
		Invocation: abi.Invocation{RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name, Attempt: first + ran,
			IdempotencyKey: abi.IdempotencyKey(rs.id, n.Name)},
		Durable: &durable{e: e, rs: rs, node: n.Name, plugin: fb.Plugin, attempt: first + ran, fence: f},
		Logger:  e.log,
	})
	if err != nil {
		return res, fmt.Errorf("%w (fallback plugin %s: %w)", cause, fb.Plugin, err)
	}
	res.Fallback = true
	res.Attempts += ran
	return res, nil
}

func computePolicyKey(wf, node string, p *resilience.Policy) string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return "workflow:" + wf + "/" + node + "#" + hex.EncodeToString(sum[:4])
}

// inputFor builds a node's input: the run's input (no needs), the output
// of its one need, or a JSON object of its needs' outputs; wrapped with
// the node's config when it has one.
func inputFor(rs *runState, n *Node, results map[string]statestore.NodeResult) ([]byte, error) {
	var in []byte
	switch len(n.Needs) {
	case 0:
		in = rs.input
	case 1:
		in = results[n.Needs[0]].Output
	default:
		obj := make(map[string]json.RawMessage, len(n.Needs))
		for _, need := range n.Needs {
			if results[need].Skipped {
				continue // absent
			}
			obj[need] = jsonValue(results[need].Output)
		}
		var err error
		if in, err = json.Marshal(obj); err != nil {
			return nil, err
		}
	}
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

func (e *Engine) finishSuccess(rs *runState, results map[string]statestore.NodeResult) {
	e.finish(rs, statestore.StatusSucceeded, results[rs.wf.Output].Output, "", nil)
}

// endUpdate returns the update that records the end of rs: status,
// output, msg, attrs and the progress of its maps, unless the run finished
// already (a cancel, or its end recorded by another path, stands).
// *applied tells, after the update, whether it recorded the end: only
// then is the run's end reported (EventRunFinished), once.
func (e *Engine) endUpdate(rs *runState, status statestore.RunStatus, output []byte, msg string, attrs map[string]string) (func(*statestore.Run) error, *bool) {
	rs.mu.Lock()
	progress := progressCopy(rs.progress)
	rs.mu.Unlock()
	applied := new(bool)
	return func(r *statestore.Run) error {
		*applied = !r.Status.Finished()
		if !*applied {
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
	}, applied
}

// endsWith returns the journal of rs with result when result completes
// it, from the entries remembered here: result's node is the run's last
// and every other node is journaled. Else nil.
func (rs *runState) endsWith(result statestore.NodeResult) map[string]statestore.NodeResult {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.finishing || len(rs.journal)+1 < len(rs.wf.Nodes) {
		return nil
	}
	results := make(map[string]statestore.NodeResult, len(rs.wf.Nodes))
	for name := range rs.wf.Nodes {
		if name == result.Node {
			results[name] = result
			continue
		}
		r, ok := rs.journal[name]
		if !ok {
			return nil
		}
		results[name] = r
	}
	return results
}

// ended does what follows a run's end that its last completion recorded
// (CompleteTaskEnd): final is the run as stored; applied, whether this
// end was recorded (not a cancel that stood).
func (e *Engine) ended(rs *runState, final statestore.Run, applied bool) {
	rs.mu.Lock()
	rs.finishing = true
	rs.mu.Unlock()
	rs.cancel()
	e.forget(rs)
	e.notifyEnd(rs.id, final)
	if applied {
		e.emit(Event{Kind: EventRunFinished, RunID: rs.id, Workflow: rs.wf.Name, Status: final.Status, Err: final.Error})
	}
}

// finish writes the run's final state. Runs that did not succeed lose
// their remaining tasks.
func (e *Engine) finish(rs *runState, status statestore.RunStatus, output []byte, msg string, attrs map[string]string) {
	rs.mu.Lock()
	if rs.finishing {
		rs.mu.Unlock()
		return
	}
	rs.finishing = true
	rs.mu.Unlock()
	update, applied := e.endUpdate(rs, status, output, msg, attrs)
	rs.cancel()
	e.forget(rs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	final, err := e.store.UpdateRun(ctx, rs.id, update)
	if err != nil {
		e.log.Error("run end not recorded; it is recorded when the run is resumed", "run_id", rs.id, "err", err)
	}
	if status != statestore.StatusSucceeded {
		if err := e.store.DropTasks(ctx, rs.id); err != nil {
			e.log.Warn("tasks of a finished run not dropped; they are when claimed", "run_id", rs.id, "err", err)
		}
	}
	if err == nil {
		e.notifyEnd(rs.id, final)
	} else {
		e.notify(rs.id, false)
	}
	if err == nil && !*applied {
		return // finished already: its end was reported where it was recorded
	}
	e.emit(Event{Kind: EventRunFinished, RunID: rs.id, Workflow: rs.wf.Name, Status: final.Status, Err: final.Error})
}

// forget makes the engine load the run afresh for its next claim.
func (e *Engine) forget(rs *runState) {
	e.mu.Lock()
	if e.runs[rs.id] == rs {
		delete(e.runs, rs.id)
	}
	e.mu.Unlock()
}

// notify wakes Wait: a run finished or paused here.
func (e *Engine) notify(runID string, paused bool) {
	e.mu.Lock()
	if paused {
		e.paused[runID] = true
	} else {
		delete(e.paused, runID)
		delete(e.only, runID)
	}
	if w := e.watch[runID]; w != nil {
		close(w.ch)
		delete(e.watch, runID)
	}
	e.mu.Unlock()
}

// progressCopy returns a copy of m, nil when it is empty.
func progressCopy(m map[string]statestore.Progress) map[string]statestore.Progress {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// failNode writes a dead letter for a node that failed for good and fails
// its run — unless its claim was lost meanwhile.
func (e *Engine) failNode(ctx context.Context, rs *runState, f statestore.Fence, n *Node, input []byte, first int, version string, err error) {
	var attempts []statestore.AttemptError
	var ex *resilience.ExhaustedError
	now := time.Now()
	if errors.As(err, &ex) {
		for i, ae := range ex.Errors {
			attempts = append(attempts, statestore.AttemptError{Attempt: first + i, Error: ae.Error(), At: now, Host: e.o.owner})
		}
		if ex.Cause != nil {
			attempts = append(attempts, statestore.AttemptError{Attempt: first + len(ex.Errors) - 1, Error: "stopped: " + ex.Cause.Error(), At: now, Host: e.o.owner})
		}
	} else {
		attempts = []statestore.AttemptError{{Attempt: first, Error: err.Error(), At: now, Host: e.o.owner}}
	}
	var ge *host.GuestError
	if errors.As(err, &ge) && ge.Version != "" {
		version = ge.Version
	}
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ferr := e.store.CheckFence(wctx, f); ferr != nil {
		if errors.Is(ferr, statestore.ErrFenced) {
			e.lostClaim(rs, f, ferr)
		} else {
			e.pause(rs, f, "check claim", ferr)
		}
		return
	}
	dl, derr := e.store.PutDeadLetter(wctx, statestore.DeadLetter{RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name,
		Input: input, PluginVersion: version, Attempts: attempts})
	if derr != nil {
		e.pause(rs, f, "write dead letter", derr)
		return
	}
	e.emit(Event{Kind: EventNodeFailed, RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name, Attempt: first, Err: err.Error(),
		Version: version, DeadLetter: dl.ID})
	e.finish(rs, statestore.StatusFailed, nil, fmt.Sprintf("node %s failed: %v", n.Name, err),
		map[string]string{AttrDeadLetter: dl.ID})
}

// pause handles a store error that is not the node's fault: the node is
// given back to the queue, to run again after a delay.
func (e *Engine) pause(rs *runState, f statestore.Fence, what string, err error) {
	if rs.ctx.Err() != nil || e.base.Err() != nil {
		return
	}
	e.log.Error("store error; the node runs again later", "run_id", rs.id, "node", f.Node, "op", what, "err", err,
		"retry_in", pauseDelay.String())
	e.releaseAfter(f, pauseDelay)
	e.notify(rs.id, true)
	e.emit(Event{Kind: EventRunPaused, RunID: rs.id, Workflow: rs.wf.Name, Node: f.Node, Status: statestore.StatusRunning, Err: err.Error()})
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
		p := progressCopy(rs.progress)
		rs.mu.Unlock()
		e.writeProgress(ctx, rs.id, p)
	}
}

func (e *Engine) writeProgress(ctx context.Context, runID string, p map[string]statestore.Progress) {
	_, err := e.store.UpdateRun(ctx, runID, func(r *statestore.Run) error {
		if r.Status.Finished() {
			return nil
		}
		r.Progress = p
		return nil
	})
	if err != nil && ctx.Err() == nil {
		e.log.Warn("progress not written", "run_id", runID, "err", err)
	}
}

// Wait blocks until the run finished (here or on another engine sharing
// the store), paused here (the store refused a write of it), the engine
// stopped, or ctx ends; it returns the run as stored.
func (e *Engine) Wait(ctx context.Context, runID string) (statestore.Run, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	e.mu.Lock()
	delete(e.paused, runID)
	e.mu.Unlock()
	for {
		e.mu.Lock()
		changed, paused, stopped := e.changed, e.paused[runID], e.state == stateStopped
		// A run this engine holds a claim of has not ended: its end here,
		// or the loss of the claim, wakes w.
		executing := !paused && !stopped && e.holdsClaimOf(runID)
		w := e.watchRun(runID)
		e.mu.Unlock()
		if !executing {
			r, err := e.store.GetRun(ctx, runID)
			if err != nil || r.Status.Finished() || paused || stopped {
				e.unwatch(runID, w)
				return r, err
			}
		}
		err := e.waitChange(ctx, runID, w, changed, tick.C)
		e.unwatch(runID, w)
		if err != nil {
			return statestore.Run{}, err
		}
		if r, ok := e.endOf(w); ok {
			return r, nil // as its end here stored it
		}
	}
}

// Active reports how many runs the engine executes nodes of now.
func (e *Engine) Active() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.runs)
}

// Conflicts counts completions the journal refused because the node was
// already journaled (zero unless a node ran twice concurrently).
func (e *Engine) Conflicts() int64 { return e.conflicts.Load() }

// recent is a bounded set of the run IDs seen last.
type recent struct {
	max  int
	ids  map[string]struct{}
	ring []string
	next int
}

func newRecent(max int) *recent { return &recent{max: max, ids: map[string]struct{}{}} }

// has and add are called with Engine.mu held, or before Start.
func (r *recent) has(id string) bool { _, ok := r.ids[id]; return ok }

func (r *recent) remove(id string) { delete(r.ids, id) }

func (r *recent) add(id string) {
	if r.has(id) {
		return
	}
	if len(r.ring) < r.max {
		r.ring = append(r.ring, id)
	} else {
		delete(r.ids, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % r.max
	}
	r.ids[id] = struct{}{}
}
