package workflow_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const (
	parentFlow = `
name: parent
policy: {retry: {max_attempts: 1}}
nodes:
  prep: {plugin: nodes, function: work}
  sub:  {workflow: child, needs: [prep]}
  post: {plugin: nodes, function: work, needs: [sub]}
`
	childFlow = `
name: child
policy: {retry: {max_attempts: 1}}
nodes:
  echo: {plugin: tiny, function: echo}
  step: {plugin: nodes, function: %s, needs: [echo], config: %s}
`
)

func childOf(fn, config string) string {
	return strings.Replace(strings.Replace(childFlow, "%s", fn, 1), "%s", config, 1)
}

func testChildRunOutputIsTheNodes(t *testing.T, shared *fixture) {
	f := shared.fresh()
	e := f.engine(t, parentFlow, childOf("work", "{sleep_ms: 1}"))
	ctx := context.Background()
	r, err := e.Submit(ctx, "parent", []byte(`{"n": 1}`), "p1")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	child, err := e.Get(ctx, workflow.ChildRunID("p1", "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if child.Status != statestore.StatusSucceeded || child.Attrs[workflow.AttrParent] != "p1" || child.Attrs[workflow.AttrParentNode] != "sub" {
		t.Fatalf("child %s %v", child.Status, child.Attrs)
	}
	res, _ := f.store.NodeResults(ctx, "p1")
	if string(res["sub"].Output) != string(child.Output) {
		t.Fatalf("node output %s, child output %s", res["sub"].Output, child.Output)
	}
	var out map[string]string
	if json.Unmarshal(child.Output, &out) != nil || out["node"] != "step" {
		t.Fatalf("child output %s", child.Output)
	}
	info, _ := e.Get(ctx, "p1")
	if info.Nodes[1].Child != child.ID || info.Nodes[1].Workflow != "child" {
		t.Fatalf("node info %+v", info.Nodes[1])
	}
	// The child ran once; submitting the parent again starts nothing.
	if got := f.execs(t, child.ID, "step"); len(got) != 1 {
		t.Fatalf("child step ran %v", got)
	}
}

func testChildCancelPropagates(t *testing.T, shared *fixture) {
	for _, from := range []string{"parent", "child"} {
		t.Run("from "+from, func(t *testing.T) {
			f := shared.fresh()
			e := f.engine(t, parentFlow, childOf("long", "{steps: 1000, step_ms: 20}"))
			ctx := context.Background()
			if _, err := e.Submit(ctx, "parent", nil, "p"); err != nil {
				t.Fatal(err)
			}
			childID := workflow.ChildRunID("p", "sub")
			deadline := time.Now().Add(30 * time.Second)
			for {
				if c, err := f.store.GetRun(ctx, childID); err == nil && c.Status == statestore.StatusRunning {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("child never started")
				}
				time.Sleep(20 * time.Millisecond)
			}
			target := map[string]string{"parent": "p", "child": childID}[from]
			if _, err := e.Cancel(ctx, target); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"p", childID} {
				if r := wait(t, e, id); r.Status != statestore.StatusCancelled {
					t.Fatalf("run %s is %s", id, r.Status)
				}
			}
		})
	}
}

// testChildFailureAndResume: a failed child fails its parent's
// node; resuming the parent resumes the child, whose flaky node passes
// on its next attempt, and the parent finishes with its output.
func testChildFailureAndResume(t *testing.T, shared *fixture) {
	f := shared.fresh()
	e := f.engine(t, parentFlow, childOf("flaky", "{fail_until: 1}"))
	ctx := context.Background()
	if _, err := e.Submit(ctx, "parent", nil, "p"); err != nil {
		t.Fatal(err)
	}
	r := wait(t, e, "p")
	childID := workflow.ChildRunID("p", "sub")
	if r.Status != statestore.StatusFailed || !strings.Contains(r.Error, "child run "+childID+" failed") {
		t.Fatalf("parent %s: %s", r.Status, r.Error)
	}
	if c, _ := f.store.GetRun(ctx, childID); c.Status != statestore.StatusFailed {
		t.Fatalf("child %s", c.Status)
	}
	if _, err := e.Resume(ctx, "p", false); err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, "p"); r.Status != statestore.StatusSucceeded {
		t.Fatalf("resumed parent %s: %s", r.Status, r.Error)
	}
	if c, _ := f.store.GetRun(ctx, childID); c.Status != statestore.StatusSucceeded {
		t.Fatalf("child %s", c.Status)
	}
	if got := f.execs(t, "p", "prep"); len(got) != 1 {
		t.Fatalf("prep ran %v", got)
	}
}

func TestLoadDir_UnknownChildWorkflow(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(parentFlow), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := workflow.LoadDir(dir, workflow.ParseOptions{})
	if err == nil || !strings.Contains(err.Error(), `p.yaml:6: node "sub": unknown workflow "child"`) {
		t.Fatalf("err = %v", err)
	}
	_, err = workflow.Parse("x.yaml", []byte("name: x\nnodes:\n  a: {workflow: y, plugin: p}\n"), workflow.ParseOptions{})
	if err == nil || !strings.Contains(err.Error(), "set plugin or workflow, not both") {
		t.Fatalf("err = %v", err)
	}
}

// TestEngine_ChildRuns and its subtests share one host (the guests take seconds to load under
// the race detector); each has its own store and engine.
func TestEngine_ChildRuns(t *testing.T) {
	shared := newFixture(t)
	shared.loadTiny(t)
	t.Run("ChildRunOutputIsTheNodes", func(t *testing.T) { testChildRunOutputIsTheNodes(t, shared) })
	t.Run("ChildCancelPropagates", func(t *testing.T) { testChildCancelPropagates(t, shared) })
	t.Run("ChildFailureAndResume", func(t *testing.T) { testChildFailureAndResume(t, shared) })
}
