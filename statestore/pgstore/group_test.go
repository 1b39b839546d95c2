package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

// TestStore_GroupMembers: completions that arrive together share a
// transaction, and a member that conflicts, names a missing run or carries
// an attempt that does not increase gets its own error while the others
// commit.
func TestStore_GroupMembers(t *testing.T) {
	s := open(t, pgtest.URL(t))
	ctx := context.Background()
	const runs, rounds = 24, 5
	for i := range runs {
		if _, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("r%d", i), Workflow: "wf"}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range rounds {
		node := fmt.Sprintf("n%d", round)
		if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: node}); err != nil {
			t.Fatal(err)
		}
		if err := s.StartAttempt(ctx, statestore.NodeAttempt{RunID: "r2", Node: "b" + node, Attempt: 5}); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, runs+1)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range runs + 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := statestore.NodeResult{RunID: fmt.Sprintf("r%d", i), Node: node, Output: []byte(node)}
				var next []statestore.NodeAttempt
				switch i {
				case 2:
					next = []statestore.NodeAttempt{{RunID: "r2", Node: "a" + node, Attempt: 1}, {RunID: "r2", Node: "b" + node, Attempt: 3}}
				case runs:
					res.RunID = "missing"
				default:
					next = []statestore.NodeAttempt{{RunID: res.RunID, Node: "a" + node, Attempt: 1}}
				}
				start.Wait()
				errs[i] = s.CompleteNode(ctx, res, next...)
			}()
		}
		start.Done()
		wg.Wait()
		for i, err := range errs {
			var want error
			switch i {
			case 1, 2:
				want = statestore.ErrConflict
			case runs:
				want = statestore.ErrNotFound
			}
			if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
				t.Fatalf("round %d member %d: %v, want %v", round, i, err, want)
			}
		}
		for i := range runs {
			id := fmt.Sprintf("r%d", i)
			res, err := s.NodeResults(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			a, err := s.LastAttempt(ctx, id, "a"+node)
			if err != nil {
				t.Fatal(err)
			}
			switch i {
			case 1:
				if string(res[node].Output) != "" || a != 0 {
					t.Fatalf("round %d: the conflicting completion of r1 was written", round)
				}
			case 2:
				b, _ := s.LastAttempt(ctx, id, "b"+node)
				if _, ok := res[node]; ok || a != 0 || b != 5 {
					t.Fatalf("round %d: the refused completion of r2 left done %v, a %d, b %d", round, ok, a, b)
				}
			default:
				if string(res[node].Output) != node || a != 1 {
					t.Fatalf("round %d: %s/%s: result %q, attempt %d", round, id, node, res[node].Output, a)
				}
			}
		}
	}
	if pgstore.Grouped(s) == 0 {
		t.Fatal("no two completions shared a transaction")
	}
}

// TestStore_TwoHosts: two stores on one database, as two hosts would be,
// complete the same nodes and save checkpoints of the same node at once:
// one completion wins per node, and every checkpoint seq is handed out
// once.
func TestStore_TwoHosts(t *testing.T) {
	u := pgtest.URL(t)
	hosts := []*pgstore.Store{open(t, u), open(t, u)}
	ctx := context.Background()
	if _, _, err := hosts[0].CreateRun(ctx, statestore.Run{ID: "r", Workflow: "wf"}); err != nil {
		t.Fatal(err)
	}
	const writers, nodes = 8, 30
	var mu sync.Mutex
	wins := map[string]int{}
	seqs := map[uint64]int{}
	var wg sync.WaitGroup
	for w := range 2 * writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := hosts[w%2]
			for n := range nodes {
				node := fmt.Sprintf("n%d", n)
				err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r", Node: node, Output: []byte(fmt.Sprint(w))},
					statestore.NodeAttempt{RunID: "r", Node: "next-" + node, Attempt: 1})
				if err != nil && !errors.Is(err, statestore.ErrConflict) {
					t.Error(err)
					return
				}
				seq, serr := s.SaveCheckpoint(ctx, "r", "cp", []byte("x"))
				if serr != nil {
					t.Error(serr)
					return
				}
				mu.Lock()
				if err == nil {
					wins[node]++
				}
				seqs[seq]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for n := range nodes {
		if node := fmt.Sprintf("n%d", n); wins[node] != 1 {
			t.Fatalf("node %s completed %d times", node, wins[node])
		}
	}
	if len(seqs) != 2*writers*nodes {
		t.Fatalf("%d distinct checkpoint seqs for %d saves", len(seqs), 2*writers*nodes)
	}
	res, err := hosts[1].NodeResults(ctx, "r")
	if err != nil || len(res) != nodes {
		t.Fatalf("NodeResults = %d, %v", len(res), err)
	}
}

// TestStore_SmallGroupWaitsForGroupInFlight: while a group of four is in
// flight, a completion that arrives alone waits to be one of a group as
// large, or for that group to end, or for the bound on the wait; with no
// group in flight it commits at once.
func TestStore_SmallGroupWaitsForGroupInFlight(t *testing.T) {
	s := open(t, pgtest.URL(t))
	ctx := context.Background()
	const runs = 8
	for i := range runs {
		if _, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("r%d", i), Workflow: "wf"}); err != nil {
			t.Fatal(err)
		}
	}
	complete := func(run int, node string) <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- s.CompleteNode(ctx, statestore.NodeResult{RunID: fmt.Sprintf("r%d", run), Node: node})
		}()
		return done
	}
	waitFor := func(what string, done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not committed within 10s", what)
		}
	}
	stillWaiting := func(what string, done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("%s: committed (%v) while a larger group was in flight", what, err)
		case <-time.After(300 * time.Millisecond):
		}
	}

	// No group in flight: at once.
	waitFor("alone", complete(0, "a"))

	pgstore.SetGroupWait(s, time.Minute)
	release := pgstore.HoldGroup(s, 4)
	first := complete(0, "b")
	stillWaiting("first of four", first)
	grouped := pgstore.Grouped(s)
	rest := []<-chan error{complete(1, "b"), complete(2, "b"), complete(3, "b")}
	waitFor("first of four", first)
	for i, done := range rest {
		waitFor(fmt.Sprintf("member %d of four", i+2), done)
	}
	if got := pgstore.Grouped(s) - grouped; got != 1 {
		t.Fatalf("four completions committed in %d groups of more than one, want 1", got)
	}

	// The group in flight ends: the one waiting commits.
	lone := complete(4, "b")
	stillWaiting("lone", lone)
	release()
	waitFor("lone, after the group in flight ended", lone)

	// A group in flight that does not end holds the next back no longer
	// than the bound.
	pgstore.SetGroupWait(s, 50*time.Millisecond)
	release = pgstore.HoldGroup(s, 4)
	defer release()
	start := time.Now()
	waitFor("lone, behind a stuck group", complete(5, "b"))
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("lone completion committed after %v, before the bound of 50ms", d)
	}
}
