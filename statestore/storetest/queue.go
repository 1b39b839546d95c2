package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// QueueStore is a store with a task queue.
type QueueStore interface {
	statestore.Store
	statestore.Queue
}

// RunQueue runs the conformance suite of statestore.Queue. newStore may
// return two handles of one shared store (other is nil when the store
// serves one process): the suite then also checks that claims made
// through one are seen by the other.
func RunQueue(t *testing.T, newStore func(t *testing.T) (s, other QueueStore)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s, other QueueStore)
	}{
		{"SubmitRun", testSubmitRun},
		{"Claim", testClaim},
		{"Claim_Hammer", testClaimHammer},
		{"Lease_Rescue", testLeaseRescue},
		{"ClaimExpiredTasks", testClaimExpired},
		{"ClaimOwnTasks", testClaimOwn},
		{"CompleteTask", testCompleteTask},
		{"CompleteTask_Fenced", testCompleteTaskFenced},
		{"CompleteTask_Conflict", testCompleteTaskConflict},
		{"CompleteTask_JoinHammer", testJoinHammer},
		{"ExtendLeases", testExtendLeases},
		{"ReleaseTask", testReleaseTask},
		{"WakeTask", testWakeTask},
		{"DropTasks", testDropTasks},
		{"EnqueueNodes", testEnqueueNodes},
		{"UnqueuedRuns", testUnqueuedRuns},
		{"FencedWrites", testFencedWrites},
		{"Queue_InvalidArguments", testQueueInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, other := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			if other == nil {
				other = s
			} else {
				t.Cleanup(func() { _ = other.Close() })
			}
			tt.fn(t, s, other)
		})
	}
}

const lease = time.Minute

func root(node string) statestore.ReadyNode { return statestore.ReadyNode{Node: node, Block: 3} }

func submit(t *testing.T, s QueueStore, id string, roots ...statestore.ReadyNode) {
	t.Helper()
	_, created, err := s.SubmitRun(context.Background(), statestore.Run{ID: id, Workflow: "wf", Input: []byte("in-" + id),
		Status: statestore.StatusRunning}, roots)
	if err != nil || !created {
		t.Fatalf("SubmitRun(%s) = created %v, %v", id, created, err)
	}
}

func claimAll(t *testing.T, s QueueStore, owner string, max int, d time.Duration) []statestore.Task {
	t.Helper()
	tasks, err := s.ClaimTasks(context.Background(), owner, max, d)
	if err != nil {
		t.Fatalf("ClaimTasks(%s): %v", owner, err)
	}
	return tasks
}

func taskNames(tasks []statestore.Task) []string {
	var out []string
	for _, t := range tasks {
		out = append(out, t.RunID+"/"+t.Node)
	}
	sort.Strings(out)
	return out
}

func complete(s QueueStore, task statestore.Task, out string, next ...statestore.ReadyNode) (statestore.Task, bool, error) {
	return s.CompleteTask(context.Background(), statestore.Completion{Fence: task.Fence(),
		Result: statestore.NodeResult{RunID: task.RunID, Node: task.Node, Output: []byte(out), Attempts: task.First},
		Next:   next})
}

func testSubmitRun(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"), root("b"))
	// Submitting again queues nothing more.
	if _, created, err := s.SubmitRun(ctx, statestore.Run{ID: "r1", Workflow: "wf", Input: []byte("in-r1")}, []statestore.ReadyNode{root("c")}); err != nil || created {
		t.Fatalf("second SubmitRun = created %v, %v; want false, nil", created, err)
	}
	// Another input: a conflict, nothing queued.
	_, _, err := s.SubmitRun(ctx, statestore.Run{ID: "r1", Workflow: "wf", Input: []byte("other")}, []statestore.ReadyNode{root("d")})
	wantErr(t, "SubmitRun with another input", err, statestore.ErrConflict)
	tasks := claimAll(t, other, "h1", 10, lease)
	if got := taskNames(tasks); fmt.Sprint(got) != "[r1/a r1/b]" {
		t.Fatalf("claimed %v, want [r1/a r1/b]", got)
	}
	for _, task := range tasks {
		if task.Owner != "h1" || task.Token < 1 || task.Claims != 1 || task.First != 1 || task.LeaseUntil.IsZero() {
			t.Fatalf("claimed task %+v: want owner h1, a token, first claim, first attempt 1, a lease", task)
		}
		// The block of attempts is reserved with the task.
		if last, err := s.LastAttempt(ctx, "r1", task.Node); err != nil || last != 3 {
			t.Fatalf("LastAttempt(%s) = %d, %v; want 3", task.Node, last, err)
		}
	}
	if tasks[0].Token == tasks[1].Token {
		t.Fatalf("two claims share token %d", tasks[0].Token)
	}
	if more := claimAll(t, s, "h2", 10, lease); len(more) != 0 {
		t.Fatalf("claimed tasks that are leased: %v", taskNames(more))
	}
}

