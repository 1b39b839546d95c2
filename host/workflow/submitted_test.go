package workflow_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

// readsStore counts reads of runs and journals.
type readsStore struct {
	statestore.Store
	gets, journals atomic.Int64
}

func (s *readsStore) GetRun(ctx context.Context, id string) (statestore.Run, error) {
	s.gets.Add(1)
	return s.Store.GetRun(ctx, id)
}

func (s *readsStore) NodeResults(ctx context.Context, runID string) (map[string]statestore.NodeResult, error) {
	s.journals.Add(1)
	return s.Store.NodeResults(ctx, runID)
}

const chain3 = `
name: chain3
nodes:
  a: {plugin: nodes, function: work}
  b: {plugin: nodes, function: work, needs: [a]}
  c: {plugin: nodes, function: work, needs: [b]}
`

// A run executed by the engine that submitted it reads neither the run
// nor its journal: the run starts from the copy it created, its root from
// an empty journal (only its claim's holder can journal it), each next
// node from the entries its engine committed. Wait returns the run as its
// end stored it. A run submitted elsewhere is read, and so is its journal.
func TestEngine_SubmittedRunReadsNothing(t *testing.T) {
	f := newFixture(t)
	rs := &readsStore{Store: memstore.New()}
	f.store = rs
	e := f.engine(t, chain3)
	ctx := context.Background()
	finished := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); len(f.events(workflow.EventRunFinished, "")) < n; {
			if time.Now().After(deadline) {
				t.Fatal("run did not finish")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	r, err := e.Submit(ctx, "chain3", []byte("hello"), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	finished(1)
	if g, j := rs.gets.Load(), rs.journals.Load(); g != 0 || j != 0 {
		t.Errorf("run submitted here: %d reads of the run, %d of its journal; want none", g, j)
	}
	if got, err := rs.Store.GetRun(ctx, r.ID); err != nil || got.Status != statestore.StatusSucceeded || string(got.Output) == "" {
		t.Fatalf("run = %+v, %v", got, err)
	}
	// Wait returns the run as its end stored it.
	r3, err := e.Submit(ctx, "chain3", []byte("hello"), "run-3")
	if err != nil {
		t.Fatal(err)
	}
	got := wait(t, e, r3.ID)
	stored, err := rs.Store.GetRun(ctx, r3.ID)
	if err != nil || !reflect.DeepEqual(got, stored) || got.Status != statestore.StatusSucceeded {
		t.Fatalf("Wait = %+v\nstored %+v, %v", got, stored, err)
	}
	// A run another host submitted: stored, then claimed here.
	rs.gets.Store(0)
	rs.journals.Store(0)
	if _, _, err := rs.SubmitRun(ctx, statestore.Run{ID: "run-2", Workflow: "chain3", Input: []byte("hello"),
		Status: statestore.StatusRunning, Attrs: r.Attrs, Versions: r.Versions},
		[]statestore.ReadyNode{{Node: "a", Block: 1}}); err != nil {
		t.Fatal(err)
	}
	finished(3)
	if g, j := rs.gets.Load(), rs.journals.Load(); g == 0 || j == 0 {
		t.Errorf("run submitted elsewhere: %d reads of the run, %d of its journal; want both read", g, j)
	}
}

// claimingStore claims a submitted run's first root in its submit, as
// pgstore does in one statement, and counts the tasks the claimer claims.
type claimingStore struct {
	statestore.Store
	inSubmit, claimed atomic.Int64
}

func (s *claimingStore) SubmitRunClaim(ctx context.Context, r statestore.Run, roots []statestore.ReadyNode, owner string, lease time.Duration) (statestore.Run, bool, statestore.Task, bool, error) {
	stored, created, err := s.Store.SubmitRun(ctx, r, roots)
	if err != nil || !created {
		return stored, created, statestore.Task{}, false, err
	}
	tasks, err := s.Store.ClaimRunTasks(ctx, owner, r.ID, 1, lease)
	if err != nil || len(tasks) == 0 {
		return stored, created, statestore.Task{}, false, err
	}
	s.inSubmit.Add(1)
	return stored, created, tasks[0], true, nil
}

func (s *claimingStore) ClaimTasks(ctx context.Context, owner string, max int, d time.Duration) ([]statestore.Task, error) {
	tasks, err := s.Store.ClaimTasks(ctx, owner, max, d)
	s.claimed.Add(int64(len(tasks)))
	return tasks, err
}

func (s *claimingStore) ClaimRunTasks(ctx context.Context, owner, run string, max int, d time.Duration) ([]statestore.Task, error) {
	tasks, err := s.Store.ClaimRunTasks(ctx, owner, run, max, d)
	s.claimed.Add(int64(len(tasks)))
	return tasks, err
}

// With a store that claims in the submit, a chain submitted to an idle
// engine runs from the submit's claim and the completions' kept claims:
// the claimer claims nothing, and the run is reported accepted before its
// first node starts.
func TestEngine_SubmitClaimsTheFirstRoot(t *testing.T) {
	f := newFixture(t)
	cs := &claimingStore{Store: memstore.New()}
	f.store = cs
	e := f.engine(t, chain3, diamond)
	ctx := context.Background()
	time.Sleep(50 * time.Millisecond) // the workers become idle
	r, err := e.Submit(ctx, "chain3", []byte("hello"), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	if in, c := cs.inSubmit.Load(), cs.claimed.Load(); in != 1 || c != 0 {
		t.Errorf("claims: %d in the submit, %d by the claimer; want 1 and 0", in, c)
	}
	f.mu.Lock()
	evs := append([]workflow.Event(nil), f.evs...)
	f.mu.Unlock()
	accepted := false
	for _, ev := range evs {
		if ev.Kind == workflow.EventRunAccepted && ev.RunID == r.ID {
			accepted = true
		}
		if ev.Kind == workflow.EventNodeStarted && ev.RunID == r.ID && !accepted {
			t.Fatalf("node %s started before the run was accepted", ev.Node)
		}
	}
	if !accepted {
		t.Fatal("run not reported accepted")
	}
	// A run that fans out: its root comes with the submit, the branch the
	// root's completion did not keep is claimed.
	r, err = e.Submit(ctx, "diamond", []byte("hello"), "run-2")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("diamond: status %s: %s", r.Status, r.Error)
	}
	if got := f.execs(t, r.ID, "d"); len(got) != 1 {
		t.Errorf("diamond's join ran as attempts %v, want once", got)
	}
}

// Chains submitted together each keep their next node: a root claimed in
// its submit and waiting a moment for an idle worker does not make the
// other chains hand theirs back, so the claimer claims nothing.
func TestEngine_ConcurrentChainsKeepTheirNodes(t *testing.T) {
	f := newFixture(t)
	cs := &claimingStore{Store: memstore.New()}
	f.store = cs
	e := f.engine(t, chain3) // 8 workers
	ctx := context.Background()
	for round := range 5 {
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.Submit(ctx, "chain3", []byte("hello"), fmt.Sprintf("run-%d-%d", round, i))
				if err != nil {
					t.Error(err)
					return
				}
				if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
					t.Errorf("status %s: %s", r.Status, r.Error)
				}
			}()
		}
		wg.Wait()
	}
	if in, c := cs.inSubmit.Load(), cs.claimed.Load(); in != 30 || c != 0 {
		t.Errorf("claims: %d in the submits, %d by the claimer; want 30 and 0", in, c)
	}
}

