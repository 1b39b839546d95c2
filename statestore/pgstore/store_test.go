package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.M(m)) }

func open(t testing.TB, url string, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) statestore.Store { return open(t, pgtest.URL(t)) })
}

func TestStore_ConformanceNoGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	storetest.Run(t, func(t *testing.T) statestore.Store { return open(t, pgtest.URL(t), pgstore.WithMaxBatch(1)) })
}

// Retention removes finished runs older than it with everything recorded
// under them, keeps runs with dead letters and unfinished runs, and keeps
// plugin state.
func TestStore_Retention(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	now := time.Now()
	clock := func() time.Time { return now }
	s, err := pgstore.Open(ctx, url, pgstore.WithRetention(time.Hour), pgstore.WithGCInterval(-1), pgstore.WithClock(func() time.Time { return clock() }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"old", "old-dl", "unfinished", "new"} {
		if _, _, err := s.SubmitRun(ctx, statestore.Run{ID: id, Workflow: "wf"}, []statestore.ReadyNode{{Node: "a", Block: 1}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveCheckpoint(ctx, id, "a", []byte("cp")); err != nil {
			t.Fatal(err)
		}
		if err := s.StartAttempt(ctx, statestore.NodeAttempt{RunID: id, Node: "a", Attempt: 2}); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: id, Node: "a", Output: []byte("out")},
			statestore.NodeAttempt{RunID: id, Node: "b", Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.StateSet(ctx, "p", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	finish := func(id string) {
		if _, err := s.UpdateRun(ctx, id, func(r *statestore.Run) error { r.Status = statestore.StatusSucceeded; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	finish("old")
	finish("old-dl")
	if _, err := s.PutDeadLetter(ctx, statestore.DeadLetter{RunID: "old-dl", Node: "a", Workflow: "wf"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	finish("new")
	n, err := s.CollectGarbage(ctx)
	if err != nil || n != 1 {
		t.Fatalf("CollectGarbage = %d, %v; want the one old run without dead letters", n, err)
	}
	if _, err := s.GetRun(ctx, "old"); !errors.Is(err, statestore.ErrNotFound) {
		t.Errorf("old run: %v, want removed", err)
	}
	if cps, _ := s.ListCheckpoints(ctx, "old", ""); len(cps) != 0 {
		t.Errorf("old run's checkpoints kept: %v", cps)
	}
	// Its journal and attempts went with it: the same ID submitted again
	// starts clean.
	if _, created, err := s.SubmitRun(ctx, statestore.Run{ID: "old", Workflow: "wf"}, []statestore.ReadyNode{{Node: "a", Block: 1}}); err != nil || !created {
		t.Fatalf("SubmitRun(old) again = %v, %v", created, err)
	}
	if res, err := s.NodeResults(ctx, "old"); err != nil || len(res) != 0 {
		t.Errorf("old run's journal kept: %v, %v", res, err)
	}
	if a, err := s.LastAttempt(ctx, "old", "b"); err != nil || a != 0 {
		t.Errorf("old run's attempt of b kept: %d, %v", a, err)
	}
	if a, err := s.LastAttempt(ctx, "old", "a"); err != nil || a != 1 {
		t.Errorf("old run's attempt of a: %d, %v; want 1, from the new submit", a, err)
	}
	for _, id := range []string{"old-dl", "unfinished", "new"} {
		if res, err := s.NodeResults(ctx, id); err != nil || string(res["a"].Output) != "out" {
			t.Errorf("run %s's journal: %v, %v; want kept", id, res, err)
		}
	}
	for _, id := range []string{"old-dl", "unfinished", "new"} {
		if _, err := s.GetRun(ctx, id); err != nil {
			t.Errorf("run %s: %v, want kept", id, err)
		}
	}
	if v, err := s.StateGet(ctx, "p", "k"); err != nil || string(v) != "v" {
		t.Errorf("plugin state: %q %v, want kept", v, err)
	}
}

// A submit over attempt rows left under its run's ID (written without a
// run, as a host of an earlier schema version could) starts the run at
// attempt one.
func TestStore_SubmitOverLeftoverAttempt(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	s := open(t, url)
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, "INSERT INTO node_attempts (run_id, node, attempt, started_ns) VALUES ('ghost', 'a', 7, 0)"); err != nil {
		t.Fatal(err)
	}
	submitRoots(t, s, "ghost", "a")
	if a, err := s.LastAttempt(ctx, "ghost", "a"); err != nil || a != 1 {
		t.Fatalf("LastAttempt = %d, %v; want 1", a, err)
	}
	tasks, err := s.ClaimRunTasks(ctx, "h1", "ghost", 10, time.Minute)
	if err != nil || len(tasks) != 1 || tasks[0].First != 1 {
		t.Fatalf("ClaimRunTasks = %+v, %v; want a at attempt 1", tasks, err)
	}
}

// Deleting a run that a writer holds locked waits for the writer, then
// removes what it wrote too: the rows runs_deleted removes are read after
// the run's lock was won, not when the DELETE began.
func TestStore_RunDeleteWaitsForWriter(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	s := open(t, url)
	submitRoots(t, s, "w", "a")
	writer := connect(t, url)
	deleter := connect(t, url)

	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// As a completion does: the run's row lock, then its rows.
	if _, err := tx.Exec(ctx, "SELECT 1 FROM runs WHERE id = 'w' FOR NO KEY UPDATE"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO node_results (run_id, node, body) VALUES ('w', 'late', '{}')",
		"INSERT INTO node_attempts (run_id, node, attempt, started_ns) VALUES ('w', 'late', 1, 0)",
		"INSERT INTO tasks (run_id, node, first_attempt) VALUES ('w', 'late', 1)",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	deleted := make(chan error, 1)
	go func() {
		_, err := deleter.Exec(ctx, "DELETE FROM runs WHERE id = 'w'")
		deleted <- err
	}()
	select {
	case err := <-deleted:
		t.Fatalf("DELETE did not wait for the writer's lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	var n int
	if err := deleter.QueryRow(ctx, `SELECT (SELECT count(*) FROM node_results WHERE run_id = 'w')
	+ (SELECT count(*) FROM node_attempts WHERE run_id = 'w') + (SELECT count(*) FROM tasks WHERE run_id = 'w')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows of the deleted run left", n)
	}
}
