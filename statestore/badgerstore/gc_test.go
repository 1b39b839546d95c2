package badgerstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// runWithData creates a run with a journal entry, an attempt and a
// checkpoint, finishing it when status is final.
func runWithData(t *testing.T, s statestore.Store, id string, status statestore.RunStatus) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := s.CreateRun(ctx, statestore.Run{ID: id, Workflow: "wf"}); err != nil {
		t.Fatal(err)
	}
	if err := s.StartAttempt(ctx, statestore.NodeAttempt{RunID: id, Node: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: id, Node: "a", Output: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCheckpoint(ctx, id, "b", []byte("cp")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRun(ctx, id, func(r *statestore.Run) error { r.Status = status; return nil }); err != nil {
		t.Fatal(err)
	}
}

func gone(t *testing.T, s statestore.Store, id string) bool {
	t.Helper()
	ctx := context.Background()
	_, err := s.GetRun(ctx, id)
	if err == nil {
		return false
	}
	if !errors.Is(err, statestore.ErrNotFound) {
		t.Fatal(err)
	}
	res, _ := s.NodeResults(ctx, id)
	cps, _ := s.ListCheckpoints(ctx, id, "")
	last, _ := s.LastAttempt(ctx, id, "a")
	if len(res) != 0 || len(cps) != 0 || last != 0 {
		t.Fatalf("run %s removed but left %d results, %d checkpoints, attempt %d", id, len(res), len(cps), last)
	}
	return true
}

func TestStore_CollectGarbage(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), badgerstore.WithClock(clock.Now), badgerstore.WithRetention(time.Hour), badgerstore.WithGCInterval(-1))

	runWithData(t, s, "old-done", statestore.StatusSucceeded)
	runWithData(t, s, "old-failed-dlq", statestore.StatusFailed)
	runWithData(t, s, "running", statestore.StatusRunning)
	dl, err := s.PutDeadLetter(ctx, statestore.DeadLetter{RunID: "old-failed-dlq", Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StateSet(ctx, "p", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(50 * time.Minute)
	runWithData(t, s, "recent-done", statestore.StatusCancelled)
	clock.Advance(20 * time.Minute) // old-* finished 70 min ago, recent-done 20 min ago

	n, err := s.CollectGarbage(ctx)
	if err != nil || n != 1 {
		t.Fatalf("CollectGarbage = %d, %v; want 1 run removed", n, err)
	}
	if !gone(t, s, "old-done") {
		t.Fatal("expired run old-done kept")
	}
	for _, id := range []string{"old-failed-dlq", "running", "recent-done"} {
		if gone(t, s, id) {
			t.Fatalf("run %s removed", id)
		}
	}
	runs, _, err := s.ListRuns(ctx, statestore.RunFilter{})
	if err != nil || len(runs) != 3 {
		t.Fatalf("ListRuns after GC: %d runs, %v", len(runs), err)
	}
	if v, err := s.StateGet(ctx, "p", "k"); err != nil || string(v) != "v" {
		t.Fatalf("plugin state removed by retention: %q, %v", v, err)
	}

	// Once its dead letter is gone, the failed run expires too; a running run never does.
	if err := s.DeleteDeadLetter(ctx, dl.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(24 * time.Hour)
	if n, err := s.CollectGarbage(ctx); err != nil || n != 2 {
		t.Fatalf("second CollectGarbage = %d, %v; want 2", n, err)
	}
	if !gone(t, s, "old-failed-dlq") || !gone(t, s, "recent-done") || gone(t, s, "running") {
		t.Fatal("wrong runs removed by the second GC")
	}
	if un, _ := s.UnfinishedRuns(ctx); len(un) != 1 {
		t.Fatalf("UnfinishedRuns after GC = %d runs", len(un))
	}
	for _, st := range []statestore.RunStatus{statestore.StatusSucceeded, statestore.StatusFailed, statestore.StatusCancelled} {
		if runs, _, err := s.ListRuns(ctx, statestore.RunFilter{Status: st}); err != nil || len(runs) != 0 {
			t.Fatalf("ListRuns(%s) after GC = %d runs, %v; want none", st, len(runs), err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := badgerstore.Check(s.Dir()); err != nil || !rep.OK() {
		t.Fatalf("Check after GC = %+v, %v", rep, err)
	}
}

func TestStore_BackgroundGC(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	s := open(t, t.TempDir(), badgerstore.WithClock(clock.Now), badgerstore.WithRetention(time.Minute), badgerstore.WithGCInterval(5*time.Millisecond))
	runWithData(t, s, "done", statestore.StatusSucceeded)
	clock.Advance(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for !gone(t, s, "done") {
		if time.Now().After(deadline) {
			t.Fatal("background GC did not remove the expired run within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
