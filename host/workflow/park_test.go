package workflow_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// blockingPlugins holds every call until release is closed.
type blockingPlugins struct{ started, release chan struct{} }

func (b blockingPlugins) Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return host.InvokeResult{}, ctx.Err()
	}
	return host.InvokeResult{Output: req.Input, Attempts: 1}, nil
}

func (blockingPlugins) Plugin(string) (host.PluginInfo, bool) {
	return host.PluginInfo{Version: "v1"}, true
}

// A timer wakes at its due time even when every worker is busy: it is
// claimed ahead of its due time and woken without a worker.
func TestTimer_WakesWhileWorkersBusy(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	inv := blockingPlugins{started: make(chan struct{}, 1), release: make(chan struct{})}
	e, err := workflow.New(store, inv, workflow.WithWorkers(1), workflow.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{
		"name: nap\nnodes:\n  nap: {sleep: 1500ms}\n",
		"name: busy\nnodes:\n  work: {plugin: slow}\n",
	} {
		w, err := workflow.Parse("flow.yaml", []byte(src), workflow.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.AddWorkflow(w)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer stop(t, e)
	defer close(inv.release)
	nap, err := e.Submit(ctx, "nap", []byte(`"x"`), "")
	if err != nil {
		t.Fatal(err)
	}
	due := nap.CreatedAt.Add(1500 * time.Millisecond)
	// Claimed when submitted, put to sleep, and claimed again ahead of
	// its due time, by the only worker.
	waitFor(t, "the timer to be claimed again", func() bool { return e.Stats().Claims >= 2 })
	if now := time.Now(); !now.Before(due) {
		t.Fatalf("timer claimed again %s after its due time, want ahead of it", now.Sub(due))
	}
	// The only worker is taken by a node that runs until the test ends:
	// the timer wakes without it.
	if _, err := e.Submit(ctx, "busy", nil, ""); err != nil {
		t.Fatal(err)
	}
	<-inv.started
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := e.Wait(wctx, nap.ID)
	if err != nil || got.Status != statestore.StatusSucceeded {
		t.Fatalf("timer run %s, %v; want succeeded while the worker is busy", got.Status, err)
	}
	res, err := store.NodeResults(ctx, nap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if at := res["nap"].FinishedAt; at.Before(due) || at.After(due.Add(500*time.Millisecond)) {
		t.Fatalf("timer woke at %v, due at %v: want within 500ms after", at, due)
	}
}
