package workflow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// until: takes an expression over the run's input and the needs'
// outputs: the node ends at the time it gives.
func TestTimer_UntilExpression(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	e := bareEngine(t, store, nil, `
name: remind
nodes:
  at-input: {until: input.at}
  later:
    until: date(needs["at-input"].at) + duration("300ms")
    needs: [at-input]
`)
	defer stop(t, e)
	due := time.Now().Add(300 * time.Millisecond).UTC()
	input := fmt.Sprintf(`{"at":%q}`, due.Format(time.RFC3339Nano))
	r, err := e.Submit(ctx, "remind", []byte(input), "")
	if err != nil {
		t.Fatal(err)
	}
	due2 := due.Add(300 * time.Millisecond)
	waitFor(t, "later to wait", func() bool {
		info, err := e.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, ni := range info.Nodes {
			if ni.Name == "later" && ni.Status == workflow.NodeWaiting {
				if !ni.DueAt.Equal(due2) {
					t.Fatalf("Get: later due at %v, want %v", ni.DueAt, due2)
				}
				return true
			}
		}
		return false
	})
	if got := wait(t, e, r.ID); got.Status != statestore.StatusSucceeded || string(got.Output) != input {
		t.Fatalf("run %s %q (%s), want succeeded with its input as output", got.Status, got.Output, got.Error)
	}
	res, err := store.NodeResults(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if at := res["at-input"].FinishedAt; at.Before(due) || at.After(due.Add(time.Second)) {
		t.Errorf("at-input woke at %v, due at %v: want within a second after", at, due)
	}
	if at := res["later"].FinishedAt; at.Before(due2) || at.After(due2.Add(time.Second)) {
		t.Errorf("later woke at %v, due at %v: want within a second after", at, due2)
	}
}

// An until expression whose value at run time is not a time fails its
// node, saying what the value was.
func TestTimer_UntilExpressionNotATime(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	e := bareEngine(t, store, nil, `
name: remind
nodes:
  at: {until: input.at}
`)
	defer stop(t, e)
	tests := []struct{ name, give, want string }{
		{"number", `{"at": 5}`, `until "input.at": gave float64 5, want a time or an RFC 3339 string`},
		{"not RFC 3339", `{"at": "next week"}`, `until "input.at": gave "next week", not an RFC 3339 time`},
		{"missing", `{}`, `until "input.at": gave nothing (null), want a time`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := e.Submit(ctx, "remind", []byte(tt.give), "")
			if err != nil {
				t.Fatal(err)
			}
			got := wait(t, e, r.ID)
			if got.Status != statestore.StatusFailed || !strings.Contains(got.Error, tt.want) {
				t.Fatalf("run %s %q, want failed with %q", got.Status, got.Error, tt.want)
			}
			if res, _ := store.NodeResults(ctx, r.ID); len(res) != 0 {
				t.Fatalf("journal %v, want nothing journaled", res)
			}
		})
	}
}

func TestParse_UntilExpression(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{"number", "name: x\nnodes:\n  a: {until: 1 + 2}\n", `flow.yaml:3: node "a": until: "1 + 2" is not an RFC 3339 time (like 2026-01-02T15:04:05Z) nor an expression giving one: it gives int, want a time`},
		{"date only", "name: x\nnodes:\n  a:\n    until: 2026-01-02\n", `flow.yaml:4: node "a": until: "2026-01-02" is not an RFC 3339 time`},
		{"bool", "name: x\nnodes:\n  b: {plugin: p}\n  a: {until: b.x > 1, needs: [b]}\n", `flow.yaml:4: node "a": until: "b.x > 1" is not an RFC 3339 time (like 2026-01-02T15:04:05Z) nor an expression giving one: it gives bool`},
		{"unknown name", "name: x\nnodes:\n  a: {until: tomorrow}\n", `flow.yaml:3: node "a": until: "tomorrow" is not an RFC 3339 time (like 2026-01-02T15:04:05Z) nor an expression giving one: unknown name tomorrow`},
		{"not a need", "name: x\nnodes:\n  b: {plugin: p}\n  a: {until: b.at}\n", `flow.yaml:4: node "a": until: "b.at" is not an RFC 3339 time`},
		{"now", "name: x\nnodes:\n  a: {until: 'now() + duration(\"1h\")'}\n", `use sleep for a wait from when the node becomes ready`},
		{"empty", "name: x\nnodes:\n  a: {until: ''}\n", `flow.yaml:3: node "a": until: want an RFC 3339 time or an expression giving one`},
		{"block scalar", "name: x\nnodes:\n  a:\n    until: |\n      date(input.at) +\n      1\n", `flow.yaml:5: node "a": until: "date(input.at) +\n1\n" is not an RFC 3339 time (like 2026-01-02T15:04:05Z) nor an expression giving one: invalid operation: + (mismatched types time.Time and int) (column 16)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := workflow.Parse("flow.yaml", []byte(tt.give), workflow.ParseOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error %v, want %q", err, tt.want)
			}
		})
	}
	w, err := workflow.Parse("flow.yaml", []byte("name: x\noutput: c\nnodes:\n  b: {plugin: p}\n  a: {until: 'date(b.at) - duration(\"1h\")', needs: [b]}\n  c: {until: \"2026-01-02T15:04:05Z\"}\n"), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if x := w.Nodes["a"].Timer.UntilExpr; x == nil || x.Source != `date(b.at) - duration("1h")` {
		t.Fatalf("until expression %+v", x)
	}
	if c := w.Nodes["c"].Timer; c.UntilExpr != nil || !c.Until.Equal(time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)) {
		t.Fatalf("until time %+v", c)
	}
}
