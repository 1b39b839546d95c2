package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// testNodeResultsOf: NodeResultsOf returns the named entries that are
// journaled, as NodeResults has them, and leaves out the others and other
// runs' entries.
func testNodeResultsOf(t *testing.T, s statestore.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	mustCreate(t, s, "r2")
	for i := range 20 {
		res := statestore.NodeResult{RunID: "r1", Node: fmt.Sprintf("n%02d", i), Output: fmt.Appendf(nil, "out %d", i), Attempts: i + 1}
		if err := s.CompleteNode(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r2", Node: "n03", Output: []byte("other run")}); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r2", Node: "only-r2", Skipped: true}); err != nil {
		t.Fatal(err)
	}
	all, err := s.NodeResults(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.NodeResultsOf(ctx, "r1", []string{"n03", "n17", "missing", "only-r2", "n03"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("NodeResultsOf(r1, n03 n17 missing only-r2) = %d entries %v, want n03 and n17", len(got), got)
	}
	for _, name := range []string{"n03", "n17"} {
		g, w := got[name], all[name]
		if g.Node != name || g.RunID != "r1" || string(g.Output) != string(w.Output) || g.Attempts != w.Attempts ||
			!g.FinishedAt.Equal(w.FinishedAt) {
			t.Errorf("NodeResultsOf %s = %+v, NodeResults has %+v", name, g, w)
		}
	}
	if r2, err := s.NodeResultsOf(ctx, "r2", []string{"n03", "only-r2"}); err != nil || string(r2["n03"].Output) != "other run" || !r2["only-r2"].Skipped {
		t.Errorf("NodeResultsOf(r2) = %+v, %v", r2, err)
	}
	if none, err := s.NodeResultsOf(ctx, "r1", nil); err != nil || len(none) != 0 {
		t.Errorf("NodeResultsOf of no nodes = %v, %v; want empty", none, err)
	}
	if none, err := s.NodeResultsOf(ctx, "missing", []string{"n03"}); err != nil || len(none) != 0 {
		t.Errorf("NodeResultsOf of a missing run = %v, %v; want empty", none, err)
	}
	// A returned output is the caller's.
	got["n03"].Output[0] = 'X'
	if again, _ := s.NodeResultsOf(ctx, "r1", []string{"n03"}); string(again["n03"].Output) != "out 3" {
		t.Errorf("changing a returned output changed the store: %q", again["n03"].Output)
	}
	_, err = s.NodeResultsOf(ctx, "r1", []string{"a", ""})
	wantErr(t, "NodeResultsOf with an empty node name", err, statestore.ErrInvalid)
	_, err = s.NodeResultsOf(ctx, "", []string{"a"})
	wantErr(t, "NodeResultsOf with an empty run ID", err, statestore.ErrInvalid)
}
