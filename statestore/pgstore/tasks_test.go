package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
)

// TestStore_CompleteTogether: the completions of one group are journaled
// by one call, each as if it were alone: a diamond's two needs completed
// together queue the join once, a chain's dependent is kept by its
// completing owner with its attempts reserved, a repeated completion and a
// stale or unknown claim are fenced, a node completed already is a
// conflict that queues nothing, and no member's refusal undoes another's
// write.
func TestStore_CompleteTogether(t *testing.T) {
	s, other, _ := hosts(t)
	ctx := context.Background()
	const lease = time.Minute
	claim := func(run string, want int) []statestore.Task {
		t.Helper()
		tasks, err := s.ClaimRunTasks(ctx, "h1", run, 10, lease)
		if err != nil || len(tasks) != want {
			t.Fatalf("ClaimRunTasks(%s) = %v, %v; want %d tasks", run, tasks, err, want)
		}
		return tasks
	}
	done := func(f statestore.Fence, keep bool, next ...statestore.ReadyNode) statestore.Completion {
		return statestore.Completion{Fence: f, Keep: keep, Lease: lease, Next: next,
			Result: statestore.NodeResult{RunID: f.RunID, Node: f.Node, Output: []byte(f.RunID + "/" + f.Node)}}
	}
	// Run d: a, then b and c, then dd, which needs both.
	submitRoots(t, s, "d", "a")
	a := claim("d", 1)[0]
	if _, _, err := s.CompleteTask(ctx, done(a.Fence(), false,
		statestore.ReadyNode{Node: "b", Needs: []string{"a"}, Block: 1},
		statestore.ReadyNode{Node: "c", Needs: []string{"a"}, Block: 1})); err != nil {
		t.Fatal(err)
	}
	bc := claim("d", 2)
	join := statestore.ReadyNode{Node: "dd", Needs: []string{"b", "c"}, Block: 1}
	submitRoots(t, s, "ch", "x")
	x := claim("ch", 1)[0]
	submitRoots(t, s, "dup", "y")
	y := claim("dup", 1)[0]
	submitRoots(t, s, "done", "z")
	z := claim("done", 1)[0]
	if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "done", Node: "z", Output: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	submitRoots(t, s, "stale", "w")
	w := claim("stale", 1)[0].Fence()
	w.Token += 1000

	kept, errs, err := pgstore.CompleteTogether(ctx, s,
		done(bc[0].Fence(), true, join),
		done(bc[1].Fence(), true, join),
		done(x.Fence(), true,
			statestore.ReadyNode{Node: "x2", Needs: []string{"x"}, Block: 3},
			statestore.ReadyNode{Node: "x3", Needs: []string{"x", "never"}, Block: 1}),
		done(y.Fence(), false),
		done(y.Fence(), false),
		done(z.Fence(), true, statestore.ReadyNode{Node: "z2", Needs: []string{"z"}, Block: 1}),
		done(w, false),
		done(statestore.Fence{RunID: "nope", Node: "q", Owner: "h1", Token: 1}, false),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []error{nil, nil, nil, nil, nil, statestore.ErrConflict, statestore.ErrFenced, statestore.ErrFenced}
	for i, werr := range want {
		if i == 3 || i == 4 {
			continue
		}
		if (werr == nil) != (errs[i] == nil) || (werr != nil && !errors.Is(errs[i], werr)) {
			t.Fatalf("member %d: %v, want %v", i, errs[i], werr)
		}
	}
	// The same claim completed twice: once stored, once fenced.
	if (errs[3] == nil) == (errs[4] == nil) || !errors.Is(errors.Join(errs[3], errs[4]), statestore.ErrFenced) {
		t.Fatalf("a claim completed twice: %v, %v; want one nil, one ErrFenced", errs[3], errs[4])
	}
	// The join is queued once, kept by one of its needs' completions.
	if (kept[0].Node == "dd") == (kept[1].Node == "dd") {
		t.Fatalf("kept by b: %+v, by c: %+v; want dd kept by exactly one", kept[0], kept[1])
	}
	dd := kept[0]
	if dd.Node == "" {
		dd = kept[1]
	}
	if dd.Owner != "h1" || dd.First != 1 || dd.Claims != 1 || dd.RunID != "d" {
		t.Fatalf("kept join = %+v", dd)
	}
	if last, _ := other.LastAttempt(ctx, "d", "dd"); last != 1 {
		t.Fatalf("LastAttempt(dd) = %d, want 1", last)
	}
	// The chain's dependent: kept, its block of attempts reserved.
	if k := kept[2]; k.Node != "x2" || k.Owner != "h1" || k.First != 1 || k.Claims != 1 || k.RunID != "ch" {
		t.Fatalf("kept chain dependent = %+v", k)
	}
	if last, _ := other.LastAttempt(ctx, "ch", "x2"); last != 3 {
		t.Fatalf("LastAttempt(x2) = %d, want the block of 3", last)
	}
	for _, k := range []statestore.Task{dd, kept[2]} {
		if err := other.CheckFence(ctx, k.Fence()); err != nil {
			t.Fatalf("kept claim %s/%s does not hold: %v", k.RunID, k.Node, err)
		}
	}
	// Nothing else was kept or queued: x3 waits for a need, z2's need
	// completed before, the others have no dependents.
	for i, k := range kept {
		if i != 0 && i != 1 && i != 2 && k != (statestore.Task{}) {
			t.Fatalf("member %d kept %+v", i, k)
		}
	}
	for _, rn := range [][2]string{{"ch", "x3"}, {"done", "z2"}} {
		if last, _ := other.LastAttempt(ctx, rn[0], rn[1]); last != 0 {
			t.Fatalf("%s/%s reserved attempts: %d", rn[0], rn[1], last)
		}
	}
	for _, run := range []string{"d", "ch", "dup", "done", "stale"} {
		if tasks, err := other.ClaimRunTasks(ctx, "h2", run, 10, lease); err != nil || len(tasks) != 0 {
			t.Fatalf("run %s still has claimable tasks: %v, %v", run, tasks, err)
		}
	}
	// The journal: every stored completion, and nothing of the refused.
	wantRes := map[string][]string{"d": {"a", "b", "c"}, "ch": {"x"}, "dup": {"y"}, "done": {"z"}, "stale": nil}
	for run, nodes := range wantRes {
		res, err := other.NodeResults(ctx, run)
		if err != nil || len(res) != len(nodes) {
			t.Fatalf("NodeResults(%s) = %v, %v; want %v", run, res, err, nodes)
		}
		for _, n := range nodes {
			out := run + "/" + n
			if run == "done" {
				out = "first"
			}
			if string(res[n].Output) != out {
				t.Fatalf("%s/%s journaled %q, want %q", run, n, res[n].Output, out)
			}
		}
	}
}

// TestStore_SubmitRunClaim: the submit claims the run's first root for its
// submitter (Claims 1, the root's reserved attempts), the other roots are
// queued for anyone, and a second submit of the run claims nothing.
func TestStore_SubmitRunClaim(t *testing.T) {
	s, other, _ := hosts(t)
	ctx := context.Background()
	r := statestore.Run{ID: "r", Workflow: "wf", Status: statestore.StatusRunning}
	roots := []statestore.ReadyNode{{Node: "a", Block: 3}, {Node: "b", Block: 1}}
	if _, _, _, _, err := s.SubmitRunClaim(ctx, r, roots, "", time.Minute); !errors.Is(err, statestore.ErrInvalid) {
		t.Fatalf("SubmitRunClaim without an owner = %v, want ErrInvalid", err)
	}
	stored, created, task, claimed, err := s.SubmitRunClaim(ctx, r, roots, "h1", time.Minute)
	if err != nil || !created || !claimed || stored.ID != "r" {
		t.Fatalf("SubmitRunClaim = %+v, %v, %v, %v", stored, created, claimed, err)
	}
	if task.RunID != "r" || task.Node != "a" || task.Owner != "h1" || task.Claims != 1 || task.First != 1 || task.Token == 0 {
		t.Fatalf("claimed %+v", task)
	}
	if err := other.CheckFence(ctx, task.Fence()); err != nil {
		t.Fatalf("the submit's claim does not hold: %v", err)
	}
	if last, _ := other.LastAttempt(ctx, "r", "a"); last != 3 {
		t.Fatalf("LastAttempt(a) = %d, want the block of 3", last)
	}
	rest, err := other.ClaimTasks(ctx, "h2", 10, time.Minute)
	if err != nil || len(rest) != 1 || rest[0].Node != "b" {
		t.Fatalf("ClaimTasks after the submit = %+v, %v; want b alone", rest, err)
	}
	_, created, _, claimed, err = other.SubmitRunClaim(ctx, r, roots, "h2", time.Minute)
	if err != nil || created || claimed {
		t.Fatalf("second SubmitRunClaim = created %v, claimed %v, %v", created, claimed, err)
	}
	// The claim completes like any other.
	if _, _, err := s.CompleteTask(ctx, statestore.Completion{Fence: task.Fence(),
		Result: statestore.NodeResult{RunID: "r", Node: "a", Output: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
}

// TestStore_GroupCompletionReadsByKey: a group's completion reaches every
// row it reads through a primary key, whatever the planner knows of the
// tables (here: nothing, they were never analyzed): tasks and
// node_results, which grow with every unfinished run and every node ever
// journaled, are never read whole.
func TestStore_GroupCompletionReadsByKey(t *testing.T) {
	s, _, _ := hosts(t)
	ctx := context.Background()
	const lease = time.Minute
	for round := range 3 {
		var cs []statestore.Completion
		for i := range 10 {
			id := fmt.Sprintf("g%d-%d", round, i)
			submitRoots(t, s, id, "a", "x")
			tasks, err := s.ClaimRunTasks(ctx, "h1", id, 10, lease)
			if err != nil || len(tasks) != 2 {
				t.Fatalf("ClaimRunTasks(%s) = %v, %v", id, tasks, err)
			}
			for _, task := range tasks {
				if task.Node == "a" {
					cs = append(cs, statestore.Completion{Fence: task.Fence(), Keep: true, Lease: lease,
						Result: statestore.NodeResult{RunID: id, Node: "a", Output: []byte("a")},
						Next: []statestore.ReadyNode{
							{Node: "b", Needs: []string{"a"}, Block: 1},
							{Node: "c", Needs: []string{"a", "x"}, Block: 1},
						}})
				}
			}
		}
		errs, scans, err := pgstore.CompleteTogetherScans(ctx, s, cs...)
		if err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d member %d: %v", round, i, err)
			}
		}
		for _, table := range []string{"tasks", "node_results", "node_attempts", "runs"} {
			if scans[table] != 0 {
				t.Errorf("round %d: %d sequential scans of %s, want none (all scans: %v)", round, scans[table], table, scans)
			}
		}
		// b was queued (kept); c waits for x.
		for _, c := range cs {
			tasks, err := s.ClaimRunTasks(ctx, "h2", c.Fence.RunID, 10, lease)
			if err != nil || len(tasks) != 0 {
				t.Fatalf("run %s: queued tasks %v, %v; want b kept and c waiting for x", c.Fence.RunID, tasks, err)
			}
		}
	}
}

// TestStore_CompletionReadsByKeyAfterVacuum: a completion of its own
// reaches every row through a primary key after the tables were vacuumed
// while empty, which prices them as small: the plans the write functions
// keep then would read node_results, tasks and runs whole, on every
// completion and for as long as they are kept.
func TestStore_CompletionReadsByKeyAfterVacuum(t *testing.T) {
	s, _, url := hosts(t)
	ctx := context.Background()
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, "VACUUM"); err != nil {
		t.Fatal(err)
	}
	const lease = time.Minute
	// More calls than the five after which a function keeps its plans.
	for i := range 8 {
		id := fmt.Sprintf("v%d", i)
		submitRoots(t, s, id, "a", "x")
		tasks, err := s.ClaimRunTasks(ctx, "h1", id, 10, lease)
		if err != nil || len(tasks) != 2 {
			t.Fatalf("ClaimRunTasks(%s) = %v, %v", id, tasks, err)
		}
		for _, task := range tasks {
			if task.Node != "a" {
				continue
			}
			errs, scans, err := pgstore.CompleteTogetherScans(ctx, s, statestore.Completion{
				Fence: task.Fence(), Keep: true, Lease: lease,
				Result: statestore.NodeResult{RunID: id, Node: "a", Output: []byte("a")},
				Next: []statestore.ReadyNode{
					{Node: "b", Needs: []string{"a"}, Block: 1},
					{Node: "c", Needs: []string{"a", "x"}, Block: 1},
				}})
			if err != nil || errs[0] != nil {
				t.Fatalf("completion %d: %v, %v", i, errs, err)
			}
			for _, table := range []string{"tasks", "node_results", "node_attempts", "runs"} {
				if scans[table] != 0 {
					t.Errorf("completion %d: %d sequential scans of %s, want none (all scans: %v)", i, scans[table], table, scans)
				}
			}
		}
	}
}

// startOne submits run id with one root, a, and claims it for h1.
func startOne(t *testing.T, s *pgstore.Store, id string, lease time.Duration) statestore.Task {
	t.Helper()
	submitRoots(t, s, id, "a")
	tasks, err := s.ClaimRunTasks(context.Background(), "h1", id, 10, lease)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("ClaimRunTasks(%s) = %v, %v", id, tasks, err)
	}
	return tasks[0]
}