func testClaim(t *testing.T, s, other QueueStore) {
	for i := range 5 {
		submit(t, s, fmt.Sprintf("r%d", i), root("a"))
	}
	// Oldest first, at most max.
	first := claimAll(t, s, "h1", 2, lease)
	if got := taskNames(first); fmt.Sprint(got) != "[r0/a r1/a]" {
		t.Fatalf("first claim = %v, want the two oldest [r0/a r1/a]", got)
	}
	one, err := other.ClaimRunTasks(context.Background(), "h2", "r3", 10, lease)
	if err != nil || fmt.Sprint(taskNames(one)) != "[r3/a]" {
		t.Fatalf("ClaimRunTasks(r3) = %v, %v; want [r3/a]", taskNames(one), err)
	}
	if none, err := s.ClaimRunTasks(context.Background(), "h1", "r0", 10, lease); err != nil || len(none) != 0 {
		t.Fatalf("ClaimRunTasks of a claimed run = %v, %v; want none", taskNames(none), err)
	}
	rest := claimAll(t, other, "h2", 10, lease)
	if got := taskNames(rest); fmt.Sprint(got) != "[r2/a r4/a]" {
		t.Fatalf("second claim = %v, want [r2/a r4/a]", got)
	}
}

func testClaimHammer(t *testing.T, s, other QueueStore) {
	const runs, owners = 200, 8
	for i := range runs {
		submit(t, s, fmt.Sprintf("r%03d", i), root("a"))
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for o := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := s
			if o%2 == 1 {
				store = other
			}
			owner := fmt.Sprintf("h%d", o)
			for {
				tasks, err := store.ClaimTasks(context.Background(), owner, 3, lease)
				if err != nil {
					t.Errorf("ClaimTasks: %v", err)
					return
				}
				if len(tasks) == 0 {
					return
				}
				mu.Lock()
				for _, task := range tasks {
					k := task.RunID + "/" + task.Node
					if prev, dup := seen[k]; dup {
						t.Errorf("%s claimed by %s and %s", k, prev, owner)
					}
					seen[k] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != runs {
		t.Fatalf("%d tasks claimed, want %d", len(seen), runs)
	}
}

func testLeaseRescue(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"))
	short := 300 * time.Millisecond
	tasks := claimAll(t, s, "h1", 1, short)
	if len(tasks) != 1 {
		t.Fatalf("claimed %d tasks, want 1", len(tasks))
	}
	if more := claimAll(t, other, "h2", 1, lease); len(more) != 0 {
		t.Fatal("a task was claimed while its lease held")
	}
	var rescued []statestore.Task
	deadline := time.Now().Add(10 * time.Second)
	for len(rescued) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		rescued = claimAll(t, other, "h2", 1, lease)
	}
	if len(rescued) != 1 {
		t.Fatal("an expired lease was never rescued")
	}
	r := rescued[0]
	if r.Owner != "h2" || r.Claims != 2 || r.Token == tasks[0].Token {
		t.Fatalf("rescued task %+v: want owner h2, second claim, a new token", r)
	}
	// The first owner's claim is gone: its writes are fenced.
	wantErr(t, "CheckFence of the lost claim", s.CheckFence(ctx, tasks[0].Fence()), statestore.ErrFenced)
	if err := other.CheckFence(ctx, r.Fence()); err != nil {
		t.Fatalf("CheckFence of the live claim: %v", err)
	}
}

func testCompleteTask(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	// a → b, a → c, (b, c) → d
	submit(t, s, "r1", root("a"))
	tasks := claimAll(t, s, "h1", 1, lease)
	next, ok, err := s.CompleteTask(ctx, statestore.Completion{Fence: tasks[0].Fence(),
		Result: statestore.NodeResult{RunID: "r1", Node: "a", Output: []byte("A"), Attempts: 1},
		Next:   []statestore.ReadyNode{{Node: "b", Needs: []string{"a"}, Block: 2}, {Node: "c", Needs: []string{"a"}, Block: 2}},
		Keep:   true, Lease: lease})
	if err != nil || !ok {
		t.Fatalf("CompleteTask(a) = %v, %v; want a kept task", ok, err)
	}
	if next.Node != "b" || next.Owner != "h1" || next.Claims != 1 || next.First != 1 {
		t.Fatalf("kept task %+v, want b claimed by h1, first claim, first attempt 1", next)
	}
	if last, _ := s.LastAttempt(ctx, "r1", "c"); last != 2 {
		t.Fatalf("LastAttempt(c) = %d, want the reserved block 2", last)
	}
	rest := claimAll(t, other, "h2", 10, lease)
	if got := taskNames(rest); fmt.Sprint(got) != "[r1/c]" {
		t.Fatalf("claimable after a = %v, want [r1/c]", got)
	}
	join := []statestore.ReadyNode{{Node: "d", Needs: []string{"b", "c"}, Block: 1}}
	if _, ok, err := complete(s, next, "B", join...); err != nil || ok {
		t.Fatalf("CompleteTask(b) = %v, %v", ok, err)
	}
	if more := claimAll(t, s, "h1", 10, lease); len(more) != 0 {
		t.Fatalf("d queued before all its needs finished: %v", taskNames(more))
	}
	if _, _, err := complete(other, rest[0], "C", join...); err != nil {
		t.Fatalf("CompleteTask(c): %v", err)
	}
	d := claimAll(t, s, "h1", 10, lease)
	if got := taskNames(d); fmt.Sprint(got) != "[r1/d]" {
		t.Fatalf("claimable after b and c = %v, want [r1/d]", got)
	}
	if _, _, err := complete(s, d[0], "D"); err != nil {
		t.Fatal(err)
	}
	res, err := s.NodeResults(ctx, "r1")
	if err != nil || len(res) != 4 || string(res["d"].Output) != "D" || string(res["a"].Output) != "A" {
		t.Fatalf("journal after the run = %v, %v", res, err)
	}
	if more := claimAll(t, s, "h1", 10, lease); len(more) != 0 {
		t.Fatalf("tasks left after the last node: %v", taskNames(more))
	}
	ids, _, err := s.UnqueuedRuns(ctx, "", 10)
	if err != nil || fmt.Sprint(ids) != "[r1]" {
		t.Fatalf("UnqueuedRuns = %v, %v; want [r1] (unfinished, no task)", ids, err)
	}
}

func testCompleteTaskFenced(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"))
	old := claimAll(t, s, "h1", 1, 200*time.Millisecond)[0]
	time.Sleep(400 * time.Millisecond)
	var rescued []statestore.Task
	for deadline := time.Now().Add(10 * time.Second); len(rescued) == 0 && time.Now().Before(deadline); {
		rescued = claimAll(t, other, "h2", 1, lease)
		if len(rescued) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(rescued) != 1 {
		t.Fatal("expired lease not rescued")
	}
	_, _, err := complete(s, old, "stale", statestore.ReadyNode{Node: "b", Needs: []string{"a"}, Block: 1})
	wantErr(t, "completion under a lost claim", err, statestore.ErrFenced)
	res, _ := s.NodeResults(ctx, "r1")
	if len(res) != 0 {
		t.Fatalf("a fenced completion was journaled: %v", res)
	}
	if last, _ := s.LastAttempt(ctx, "r1", "b"); last != 0 {
		t.Fatalf("a fenced completion reserved attempts of b: %d", last)
	}
	if _, _, err := complete(other, rescued[0], "fresh", statestore.ReadyNode{Node: "b", Needs: []string{"a"}, Block: 1}); err != nil {
		t.Fatalf("completion under the live claim: %v", err)
	}
	res, _ = s.NodeResults(ctx, "r1")
	if string(res["a"].Output) != "fresh" {
		t.Fatalf("journal = %v, want the rescuer's output", res)
	}
	// The stale owner's fence stays dead, also now that the task is gone.
	_, _, err = complete(s, old, "stale")
	wantErr(t, "second stale completion", err, statestore.ErrFenced)
}

func testCompleteTaskConflict(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"))
	task := claimAll(t, s, "h1", 1, lease)[0]
	if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r1", Node: "a", Output: []byte("first"), Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	_, _, err := complete(s, task, "second", statestore.ReadyNode{Node: "b", Needs: []string{"a"}, Block: 1})
	wantErr(t, "completion of a journaled node", err, statestore.ErrConflict)
	res, _ := s.NodeResults(ctx, "r1")
	if string(res["a"].Output) != "first" {
		t.Fatalf("journal = %v, want the first entry", res)
	}
	if more := claimAll(t, other, "h2", 10, lease); len(more) != 0 {
		t.Fatalf("tasks after a conflicting completion: %v (want the task removed, nothing queued)", taskNames(more))
	}
}

// testJoinHammer completes the two needs of a join on two handles at once:
// the join is queued exactly once.
func testJoinHammer(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	const runs = 60
	join := []statestore.ReadyNode{{Node: "d", Needs: []string{"b", "c"}, Block: 1}}
	for i := range runs {
		submit(t, s, fmt.Sprintf("r%03d", i), root("b"), root("c"))
	}
	var b, c []statestore.Task
	for _, task := range claimAll(t, s, "h1", 2*runs, lease) {
		if task.Node == "b" {
			b = append(b, task)
		} else {
			c = append(c, task)
		}
	}
	if len(b) != runs || len(c) != runs {
		t.Fatalf("claimed %d b and %d c, want %d each", len(b), len(c), runs)
	}
	var wg sync.WaitGroup
	for _, half := range []struct {
		store QueueStore
		tasks []statestore.Task
	}{{s, b}, {other, c}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, task := range half.tasks {
				if _, _, err := complete(half.store, task, task.Node, join...); err != nil {
					t.Errorf("complete %s/%s: %v", task.RunID, task.Node, err)
				}
			}
		}()
	}
	wg.Wait()
	d := claimAll(t, s, "h3", 3*runs, lease)
	if len(d) != runs {
		t.Fatalf("%d joins queued for %d runs, want exactly one each", len(d), runs)
	}
	for _, task := range d {
		if last, _ := s.LastAttempt(ctx, task.RunID, "d"); task.Node != "d" || last != 1 || task.First != 1 {
			t.Fatalf("join task %+v with last attempt %d, want d with one block reserved once", task, last)
		}
	}
}

func testExtendLeases(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"), root("b"), root("c"))
	short := 500 * time.Millisecond
	tasks := claimAll(t, s, "h1", 3, short)
	var fences []statestore.Fence
	for _, task := range tasks {
		fences = append(fences, task.Fence())
	}
	// Heartbeats keep the claims past their first lease.
	for range 4 {
		time.Sleep(short / 3)
		lost, err := s.ExtendLeases(ctx, "h1", fences, short)
		if err != nil || len(lost) != 0 {
			t.Fatalf("ExtendLeases = lost %v, %v; want none lost", lost, err)
		}
		if more := claimAll(t, other, "h2", 3, lease); len(more) != 0 {
			t.Fatalf("claimed %v while heartbeats held them", taskNames(more))
		}
	}
	// One completed, one dropped with its run's other tasks: both lost.
	if _, _, err := complete(s, tasks[0], "x"); err != nil {
		t.Fatal(err)
	}
	lost, err := s.ExtendLeases(ctx, "h1", fences, short)
	if err != nil || len(lost) != 1 || lost[0] != fences[0] {
		t.Fatalf("ExtendLeases after a completion = %v, %v; want the completed one lost", lost, err)
	}
	if err := s.DropTasks(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	lost, err = s.ExtendLeases(ctx, "h1", fences, short)
	if err != nil || len(lost) != 3 {
		t.Fatalf("ExtendLeases after DropTasks = %v, %v; want all lost", lost, err)
	}
	// Another owner cannot extend a claim it does not hold.
	submit(t, s, "r2", root("a"))
	mine := claimAll(t, s, "h1", 1, lease)[0]
	lost, err = other.ExtendLeases(ctx, "h2", []statestore.Fence{mine.Fence()}, lease)
	if err != nil || len(lost) != 1 {
		t.Fatalf("ExtendLeases of another owner's claim = %v, %v; want it lost", lost, err)
	}
}

func testReleaseTask(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"))
	task := claimAll(t, s, "h1", 1, lease)[0]
	if err := s.ReleaseTask(ctx, task.Fence(), 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "release of a released claim", s.ReleaseTask(ctx, task.Fence(), 0), statestore.ErrFenced)
	if more := claimAll(t, other, "h2", 1, lease); len(more) != 0 {
		t.Fatal("a task was claimed before its release delay")
	}
	var again []statestore.Task
	for deadline := time.Now().Add(10 * time.Second); len(again) == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		again = claimAll(t, other, "h2", 1, lease)
	}
	if len(again) != 1 || again[0].Claims != 2 {
		t.Fatalf("after the delay claimed %+v, want the task on its second claim", again)
	}
}

func testWakeTask(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"), root("b"))
	tasks := claimAll(t, s, "h1", 2, lease)
	if len(tasks) != 2 {
		t.Fatalf("claimed %d tasks, want 2", len(tasks))
	}
	// Waking a claimed task changes nothing: its claim holds.
	if err := other.WakeTask(ctx, "r1", tasks[1].Node); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFence(ctx, tasks[1].Fence()); err != nil {
		t.Fatalf("claim after WakeTask of a claimed task: %v", err)
	}
	if err := s.ReleaseTask(ctx, tasks[0].Fence(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if more := claimAll(t, other, "h2", 2, lease); len(more) != 0 {
		t.Fatalf("claimed %v before the release delay", taskNames(more))
	}
	if err := other.WakeTask(ctx, "r1", tasks[0].Node); err != nil {
		t.Fatal(err)
	}
	var again []statestore.Task
	for deadline := time.Now().Add(10 * time.Second); len(again) == 0 && time.Now().Before(deadline); {
		again = claimAll(t, s, "h2", 2, lease)
		if len(again) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(again) != 1 || again[0].Node != tasks[0].Node || again[0].Claims != 2 {
		t.Fatalf("after WakeTask claimed %+v, want %s on its second claim", again, tasks[0].Node)
	}
	// A missing task or run is not an error.
	for _, id := range [][2]string{{"r1", "nope"}, {"nope", "a"}} {
		if err := s.WakeTask(ctx, id[0], id[1]); err != nil {
			t.Fatalf("WakeTask(%s, %s) = %v, want nil", id[0], id[1], err)
		}
	}
	wantErr(t, "WakeTask with an empty run ID", s.WakeTask(ctx, "", "a"), statestore.ErrInvalid)
}

func testDropTasks(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"), root("b"))
	submit(t, s, "r2", root("a"))
	claimed := claimAll(t, s, "h1", 1, lease)[0]
	if err := other.DropTasks(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if got := taskNames(claimAll(t, s, "h1", 10, lease)); fmt.Sprint(got) != "[r2/a]" {
		t.Fatalf("claimable after DropTasks(r1) = %v, want [r2/a]", got)
	}
	wantErr(t, "check of a dropped claim", s.CheckFence(ctx, claimed.Fence()), statestore.ErrFenced)
	if err := s.DropTasks(ctx, "r1"); err != nil {
		t.Fatalf("second DropTasks: %v", err)
	}
}

func testEnqueueNodes(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"))
	task := claimAll(t, s, "h1", 1, lease)[0]
	if _, _, err := complete(s, task, "A"); err != nil { // no dependents queued
		t.Fatal(err)
	}
	err := s.EnqueueNodes(ctx, "r1", []statestore.ReadyNode{
		{Node: "a", Block: 1},                            // journaled: skipped
		{Node: "b", Needs: []string{"a"}, Block: 2},      // ready
		{Node: "c", Needs: []string{"a", "b"}, Block: 2}, // b not journaled: skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	// Again: b has a task already.
	if err := other.EnqueueNodes(ctx, "r1", []statestore.ReadyNode{{Node: "b", Needs: []string{"a"}, Block: 2}}); err != nil {
		t.Fatal(err)
	}
	got := claimAll(t, other, "h2", 10, lease)
	if fmt.Sprint(taskNames(got)) != "[r1/b]" || got[0].First != 1 {
		t.Fatalf("claimed %+v, want r1/b once with first attempt 1", got)
	}
	wantErr(t, "EnqueueNodes of a missing run", s.EnqueueNodes(ctx, "nope", []statestore.ReadyNode{root("a")}), statestore.ErrNotFound)
}

func testUnqueuedRuns(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	mustCreate(t, s, "r1") // created without tasks
	submit(t, s, "r2", root("a"))
	mustCreate(t, s, "r3")
	mustCreate(t, s, "r4")
	if _, err := s.UpdateRun(ctx, "r4", func(r *statestore.Run) error { r.Status = statestore.StatusSucceeded; return nil }); err != nil {
		t.Fatal(err)
	}
	ids, next, err := other.UnqueuedRuns(ctx, "", 1)
	if err != nil || fmt.Sprint(ids) != "[r1]" || next == "" {
		t.Fatalf("UnqueuedRuns page 1 = %v, %q, %v; want [r1] and a cursor", ids, next, err)
	}
	ids, next, err = other.UnqueuedRuns(ctx, next, 10)
	if err != nil || fmt.Sprint(ids) != "[r3]" || next != "" {
		t.Fatalf("UnqueuedRuns page 2 = %v, %q, %v; want [r3], last page", ids, next, err)
	}
}

func testFencedWrites(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	submit(t, s, "r1", root("a"))
	old := claimAll(t, s, "h1", 1, 200*time.Millisecond)[0]
	live := statestore.WithFence(ctx, old.Fence())
	if _, err := s.SaveCheckpoint(live, "r1", "a", []byte("cp1")); err != nil {
		t.Fatalf("checkpoint under a live claim: %v", err)
	}
	if err := s.StateSet(live, "p", "k", []byte("v1")); err != nil {
		t.Fatalf("state under a live claim: %v", err)
	}
	var rescued []statestore.Task
	for deadline := time.Now().Add(10 * time.Second); len(rescued) == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		rescued = claimAll(t, other, "h2", 1, lease)
	}
	if len(rescued) != 1 {
		t.Fatal("expired lease not rescued")
	}
	_, err := s.SaveCheckpoint(live, "r1", "a", []byte("stale"))
	wantErr(t, "checkpoint under a lost claim", err, statestore.ErrFenced)
	wantErr(t, "StateSet under a lost claim", s.StateSet(live, "p", "k", []byte("stale")), statestore.ErrFenced)
	wantErr(t, "StateDelete under a lost claim", s.StateDelete(live, "p", "k"), statestore.ErrFenced)
	cp, err := s.LatestCheckpoint(ctx, "r1", "a")
	if err != nil || string(cp.Data) != "cp1" || cp.Seq != 1 {
		t.Fatalf("latest checkpoint = %+v, %v; want cp1 only", cp, err)
	}
	if v, err := s.StateGet(ctx, "p", "k"); err != nil || string(v) != "v1" {
		t.Fatalf("state = %q, %v; want v1", v, err)
	}
	fresh := statestore.WithFence(ctx, rescued[0].Fence())
	if _, err := other.SaveCheckpoint(fresh, "r1", "a", []byte("cp2")); err != nil {
		t.Fatalf("checkpoint under the rescuer's claim: %v", err)
	}
}

func testQueueInvalid(t *testing.T, s, other QueueStore) {
	ctx := context.Background()
	_, _, err := s.SubmitRun(ctx, statestore.Run{ID: "r1", Workflow: "wf"}, []statestore.ReadyNode{{Node: "a", Block: 0}})
	wantErr(t, "SubmitRun with a zero block", err, statestore.ErrInvalid)
	if _, err := s.GetRun(ctx, "r1"); !errors.Is(err, statestore.ErrNotFound) {
		t.Fatalf("an invalid SubmitRun created its run: %v", err)
	}
	_, err = s.ClaimTasks(ctx, "", 1, lease)
	wantErr(t, "ClaimTasks without owner", err, statestore.ErrInvalid)
	_, err = s.ClaimTasks(ctx, "h1", 0, lease)
	wantErr(t, "ClaimTasks of 0", err, statestore.ErrInvalid)
	_, err = s.ClaimTasks(ctx, "h1", 1, 0)
	wantErr(t, "ClaimTasks without lease", err, statestore.ErrInvalid)
	_, _, err = s.CompleteTask(ctx, statestore.Completion{Fence: statestore.Fence{RunID: "r1", Node: "a", Owner: "h1", Token: 1},
		Result: statestore.NodeResult{RunID: "r1", Node: "b"}})
	wantErr(t, "CompleteTask of another node than its fence", err, statestore.ErrInvalid)
	submit(t, s, "r2", root("a"))
	task := claimAll(t, s, "h1", 1, lease)[0]
	_, _, err = complete(s, task, "x", statestore.ReadyNode{Node: "a", Block: 1})
	wantErr(t, "CompleteTask readying itself", err, statestore.ErrInvalid)
	if err := s.CheckFence(ctx, task.Fence()); err != nil {
		t.Fatalf("an invalid completion changed the claim: %v", err)
	}
}
