package workflow_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const longFlow = `
name: longflow
policy:
  retry: {max_attempts: 2, initial_delay: 1ms, jitter: none}
nodes:
  first: {plugin: nodes, function: work}
  long:
    plugin: nodes
    function: long
    config: {steps: 60, step_ms: 5, every: 5}
    needs: [first]
  last: {plugin: nodes, function: work, needs: [long]}
`

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// An engine stopped mid-node (its context cancelled, as a crash would
// leave it) is replaced by a new one on the same store: the run resumes,
// the finished node does not run again, the long node continues from its
// checkpoint with a higher attempt number.
func TestEngine_ResumeAfterStopContinuesFromCheckpoint(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e1, err := workflow.New(f.store, f.h, workflow.WithObserver(f.observe))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("long.yaml", []byte(longFlow), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e1.AddWorkflow(w)
	if err := e1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := e1.Submit(ctx, "longflow", []byte("in"), "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two checkpoints", func() bool { return len(f.events(workflow.EventCheckpointSaved, "long")) >= 2 })
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_ = e1.Stop(cancelled) // drain deadline already over: the long node is cut off
	if got, _ := e1.Get(ctx, r.ID); got.Status != statestore.StatusRunning {
		t.Fatalf("after stop the run is %s, want running", got.Status)
	}

	// The second engine knows no workflow: the run carries its own.
	e2, err := workflow.New(f.store, f.h, workflow.WithObserver(f.observe))
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer stop(t, e2)
	done := wait(t, e2, r.ID)
	if done.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", done.Status, done.Error)
	}
	if got := f.execs(t, r.ID, "first"); len(got) != 1 {
		t.Errorf("first ran %v, want once", got)
	}
	execs := f.execs(t, r.ID, "long")
	if len(execs) != 2 {
		t.Fatalf("long ran %v, want twice", execs)
	}
	a1, _ := strconv.Atoi(execs[0])
	a2, _ := strconv.Atoi(execs[1])
	if a2 <= a1 {
		t.Errorf("attempt after resume %d, want above %d", a2, a1)
	}
	resumed, _ := f.store.StateGet(ctx, "nodes", "resumed/"+r.ID+"/long")
	from := strings.Split(string(resumed), ",")
	if len(from) != 2 || from[0] != "0" || from[1] == "0" {
		t.Errorf("long resumed from %q, want 0 then a checkpoint", resumed)
	}
	steps, _ := f.store.StateGet(ctx, "nodes", "steps/"+r.ID+"/long")
	if n, _ := strconv.Atoi(string(steps)); n < 60 || n > 60+5 {
		t.Errorf("long executed %d steps for 60, want at most one checkpoint interval (5) redone", n)
	}
	if len(f.events(workflow.EventNodeSkipped, "first")) != 1 {
		t.Error("no skipped event for the finished node")
	}
	info, err := e2.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range info.Nodes {
		if n.Status != workflow.NodeSucceeded || n.Version != host.Version(f.wasm) {
			t.Errorf("node %+v", n)
		}
	}
	if info.Progress["long"].Done != 60 {
		t.Errorf("long progress %+v, want 60 done", info.Progress["long"])
	}
}

const brokenFlow = `
name: broken
policy:
  retry: {max_attempts: 2, initial_delay: 1ms, jitter: none}
  breaker: {failure_threshold: -1}
nodes:
  a: {plugin: nodes, function: work}
  b: {plugin: nodes, function: work, needs: [a]}
  c: {plugin: step, function: work, needs: [b]}
  d: {plugin: nodes, function: work, needs: [c]}
`

