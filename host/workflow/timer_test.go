package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// noPlugins is an invoker with no plugin: enough for timer and event nodes.
type noPlugins struct{}

func (noPlugins) Invoke(context.Context, host.InvokeRequest) (host.InvokeResult, error) {
	return host.InvokeResult{}, errors.New("no plugins here")
}

func (noPlugins) Plugin(string) (host.PluginInfo, bool) { return host.PluginInfo{}, false }

// bareEngine returns a started engine over store with the workflows
// registered; stop it with stop.
func bareEngine(t *testing.T, store statestore.Store, opts []workflow.Option, srcs ...string) *workflow.Engine {
	t.Helper()
	e, err := workflow.New(store, noPlugins{}, append([]workflow.Option{workflow.WithWorkers(8), workflow.WithPollInterval(20 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range srcs {
		w, err := workflow.Parse("flow.yaml", []byte(src), workflow.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.AddWorkflow(w)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// nodeInfo returns one node of a run as Get reports it.
func nodeInfo(t *testing.T, e *workflow.Engine, run, node string) workflow.NodeInfo {
	t.Helper()
	info, err := e.Get(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range info.Nodes {
		if n.Name == node {
			return n
		}
	}
	t.Fatalf("run %s has no node %s", run, node)
	return workflow.NodeInfo{}
}

const napFlow = `
name: nap
nodes:
  nap: {sleep: 1500ms}
`

// A sleeping run survives a restart of its engine and wakes on time: the
// timer is the node's task in the store, not a goroutine.
func TestTimer_SleepSurvivesRestart(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	e := bareEngine(t, store, nil, napFlow)
	r, err := e.Submit(ctx, "nap", []byte(`{"n":1}`), "nap-1")
	if err != nil {
		t.Fatal(err)
	}
	var ni workflow.NodeInfo
	waitFor(t, "the timer to wait", func() bool {
		ni = nodeInfo(t, e, r.ID, "nap")
		return ni.Status == workflow.NodeWaiting
	})
	if want := r.CreatedAt.Add(1500 * time.Millisecond); !ni.DueAt.Equal(want) {
		t.Fatalf("due at %v, want %v (created + sleep)", ni.DueAt, want)
	}
	// Get shows the node waiting as soon as it is ready; the engine lets
	// the run go once the node's first look put it to sleep.
	waitFor(t, "the engine to hold no sleeping run", func() bool { return e.Active() == 0 })
	stop(t, e)

	e = bareEngine(t, store, nil, napFlow)
	defer stop(t, e)
	got := wait(t, e, r.ID)
	res, err := store.NodeResults(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	woke := res["nap"].FinishedAt
	if got.Status != statestore.StatusSucceeded || string(got.Output) != `{"n":1}` {
		t.Fatalf("run %s %q, want succeeded with its input as output", got.Status, got.Output)
	}
	if woke.Before(ni.DueAt) || woke.After(ni.DueAt.Add(time.Second)) {
		t.Fatalf("woke at %v, due at %v: want within a second after", woke, ni.DueAt)
	}
}

// A timer counts from when its needs finished; until is absolute.
func TestTimer_SleepAfterNeedsAndUntil(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	e := bareEngine(t, store, nil, `
name: chain
nodes:
  first: {until: "2001-01-01T00:00:00Z"}
  second: {sleep: 300ms, needs: [first]}
`)
	defer stop(t, e)
	r, err := e.Submit(ctx, "chain", []byte(`"x"`), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(t, e, r.ID); got.Status != statestore.StatusSucceeded || string(got.Output) != `"x"` {
		t.Fatalf("run %s %q", got.Status, got.Output)
	}
	res, _ := store.NodeResults(ctx, r.ID)
	if d := res["second"].FinishedAt.Sub(res["first"].FinishedAt); d < 300*time.Millisecond {
		t.Fatalf("second slept %s after first, want at least 300ms", d)
	}
}

const approvalFlow = `
name: approve
nodes:
  approval:
    wait_for: approval
    timeout: 1s
    default: '{"approved": false}'
`

func TestSignal_DeliveredOncePerID(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	e := bareEngine(t, store, nil, approvalFlow)
	defer stop(t, e)
	r, err := e.Submit(ctx, "approve", nil, "a-1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to wait", func() bool {
		ni := nodeInfo(t, e, r.ID, "approval")
		return ni.Status == workflow.NodeWaiting && ni.Awaits == "approval"
	})
	res, err := e.Signal(ctx, r.ID, "approval", "ev-1", []byte(`{"approved": true}`))
	if err != nil || !res.Delivered {
		t.Fatalf("first Signal = %+v, %v", res, err)
	}
	// The same ID again: accepted, delivered no second time.
	res, err = e.Signal(ctx, r.ID, "approval", "ev-1", []byte(`{"approved": "again"}`))
	if err != nil || res.Delivered {
		t.Fatalf("second Signal with the same ID = %+v, %v; want not delivered, no error", res, err)
	}
	got := wait(t, e, r.ID)
	if got.Status != statestore.StatusSucceeded || string(got.Output) != `{"approved":true}` {
		t.Fatalf("run %s %s, want the first event's payload", got.Status, got.Output)
	}
	// Another ID for the same name is refused; the run ended anyway.
	if _, err := e.Signal(ctx, r.ID, "approval", "ev-2", nil); !errors.Is(err, workflow.ErrConflict) {
		t.Fatalf("another event of the same name: %v, want ErrConflict", err)
	}
	if _, err := e.Signal(ctx, r.ID, "other", "ev-3", nil); !errors.Is(err, workflow.ErrFinished) {
		t.Fatalf("event to a finished run: %v, want ErrFinished", err)
	}
	if evs := workflow.Events(got); len(evs) != 1 || evs[0].ID != "ev-1" {
		t.Fatalf("events kept: %+v", evs)
	}
}

func TestSignal_BeforeTheWaitIsKept(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	e := bareEngine(t, store, nil, `
name: later
nodes:
  nap: {sleep: 400ms}
  approval: {wait_for: approval, needs: [nap]}
`)
	defer stop(t, e)
	r, err := e.Submit(ctx, "later", nil, "l-1")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.Signal(ctx, r.ID, "approval", "early", []byte(`"yes"`)); err != nil || !res.Delivered {
		t.Fatalf("Signal = %+v, %v", res, err)
	}
	if ni := nodeInfo(t, e, r.ID, "approval"); ni.Status != workflow.NodePending || ni.Awaits != "approval" {
		t.Fatalf("approval before its need finished: %+v", ni)
	}
	if got := wait(t, e, r.ID); got.Status != statestore.StatusSucceeded || string(got.Output) != `"yes"` {
		t.Fatalf("run %s %s, want the early event's payload", got.Status, got.Output)
	}
}

func TestSignal_TimeoutTakesDefault(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	e := bareEngine(t, store, nil, approvalFlow, `
name: strict
nodes:
  approval: {wait_for: approval, timeout: 200ms}
`)
	defer stop(t, e)
	r, err := e.Submit(ctx, "approve", nil, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	got := wait(t, e, r.ID)
	if got.Status != statestore.StatusSucceeded || string(got.Output) != `{"approved": false}` {
		t.Fatalf("run %s %s, want the default", got.Status, got.Output)
	}
	if d := got.FinishedAt.Sub(got.CreatedAt); d < time.Second {
		t.Fatalf("timed out after %s, want at least the 1s timeout", d)
	}
	// Without a default, a timeout fails the node with a dead letter.
	r, err = e.Submit(ctx, "strict", nil, "t-2")
	if err != nil {
		t.Fatal(err)
	}
	got = wait(t, e, r.ID)
	if got.Status != statestore.StatusFailed || !strings.Contains(got.Error, `no event "approval" within 200ms`) {
		t.Fatalf("run %s %q, want failed for want of the event", got.Status, got.Error)
	}
}

func TestSignal_InvalidArguments(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	e := bareEngine(t, store, nil, approvalFlow)
	defer stop(t, e)
	if _, err := e.Submit(ctx, "approve", nil, "i-1"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, run, event string
		data             string
		want             error
	}{
		{"bad name", "i-1", "no spaces", `1`, statestore.ErrInvalid},
		{"not JSON", "i-1", "approval", `{nope`, statestore.ErrInvalid},
		{"no run", "nope", "approval", `1`, workflow.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.Signal(ctx, tt.run, tt.event, "", []byte(tt.data)); !errors.Is(err, tt.want) {
				t.Fatalf("Signal: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParse_TimerAndEventNodes(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{"sleep and plugin", "name: x\nnodes:\n  a: {sleep: 1h, plugin: p}\n", `flow.yaml:3: node "a": a sleep node runs no plugin`},
		{"bad duration", "name: x\nnodes:\n  a:\n    sleep: soon\n", `flow.yaml:4: node "a": sleep: "soon" is not a positive duration`},
		{"bad until", "name: x\nnodes:\n  a: {until: tomorrow}\n", `flow.yaml:3: node "a": until: "tomorrow" is not an RFC 3339 time`},
		{"timeout alone", "name: x\nnodes:\n  a:\n    plugin: p\n    timeout: 1h\n", `flow.yaml:5: node "a": timeout and default go with wait_for`},
		{"two kinds", "name: x\nnodes:\n  a: {sleep: 1h, wait_for: ok}\n", `flow.yaml:3: node "a": set one of sleep, until and wait_for`},
		{"bad event", "name: x\nnodes:\n  a: {wait_for: 'a b'}\n", `flow.yaml:3: node "a": wait_for: event name "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := workflow.Parse("flow.yaml", []byte(tt.give), workflow.ParseOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error %v, want %q", err, tt.want)
			}
		})
	}
	w, err := workflow.Parse("flow.yaml", []byte("name: x\nnodes:\n  a: {wait_for: ok, timeout: 2h, default: {approved: false}}\n"), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wt := w.Nodes["a"].Wait
	if wt == nil || wt.Event != "ok" || wt.Timeout != 2*time.Hour || !wt.HasDefault || !json.Valid([]byte(wt.Default)) {
		t.Fatalf("wait %+v", wt)
	}
}
