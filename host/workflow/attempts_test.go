package workflow_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// countingStore counts attempt reservations that cost a write of their own.
type countingStore struct {
	statestore.Store
	starts atomic.Int64 // StartAttempt calls
}

func (s *countingStore) StartAttempt(ctx context.Context, a statestore.NodeAttempt) error {
	s.starts.Add(1)
	return s.Store.StartAttempt(ctx, a)
}

// A node's attempt block is reserved in the write that queues it: the
// run's submission for a root, its last need's completion for the others.
// No reservation costs a write of its own, and the numbers are the ones a
// separate reservation would have given.
func TestEngine_ReservesAttemptsWithTheCompletion(t *testing.T) {
	f := newFixture(t)
	cs := &countingStore{Store: memstore.New()}
	f.store = cs
	e := f.engine(t, diamond)
	ctx := context.Background()
	r, err := e.Submit(ctx, "diamond", []byte("hello"), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	if s := cs.starts.Load(); s != 0 {
		t.Errorf("StartAttempt called %d times, want every block reserved with the write that queued its node", s)
	}
	for _, n := range []string{"a", "b", "c", "d"} {
		if last, _ := cs.LastAttempt(ctx, r.ID, n); last != 4 {
			t.Errorf("node %s: last recorded attempt %d, want its block of 4", n, last)
		}
	}
	if got := f.execs(t, r.ID, "c"); strings.Join(got, ",") != "1,2,3" {
		t.Errorf("flaky node attempts %v, want 1,2,3", got)
	}
}

// In a resumed run, the block reserved when a node is queued starts above
// the attempts an earlier process recorded for it.
func TestEngine_ResumedRunReservesAboveEarlierAttempts(t *testing.T) {
	f := newFixture(t)
	cs := &countingStore{Store: memstore.New()}
	f.store = cs
	ctx := context.Background()
	// As a crashed process leaves it: the run exists, b had attempts 1-7
	// reserved, nothing is journaled.
	if _, _, err := cs.CreateRun(ctx, statestore.Run{ID: "run-2", Workflow: "diamond", Input: []byte("hello"), Status: statestore.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	if err := cs.StartAttempt(ctx, statestore.NodeAttempt{RunID: "run-2", Node: "b", Attempt: 7}); err != nil {
		t.Fatal(err)
	}
	cs.starts.Store(0)
	e := f.engine(t, diamond)
	if r := wait(t, e, "run-2"); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	if got := f.execs(t, "run-2", "b"); strings.Join(got, ",") != "8" {
		t.Errorf("b ran as attempts %v, want 8", got)
	}
	if last, _ := cs.LastAttempt(ctx, "run-2", "b"); last != 11 {
		t.Errorf("b: last recorded attempt %d, want 7+4", last)
	}
	if got := f.execs(t, "run-2", "c"); strings.Join(got, ",") != "1,2,3" {
		t.Errorf("c ran as attempts %v, want 1,2,3", got)
	}
	if s := cs.starts.Load(); s != 0 {
		t.Errorf("StartAttempt called %d times, want 0", s)
	}
}
