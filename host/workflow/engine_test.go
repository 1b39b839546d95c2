package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.M(m)) }

// fixture is a host with the nodes fixture loaded as "nodes".
type fixture struct {
	h     *host.Host
	store statestore.Store
	wasm  []byte
	mu    sync.Mutex
	evs   []workflow.Event
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{h: hosttest.New(t), store: memstore.New(), wasm: hosttest.Fixture(t, "go/nodes/nodes.wasm")}
	if _, err := f.h.Load(context.Background(), "nodes", f.wasm, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) observe(ev workflow.Event) {
	f.mu.Lock()
	f.evs = append(f.evs, ev)
	f.mu.Unlock()
}

func (f *fixture) events(kind workflow.EventKind, node string) []workflow.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []workflow.Event
	for _, ev := range f.evs {
		if ev.Kind == kind && (node == "" || ev.Node == node) {
			out = append(out, ev)
		}
	}
	return out
}

// engine returns a started engine with the workflows registered, stopped
// at the end of the test.
func (f *fixture) engine(t *testing.T, srcs ...string) *workflow.Engine {
	t.Helper()
	e, err := workflow.New(f.store, f.h, workflow.WithObserver(f.observe), workflow.WithWorkers(8))
	if err != nil {
		t.Fatal(err)
	}
	for i, src := range srcs {
		w, err := workflow.Parse("wf"+string(rune('0'+i))+".yaml", []byte(src), workflow.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.AddWorkflow(w)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, e) })
	return e
}

func stop(t *testing.T, e *workflow.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func wait(t *testing.T, e *workflow.Engine, id string) statestore.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := e.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// execs returns the attempt numbers the fixture recorded for a node.
func (f *fixture) execs(t *testing.T, run, node string) []string {
	t.Helper()
	b, err := f.store.StateGet(context.Background(), "nodes", "exec/"+run+"/"+node)
	if errors.Is(err, statestore.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), ",")
}

const diamond = `
name: diamond
policy:
  retry: {max_attempts: 4, initial_delay: 1ms, jitter: none}
nodes:
  a: {plugin: nodes, function: work}
  b: {plugin: nodes, function: work, needs: [a]}
  c:
    plugin: nodes
    function: flaky
    config: {fail_until: 2}
    needs: [a]
  d: {plugin: nodes, function: work, needs: [b, c]}
`

func TestEngine_DiamondRunsEachNodeOnceAndJoins(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, diamond)
	ctx := context.Background()
	r, err := e.Submit(ctx, "diamond", []byte("hello"), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	r = wait(t, e, r.ID)
	if r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	var out map[string]string
	if err := json.Unmarshal(r.Output, &out); err != nil || out["node"] != "d" {
		t.Fatalf("output %s (%v): want d's output", r.Output, err)
	}
	res, err := f.store.NodeResults(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("journal has %d nodes, want 4", len(res))
	}
	// d got a JSON object of b's and c's outputs: its digest proves it.
	var in struct{ B, C json.RawMessage }
	_ = in
	if got := f.execs(t, r.ID, "c"); strings.Join(got, ",") != "1,2,3" {
		t.Errorf("flaky node attempts %v, want 1,2,3", got)
	}
	if res["c"].Attempts != 3 {
		t.Errorf("journaled attempts of c = %d, want 3", res["c"].Attempts)
	}
	for _, n := range []string{"a", "b", "d"} {
		if got := f.execs(t, r.ID, n); len(got) != 1 {
			t.Errorf("node %s ran %v times, want once", n, got)
		}
		if res[n].PluginVersion != host.Version(f.wasm) {
			t.Errorf("node %s journaled version %q", n, res[n].PluginVersion)
		}
	}
	// Same ID and input: the same run, nothing runs again.
	again, err := e.Submit(ctx, "diamond", []byte("hello"), "run-1")
	if err != nil || again.Status != statestore.StatusSucceeded || string(again.Output) != string(r.Output) {
		t.Fatalf("resubmit: %v %s", err, again.Status)
	}
	if _, err := e.Submit(ctx, "diamond", []byte("other"), "run-1"); !errors.Is(err, workflow.ErrConflict) {
		t.Fatalf("resubmit with other input: %v, want ErrConflict", err)
	}
	if got := f.execs(t, r.ID, "a"); len(got) != 1 {
		t.Errorf("node a ran %v times after resubmits", got)
	}
}

// TestEngine_StopWakesTheProgressFlusher: Stop returns once the work is
// done, without waiting for the progress interval to tick; with an
// interval of an hour a flusher that only woke on its ticker would hold
// Stop up until the drain deadline.
func TestEngine_StopWakesTheProgressFlusher(t *testing.T) {
	f := newFixture(t)
	e, err := workflow.New(f.store, f.h, workflow.WithProgressInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("wf.yaml", []byte(diamond), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := e.Submit(context.Background(), "diamond", []byte(`"x"`), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(t, e, r.ID); got.Status != statestore.StatusSucceeded {
		t.Fatalf("run %s: %s", got.Status, got.Error)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Fatalf("Stop waited for the progress interval: %v", err)
	}
}

// fullStore refuses plugin state writes, or only checkpoints, as a full
// disk does.
type fullStore struct {
	statestore.Store
	checkpointsOnly bool
}

var errTestFull = fmt.Errorf("%w: test disk is full", statestore.ErrNoSpace)

func (s fullStore) StateSet(ctx context.Context, plugin, key string, value []byte) error {
	if s.checkpointsOnly {
		return s.Store.StateSet(ctx, plugin, key, value)
	}
	return errTestFull
}

func (fullStore) SaveCheckpoint(context.Context, string, string, []byte) (uint64, error) {
	return 0, errTestFull
}

// TestEngine_NoSpaceInANodePausesTheRun: a node that fails after the store
// refused its state write or checkpoint for lack of space (the guest sees
// the host function's failure code) is not at fault: its run is left
// unfinished, with no dead letter, to resume on the next start.
func TestEngine_NoSpaceInANodePausesTheRun(t *testing.T) {
	const longFlow = `
name: long
nodes:
  a:
    plugin: nodes
    function: long
    config: {steps: 20, step_ms: 1, every: 5}
`
	tests := []struct {
		name            string
		flow, workflow  string
		checkpointsOnly bool
	}{
		{"state", diamond, "diamond", false},
		{"checkpoint", longFlow, "long", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.store = fullStore{Store: f.store, checkpointsOnly: tt.checkpointsOnly}
			e := f.engine(t, tt.flow)
			r, err := e.Submit(context.Background(), tt.workflow, []byte(`"x"`), "")
			if err != nil {
				t.Fatal(err)
			}
			got := wait(t, e, r.ID)
			if got.Status.Finished() {
				t.Fatalf("run %s: %s, want it left unfinished", got.Status, got.Error)
			}
			if n, err := f.store.CountDeadLetters(context.Background()); err != nil || n != 0 {
				t.Errorf("dead letters: %d %v", n, err)
			}
		})
	}
}
