package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

// hosts opens two Stores on one fresh database: two hosts sharing it.
func hosts(t testing.TB, opts ...pgstore.Option) (a, b *pgstore.Store, url string) {
	t.Helper()
	url = pgtest.URL(t)
	return open(t, url, opts...), open(t, url, opts...), url
}

func TestStore_QueueConformance(t *testing.T) {
	storetest.RunQueue(t, func(t *testing.T) (storetest.QueueStore, storetest.QueueStore) {
		a, b, _ := hosts(t)
		return a, b
	})
}

func TestStore_QueueConformanceNoGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	storetest.RunQueue(t, func(t *testing.T) (storetest.QueueStore, storetest.QueueStore) {
		a, b, _ := hosts(t, pgstore.WithMaxBatch(1))
		return a, b
	})
}

func submitRoots(t testing.TB, s *pgstore.Store, id string, roots ...string) {
	t.Helper()
	var nodes []statestore.ReadyNode
	for _, r := range roots {
		nodes = append(nodes, statestore.ReadyNode{Node: r, Block: 1})
	}
	if _, created, err := s.SubmitRun(context.Background(), statestore.Run{ID: id, Workflow: "wf", Status: statestore.StatusRunning}, nodes); err != nil || !created {
		t.Fatalf("SubmitRun(%s) = %v, %v", id, created, err)
	}
}

// connect opens a connection of its own to the database at url, closed
// when the test ends.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

