package workflow_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// slowAnswerStore commits a completion at once but answers it only after
// a while, as a database does when its flush is slow; a caller whose
// context ends meanwhile gets the context's error, as pgx gives, although
// the completion is committed.
type slowAnswerStore struct {
	statestore.Store
	delay     time.Duration
	abandoned atomic.Int64
}

func (s *slowAnswerStore) CompleteTask(ctx context.Context, c statestore.Completion) (statestore.Task, bool, error) {
	next, ok, err := s.Store.CompleteTask(context.Background(), c)
	select {
	case <-time.After(s.delay):
		return next, ok, err
	case <-ctx.Done():
		s.abandoned.Add(1)
		return statestore.Task{}, false, ctx.Err()
	}
}

// A heartbeat that runs while a completion commits finds the node's task
// gone (the completion removed it) and reports the claim lost. That must
// not abandon the completion: its commit queued the dependents and, for
// the last node, is the run's end, which nobody else records.
func TestCluster_HeartbeatDuringCompletion(t *testing.T) {
	f := newFixture(t)
	store := &slowAnswerStore{Store: memstore.New(), delay: 1200 * time.Millisecond}
	f.store = store
	// Heartbeats every 500 ms: two or three run while the answer waits.
	e, err := workflow.New(store, f.h, workflow.WithLease(1500*time.Millisecond), workflow.WithWorkers(2))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("one.yaml", []byte("name: one\nnodes:\n  a: {plugin: nodes, function: work}\n"), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, e) })
	r, err := e.Submit(context.Background(), "one", []byte("x"), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err = e.Wait(ctx, r.ID)
	if err != nil {
		t.Fatalf("the run did not end (%v); completions abandoned: %d", err, store.abandoned.Load())
	}
	if r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	if n := store.abandoned.Load(); n != 0 {
		t.Errorf("%d completions abandoned after their commit", n)
	}
	st := e.Stats()
	if st.Heartbeats == 0 {
		t.Error("no heartbeat ran during the completion: the test did not test anything")
	}
	if st.Lost != 0 {
		t.Errorf("%d claims counted lost, want 0: the completion held its claim", st.Lost)
	}
}
