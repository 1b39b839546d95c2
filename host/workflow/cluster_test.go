package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Engines sharing one store, as hosts sharing one database do: the tests
// here use memstore, whose claims follow the same contract as the
// shared stores' (see statestore.Queue).

const clusterLease = 600 * time.Millisecond

const longNode = `
name: long
nodes:
  a:
    plugin: nodes
    function: long
    config: {steps: 40, step_ms: 50, every: 4}
`

// hostStore is one engine's view of the shared store: it can be paused
// (its heartbeats no longer reach the store, as when its process is
// stopped) or killed (every call fails, as when its process died).
type hostStore struct {
	statestore.Store
	paused, dead atomic.Bool
}

var errDead = fmt.Errorf("%w: test host is dead", statestore.ErrUnavailable)

func (s *hostStore) ExtendLeases(ctx context.Context, owner string, f []statestore.Fence, d time.Duration) ([]statestore.Fence, error) {
	if s.dead.Load() {
		return nil, errDead
	}
	if s.paused.Load() {
		return nil, nil // the heartbeat "succeeds" but never reaches the store
	}
	return s.Store.ExtendLeases(ctx, owner, f, d)
}

func (s *hostStore) ClaimTasks(ctx context.Context, owner string, max int, d time.Duration) ([]statestore.Task, error) {
	if s.dead.Load() || s.paused.Load() {
		return nil, errDead
	}
	return s.Store.ClaimTasks(ctx, owner, max, d)
}

func (s *hostStore) ClaimRunTasks(ctx context.Context, owner, run string, max int, d time.Duration) ([]statestore.Task, error) {
	if s.dead.Load() || s.paused.Load() {
		return nil, errDead
	}
	return s.Store.ClaimRunTasks(ctx, owner, run, max, d)
}

func (s *hostStore) CheckFence(ctx context.Context, f statestore.Fence) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.CheckFence(ctx, f)
}

func (s *hostStore) PutDeadLetter(ctx context.Context, d statestore.DeadLetter) (statestore.DeadLetter, error) {
	if s.dead.Load() {
		return statestore.DeadLetter{}, errDead
	}
	return s.Store.PutDeadLetter(ctx, d)
}

func (s *hostStore) UpdateRun(ctx context.Context, id string, fn func(*statestore.Run) error) (statestore.Run, error) {
	if s.dead.Load() {
		return statestore.Run{}, errDead
	}
	return s.Store.UpdateRun(ctx, id, fn)
}

func (s *hostStore) DropTasks(ctx context.Context, id string) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.DropTasks(ctx, id)
}

func (s *hostStore) StartAttempt(ctx context.Context, a statestore.NodeAttempt) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.StartAttempt(ctx, a)
}

func (s *hostStore) StateDelete(ctx context.Context, plugin, key string) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.StateDelete(ctx, plugin, key)
}

func (s *hostStore) SaveCheckpoint(ctx context.Context, run, node string, data []byte) (uint64, error) {
	if s.dead.Load() {
		return 0, errDead
	}
	return s.Store.SaveCheckpoint(ctx, run, node, data)
}

func (s *hostStore) StateSet(ctx context.Context, plugin, key string, value []byte) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.StateSet(ctx, plugin, key, value)
}

func (s *hostStore) CompleteTask(ctx context.Context, c statestore.Completion) (statestore.Task, bool, error) {
	if s.dead.Load() {
		return statestore.Task{}, false, errDead
	}
	return s.Store.CompleteTask(ctx, c)
}

func (s *hostStore) ReleaseTask(ctx context.Context, f statestore.Fence, d time.Duration) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.ReleaseTask(ctx, f, d)
}

// clusterEngine starts an engine named owner, with 4 workers, on its view
// of f.store.
func (f *fixture) clusterEngine(t *testing.T, owner string, view statestore.Store, observe func(workflow.Event), srcs ...string) *workflow.Engine {
	t.Helper()
	return startRescuer(t, f.h, view, owner, observe, srcs, workflow.WithWorkers(4))
}

// events collects one engine's events.
type events struct {
	mu  sync.Mutex
	evs []workflow.Event
	ch  chan workflow.Event
}

func newEvents() *events { return &events{ch: make(chan workflow.Event, 1024)} }

func (ev *events) observe(e workflow.Event) {
	ev.mu.Lock()
	ev.evs = append(ev.evs, e)
	ev.mu.Unlock()
	select {
	case ev.ch <- e:
	default:
	}
}

// next returns the next event of kind within the time given.
func (ev *events) next(kind workflow.EventKind, within time.Duration) (workflow.Event, bool) {
	timeout := time.After(within)
	for {
		select {
		case e := <-ev.ch:
			if e.Kind == kind {
				return e, true
			}
		case <-timeout:
			return workflow.Event{}, false
		}
	}
}

func (ev *events) await(t *testing.T, kind workflow.EventKind, within time.Duration) workflow.Event {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case e := <-ev.ch:
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event within %s", kind, within)
		}
	}
}