// dbNow reads the database server's clock.
func dbNow(t testing.TB, url string) time.Time {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var now time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

// TestStore_LeaseDatabaseClock: leases are on the database's clock, not
// the hosts': two hosts whose clocks are an hour apart agree on when a
// lease ends, and the later one rescues the task at its end.
func TestStore_LeaseDatabaseClock(t *testing.T) {
	url := pgtest.URL(t)
	ahead := open(t, url, pgstore.WithClock(func() time.Time { return time.Now().Add(time.Hour) }))
	behind := open(t, url, pgstore.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	submitRoots(t, ahead, "r1", "a")
	before := dbNow(t, url)
	const lease = 2 * time.Second
	got, err := behind.ClaimTasks(context.Background(), "h1", 1, lease)
	if err != nil || len(got) != 1 {
		t.Fatalf("ClaimTasks = %v, %v", got, err)
	}
	after := dbNow(t, url)
	if until := got[0].LeaseUntil; until.Before(before.Add(lease)) || until.After(after.Add(lease)) {
		t.Fatalf("LeaseUntil %v, want the database's now + %v, within [%v, %v]", until, lease, before.Add(lease), after.Add(lease))
	}
	// The host whose clock is an hour ahead does not see the lease ended.
	rescued, err := ahead.ClaimTasks(context.Background(), "h2", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(rescued) != 0 && dbNow(t, url).Before(got[0].LeaseUntil) {
		t.Fatalf("claimed %v while the lease held on the database's clock", rescued)
	}
	for deadline := time.Now().Add(10 * time.Second); len(rescued) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if rescued, err = ahead.ClaimTasks(context.Background(), "h2", 1, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if len(rescued) != 1 || rescued[0].Claims != 2 || rescued[0].Owner != "h2" {
		t.Fatalf("rescued %+v, want the task on its second claim by h2", rescued)
	}
	if late := dbNow(t, url); late.Before(got[0].LeaseUntil) {
		t.Fatalf("rescued at %v, before the lease ended at %v", late, got[0].LeaseUntil)
	}
}

// TestStore_FencedAfterRescue: once another host rescued a task, every
// write of its first owner is refused and writes nothing: the completion
// (no journal entry, no dependent queued, no attempts reserved), its
// checkpoints and its plugin state.
func TestStore_FencedAfterRescue(t *testing.T) {
	a, b, _ := hosts(t)
	ctx := context.Background()
	submitRoots(t, a, "r1", "a")
	old, err := a.ClaimTasks(ctx, "h1", 1, time.Second)
	if err != nil || len(old) != 1 {
		t.Fatalf("ClaimTasks = %v, %v", old, err)
	}
	stale := statestore.WithFence(ctx, old[0].Fence())
	if err := a.StateSet(stale, "p", "gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	var rescued []statestore.Task
	for deadline := time.Now().Add(10 * time.Second); len(rescued) == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if rescued, err = b.ClaimTasks(ctx, "h2", 1, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if len(rescued) != 1 {
		t.Fatal("not rescued")
	}
	next := []statestore.ReadyNode{{Node: "b", Needs: []string{"a"}, Block: 4}}
	_, _, err = a.CompleteTask(ctx, statestore.Completion{Fence: old[0].Fence(),
		Result: statestore.NodeResult{RunID: "r1", Node: "a", Output: []byte("stale")}, Next: next, Keep: true, Lease: time.Minute})
	if !errors.Is(err, statestore.ErrFenced) {
		t.Fatalf("stale CompleteTask = %v, want ErrFenced", err)
	}
	if _, err := a.SaveCheckpoint(stale, "r1", "a", []byte("stale")); !errors.Is(err, statestore.ErrFenced) {
		t.Fatalf("stale SaveCheckpoint = %v, want ErrFenced", err)
	}
	if err := a.StateSet(stale, "p", "k", []byte("stale")); !errors.Is(err, statestore.ErrFenced) {
		t.Fatalf("stale StateSet = %v, want ErrFenced", err)
	}
	if err := a.StateDelete(stale, "p", "gone"); !errors.Is(err, statestore.ErrFenced) {
		t.Fatalf("stale StateDelete = %v, want ErrFenced", err)
	}
	if err := a.ReleaseTask(ctx, old[0].Fence(), 0); !errors.Is(err, statestore.ErrFenced) {
		t.Fatalf("stale ReleaseTask = %v, want ErrFenced", err)
	}
	if res, _ := b.NodeResults(ctx, "r1"); len(res) != 0 {
		t.Fatalf("journal after a fenced completion: %v", res)
	}
	if last, _ := b.LastAttempt(ctx, "r1", "b"); last != 0 {
		t.Fatalf("a fenced completion reserved attempts: %d", last)
	}
	if cps, _ := b.ListCheckpoints(ctx, "r1", ""); len(cps) != 0 {
		t.Fatalf("checkpoints after a fenced save: %v", cps)
	}
	if _, err := b.StateGet(ctx, "p", "k"); !errors.Is(err, statestore.ErrNotFound) {
		t.Fatalf("state after a fenced set: %v", err)
	}
	if v, err := b.StateGet(ctx, "p", "gone"); err != nil || string(v) != "x" {
		t.Fatalf("state after a fenced delete = %q, %v", v, err)
	}
	// The rescuer's claim holds and completes, keeping the dependent.
	kept, ok, err := b.CompleteTask(ctx, statestore.Completion{Fence: rescued[0].Fence(),
		Result: statestore.NodeResult{RunID: "r1", Node: "a", Output: []byte("fresh")}, Next: next, Keep: true, Lease: time.Minute})
	if err != nil || !ok || kept.Node != "b" || kept.Owner != "h2" || kept.First != 1 || kept.Claims != 1 {
		t.Fatalf("rescuer's CompleteTask = %+v, %v, %v", kept, ok, err)
	}
	if last, _ := b.LastAttempt(ctx, "r1", "b"); last != 4 {
		t.Fatalf("LastAttempt(b) = %d, want the block of 4", last)
	}
	if err := a.CheckFence(ctx, kept.Fence()); err != nil {
		t.Fatalf("the kept claim does not hold on the other host: %v", err)
	}
}

// TestStore_ClaimCompleteHammer: hosts claim and complete the nodes of
// chains of runs at once; every node is claimed by one owner at a time,
// journaled exactly once, and every run reaches its last node.
func TestStore_ClaimCompleteHammer(t *testing.T) {
	a, b, _ := hosts(t)
	ctx := context.Background()
	const runs, depth, workers = 40, 5, 8
	for i := range runs {
		submitRoots(t, a, fmt.Sprintf("r%02d", i), "n0")
	}
	var mu sync.Mutex
	holding := map[string]string{}
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if w%2 == 1 {
				s = b
			}
			owner := fmt.Sprintf("h%d", w)
			for done.Load() < runs*depth {
				tasks, err := s.ClaimTasks(ctx, owner, 2, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				for _, task := range tasks {
					k := task.RunID + "/" + task.Node
					mu.Lock()
					if prev, ok := holding[k]; ok {
						t.Errorf("%s claimed by %s while %s holds it", k, owner, prev)
					}
					holding[k] = owner
					mu.Unlock()
					for task.Node != "" {
						var n int
						fmt.Sscanf(task.Node, "n%d", &n)
						var next []statestore.ReadyNode
						if n+1 < depth {
							next = []statestore.ReadyNode{{Node: fmt.Sprintf("n%d", n+1), Needs: []string{task.Node}, Block: 1}}
						}
						mu.Lock()
						delete(holding, task.RunID+"/"+task.Node)
						mu.Unlock()
						kept, ok, err := s.CompleteTask(ctx, statestore.Completion{Fence: task.Fence(),
							Result: statestore.NodeResult{RunID: task.RunID, Node: task.Node, Output: []byte(owner)},
							Next:   next, Keep: w%4 < 2, Lease: time.Minute})
						if err != nil {
							t.Errorf("complete %s/%s: %v", task.RunID, task.Node, err)
							return
						}
						done.Add(1)
						task = statestore.Task{}
						if ok {
							task = kept
							mu.Lock()
							holding[kept.RunID+"/"+kept.Node] = owner
							mu.Unlock()
						}
					}
				}
				if len(tasks) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	for i := range runs {
		res, err := a.NodeResults(ctx, fmt.Sprintf("r%02d", i))
		if err != nil || len(res) != depth {
			t.Fatalf("run %d journaled %d nodes (%v), want %d", i, len(res), err, depth)
		}
	}
	if got := done.Load(); got != runs*depth {
		t.Fatalf("%d completions, want %d", got, runs*depth)
	}
}

// TestStore_JoinManyHammer: of the k needs of a join completing at once on
// two hosts, whichever commits last queues the join, exactly once.
func TestStore_JoinManyHammer(t *testing.T) {
	a, b, _ := hosts(t)
	ctx := context.Background()
	const runs, fan = 30, 6
	needs := make([]string, fan)
	for i := range needs {
		needs[i] = fmt.Sprintf("n%d", i)
	}
	join := []statestore.ReadyNode{{Node: "join", Needs: needs, Block: 2}}
	for i := range runs {
		submitRoots(t, a, fmt.Sprintf("r%02d", i), needs...)
	}
	tasks, err := a.ClaimTasks(ctx, "h1", runs*fan, time.Minute)
	if err != nil || len(tasks) != runs*fan {
		t.Fatalf("claimed %d, %v", len(tasks), err)
	}
	var wg sync.WaitGroup
	for i, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			if _, _, err := s.CompleteTask(ctx, statestore.Completion{Fence: task.Fence(),
				Result: statestore.NodeResult{RunID: task.RunID, Node: task.Node}, Next: join}); err != nil {
				t.Errorf("complete %s/%s: %v", task.RunID, task.Node, err)
			}
		}()
	}
	wg.Wait()
	joins, err := b.ClaimTasks(ctx, "h2", 2*runs, time.Minute)
	if err != nil || len(joins) != runs {
		t.Fatalf("claimed %d joins, %v; want %d", len(joins), err, runs)
	}
	for _, j := range joins {
		if last, _ := a.LastAttempt(ctx, j.RunID, "join"); j.Node != "join" || j.First != 1 || last != 2 {
			t.Fatalf("join %+v, last attempt %d: want one block of 2 reserved once", j, last)
		}
	}
}

// TestStore_ClaimSkipsSleepers: a claim finds the due tasks through
// tasks_due and does not read the tasks released with a delay (sleeping
// runs), however many there are.
func TestStore_ClaimSkipsSleepers(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url)
	ctx := context.Background()
	const n = 200
	for i := range n {
		submitRoots(t, s, fmt.Sprintf("sleeper-%04d", i), "a")
	}
	tasks, err := s.ClaimTasks(ctx, "h1", n, time.Minute)
	if err != nil || len(tasks) != n {
		t.Fatalf("ClaimTasks = %d, %v", len(tasks), err)
	}
	for _, task := range tasks {
		if err := s.ReleaseTask(ctx, task.Fence(), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	submitRoots(t, s, "due", "a")
	conn := connect(t, url)
	// On a table this small the planner may read it whole; what matters is
	// that an index serves the claim's order without reading sleepers.
	if _, err := conn.Exec(ctx, "ANALYZE tasks; SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF) "+pgstore.ClaimAnySQL, []byte("h2"), 10, int64(time.Minute/time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "tasks_due") {
		t.Fatalf("the claim does not read tasks_due:\n%s", plan)
	}
	for _, l := range lines {
		var removed int
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "Rows Removed by Filter: %d", &removed); err == nil && removed > 10 {
			t.Fatalf("the claim read %d tasks it did not take:\n%s", removed, plan)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimTasks(ctx, "h2", 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].RunID != "due" {
		t.Fatalf("ClaimTasks = %v, %v; want the due task only", got, err)
	}
}

// TestStore_HeartbeatDoesNotWait: a heartbeat does not wait for a task row
// another transaction holds locked (a completion of it in progress): it
// extends the other leases at once, and the locked claim still counts as
// holding; the next heartbeat extends it.
func TestStore_HeartbeatDoesNotWait(t *testing.T) {
	s, _, url := hosts(t)
	ctx := context.Background()
	submitRoots(t, s, "hb", "a", "b")
	tasks, err := s.ClaimRunTasks(ctx, "h1", "hb", 10, time.Minute)
	if err != nil || len(tasks) != 2 {
		t.Fatalf("ClaimRunTasks = %v, %v", tasks, err)
	}
	until := func(node string) time.Time {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var u time.Time
		if err := conn.QueryRow(ctx, "SELECT lease_until FROM tasks WHERE run_id = 'hb' AND node = $1", []byte(node)).Scan(&u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	beforeA, beforeB := until("a"), until("b")
	locker := connect(t, url)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM tasks WHERE run_id = 'hb' AND node = 'a' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	fences := []statestore.Fence{tasks[0].Fence(), tasks[1].Fence()}
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	lost, err := s.ExtendLeases(hctx, "h1", fences, 2*time.Minute)
	if err != nil || len(lost) != 0 {
		t.Fatalf("ExtendLeases with a row locked elsewhere = %v, %v; want no claim lost, no wait", lost, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := until("a"), until("b"); !a.Equal(beforeA) || !b.After(beforeB) {
		t.Fatalf("leases: a %v -> %v (locked: unchanged), b %v -> %v (extended)", beforeA, a, beforeB, b)
	}
	if lost, err := s.ExtendLeases(ctx, "h1", fences, 2*time.Minute); err != nil || len(lost) != 0 || !until("a").After(beforeA) {
		t.Fatalf("next heartbeat = %v, %v; want a's lease extended", lost, err)
	}
}
