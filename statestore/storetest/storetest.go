package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Run runs the conformance suite against the stores newStore returns.
func Run(t *testing.T, newStore func(t *testing.T) statestore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s statestore.Store)
	}{
		{"CreateRun", testCreateRun},
		{"CreateRun_Conflict", testCreateRunConflict},
		{"CreateRun_Hammer", testCreateRunHammer},
		{"GetRun_NotFound", testGetRunNotFound},
		{"UpdateRun", testUpdateRun},
		{"UpdateRun_Hammer", testUpdateRunHammer},
		{"ListRuns_Paging", testListRunsPaging},
		{"ListRuns_Growth", testListRunsGrowth},
		{"UnfinishedRuns", testUnfinishedRuns},
		{"CompleteNode", testCompleteNode},
		{"CompleteNode_Hammer", testCompleteNodeHammer},
		{"NodeResultsOf", testNodeResultsOf},
		{"StartAttempt", testStartAttempt},
		{"CompleteNode_WithAttempts", testCompleteNodeWithAttempts},
		{"Checkpoints", testCheckpoints},
		{"Checkpoints_Hammer", testCheckpointsHammer},
		{"PluginState", testPluginState},
		{"StateUsage", testStateUsage},
		{"DeadLetters", testDeadLetters},
		{"ListDeadLetters_Growth", testListDeadLettersGrowth},
		{"Copies", testCopies},
		{"InvalidArguments", testInvalid},
		{"Closed", testClosed},
		{"Close_Hammer", testCloseHammer},
		{"CancelledContext", testCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tt.fn(t, s)
		})
	}
}

