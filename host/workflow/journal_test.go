package workflow_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// echoPlugins answers every call with its input.
type echoPlugins struct{}

func (echoPlugins) Invoke(_ context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	return host.InvokeResult{Output: req.Input, Attempts: 1}, nil
}

func (echoPlugins) Plugin(string) (host.PluginInfo, bool) {
	return host.PluginInfo{Version: "v1"}, true
}

// readCounter counts the journal entries the engine reads, and hands
// every dependent to the queue instead of to the worker that completed
// its need (as when another host claims it), so that no node starts from
// what its worker remembers.
type readCounter struct {
	statestore.Store
	entries atomic.Int64
}

func (s *readCounter) NodeResults(ctx context.Context, runID string) (map[string]statestore.NodeResult, error) {
	res, err := s.Store.NodeResults(ctx, runID)
	s.entries.Add(int64(len(res)))
	return res, err
}

func (s *readCounter) NodeResultsOf(ctx context.Context, runID string, nodes []string) (map[string]statestore.NodeResult, error) {
	res, err := s.Store.NodeResultsOf(ctx, runID, nodes)
	s.entries.Add(int64(max(len(nodes), 1)))
	return res, err
}

func (s *readCounter) CompleteTask(ctx context.Context, c statestore.Completion) (statestore.Task, bool, error) {
	c.Keep = false
	return s.Store.CompleteTask(ctx, c)
}

// A node reads its needs' journal entries (and its own), not the run's
// whole journal: a run of n written-out nodes reads O(n) entries, not
// O(n²).
func TestEngine_NodeReadsItsNeedsOnly(t *testing.T) {
	const chains, length = 4, 100
	var b strings.Builder
	fmt.Fprintf(&b, "name: flat\noutput: c0_%d\nnodes:\n", length-1)
	for c := range chains {
		for i := range length {
			fmt.Fprintf(&b, "  c%d_%d: {plugin: echo", c, i)
			if i > 0 {
				fmt.Fprintf(&b, ", needs: [c%d_%d]", c, i-1)
			}
			b.WriteString("}\n")
		}
	}
	store := &readCounter{Store: memstore.New()}
	e := pluginEngine(t, store, echoPlugins{}, b.String())
	defer stop(t, e)
	r, err := e.Submit(context.Background(), "flat", []byte(`"x"`), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(t, e, r.ID); got.Status != statestore.StatusSucceeded || string(got.Output) != `"x"` {
		t.Fatalf("run %s %q (%s)", got.Status, got.Output, got.Error)
	}
	n := int64(chains * length)
	if got := store.entries.Load(); got > 4*n {
		t.Fatalf("a run of %d nodes read %d journal entries, want at most %d (each node its need and itself)", n, got, 4*n)
	}
}

// pluginEngine is bareEngine with inv calling the plugins.
func pluginEngine(t *testing.T, store statestore.Store, inv workflow.Invoker, srcs ...string) *workflow.Engine {
	t.Helper()
	e, err := workflow.New(store, inv, workflow.WithWorkers(4), workflow.WithPollInterval(5*time.Millisecond))
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
