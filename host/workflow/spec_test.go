package workflow_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

func TestParse_ReportsEveryProblemWithLine(t *testing.T) {
	src := `name: bad
colour: blue
policy: turbo
nodes:
  a: {plugin: nodes, needs: [ghost]}
  b: {plugin: nodes, needs: [c]}
  c: {plugin: nodes, needs: [b], retries: 3}
  d:
    plugin: missing
    policy: {retry: {max_attempts: -2}}
  e: {plugin: nodes, policy: {retry: {attempts: 5}}}
`
	_, err := workflow.Parse("bad.yaml", []byte(src), workflow.ParseOptions{KnownPlugin: func(n string) bool { return n == "nodes" }})
	var ve *workflow.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, workflow.ErrInvalid) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	want := []string{
		`bad.yaml:2: unknown key "colour"`,
		`bad.yaml:3: policy: unknown preset "turbo"`,
		`bad.yaml:5: node "a" needs unknown node "ghost"`,
		`bad.yaml:6: cycle among nodes b, c`,
		`bad.yaml:7: node "c": unknown key "retries"`,
		`bad.yaml:9: node d: unknown plugin "missing"`,
		`bad.yaml:10: policy:`,
		`bad.yaml:11: policy: field attempts not found`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in\n%s", w, msg)
		}
	}
}

func TestParse_InputsOrderAndOutput(t *testing.T) {
	tests := []struct {
		name, give, wantOutput, wantErr string
	}{
		{"only sink", "name: w\nnodes:\n  a: {plugin: p}\n  b: {plugin: p, needs: a}\n", "b", ""},
		{"explicit output", "name: w\noutput: a\nnodes:\n  a: {plugin: p}\n  b: {plugin: p}\n", "a", ""},
		{"two sinks", "name: w\nnodes:\n  a: {plugin: p}\n  b: {plugin: p}\n", "", "several nodes end the workflow (a, b)"},
		{"syntax", "name: w\nnodes: [\n", "", "bad.yaml:2: did not find expected node content"},
		{"fallback both", "name: w\nnodes:\n  a: {plugin: p, fallback: {value: x, plugin: q}}\n", "", "set value or plugin, not both"},
		{"bad pin", "name: w\nnodes:\n  a: {plugin: p@xyz}\n", "", "want a hex hash prefix"},
		{"no name", "nodes:\n  a: {plugin: p}\n", "", "name is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := workflow.Parse("bad.yaml", []byte(tt.give), workflow.ParseOptions{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Output != tt.wantOutput {
				t.Errorf("output %q, want %q", w.Output, tt.wantOutput)
			}
		})
	}
}

func TestLoadDir_ExampleWorkflows(t *testing.T) {
	ws, err := workflow.LoadDir("../../testdata/workflows", workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := ws["demo"]
	if w == nil || len(w.Nodes) != 6 || w.Output != "join" || w.Order[0] != "fetch" {
		t.Fatalf("demo workflow: %+v", w)
	}
}

// A workflow whose plugins are gone by the time a run is submitted names
// every such node, with its line, not only the first.
func TestEngine_SubmitNamesEveryMissingPlugin(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, `name: gone
nodes:
  a: {plugin: ghost}
  b: {plugin: nodes, needs: [a]}
  c: {plugin: phantom, needs: [b]}
`)
	_, err := e.Submit(context.Background(), "gone", nil, "")
	if !errors.Is(err, workflow.ErrUnknownPlugin) {
		t.Fatalf("err = %v, want ErrUnknownPlugin", err)
	}
	for _, w := range []string{"node a (line 3)", "ghost", "node c (line 5)", "phantom"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "node b") {
		t.Errorf("%q names node b, whose plugin is loaded", err)
	}
}

// Parse reports an unknown plugin along with every other problem of the
// file, each with its line.
func TestParse_UnknownPluginHidesNothing(t *testing.T) {
	src := `name: "bad name!"
nodes:
  a: {plugin: ghost, function: run, policy: reckless}
  b: {plugin: "ghost@xyz", needs: [a, zz], bogus: 1}
  c: {plugin: ok, needs: [d], fallback: {plugin: phantom}}
  d: {plugin: ok, needs: [c]}
output: nope
`
	_, err := workflow.Parse("bad.yaml", []byte(src), workflow.ParseOptions{KnownPlugin: func(n string) bool { return n == "ok" }})
	want := []string{
		`bad.yaml:1: name "bad name!"`,
		`bad.yaml:3: node a: unknown plugin "ghost"`,
		`bad.yaml:3: policy: unknown preset "reckless"`,
		`bad.yaml:4: node b: plugin version "xyz"`,
		`bad.yaml:4: node b: unknown plugin "ghost"`,
		`bad.yaml:4: node "b": unknown key "bogus"`,
		`bad.yaml:4: node "b" needs unknown node "zz"`,
		`bad.yaml:5: node c fallback: unknown plugin "phantom"`,
		`bad.yaml:5: cycle among nodes c, d`,
		`bad.yaml:7: output names unknown node "nope"`,
	}
	if err == nil {
		t.Fatal("parsed")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%s", w, err)
		}
	}
}
