package workflow_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

const chainFlow = `
name: chain
nodes:
  a: {plugin: nodes, function: work}
  b: {plugin: nodes, function: work, needs: [a]}
  c: {plugin: nodes, function: work, needs: [b]}
`

// answerStore commits every completion and then loses its answer, the
// way a dropped connection or a timeout loses it.
type answerStore struct {
	statestore.Store
	lost atomic.Int64
	// slow, when set, answers a committed completion only after the
	// caller's context ends or a second passes, and reports every claim
	// lost meanwhile, as a store whose task is gone once completed does.
	slow      bool
	committed atomic.Bool
}

func (s *answerStore) CompleteTask(ctx context.Context, c statestore.Completion) (statestore.Task, bool, error) {
	t, ok, err := s.Store.CompleteTask(ctx, c)
	if err != nil {
		return t, ok, err
	}
	s.lost.Add(1)
	if !s.slow {
		return statestore.Task{}, false, fmt.Errorf("%w: connection reset after commit", statestore.ErrUnavailable)
	}
	s.committed.Store(true)
	defer s.committed.Store(false)
	select {
	case <-ctx.Done():
		return statestore.Task{}, false, ctx.Err()
	case <-time.After(time.Second):
		return t, ok, nil
	}
}

func (s *answerStore) ExtendLeases(ctx context.Context, owner string, f []statestore.Fence, d time.Duration) ([]statestore.Fence, error) {
	if s.committed.Load() {
		return f, nil
	}
	return s.Store.ExtendLeases(ctx, owner, f, d)
}

// A completion that committed is followed up even when its answer is
// lost or its node's context ends before the answer: the dependents run,
// the run ends, and no node runs twice.
func TestEngine_CommittedCompletionIsFollowedUp(t *testing.T) {
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("slow=%v", slow), func(t *testing.T) {
			f := newFixture(t)
			view := &answerStore{Store: f.store, slow: slow}
			e := f.clusterEngine(t, "host-a", view, f.observe, chainFlow)
			r, err := e.Submit(context.Background(), "chain", []byte(`"x"`), "run-lost-answer")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := e.Wait(ctx, r.ID)
			if err != nil {
				t.Fatalf("run never ended after %d completions whose answer was lost: %v", view.lost.Load(), err)
			}
			if got.Status != statestore.StatusSucceeded {
				t.Fatalf("run %s: %s", got.Status, got.Error)
			}
			for _, node := range []string{"a", "b", "c"} {
				if runs := f.execs(t, r.ID, node); len(runs) != 1 {
					t.Errorf("node %s ran %d times (%v), want once", node, len(runs), runs)
				}
			}
		})
	}
}
