package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

const (
	mapWhenFlow = `name: mw
policy: {retry: {max_attempts: 1}}
nodes:
  list: {plugin: tiny, function: echo}
  each: {plugin: nodes, function: work, for_each: list, tolerate: 1}
  big:  {plugin: nodes, function: work, needs: [list], when: 'len(list) > 10'}
  sub:  {workflow: mwchild, needs: [list]}
  join: {plugin: nodes, function: work, needs: [each, big, sub]}
`
	mapWhenChild = `name: mwchild
nodes:
  step: {plugin: nodes, function: work}
`
)

// TestRun_MapConditionChildCLI: bulkhead run executes a map with a
// tolerated failed item, a skipped node and a child workflow read from
// beside the file; runs show reports them.
func TestRun_MapConditionChildCLI(t *testing.T) {
	tmp := t.TempDir()
	plugins := filepath.Join(tmp, "plugins")
	data := filepath.Join(tmp, "data")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	tiny, err := os.ReadFile("../../host/testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		filepath.Join(plugins, "nodes.wasm"): hosttest.Fixture(t, "go/nodes/nodes.wasm"),
		filepath.Join(plugins, "tiny.wasm"):  tiny,
		filepath.Join(tmp, "mw.yaml"):        []byte(mapWhenFlow),
		filepath.Join(tmp, "mwchild.yaml"):   []byte(mapWhenChild),
	}
	for name, b := range files {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := `[1, {"config": {"broken": true}, "input": 2}, 3]`
	code, out, errOut := bulkhead(t, "", "run", filepath.Join(tmp, "mw.yaml"), "--input", in, "--data", data, "--plugins", plugins, "--run-id", "r1", "--progress", "plain")
	if code != exitOK || !strings.Contains(out, `"node":"join"`) {
		t.Fatalf("run: exit %d, stdout %q\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "node big skipped") {
		t.Errorf("no skip line in:\n%s", errOut)
	}
	code, out, _ = bulkhead(t, "", "runs", "show", "r1", "--data", data)
	for _, re := range []string{`each\s+succeeded.*2/3 items \(1 failed\)`, `big\s+skipped`, `sub\s+succeeded.*child run r1:sub`} {
		if code != 0 || !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("runs show: %d: no %s in\n%s", code, re, out)
		}
	}
	code, out, errOut = bulkhead(t, "", "runs", "show", "r1:sub", "--data", data)
	if code != 0 || !regexp.MustCompile(`step\s+succeeded`).MatchString(out) {
		t.Fatalf("child runs show: %d\n%s%s", code, out, errOut)
	}
}
