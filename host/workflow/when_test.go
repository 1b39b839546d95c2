package workflow_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

func TestParse_ConditionAndMapErrorsWithLine(t *testing.T) {
	src := `name: bad
nodes:
  a: {plugin: p}
  b: {plugin: p, needs: [a], when: 'a.count > '}
  c: {plugin: p, needs: [a], when: 'ghost == 1'}
  d: {plugin: p, needs: [a], when: '"x" + 1 > 0'}
  e: {plugin: p, needs: [a], when: 'needs.b != nil'}
  f: {plugin: p, needs: [a], when: '1 + 1'}
  g:
    plugin: p
    needs: [a]
    when: |
      a != nil &&
      a.n >< 2
  h: {plugin: p, for_each: nobody}
  i: {plugin: p, for_each: i}
  j: {plugin: p, max_concurrency: 4}
  k: {plugin: p, for_each: a, max_concurrency: 0, tolerate: 120%}
  z: {plugin: p, needs: [b, c, d, e, f, g, h, i, j, k]}
`
	_, err := workflow.Parse("bad.yaml", []byte(src), workflow.ParseOptions{})
	if err == nil {
		t.Fatal("parsed")
	}
	want := []string{
		`bad.yaml:4: node "b": when: unexpected token EOF`,
		`bad.yaml:5: node "c": when: unknown name ghost`,
		`bad.yaml:6: node "d": when: invalid operation: + (mismatched types string and int)`,
		`bad.yaml:7: node "e": when: unknown field b`,
		`bad.yaml:8: node "f": when: expected bool, but got int`,
		`bad.yaml:14: node "g": when:`,
		`bad.yaml:15: node "h": for_each names unknown node "nobody"`,
		`bad.yaml:16: node "i": for_each names the node itself`,
		`bad.yaml:17: node "j": max_concurrency and tolerate need for_each`,
		`bad.yaml:18: node "k": max_concurrency: want a whole number from 1 to 1000`,
		`bad.yaml:18: node "k": tolerate: want a number of items (5) or a percentage (10%)`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in\n%s", w, msg)
		}
	}
}

func TestParse_ForEachIsANeed(t *testing.T) {
	w, err := workflow.Parse("m.yaml", []byte("name: m\nnodes:\n  a: {plugin: p}\n  m: {plugin: p, for_each: a, tolerate: 10%}\n"), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := w.Nodes["m"]
	if len(m.Needs) != 1 || m.Needs[0] != "a" || w.Output != "m" {
		t.Fatalf("needs %v, output %s", m.Needs, w.Output)
	}
	if m.Map.MaxConcurrency != workflow.DefaultMaxConcurrency || m.Map.Tolerate != 10 || !m.Map.Percent {
		t.Fatalf("map %+v", m.Map)
	}
}

// branches routes on the run's input: big inputs take heavy, others
// light; after_heavy depends only on heavy (skipped with it); join runs
// with whichever branch ran; audit's own condition reads a skipped need
// as nil, so it runs only after heavy.
const branches = `
name: branches
policy: {retry: {max_attempts: 1}}
nodes:
  route: {plugin: tiny, function: echo}
  heavy: {plugin: nodes, function: work, needs: [route], when: 'route.size > 100'}
  light: {plugin: nodes, function: work, needs: [route], when: 'route.size <= 100'}
  after_heavy: {plugin: nodes, function: work, needs: [heavy]}
  join: {plugin: nodes, function: work, needs: [after_heavy, light]}
  audit:
    plugin: nodes
    function: work
    needs: [heavy, join]
    when: 'heavy != nil && join != nil'
output: join
`

func testSkippedBranchAndDependents(t *testing.T, shared *fixture) {
	f := shared.fresh()
	e := f.engine(t, branches)
	ctx := context.Background()
	r, err := e.Submit(ctx, "branches", []byte(`{"size": 5}`), "small")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	info, err := e.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]workflow.NodeStatus{"route": workflow.NodeSucceeded, "heavy": workflow.NodeSkipped,
		"light": workflow.NodeSucceeded, "after_heavy": workflow.NodeSkipped, "join": workflow.NodeSucceeded,
		"audit": workflow.NodeSkipped}
	for _, n := range info.Nodes {
		if n.Status != want[n.Name] {
			t.Errorf("node %s is %s, want %s", n.Name, n.Status, want[n.Name])
		}
		ran := len(f.execs(t, r.ID, n.Name)) > 0
		if n.Name != "route" && ran != (want[n.Name] == workflow.NodeSucceeded) {
			t.Errorf("node %s ran: %v", n.Name, ran)
		}
	}
	if len(f.events(workflow.EventNodeBypassed, "")) != 3 {
		t.Errorf("bypassed events: %v", f.events(workflow.EventNodeBypassed, ""))
	}
	res, err := f.store.NodeResults(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !res["heavy"].Skipped || !res["after_heavy"].Skipped || res["light"].Skipped {
		t.Errorf("journal: heavy %+v after_heavy %+v", res["heavy"], res["after_heavy"])
	}
	// join saw after_heavy as absent: its input is {"light": ...} only,
	// whose digest differs from one with after_heavy in it.
	var out map[string]string
	if err := json.Unmarshal(r.Output, &out); err != nil || out["node"] != "join" {
		t.Fatalf("output %s", r.Output)
	}

	// A big input takes the other branch; audit's condition is true.
	r, err = e.Submit(ctx, "branches", []byte(`{"size": 500}`), "big")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	info, _ = e.Get(ctx, r.ID)
	for _, n := range info.Nodes {
		skipped := n.Name == "light"
		if (n.Status == workflow.NodeSkipped) != skipped {
			t.Errorf("big: node %s is %s", n.Name, n.Status)
		}
	}
}

// testConditionErrorFailsTheNode: an expression that fails at run
// time (a field of a string) fails its node with a dead letter naming
// the expression.
func testConditionErrorFailsTheNode(t *testing.T, shared *fixture) {
	f := shared.fresh()
	e := f.engine(t, `
name: bad
nodes:
  route: {plugin: tiny, function: echo}
  next: {plugin: nodes, function: work, needs: [route], when: 'route.size > 1'}
`)
	r, err := e.Submit(context.Background(), "bad", []byte(`"just a string"`), "")
	if err != nil {
		t.Fatal(err)
	}
	r = wait(t, e, r.ID)
	if r.Status != statestore.StatusFailed || !strings.Contains(r.Error, `node next failed: when "route.size > 1"`) {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	if got := f.execs(t, r.ID, "next"); len(got) != 0 {
		t.Fatalf("next ran: %v", got)
	}
}

// TestEngine_Conditions and its subtests share one host (the guests take seconds to load under
// the race detector); each has its own store and engine.
func TestEngine_Conditions(t *testing.T) {
	shared := newFixture(t)
	shared.loadTiny(t)
	t.Run("SkippedBranchAndDependents", func(t *testing.T) { testSkippedBranchAndDependents(t, shared) })
	t.Run("ConditionErrorFailsTheNode", func(t *testing.T) { testConditionErrorFailsTheNode(t, shared) })
}