// A paused host loses its node when its lease ends: another host rescues
// it and finishes the run from the last checkpoint; the paused host's
// writes are refused when it wakes, and the journal keeps the rescuer's
// output.
func TestCluster_PausedHostIsFenced(t *testing.T) {
	f := newFixture(t)
	shared := f.store
	viewA := &hostStore{Store: shared}
	evA, evB := newEvents(), newEvents()
	a := f.clusterEngine(t, "host-a", viewA, evA.observe, longNode)
	r, err := a.Submit(context.Background(), "long", []byte(`"x"`), "run-fence")
	if err != nil {
		t.Fatal(err)
	}
	evA.await(t, workflow.EventCheckpointSaved, 30*time.Second)
	viewA.paused.Store(true)
	b := f.clusterEngine(t, "host-b", shared, evB.observe, longNode)

	got := wait(t, b, r.ID)
	if got.Status != statestore.StatusSucceeded {
		t.Fatalf("run %s: %s", got.Status, got.Error)
	}
	if st := b.Stats(); st.Rescues != 1 {
		t.Errorf("host b stats %+v, want one rescue", st)
	}
	// Host a finds its writes refused as soon as it writes again.
	evA.await(t, workflow.EventNodeLost, 10*time.Second)
	if st := a.Stats(); st.Fenced < 1 {
		t.Errorf("host a stats %+v, want its writes fenced", st)
	}
	res, err := shared.NodeResults(context.Background(), r.ID)
	if err != nil || len(res) != 1 {
		t.Fatalf("journal %v, %v", res, err)
	}
	if n, _ := shared.CountDeadLetters(context.Background()); n != 0 {
		t.Errorf("%d dead letters, want none: a lost claim is not a failure", n)
	}
	resumed, _ := shared.StateGet(context.Background(), "nodes", "resumed/"+r.ID+"/a")
	steps := strings.Split(string(resumed), ",")
	if len(steps) != 2 || steps[0] != "0" || steps[1] == "0" {
		t.Errorf("node resumed from steps %v, want 0 then a checkpoint's step", steps)
	}
	execs := f.execs(t, r.ID, "a")
	if len(execs) != 2 || execs[0] == execs[1] {
		t.Errorf("node ran as attempts %v, want two executions with distinct attempt numbers", execs)
	}
}

// A dead host's node is rescued once its lease ends and finishes from its
// last checkpoint on another host.
func TestCluster_DeadHostsNodeIsRescued(t *testing.T) {
	f := newFixture(t)
	shared := f.store
	viewA := &hostStore{Store: shared}
	evA, evB := newEvents(), newEvents()
	a := f.clusterEngine(t, "host-a", viewA, evA.observe, longNode)
	r, err := a.Submit(context.Background(), "long", []byte(`"x"`), "run-dead")
	if err != nil {
		t.Fatal(err)
	}
	start := evA.await(t, workflow.EventNodeStarted, 30*time.Second)
	evA.await(t, workflow.EventCheckpointSaved, 30*time.Second)
	// Host b starts once host a holds the node.
	b := f.clusterEngine(t, "host-b", shared, evB.observe, longNode)
	killed := time.Now()
	viewA.dead.Store(true)

	rescue, ok := evB.next(workflow.EventNodeStarted, 30*time.Second)
	if !ok {
		probe, err := shared.ClaimTasks(context.Background(), "probe", 10, time.Minute)
		t.Fatalf("host b never started the node: host a %+v, host b %+v; a probe claims %+v (%v)", a.Stats(), b.Stats(), probe, err)
	}
	t.Logf("rescued %s after the kill; host a %+v, host b %+v", rescue.Time.Sub(killed), a.Stats(), b.Stats())
	if d := rescue.Time.Sub(killed); d > clusterLease+time.Second {
		t.Errorf("rescued %s after the kill, want within lease (%s) + 1s", d, clusterLease)
	}
	if rescue.Attempt <= start.Attempt {
		t.Errorf("rescue ran as attempt %d, want above the first execution's %d", rescue.Attempt, start.Attempt)
	}
	got := wait(t, b, r.ID)
	if got.Status != statestore.StatusSucceeded {
		t.Fatalf("run %s: %s", got.Status, got.Error)
	}
	resumed, _ := shared.StateGet(context.Background(), "nodes", "resumed/"+r.ID+"/a")
	if steps := strings.Split(string(resumed), ","); len(steps) != 2 || steps[1] == "0" {
		t.Errorf("node resumed from steps %v, want the dead host's checkpoint", steps)
	}
}

// Cancelling a run on one host stops its node on the host running it
// within about a second.
func TestCluster_CancelFromAnotherHost(t *testing.T) {
	f := newFixture(t)
	shared := f.store
	evA, evB := newEvents(), newEvents()
	a := f.clusterEngine(t, "host-a", shared, evA.observe, longNode)
	r, err := a.Submit(context.Background(), "long", []byte(`"x"`), "run-cancel")
	if err != nil {
		t.Fatal(err)
	}
	evA.await(t, workflow.EventNodeStarted, 30*time.Second)
	b := f.clusterEngine(t, "host-b", shared, evB.observe, longNode)
	at := time.Now()
	if _, err := b.Cancel(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	lost := evA.await(t, workflow.EventNodeLost, 10*time.Second)
	if d := lost.Time.Sub(at); d > 1500*time.Millisecond {
		t.Errorf("node stopped %s after the cancel on another host, want about a second", d)
	}
	got, err := shared.GetRun(context.Background(), r.ID)
	if err != nil || got.Status != statestore.StatusCancelled {
		t.Fatalf("run %+v, %v; want cancelled", got.Status, err)
	}
	if res, _ := shared.NodeResults(context.Background(), r.ID); len(res) != 0 {
		t.Errorf("a cancelled run's node was journaled: %v", res)
	}
	_, err = a.Cancel(context.Background(), r.ID)
	if !errors.Is(err, workflow.ErrFinished) {
		t.Errorf("second cancel: %v, want ErrFinished", err)
	}
}