// updatesStore is pgstore counting UpdateRun calls.
type updatesStore struct {
	*pgstore.Store
	updates atomic.Int64
}

func (s *updatesStore) UpdateRun(ctx context.Context, id string, fn func(*statestore.Run) error) (statestore.Run, error) {
	s.updates.Add(1)
	return s.Store.UpdateRun(ctx, id, fn)
}

// On a store that can (pgstore), a run's end commits with its last node's
// completion: a chain executed on one engine ends without a write of its
// own, and Wait returns the run as stored (pgstore's own tests cover a run
// changed elsewhere meanwhile).
func TestEngine_EndCommitsWithLastNode(t *testing.T) {
	f := newFixture(t)
	s, err := pgstore.Open(context.Background(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	us := &updatesStore{Store: s}
	f.store = us
	e := f.engine(t, chain3)
	ctx := context.Background()
	for i := range 3 {
		r, err := e.Submit(ctx, "chain3", []byte("hello"), fmt.Sprintf("end-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		got := wait(t, e, r.ID)
		stored, err := s.GetRun(ctx, r.ID)
		if err != nil || got.Status != statestore.StatusSucceeded || !reflect.DeepEqual(got, stored) || len(got.Output) == 0 {
			t.Fatalf("Wait = %+v\nstored %+v, %v", got, stored, err)
		}
		results, err := s.NodeResults(ctx, r.ID)
		if err != nil || string(stored.Output) != string(results["c"].Output) {
			t.Fatalf("run output %q, journal of c %q, %v", stored.Output, results["c"].Output, err)
		}
	}
	if n := us.updates.Load(); n != 0 {
		t.Errorf("%d UpdateRun calls for 3 runs; want their ends written with their last completions", n)
	}
}

// endGate is memstore whose first write of a run's end waits until
// released.
type endGate struct {
	statestore.Store
	first   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *endGate) UpdateRun(ctx context.Context, id string, fn func(*statestore.Run) error) (statestore.Run, error) {
	probe, _ := s.Store.GetRun(ctx, id)
	if err := fn(&probe); err == nil && probe.Status.Finished() && s.first.CompareAndSwap(false, true) {
		close(s.entered)
		<-s.release
	}
	return s.Store.UpdateRun(ctx, id, fn)
}

// A run's end is reported once when two paths record it: the worker that
// journaled its last node, and a submit of the same run ID that finds
// every node journaled but the run's end not yet written. The second to
// write finds the run finished and reports nothing.
func TestEngine_RunEndReportedOnce(t *testing.T) {
	f := newFixture(t)
	gs := &endGate{Store: memstore.New(), entered: make(chan struct{}), release: make(chan struct{})}
	f.store = gs
	e := f.engine(t, `
name: one
nodes:
  only: {plugin: nodes, function: work}
`)
	ctx := context.Background()
	r, err := e.Submit(ctx, "one", []byte("hello"), "once")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-gs.entered: // the worker journaled the node and writes the end
	case <-time.After(30 * time.Second):
		t.Fatal("the run's end was not written")
	}
	// The same run submitted again: running, every node journaled.
	if _, err := e.Submit(ctx, "one", []byte("hello"), "once"); err != nil {
		t.Fatal(err)
	}
	close(gs.release)
	if got := wait(t, e, r.ID); got.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s", got.Status)
	}
	time.Sleep(100 * time.Millisecond) // the worker's end returns
	var ends int
	for _, ev := range f.events(workflow.EventRunFinished, "") {
		if ev.RunID == r.ID {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("run end reported %d times, want once", ends)
	}
}