// A node that exhausts its policy leaves a dead letter and fails the run;
// replaying it on a fixed version of the plugin completes the run without
// running the nodes that had finished.
func TestEngine_DeadLetterReplayWithFixedPlugin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// "step" v1 is the fixture configured to fail.
	if _, err := f.h.Load(ctx, "step", f.wasm, abi.Manifest{Config: map[string]string{"broken": "true"}}); err != nil {
		t.Fatal(err)
	}
	e := f.engine(t, brokenFlow)
	r, err := e.Submit(ctx, "broken", []byte("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	failed := wait(t, e, r.ID)
	if failed.Status != statestore.StatusFailed || failed.Attrs[workflow.AttrDeadLetter] == "" {
		t.Fatalf("run %s, attrs %v: want failed with a dead letter", failed.Status, failed.Attrs)
	}
	dl, err := e.DeadLetter(ctx, failed.Attrs[workflow.AttrDeadLetter])
	if err != nil {
		t.Fatal(err)
	}
	if dl.Node != "c" || len(dl.Attempts) != 2 || dl.PluginVersion != host.Version(f.wasm) || len(dl.Input) == 0 {
		t.Fatalf("dead letter %+v", dl)
	}
	if !strings.Contains(dl.Attempts[1].Error, "broken") {
		t.Errorf("attempt error %q", dl.Attempts[1].Error)
	}
	info, _ := e.Get(ctx, r.ID)
	if info.Nodes[2].Status != workflow.NodeFailed || info.Nodes[3].Status != workflow.NodePending {
		t.Errorf("node states %+v", info.Nodes)
	}

	// Replay without upgrade keeps the broken version: it fails again.
	if _, err := e.Replay(ctx, dl.ID, false); err != nil {
		t.Fatal(err)
	}
	again := wait(t, e, r.ID)
	if again.Status != statestore.StatusFailed {
		t.Fatalf("replay on the old version: %s", again.Status)
	}
	// v2: different bytes (a custom section), not broken.
	fixed := append(append([]byte{}, f.wasm...), 0, 7, 5, 'f', 'i', 'x', 'e', 'd', 2)
	v2, err := f.h.Load(ctx, "step", fixed, abi.Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Replay(ctx, dl.ID, true); !errors.Is(err, workflow.ErrNotFound) {
		t.Fatalf("replaying a replayed dead letter: %v, want ErrNotFound", err)
	}
	done, err := e.Replay(ctx, again.Attrs[workflow.AttrDeadLetter], true)
	if err != nil {
		t.Fatal(err)
	}
	done = wait(t, e, done.ID)
	if done.Status != statestore.StatusSucceeded {
		t.Fatalf("after replay: %s %s", done.Status, done.Error)
	}
	for _, n := range []string{"a", "b", "d"} {
		if got := f.execs(t, r.ID, n); len(got) != 1 {
			t.Errorf("node %s ran %v, want once", n, got)
		}
	}
	res, _ := f.store.NodeResults(ctx, r.ID)
	if res["c"].PluginVersion != v2 {
		t.Errorf("c journaled on %s, want the fixed %s", res["c"].PluginVersion, v2)
	}
	b, _ := f.store.StateGet(ctx, "step", "exec/"+r.ID+"/c") // state is scoped to the plugin
	if c := strings.Split(string(b), ","); len(c) != 5 || c[4] != "5" {
		t.Errorf("c attempts %q, want 1..5 (numbers keep increasing across replays)", c)
	}
	if n, _ := e.Checkpoints(ctx, r.ID, ""); len(n) != 0 {
		t.Errorf("checkpoints %v", n)
	}
	if left, _, _ := e.DeadLetters(ctx, statestore.DeadLetterFilter{}); len(left) != 0 {
		t.Errorf("dead letters left: %v", left)
	}
}

const fallbackFlow = `
name: fallback
policy:
  retry: {max_attempts: 1}
nodes:
  a:
    plugin: nodes
    function: work
    config: {broken: true}
    fallback: {value: "plan B"}
  b:
    plugin: nodes
    function: work
    config: {broken: true}
    fallback: {plugin: nodes, function: flaky}
  join: {plugin: nodes, function: work, needs: [a, b]}
`

func TestEngine_Fallbacks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.engine(t, fallbackFlow)
	r, err := e.Submit(ctx, "fallback", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("%s %s", r.Status, r.Error)
	}
	res, _ := f.store.NodeResults(ctx, r.ID)
	if string(res["a"].Output) != "plan B" || !res["a"].Fallback {
		t.Errorf("a: %+v", res["a"])
	}
	if !res["b"].Fallback || !strings.Contains(string(res["b"].Output), `"node":"b"`) {
		t.Errorf("b: %+v %s", res["b"], res["b"].Output)
	}
}

func TestEngine_Cancel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.engine(t, longFlow)
	r, err := e.Submit(ctx, "longflow", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a checkpoint", func() bool { return len(f.events(workflow.EventCheckpointSaved, "long")) >= 1 })
	if _, err := e.Cancel(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	got := wait(t, e, r.ID)
	if got.Status != statestore.StatusCancelled {
		t.Fatalf("status %s", got.Status)
	}
	if _, err := e.Cancel(ctx, r.ID); !errors.Is(err, workflow.ErrFinished) {
		t.Errorf("second cancel: %v", err)
	}
	if res, _ := f.store.NodeResults(ctx, r.ID); len(res) != 1 {
		t.Errorf("journal after cancel: %v", res)
	}
	// Resume continues a cancelled run.
	if _, err := e.Resume(ctx, r.ID, false); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, e, r.ID); got.Status != statestore.StatusSucceeded {
		t.Fatalf("resumed: %s", got.Status)
	}
}
