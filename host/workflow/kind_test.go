package workflow_test

import (
	"testing"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

func TestNode_Kind(t *testing.T) {
	w, err := workflow.Parse("kinds.yaml", []byte(`name: kinds
nodes:
  list: {plugin: p}
  each: {plugin: p, for_each: list}
  nap: {sleep: 1m, needs: [each]}
  ok: {wait_for: approval, needs: [each]}
  sub: {workflow: other, needs: [nap, ok]}
`), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"list": workflow.KindPlugin, "each": workflow.KindMap, "nap": workflow.KindTimer,
		"ok": workflow.KindEvent, "sub": workflow.KindWorkflow}
	for name, kind := range want {
		if got := w.Nodes[name].Kind(); got != kind {
			t.Errorf("node %s: kind %q, want %q", name, got, kind)
		}
	}
}
