package badgerstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const qLease = time.Minute

func submitRun(t testing.TB, s *badgerstore.Store, id string, roots ...string) {
	t.Helper()
	var rn []statestore.ReadyNode
	for _, n := range roots {
		rn = append(rn, statestore.ReadyNode{Node: n, Block: 2})
	}
	if _, created, err := s.SubmitRun(context.Background(), statestore.Run{ID: id, Workflow: "wf", Input: []byte(id),
		Status: statestore.StatusRunning}, rn); err != nil || !created {
		t.Fatalf("SubmitRun(%s) = %v, %v", id, created, err)
	}
}

func claim(t testing.TB, s *badgerstore.Store, owner string, max int) []statestore.Task {
	t.Helper()
	tasks, err := s.ClaimTasks(context.Background(), owner, max, qLease)
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

func names(tasks []statestore.Task) string {
	var out []string
	for _, t := range tasks {
		out = append(out, t.RunID+"/"+t.Node)
	}
	return strings.Join(out, " ")
}

// TestQueue_Reopen: tasks are durable and come back in queue order after
// a reopen, each counted as claimed once (its previous owner may have run
// it), and no claim of the closed store holds in the new one.
func TestQueue_Reopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	for i := range 4 {
		submitRun(t, s, fmt.Sprintf("r%d", i), "a")
	}
	before := claim(t, s, "h1", 2) // r0/a, r1/a
	if names(before) != "r0/a r1/a" {
		t.Fatalf("claimed %s, want r0/a r1/a", names(before))
	}
	// r0/a completes and queues r0/b behind r2/a and r3/a.
	if _, _, err := s.CompleteTask(ctx, statestore.Completion{Fence: before[0].Fence(),
		Result: statestore.NodeResult{RunID: "r0", Node: "a", Output: []byte("A")},
		Next:   []statestore.ReadyNode{{Node: "b", Needs: []string{"a"}, Block: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	if err := s.CheckFence(ctx, before[1].Fence()); !errors.Is(err, statestore.ErrFenced) {
		t.Fatalf("a claim of the closed store holds after reopening: %v", err)
	}
	submitRun(t, s, "r4", "a")
	after := claim(t, s, "h2", 10)
	if got := names(after); got != "r1/a r2/a r3/a r0/b r4/a" {
		t.Fatalf("claimed after reopening: %s, want r1/a r2/a r3/a r0/b r4/a (queue order)", got)
	}
	for _, task := range after {
		want := 2
		if task.RunID == "r4" {
			want = 1 // queued after the reopen
		}
		if task.Claims != want {
			t.Errorf("%s/%s: Claims %d, want %d", task.RunID, task.Node, task.Claims, want)
		}
		if task.First != 1 {
			t.Errorf("%s/%s: First %d, want 1", task.RunID, task.Node, task.First)
		}
		if task.Token == before[1].Token {
			t.Errorf("%s/%s: token %d of the closed store given again", task.RunID, task.Node, task.Token)
		}
	}
	if res, err := s.NodeResults(ctx, "r0"); err != nil || string(res["a"].Output) != "A" {
		t.Fatalf("journal of r0 after reopening: %v, %v", res, err)
	}
}

// enqueueMany queues n tasks, as nodes of runs of 1,000 nodes each, so the
// backlog builds fast.
func enqueueMany(t testing.TB, s *badgerstore.Store, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	const perRun = 1000
	var wg sync.WaitGroup
	errs := make(chan error, (n+perRun-1)/perRun)
	sem := make(chan struct{}, 16)
	for r := 0; r*perRun < n; r++ {
		id := fmt.Sprintf("%s%06d", prefix, r)
		if _, _, err := s.CreateRun(ctx, statestore.Run{ID: id, Workflow: "wf", Status: statestore.StatusRunning}); err != nil {
			t.Fatal(err)
		}
		nodes := make([]statestore.ReadyNode, 0, perRun)
		for i := r * perRun; i < min(n, (r+1)*perRun); i++ {
			nodes = append(nodes, statestore.ReadyNode{Node: fmt.Sprintf("n%07d", i), Block: 1})
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.EnqueueNodes(ctx, id, nodes); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestQueue_BoundedMemory queues a large backlog and shows that claiming
// and completing from it holds in memory what is claimed, not the
// backlog: the heap does not grow with the backlog, and the queue holds
// one entry per claim.
func TestQueue_BoundedMemory(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 5_000
	}
	ctx := context.Background()
	s := open(t, t.TempDir(), badgerstore.WithGCInterval(-1))
	start := time.Now()
	enqueueMany(t, s, "big", n)
	t.Logf("queued %d tasks in %s", n, time.Since(start).Round(time.Millisecond))
	base := heapInUse()

	for round := range 5 {
		tasks := claim(t, s, "h1", 100)
		if len(tasks) != 100 {
			t.Fatalf("round %d: claimed %d tasks, want 100", round, len(tasks))
		}
		if held := badgerstore.QueueHeld(s); held != 100 {
			t.Fatalf("round %d: the queue holds %d tasks in memory, want the 100 claimed", round, held)
		}
		var wg sync.WaitGroup
		for _, task := range tasks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := s.CompleteTask(ctx, statestore.Completion{Fence: task.Fence(),
					Result: statestore.NodeResult{RunID: task.RunID, Node: task.Node}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if held := badgerstore.QueueHeld(s); held != 0 {
			t.Fatalf("round %d: %d tasks held in memory after their completion", round, held)
		}
	}
	grown := int64(heapInUse()) - int64(base)
	t.Logf("heap in use: %d KiB with %d tasks queued; %+d KiB after claiming and completing 500", base>>10, n, grown>>10)
	// The backlog's tasks cost ~100 bytes each if they were in memory: 20
	// MiB at 200k. Badger's own caches and memtable move by a few MiB.
	if grown > 8<<20 {
		t.Fatalf("heap grew by %d KiB while claiming 500 of %d tasks", grown>>10, n)
	}
}

// TestQueue_ReleaseDelay: a released task waits in memory for its delay
// and is then claimed behind the tasks queued before its release.
func TestQueue_ReleaseDelay(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := open(t, t.TempDir(), badgerstore.WithClock(clock))
	submitRun(t, s, "r0", "a")
	first := claim(t, s, "h1", 1)[0]
	submitRun(t, s, "r1", "a")
	if err := s.ReleaseTask(ctx, first.Fence(), time.Second); err != nil {
		t.Fatal(err)
	}
	submitRun(t, s, "r2", "a")
	if got := names(claim(t, s, "h2", 1)); got != "r1/a" {
		t.Fatalf("claimed %s, want r1/a (r0/a waits for its delay)", got)
	}
	advance(time.Second)
	got := claim(t, s, "h2", 5)
	if names(got) != "r0/a r2/a" || got[0].Claims != 2 || got[1].Claims != 1 {
		t.Fatalf("claimed %s (%+v), want r0/a on its second claim, then r2/a", names(got), got)
	}
	// A lease that ended is rescued before anything queued.
	submitRun(t, s, "r3", "a")
	advance(2 * qLease)
	got = claim(t, s, "h3", 1)
	if names(got) != "r1/a" || got[0].Claims != 2 {
		t.Fatalf("claimed %s (%+v), want the rescue of r1/a, the soonest expired", names(got), got)
	}
}

// TestQueue_GCRemovesTasks: retention removes a run's tasks with it, and
// their claims.
func TestQueue_GCRemovesTasks(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := open(t, t.TempDir(), badgerstore.WithClock(clock), badgerstore.WithGCInterval(-1), badgerstore.WithRetention(time.Hour))
	submitRun(t, s, "r0", "a", "b")
	held := claim(t, s, "h1", 1)[0]
	if _, err := s.UpdateRun(ctx, "r0", func(r *statestore.Run) error { r.Status = statestore.StatusFailed; return nil }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if n, err := s.CollectGarbage(ctx); err != nil || n != 1 {
		t.Fatalf("CollectGarbage = %d, %v; want 1 run removed", n, err)
	}
	if err := s.CheckFence(ctx, held.Fence()); !errors.Is(err, statestore.ErrFenced) {
		t.Fatalf("the claim of a removed run holds: %v", err)
	}
	if got := claim(t, s, "h2", 5); len(got) != 0 {
		t.Fatalf("claimed %s of a removed run", names(got))
	}
	if held := badgerstore.QueueHeld(s); held != 0 {
		t.Fatalf("%d tasks of a removed run held in memory", held)
	}
	dir := s.Dir()
	_ = s.Close()
	if rep, err := badgerstore.Check(dir); err != nil || !rep.OK() {
		t.Fatalf("Check after GC: %+v, %v", rep, err)
	}
}

// TestRepair_TaskWithoutRun: a task whose run record is gone is damage
// Check reports and Repair removes.
func TestRepair_TaskWithoutRun(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	submitRun(t, s, "r0", "a")
	submitRun(t, s, "r1", "a")
	_ = s.Close()
	rawUpdate(t, dir, func(txn *badger.Txn) error {
		// r0 loses its record and index entries, r1/a its task key (its
		// order entry stays).
		doomed := [][]byte{[]byte("rr0"), []byte("qr1\x00a")}
		it := txn.NewIterator(badger.IteratorOptions{})
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().KeyCopy(nil); strings.ContainsRune("tus", rune(k[0])) && strings.HasSuffix(string(k), "r0") {
				doomed = append(doomed, k)
			}
		}
		it.Close()
		for _, k := range doomed {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	rep, err := badgerstore.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Problems, "\n")
	if !strings.Contains(all, `task: task of node "a" of run "r0": no such run`) || !strings.Contains(all, `no task of node "a" of run "r1"`) {
		t.Fatalf("Check problems:\n%s", all)
	}
	rep, err = badgerstore.Repair(dir)
	if err != nil || len(rep.Repaired) == 0 {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	s = open(t, dir)
	if got := claim(t, s, "h1", 5); len(got) != 0 {
		t.Fatalf("claimed %s after the repair, want no task", names(got))
	}
	ids, _, err := s.UnqueuedRuns(context.Background(), "", 10)
	if err != nil || fmt.Sprint(ids) != "[r1]" {
		t.Fatalf("UnqueuedRuns after the repair = %v, %v; want [r1], to be queued again", ids, err)
	}
	_ = s.Close()
	rep, err = badgerstore.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if strings.HasPrefix(p, "task:") {
			t.Errorf("after Repair: %s", p)
		}
	}
}

// TestQueue_UnqueuedRunsOrder: UnqueuedRuns finds exactly the unfinished
// runs without a task, page by page in ID order, whether run IDs grow with
// their creation (the task keys are then stepped through) or not (they are
// sought), over more runs than it looks up at a time, and whatever the runs
// around them hold: several tasks, none, a finished run.
func TestQueue_UnqueuedRunsOrder(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	type plan struct {
		id       string
		roots    []string
		finished bool
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var plans []plan
	seen := map[string]bool{}
	var want []string
	for i := range 3000 {
		// Runs 0-1499 have IDs in creation order, the rest random IDs.
		id := fmt.Sprintf("a%05d", i)
		if i >= 1500 {
			id = fmt.Sprintf("b%06d", rng.IntN(1_000_000))
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		p := plan{id: id}
		switch rng.IntN(4) {
		case 0: // no task
			p.finished = rng.IntN(3) == 0
			if !p.finished {
				want = append(want, id)
			}
		case 1:
			p.roots = []string{"x", "y", "z"}
		default:
			p.roots = []string{"x"}
		}
		plans = append(plans, p)
	}
	// Eight submitters, each in plan order: creation order follows the
	// plan, give or take what runs at once.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(plans); i += 8 {
				p := plans[i]
				if _, _, err := s.SubmitRun(ctx, statestore.Run{ID: p.id, Workflow: "wf", Status: statestore.StatusRunning},
					readyNodes(p.roots...)); err != nil {
					t.Error(err)
					return
				}
				if p.finished {
					if _, err := s.UpdateRun(ctx, p.id, func(r *statestore.Run) error {
						r.Status, r.FinishedAt = statestore.StatusSucceeded, time.Now()
						return nil
					}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	slices.Sort(want)
	var got []string
	for after := ""; ; {
		ids, next, err := s.UnqueuedRuns(ctx, after, 97)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids...)
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("UnqueuedRuns pages: %d runs %v\nwant %d: %v", len(got), got, len(want), want)
	}
}

func readyNodes(nodes ...string) []statestore.ReadyNode {
	var rn []statestore.ReadyNode
	for _, n := range nodes {
		rn = append(rn, statestore.ReadyNode{Node: n, Block: 1})
	}
	return rn
}
