package workflow_test

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
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