func mustCreate(t *testing.T, s statestore.Store, id string) statestore.Run {
	t.Helper()
	r, created, err := s.CreateRun(context.Background(), statestore.Run{ID: id, Workflow: "wf", Input: []byte("in-" + id)})
	if err != nil || !created {
		t.Fatalf("CreateRun(%q) = created %v, %v; want created, nil", id, created, err)
	}
	return r
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func testCreateRun(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	in := statestore.Run{ID: "r1", Workflow: "wf", Input: []byte("hello"), Attrs: map[string]string{"by": "test"}}
	r, created, err := s.CreateRun(ctx, in)
	if err != nil || !created {
		t.Fatalf("first CreateRun = %v, %v", created, err)
	}
	if r.Status != statestore.StatusPending || r.InputHash != statestore.HashInput([]byte("hello")) || r.CreatedAt.IsZero() || r.UpdatedAt.IsZero() {
		t.Fatalf("CreateRun did not fill defaults: %+v", r)
	}
	got, err := s.GetRun(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Input) != "hello" || got.Workflow != "wf" || got.Attrs["by"] != "test" || !got.CreatedAt.Equal(r.CreatedAt) {
		t.Fatalf("GetRun = %+v, want %+v", got, r)
	}
	// Same ID and input again: the existing run, not created.
	if _, err := s.UpdateRun(ctx, "r1", func(r *statestore.Run) error { r.Status = statestore.StatusRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	again, created, err := s.CreateRun(ctx, in)
	if err != nil || created {
		t.Fatalf("repeated CreateRun = created %v, %v; want false, nil", created, err)
	}
	if again.Status != statestore.StatusRunning || !again.CreatedAt.Equal(r.CreatedAt) {
		t.Fatalf("repeated CreateRun returned %+v, want the stored running run", again)
	}
}

func testCreateRunConflict(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	existing, created, err := s.CreateRun(ctx, statestore.Run{ID: "r1", Workflow: "wf", Input: []byte("other")})
	wantErr(t, "CreateRun with another input", err, statestore.ErrConflict)
	if created || string(existing.Input) != "in-r1" {
		t.Fatalf("conflicting CreateRun returned created=%v run %+v, want the existing run", created, existing)
	}
	_, _, err = s.CreateRun(ctx, statestore.Run{ID: "r1", Workflow: "other", Input: []byte("in-r1")})
	wantErr(t, "CreateRun with another workflow", err, statestore.ErrConflict)
	got, err := s.GetRun(ctx, "r1")
	if err != nil || string(got.Input) != "in-r1" {
		t.Fatalf("run changed by a conflicting CreateRun: %+v, %v", got, err)
	}
}

func testCreateRunHammer(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdCount, conflicts := 0, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := "same"
			if i%2 == 1 {
				in = "other"
			}
			_, created, err := s.CreateRun(ctx, statestore.Run{ID: "race", Workflow: "wf", Input: []byte(in)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case created:
				createdCount++
			case errors.Is(err, statestore.ErrConflict):
				conflicts++
			case err != nil:
				t.Errorf("CreateRun: %v", err)
			}
		}()
	}
	wg.Wait()
	if createdCount != 1 || conflicts != n/2 {
		t.Fatalf("created %d times with %d conflicts, want 1 and %d", createdCount, conflicts, n/2)
	}
}

func testGetRunNotFound(t *testing.T, s statestore.Store) {
	_, err := s.GetRun(context.Background(), "nope")
	wantErr(t, "GetRun", err, statestore.ErrNotFound)
	_, err = s.UpdateRun(context.Background(), "nope", func(*statestore.Run) error { return nil })
	wantErr(t, "UpdateRun", err, statestore.ErrNotFound)
}

func testUpdateRun(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	orig := mustCreate(t, s, "r1")
	upd, err := s.UpdateRun(ctx, "r1", func(r *statestore.Run) error {
		r.Status = statestore.StatusSucceeded
		r.Output = []byte("out")
		r.Versions = map[string]string{"a": "v1"}
		r.Progress = map[string]statestore.Progress{"a": {Done: 3, Total: 4, Message: "m"}}
		r.Input = []byte("ignored")
		r.ID = "ignored"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if upd.ID != "r1" || string(upd.Input) != "in-r1" || upd.FinishedAt.IsZero() || upd.UpdatedAt.Before(orig.UpdatedAt) {
		t.Fatalf("UpdateRun returned %+v", upd)
	}
	got, err := s.GetRun(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != statestore.StatusSucceeded || string(got.Output) != "out" || got.Versions["a"] != "v1" ||
		got.Progress["a"] != (statestore.Progress{Done: 3, Total: 4, Message: "m"}) || string(got.Input) != "in-r1" || got.FinishedAt.IsZero() {
		t.Fatalf("stored run after update = %+v", got)
	}
	boom := errors.New("boom")
	_, err = s.UpdateRun(ctx, "r1", func(r *statestore.Run) error { r.Output = []byte("x"); return boom })
	wantErr(t, "UpdateRun with failing fn", err, boom)
	if got, _ := s.GetRun(ctx, "r1"); string(got.Output) != "out" {
		t.Fatalf("failed update was written: output %q", got.Output)
	}
	_, err = s.UpdateRun(ctx, "r1", func(r *statestore.Run) error { r.Status = "bogus"; return nil })
	wantErr(t, "UpdateRun to an unknown status", err, statestore.ErrInvalid)
	// Back to running (a replay): FinishedAt is cleared.
	upd, err = s.UpdateRun(ctx, "r1", func(r *statestore.Run) error { r.Status = statestore.StatusRunning; return nil })
	if err != nil || !upd.FinishedAt.IsZero() {
		t.Fatalf("UpdateRun back to running = %+v, %v", upd, err)
	}
}

func testUpdateRunHammer(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := s.UpdateRun(ctx, "r1", func(r *statestore.Run) error {
					n, _ := strconv.Atoi(r.Attrs["n"])
					if r.Attrs == nil {
						r.Attrs = map[string]string{}
					}
					r.Attrs["n"] = strconv.Itoa(n + 1)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.GetRun(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Attrs["n"] != strconv.Itoa(workers*each) {
		t.Fatalf("after %d concurrent increments n = %s: lost updates", workers*each, got.Attrs["n"])
	}
}

func testListRunsPaging(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 25
	for i := range n {
		st := statestore.StatusPending
		if i%5 == 0 {
			st = statestore.StatusFailed
		}
		// IDs in reverse order of creation, so ordering by ID would be wrong.
		_, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("run-%02d", n-i), Workflow: "wf", Status: st, CreatedAt: base.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
	}
	collect := func(f statestore.RunFilter) ([]string, []int) {
		var ids []string
		var pages []int
		for {
			runs, next, err := s.ListRuns(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, len(runs))
			for _, r := range runs {
				ids = append(ids, r.ID)
			}
			if next == "" {
				return ids, pages
			}
			if len(pages) > n+1 {
				t.Fatal("ListRuns does not terminate")
			}
			f.After = next
		}
	}
	ids, pages := collect(statestore.RunFilter{Limit: 10})
	if fmt.Sprint(pages) != "[10 10 5]" || len(ids) != n || ids[0] != "run-25" || ids[n-1] != "run-01" {
		t.Fatalf("oldest first: pages %v ids %v", pages, ids)
	}
	ids, _ = collect(statestore.RunFilter{Limit: 7, Newest: true})
	if len(ids) != n || ids[0] != "run-01" || ids[n-1] != "run-25" {
		t.Fatalf("newest first: ids %v", ids)
	}
	ids, _ = collect(statestore.RunFilter{Limit: 2, Status: statestore.StatusFailed})
	if fmt.Sprint(ids) != "[run-25 run-20 run-15 run-10 run-05]" {
		t.Fatalf("failed runs: %v", ids)
	}
	all, next, err := s.ListRuns(ctx, statestore.RunFilter{})
	if err != nil || len(all) != n || next != "" {
		t.Fatalf("default limit: %d runs, next %q, %v", len(all), next, err)
	}
	_, _, err = s.ListRuns(ctx, statestore.RunFilter{After: "garbage"})
	wantErr(t, "ListRuns with a bad cursor", err, statestore.ErrInvalid)
	_, _, err = s.ListRuns(ctx, statestore.RunFilter{Limit: -1})
	wantErr(t, "ListRuns with a negative limit", err, statestore.ErrInvalid)
}

func testUnfinishedRuns(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	for i := range 10 {
		mustCreate(t, s, fmt.Sprintf("r%d", i))
	}
	for i := range 10 {
		st := []statestore.RunStatus{statestore.StatusPending, statestore.StatusRunning, statestore.StatusSucceeded, statestore.StatusFailed, statestore.StatusCancelled}[i%5]
		if _, err := s.UpdateRun(ctx, fmt.Sprintf("r%d", i), func(r *statestore.Run) error { r.Status = st; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	ids := func() map[string]bool {
		runs, err := s.UnfinishedRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, r := range runs {
			if r.Status.Finished() {
				t.Fatalf("UnfinishedRuns returned %s in state %s", r.ID, r.Status)
			}
			m[r.ID] = true
		}
		return m
	}
	if got := ids(); len(got) != 4 || !got["r0"] || !got["r1"] || !got["r5"] || !got["r6"] {
		t.Fatalf("UnfinishedRuns = %v, want r0 r1 r5 r6", got)
	}
	if _, err := s.UpdateRun(ctx, "r3", func(r *statestore.Run) error { r.Status = statestore.StatusRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRun(ctx, "r0", func(r *statestore.Run) error { r.Status = statestore.StatusSucceeded; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := ids(); len(got) != 4 || got["r0"] || !got["r3"] {
		t.Fatalf("after resuming r3 and finishing r0, UnfinishedRuns = %v", got)
	}
	// Pending r5; running r1 r3 r6; succeeded r0 r2 r7; failed r8;
	// cancelled r4 r9.
	want := map[statestore.RunStatus]int{statestore.StatusPending: 1, statestore.StatusRunning: 3,
		statestore.StatusSucceeded: 3, statestore.StatusFailed: 1, statestore.StatusCancelled: 2}
	for st, n := range want {
		if got, err := s.CountRuns(ctx, st); err != nil || got != n {
			t.Errorf("CountRuns(%s) = %d, %v; want %d", st, got, err, n)
		}
	}
	_, err := s.CountRuns(ctx, "bogus")
	wantErr(t, "CountRuns of an unknown status", err, statestore.ErrInvalid)
}

func testCompleteNode(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	mustCreate(t, s, "r2")
	start := time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
	res := statestore.NodeResult{RunID: "r1", Node: "a", Output: []byte("A"), Attempts: 2, PluginVersion: "sha-1", StartedAt: start, Fallback: true}
	if err := s.CompleteNode(ctx, res); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: "b", Output: []byte("B"), Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: "skipped", Skipped: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r2", Node: "a", Output: []byte("other run")}); err != nil {
		t.Fatal(err)
	}
	err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: "a", Output: []byte("second")})
	wantErr(t, "second CompleteNode", err, statestore.ErrConflict)
	err = s.CompleteNode(ctx, statestore.NodeResult{RunID: "missing", Node: "a"})
	wantErr(t, "CompleteNode of a missing run", err, statestore.ErrNotFound)

	got, err := s.NodeResults(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	a := got["a"]
	if !got["skipped"].Skipped || got["b"].Skipped || a.Skipped {
		t.Fatalf("Skipped not kept: %+v", got)
	}
	if len(got) != 3 || string(a.Output) != "A" || a.Attempts != 2 || a.PluginVersion != "sha-1" || !a.Fallback ||
		!a.StartedAt.Equal(start) || a.FinishedAt.IsZero() || a.RunID != "r1" || a.Node != "a" || string(got["b"].Output) != "B" {
		t.Fatalf("NodeResults(r1) = %+v", got)
	}
	none, err := s.NodeResults(ctx, "missing")
	if err != nil || len(none) != 0 {
		t.Fatalf("NodeResults of a run without results = %v, %v", none, err)
	}
}

func testCompleteNodeHammer(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	const writers, nodes = 16, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := map[string]string{}
	conflicts := 0
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range nodes {
				node := fmt.Sprintf("n%02d", n)
				out := fmt.Sprintf("writer-%d", w)
				err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: node, Output: []byte(out), Attempts: 1})
				mu.Lock()
				switch {
				case err == nil:
					if prev, ok := winners[node]; ok {
						t.Errorf("node %s completed twice: by %s and %s", node, prev, out)
					}
					winners[node] = out
				case errors.Is(err, statestore.ErrConflict):
					conflicts++
				default:
					t.Errorf("CompleteNode: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != nodes || conflicts != (writers-1)*nodes {
		t.Fatalf("%d nodes completed with %d conflicts, want %d and %d", len(winners), conflicts, nodes, (writers-1)*nodes)
	}
	got, err := s.NodeResults(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for node, out := range winners {
		if string(got[node].Output) != out {
			t.Fatalf("node %s: stored output %q, acknowledged %q", node, got[node].Output, out)
		}
	}
}

func testStartAttempt(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	last := func() int {
		n, err := s.LastAttempt(ctx, "r1", "a")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := last(); n != 0 {
		t.Fatalf("LastAttempt before any = %d", n)
	}
	if err := s.StartAttempt(ctx, statestore.NodeAttempt{RunID: "r1", Node: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	err := s.StartAttempt(ctx, statestore.NodeAttempt{RunID: "r1", Node: "a", Attempt: 1})
	wantErr(t, "repeated attempt", err, statestore.ErrConflict)
	if err := s.StartAttempt(ctx, statestore.NodeAttempt{RunID: "r1", Node: "a", Attempt: 3}); err != nil {
		t.Fatal(err)
	}
	err = s.StartAttempt(ctx, statestore.NodeAttempt{RunID: "r1", Node: "a", Attempt: 2})
	wantErr(t, "older attempt", err, statestore.ErrConflict)
	if n := last(); n != 3 {
		t.Fatalf("LastAttempt = %d, want 3", n)
	}
	if n, _ := s.LastAttempt(ctx, "r1", "b"); n != 0 {
		t.Fatalf("LastAttempt of another node = %d", n)
	}
	err = s.StartAttempt(ctx, statestore.NodeAttempt{RunID: "r1", Node: "a", Attempt: 0})
	wantErr(t, "attempt 0", err, statestore.ErrInvalid)
	err = s.StartAttempt(ctx, statestore.NodeAttempt{RunID: "missing", Node: "a", Attempt: 1})
	wantErr(t, "attempt of a missing run", err, statestore.ErrNotFound)
}

// testCompleteNodeWithAttempts: attempts recorded with a completion are
// stored together with it or, on any conflict or invalid argument, not at
// all.
func testCompleteNodeWithAttempts(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	mustCreate(t, s, "r2")
	last := func(node string) int {
		t.Helper()
		n, err := s.LastAttempt(ctx, "r1", node)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	done := func(node string) bool {
		t.Helper()
		got, err := s.NodeResults(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		_, ok := got[node]
		return ok
	}
	att := func(node string, n int) statestore.NodeAttempt {
		return statestore.NodeAttempt{RunID: "r1", Node: node, Attempt: n}
	}
	res := func(node string) statestore.NodeResult {
		return statestore.NodeResult{RunID: "r1", Node: node, Output: []byte(node), Attempts: 1}
	}

	if err := s.CompleteNode(ctx, res("a"), att("b", 3), att("c", 5)); err != nil {
		t.Fatal(err)
	}
	if !done("a") || last("b") != 3 || last("c") != 5 || last("a") != 0 {
		t.Fatalf("after CompleteNode(a, b#3, c#5): a done %v, last b %d, c %d, a %d", done("a"), last("b"), last("c"), last("a"))
	}
	// The recorded attempts count as StartAttempt's do.
	wantErr(t, "StartAttempt at a number recorded with a completion", s.StartAttempt(ctx, att("b", 3)), statestore.ErrConflict)

	// An attempt that does not increase: neither the completion nor the
	// other attempts are written.
	err := s.CompleteNode(ctx, res("b"), att("d", 2), att("c", 5))
	wantErr(t, "CompleteNode with a repeated attempt", err, statestore.ErrConflict)
	if done("b") || last("d") != 0 || last("c") != 5 {
		t.Fatalf("refused CompleteNode(b) left: b done %v, last d %d, c %d", done("b"), last("d"), last("c"))
	}
	// A node completed twice: its attempts are not written either.
	err = s.CompleteNode(ctx, res("a"), att("d", 1))
	wantErr(t, "second CompleteNode with attempts", err, statestore.ErrConflict)
	if last("d") != 0 {
		t.Fatalf("refused second completion of a recorded attempt %d of d", last("d"))
	}

	for _, tc := range []struct {
		name string
		next []statestore.NodeAttempt
	}{
		{"attempt of another run", []statestore.NodeAttempt{{RunID: "r2", Node: "d", Attempt: 1}}},
		{"attempt of the completed node", []statestore.NodeAttempt{att("b", 1)}},
		{"two attempts of one node", []statestore.NodeAttempt{att("d", 1), att("d", 2)}},
		{"attempt 0", []statestore.NodeAttempt{att("d", 0)}},
		{"attempt without node", []statestore.NodeAttempt{att("", 1)}},
	} {
		wantErr(t, "CompleteNode with an "+tc.name, s.CompleteNode(ctx, res("b"), tc.next...), statestore.ErrInvalid)
	}
	if done("b") || last("d") != 0 {
		t.Fatalf("invalid CompleteNode(b) left: b done %v, last d %d", done("b"), last("d"))
	}
	if err := s.CompleteNode(ctx, res("b"), att("d", 2), att("c", 9)); err != nil {
		t.Fatal(err)
	}
	if !done("b") || last("d") != 2 || last("c") != 9 {
		t.Fatalf("after CompleteNode(b, d#2, c#9): b done %v, last d %d, c %d", done("b"), last("d"), last("c"))
	}
	if n, _ := s.LastAttempt(ctx, "r2", "d"); n != 0 {
		t.Fatalf("attempt leaked into another run: %d", n)
	}
}

func testCheckpoints(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	_, err := s.LatestCheckpoint(ctx, "r1", "a")
	wantErr(t, "LatestCheckpoint before any", err, statestore.ErrNotFound)
	const saves = statestore.DefaultMaxCheckpoints + 5
	for i := 1; i <= saves; i++ {
		seq, err := s.SaveCheckpoint(ctx, "r1", "a", []byte(fmt.Sprintf("a%d", i)))
		if err != nil || seq != uint64(i) {
			t.Fatalf("SaveCheckpoint #%d = %d, %v", i, seq, err)
		}
	}
	if _, err := s.SaveCheckpoint(ctx, "r1", "b", []byte("b1")); err != nil {
		t.Fatal(err)
	}
	latest, err := s.LatestCheckpoint(ctx, "r1", "a")
	if err != nil || latest.Seq != saves || string(latest.Data) != fmt.Sprintf("a%d", saves) || latest.RunID != "r1" || latest.Node != "a" || latest.CreatedAt.IsZero() {
		t.Fatalf("LatestCheckpoint = %+v, %v", latest, err)
	}
	list, err := s.ListCheckpoints(ctx, "r1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != statestore.DefaultMaxCheckpoints || list[0].Seq != saves-statestore.DefaultMaxCheckpoints+1 || list[len(list)-1].Seq != saves {
		t.Fatalf("ListCheckpoints(a) kept %d, seqs %d..%d; want the newest %d", len(list), list[0].Seq, list[len(list)-1].Seq, statestore.DefaultMaxCheckpoints)
	}
	for _, c := range list {
		if string(c.Data) != fmt.Sprintf("a%d", c.Seq) {
			t.Fatalf("checkpoint %d holds %q", c.Seq, c.Data)
		}
	}
	all, err := s.ListCheckpoints(ctx, "r1", "")
	if err != nil || len(all) != statestore.DefaultMaxCheckpoints+1 || all[0].Node != "a" || all[len(all)-1].Node != "b" {
		t.Fatalf("ListCheckpoints(all) = %d checkpoints, %v", len(all), err)
	}
	_, err = s.SaveCheckpoint(ctx, "missing", "a", []byte("x"))
	wantErr(t, "SaveCheckpoint of a missing run", err, statestore.ErrNotFound)
	if l, err := s.ListCheckpoints(ctx, "missing", ""); err != nil || len(l) != 0 {
		t.Fatalf("ListCheckpoints of a missing run = %v, %v", l, err)
	}
}

func testCheckpointsHammer(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	const writers, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				seq, err := s.SaveCheckpoint(ctx, "r1", "a", []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[seq] {
					t.Errorf("seq %d returned twice", seq)
				}
				seen[seq] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	list, err := s.ListCheckpoints(ctx, "r1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != writers*each || len(list) != statestore.DefaultMaxCheckpoints || list[len(list)-1].Seq != writers*each {
		t.Fatalf("%d distinct seqs, %d kept, newest %d", len(seen), len(list), list[len(list)-1].Seq)
	}
}

func testPluginState(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	_, err := s.StateGet(ctx, "p", "k")
	wantErr(t, "StateGet of a missing key", err, statestore.ErrNotFound)
	if err := s.StateSet(ctx, "p", "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.StateSet(ctx, "p", "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := s.StateSet(ctx, "q", "k", []byte("other plugin")); err != nil {
		t.Fatal(err)
	}
	if err := s.StateSet(ctx, "p", "empty", nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.StateGet(ctx, "p", "k"); err != nil || string(v) != "v2" {
		t.Fatalf("StateGet = %q, %v; want v2", v, err)
	}
	if v, err := s.StateGet(ctx, "p", "empty"); err != nil || len(v) != 0 {
		t.Fatalf("StateGet of an empty value = %q, %v", v, err)
	}
	if err := s.StateDelete(ctx, "p", "k"); err != nil {
		t.Fatal(err)
	}
	_, err = s.StateGet(ctx, "p", "k")
	wantErr(t, "StateGet after delete", err, statestore.ErrNotFound)
	if err := s.StateDelete(ctx, "p", "k"); err != nil {
		t.Fatalf("StateDelete of a missing key: %v", err)
	}
	if v, err := s.StateGet(ctx, "q", "k"); err != nil || string(v) != "other plugin" {
		t.Fatalf("other plugin's key = %q, %v", v, err)
	}
}

// testStateUsage: StateUsage counts a plugin's keys and the bytes of its
// keys and values exactly, through overwrites, deletes, empty and large
// values, and nothing of another plugin (also one whose name extends it).
func testStateUsage(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	want := func(plugin string, keys, bytes int64) {
		t.Helper()
		u, err := s.StateUsage(ctx, plugin)
		if err != nil || u != (statestore.StateUsage{Keys: keys, Bytes: bytes}) {
			t.Fatalf("StateUsage(%s) = %+v, %v; want %d keys, %d bytes", plugin, u, err, keys, bytes)
		}
	}
	want("p", 0, 0)
	big := make([]byte, 1<<20)
	for _, kv := range []struct{ plugin, key, value string }{
		{"p", "a", "12345"}, {"p", "bb", ""}, {"p", "a", "123"}, {"pp", "a", "other"}, {"q", "x", "y"},
		{"p", "big", string(big)},
	} {
		if err := s.StateSet(ctx, kv.plugin, kv.key, []byte(kv.value)); err != nil {
			t.Fatal(err)
		}
	}
	want("p", 3, 1+3+2+3+(1<<20))
	want("pp", 1, 6)
	if err := s.StateDelete(ctx, "p", "big"); err != nil {
		t.Fatal(err)
	}
	if err := s.StateDelete(ctx, "p", "missing"); err != nil {
		t.Fatal(err)
	}
	want("p", 2, 1+3+2)
	_, err := s.StateUsage(ctx, "")
	wantErr(t, "StateUsage without plugin", err, statestore.ErrInvalid)
}

func testDeadLetters(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	if n, err := s.CountDeadLetters(ctx); err != nil || n != 0 {
		t.Fatalf("CountDeadLetters on an empty store = %d, %v", n, err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	d := statestore.DeadLetter{RunID: "r1", Workflow: "wf", Node: "a", Input: []byte("in"), PluginVersion: "v1",
		Attempts: []statestore.AttemptError{{Attempt: 1, Error: "e1", At: at}, {Attempt: 2, Error: "e2", At: at}}}
	put, err := s.PutDeadLetter(ctx, d)
	if err != nil || put.ID == "" || put.CreatedAt.IsZero() {
		t.Fatalf("PutDeadLetter = %+v, %v", put, err)
	}
	got, err := s.GetDeadLetter(ctx, put.ID)
	if err != nil || got.RunID != "r1" || got.Node != "a" || string(got.Input) != "in" || got.PluginVersion != "v1" ||
		len(got.Attempts) != 2 || got.Attempts[1].Error != "e2" || !got.Attempts[0].At.Equal(at) {
		t.Fatalf("GetDeadLetter = %+v, %v", got, err)
	}
	d.ID = put.ID
	_, err = s.PutDeadLetter(ctx, d)
	wantErr(t, "PutDeadLetter with an existing ID", err, statestore.ErrConflict)

	var ids []string
	ids = append(ids, put.ID)
	for i := range 6 {
		run := "r2"
		if i%2 == 0 {
			run = "r1"
		}
		p, err := s.PutDeadLetter(ctx, statestore.DeadLetter{ID: fmt.Sprintf("dl-%d", i), RunID: run, Node: "b"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	if n, _ := s.CountDeadLetters(ctx); n != 7 {
		t.Fatalf("CountDeadLetters = %d, want 7", n)
	}
	var listed []string
	f := statestore.DeadLetterFilter{Limit: 3}
	for pages := 0; ; pages++ {
		page, next, err := s.ListDeadLetters(ctx, f)
		if err != nil || pages > 5 {
			t.Fatalf("ListDeadLetters: %v (page %d)", err, pages)
		}
		for _, d := range page {
			listed = append(listed, d.ID)
		}
		if next == "" {
			break
		}
		f.After = next
	}
	if len(listed) != 7 {
		t.Fatalf("listed %v, want all 7 of %v", listed, ids)
	}
	for i := 1; i < len(listed); i++ {
		if listed[i-1] >= listed[i] {
			t.Fatalf("ListDeadLetters not ordered by ID: %v", listed)
		}
	}
	r1, _, err := s.ListDeadLetters(ctx, statestore.DeadLetterFilter{RunID: "r1"})
	if err != nil || len(r1) != 4 {
		t.Fatalf("dead letters of r1: %d, %v; want 4", len(r1), err)
	}
	if err := s.DeleteDeadLetter(ctx, put.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetDeadLetter(ctx, put.ID)
	wantErr(t, "GetDeadLetter after delete", err, statestore.ErrNotFound)
	wantErr(t, "second DeleteDeadLetter", s.DeleteDeadLetter(ctx, put.ID), statestore.ErrNotFound)
	if n, _ := s.CountDeadLetters(ctx); n != 6 {
		t.Fatalf("CountDeadLetters after delete = %d, want 6", n)
	}
}

func testCopies(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	in := []byte("input")
	r, _, err := s.CreateRun(ctx, statestore.Run{ID: "r1", Workflow: "wf", Input: in, Attrs: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	r.Input[1] = 'Y'
	r.Attrs["k"] = "changed"
	got, _ := s.GetRun(ctx, "r1")
	if string(got.Input) != "input" || got.Attrs["k"] != "v" {
		t.Fatalf("store shares memory with callers: %+v", got)
	}
	data := []byte("cp")
	if _, err := s.SaveCheckpoint(ctx, "r1", "a", data); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X'
	if c, _ := s.LatestCheckpoint(ctx, "r1", "a"); !bytes.Equal(c.Data, []byte("cp")) {
		t.Fatalf("checkpoint shares memory with the caller: %q", c.Data)
	}
}

func testInvalid(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	_, _, err := s.CreateRun(ctx, statestore.Run{Workflow: "wf"})
	wantErr(t, "CreateRun without ID", err, statestore.ErrInvalid)
	_, _, err = s.CreateRun(ctx, statestore.Run{ID: "a\x00b"})
	wantErr(t, "CreateRun with NUL in ID", err, statestore.ErrInvalid)
	_, _, err = s.CreateRun(ctx, statestore.Run{ID: "a", Status: "weird"})
	wantErr(t, "CreateRun with unknown status", err, statestore.ErrInvalid)
	wantErr(t, "CompleteNode without node", s.CompleteNode(ctx, statestore.NodeResult{RunID: "a"}), statestore.ErrInvalid)
	_, err = s.SaveCheckpoint(ctx, "a", "", nil)
	wantErr(t, "SaveCheckpoint without node", err, statestore.ErrInvalid)
	wantErr(t, "StateSet without key", s.StateSet(ctx, "p", "", nil), statestore.ErrInvalid)
	_, err = s.GetDeadLetter(ctx, "")
	wantErr(t, "GetDeadLetter without ID", err, statestore.ErrInvalid)
}

func testClosed(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	errs := map[string]error{}
	_, _, errs["CreateRun"] = s.CreateRun(ctx, statestore.Run{ID: "r2", Workflow: "wf"})
	_, errs["GetRun"] = s.GetRun(ctx, "r1")
	_, errs["UpdateRun"] = s.UpdateRun(ctx, "r1", func(*statestore.Run) error { return nil })
	_, _, errs["ListRuns"] = s.ListRuns(ctx, statestore.RunFilter{})
	_, errs["UnfinishedRuns"] = s.UnfinishedRuns(ctx)
	_, errs["CountRuns"] = s.CountRuns(ctx, statestore.StatusRunning)
	errs["CompleteNode"] = s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: "a"})
	errs["StartAttempt"] = s.StartAttempt(ctx, statestore.NodeAttempt{RunID: "r1", Node: "a", Attempt: 1})
	_, errs["NodeResults"] = s.NodeResults(ctx, "r1")
	_, errs["NodeResultsOf"] = s.NodeResultsOf(ctx, "r1", []string{"a"})
	_, errs["LastAttempt"] = s.LastAttempt(ctx, "r1", "a")
	_, errs["SaveCheckpoint"] = s.SaveCheckpoint(ctx, "r1", "a", nil)
	_, errs["LatestCheckpoint"] = s.LatestCheckpoint(ctx, "r1", "a")
	_, errs["ListCheckpoints"] = s.ListCheckpoints(ctx, "r1", "")
	_, errs["StateGet"] = s.StateGet(ctx, "p", "k")
	errs["StateSet"] = s.StateSet(ctx, "p", "k", nil)
	errs["StateDelete"] = s.StateDelete(ctx, "p", "k")
	_, errs["StateUsage"] = s.StateUsage(ctx, "p")
	_, errs["PutDeadLetter"] = s.PutDeadLetter(ctx, statestore.DeadLetter{RunID: "r1"})
	_, errs["GetDeadLetter"] = s.GetDeadLetter(ctx, "x")
	_, _, errs["ListDeadLetters"] = s.ListDeadLetters(ctx, statestore.DeadLetterFilter{})
	errs["DeleteDeadLetter"] = s.DeleteDeadLetter(ctx, "x")
	_, errs["CountDeadLetters"] = s.CountDeadLetters(ctx)
	for name, err := range errs {
		if !errors.Is(err, statestore.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func testCloseHammer(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	var wg sync.WaitGroup
	var acked sync.Map
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				node := fmt.Sprintf("w%d-%d", w, i)
				err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: node})
				switch {
				case err == nil:
					acked.Store(node, true)
				case errors.Is(err, statestore.ErrClosed):
					return
				default:
					t.Errorf("CompleteNode while closing: %v", err)
					return
				}
			}
		}()
	}
	for n := 0; n < 20; {
		n = 0
		acked.Range(func(any, any) bool { n++; return true })
		if n < 20 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close with writers running: %v", err)
	}
	wg.Wait()
}

func testCancelled(t *testing.T, s statestore.Store) {
	mustCreate(t, s, "r1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.GetRun(ctx, "r1")
	wantErr(t, "GetRun with a cancelled context", err, context.Canceled)
	err = s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: "a"})
	wantErr(t, "CompleteNode with a cancelled context", err, context.Canceled)
	if res, _ := s.NodeResults(context.Background(), "r1"); len(res) != 0 {
		t.Fatalf("a write cancelled before the call was applied: %v", res)
	}
}