// TestStore_CompleteTaskEnd: the run's last completion records the run's
// end in its commit while the run is as this store last saw it; when
// another host changed the run meanwhile, or the completion is refused,
// the run is left as it is for the caller to end.
func TestStore_CompleteTaskEnd(t *testing.T) {
	s, other, _ := hosts(t)
	ctx := context.Background()
	const lease = time.Minute
	succeed := func(r *statestore.Run) error {
		if r.Status.Finished() {
			return nil
		}
		r.Status, r.Output = statestore.StatusSucceeded, []byte("out")
		return nil
	}
	start := func(id string) statestore.Task { return startOne(t, s, id, lease) }
	done := func(f statestore.Fence) statestore.Completion {
		return statestore.Completion{Fence: f, Lease: lease,
			Result: statestore.NodeResult{RunID: f.RunID, Node: f.Node, Output: []byte("a")}}
	}
	status := func(id string) statestore.Run {
		t.Helper()
		r, err := other.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// Ended with the completion.
	a := start("one")
	final, ended, err := s.CompleteTaskEnd(ctx, done(a.Fence()), succeed)
	if err != nil || !ended || final.Status != statestore.StatusSucceeded || string(final.Output) != "out" {
		t.Fatalf("CompleteTaskEnd = %+v, %v, %v; want the run succeeded", final, ended, err)
	}
	if r := status("one"); r.Status != statestore.StatusSucceeded || string(r.Output) != "out" || r.FinishedAt.IsZero() {
		t.Fatalf("stored run = %+v, want succeeded with its output", r)
	}
	if res, err := other.NodeResults(ctx, "one"); err != nil || string(res["a"].Output) != "a" {
		t.Fatalf("journal = %v, %v", res, err)
	}

	// Another host cancelled the run meanwhile: the completion is stored,
	// the cancel stands.
	b := start("two")
	if _, err := other.UpdateRun(ctx, "two", func(r *statestore.Run) error {
		r.Status = statestore.StatusCancelled
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, ended, err := s.CompleteTaskEnd(ctx, done(b.Fence()), succeed); err != nil || ended {
		t.Fatalf("CompleteTaskEnd after a cancel elsewhere = %v, %v; want stored, not ended", ended, err)
	}
	if r := status("two"); r.Status != statestore.StatusCancelled {
		t.Fatalf("run after a cancel elsewhere = %s, want cancelled", r.Status)
	}
	if res, _ := other.NodeResults(ctx, "two"); len(res) != 1 {
		t.Fatalf("journal = %v, want the completion stored", res)
	}

	// A stale claim: refused, nothing written.
	c := start("three")
	stale := c.Fence()
	stale.Token += 1000
	if _, ended, err := s.CompleteTaskEnd(ctx, done(stale), succeed); !errors.Is(err, statestore.ErrFenced) || ended {
		t.Fatalf("CompleteTaskEnd of a stale claim = %v, %v; want ErrFenced", ended, err)
	}
	if r := status("three"); r.Status.Finished() {
		t.Fatalf("run after a refused completion = %s, want unfinished", r.Status)
	}
	if res, _ := other.NodeResults(ctx, "three"); len(res) != 0 {
		t.Fatalf("journal after a refused completion = %v", res)
	}

	// The node was journaled already: a conflict, the run is not ended.
	d := start("four")
	if err := other.CompleteNode(ctx, statestore.NodeResult{RunID: "four", Node: "a", Output: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if _, ended, err := s.CompleteTaskEnd(ctx, done(d.Fence()), succeed); !errors.Is(err, statestore.ErrConflict) || ended {
		t.Fatalf("CompleteTaskEnd of a journaled node = %v, %v; want ErrConflict", ended, err)
	}
	if r := status("four"); r.Status.Finished() {
		t.Fatalf("run after a conflict = %s, want unfinished", r.Status)
	}
}

// TestStore_EndsInGroup: completions that end their runs commit in one
// group with completions that do not, and each end is written only when
// its completion is stored and its run is still at the version the end
// was made from.
func TestStore_EndsInGroup(t *testing.T) {
	s, other, _ := hosts(t)
	ctx := context.Background()
	const lease = time.Minute
	succeed := func(r *statestore.Run) error {
		r.Status, r.Output = statestore.StatusSucceeded, []byte(r.ID)
		return nil
	}
	start := func(id string) statestore.Task { return startOne(t, s, id, lease) }
	done := func(f statestore.Fence, next ...statestore.ReadyNode) statestore.Completion {
		return statestore.Completion{Fence: f, Keep: true, Lease: lease, Next: next,
			Result: statestore.NodeResult{RunID: f.RunID, Node: f.Node, Output: []byte(f.RunID)}}
	}
	ends, plain, cancelled, stale, journaled := start("ends"), start("plain"), start("cancelled"), start("stale"), start("journaled")
	if _, err := other.UpdateRun(ctx, "cancelled", func(r *statestore.Run) error {
		r.Status = statestore.StatusCancelled
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := other.CompleteNode(ctx, statestore.NodeResult{RunID: "journaled", Node: "a", Output: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	f := stale.Fence()
	f.Token += 1000

	ended, errs, err := pgstore.EndTogether(ctx, s,
		[]statestore.Completion{done(ends.Fence()), done(plain.Fence(), statestore.ReadyNode{Node: "b", Needs: []string{"a"}, Block: 1}),
			done(cancelled.Fence()), done(f), done(journaled.Fence())},
		[]func(*statestore.Run) error{succeed, nil, succeed, succeed, succeed})
	if err != nil {
		t.Fatal(err)
	}
	wantErr := []error{nil, nil, nil, statestore.ErrFenced, statestore.ErrConflict}
	wantEnded := []bool{true, false, false, false, false}
	for i := range wantErr {
		if (wantErr[i] == nil) != (errs[i] == nil) || (wantErr[i] != nil && !errors.Is(errs[i], wantErr[i])) || ended[i] != wantEnded[i] {
			t.Errorf("member %d: %v, ended %v; want %v, ended %v", i, errs[i], ended[i], wantErr[i], wantEnded[i])
		}
	}
	for id, want := range map[string]statestore.RunStatus{"ends": statestore.StatusSucceeded, "plain": statestore.StatusRunning,
		"cancelled": statestore.StatusCancelled, "stale": statestore.StatusRunning, "journaled": statestore.StatusRunning} {
		r, err := other.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != want {
			t.Errorf("run %s: %s, want %s", id, r.Status, want)
		}
		if want == statestore.StatusSucceeded && (string(r.Output) != id || r.FinishedAt.IsZero()) {
			t.Errorf("run %s ended as %+v, want its output and end time", id, r)
		}
	}
	for id, want := range map[string]string{"ends": "ends", "plain": "plain", "cancelled": "cancelled", "stale": "", "journaled": "first"} {
		res, err := other.NodeResults(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(res["a"].Output) != want {
			t.Errorf("run %s: journaled %q, want %q", id, res["a"].Output, want)
		}
	}
	// The plain member's dependent was queued and kept.
	if tasks, err := other.ClaimRunTasks(ctx, "h2", "plain", 10, lease); err != nil || len(tasks) != 0 {
		t.Errorf("ClaimRunTasks(plain) = %v, %v; want b kept by h1", tasks, err)
	}
}
