package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const dlqFlow = `name: dlq
policy:
  retry: {max_attempts: 2, initial_delay: 1ms, jitter: none}
  breaker: {failure_threshold: -1}
nodes:
  a: {plugin: nodes, function: work}
  b: {plugin: step, function: work, needs: [a]}
`

// A run whose node keeps failing exits 1 naming its dead letter; after the
// plugin is fixed, `dlq replay --upgrade` completes the run without
// running the node that had finished.
func TestRun_DeadLetterReplayCLI(t *testing.T) {
	tmp := t.TempDir()
	plugins := filepath.Join(tmp, "plugins")
	data := filepath.Join(tmp, "data")
	os.MkdirAll(plugins, 0o755)
	wasm := hosttest.Fixture(t, "go/nodes/nodes.wasm")
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(plugins, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nodes.wasm", wasm)
	write("step.wasm", wasm)
	write("step.yaml", []byte("config: {broken: \"true\"}\n"))
	flow := filepath.Join(tmp, "dlq.yaml")
	os.WriteFile(flow, []byte(dlqFlow), 0o644)

	code, out, errOut := bulkhead(t, "", "run", flow, "--input", "x", "--data", data, "--plugins", plugins, "--run-id", "r1")
	if code != exitFailure || out != "" {
		t.Fatalf("run: exit %d, stdout %q\n%s", code, out, errOut)
	}
	m := regexp.MustCompile(`dead letter: (\S+)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no dead letter in:\n%s", errOut)
	}
	dl := m[1]
	if code, out, _ := bulkhead(t, "", "dlq", "ls", "--data", data); code != 0 || !strings.Contains(out, dl) || !strings.Contains(out, "r1") {
		t.Fatalf("dlq ls: %d\n%s", code, out)
	}
	if code, out, _ := bulkhead(t, "", "dlq", "show", dl, "--data", data); code != 0 || !strings.Contains(out, "this version is broken") || !strings.Contains(out, "#2") {
		t.Fatalf("dlq show: %d\n%s", code, out)
	}
	if code, out, _ := bulkhead(t, "", "runs", "show", "r1", "--data", data); code != 0 || !regexp.MustCompile(`b\s+failed\s+2`).MatchString(out) {
		t.Fatalf("runs show: %d\n%s", code, out)
	}

	// Fix the plugin: new bytes (a custom section), no broken config.
	write("step.wasm", append(append([]byte{}, wasm...), 0, 7, 5, 'f', 'i', 'x', 'e', 'd', 2))
	os.Remove(filepath.Join(plugins, "step.yaml"))
	code, out, errOut = bulkhead(t, "", "dlq", "replay", dl, "--upgrade", "--data", data, "--plugins", plugins)
	if code != exitOK || !strings.Contains(out, `"node":"b"`) {
		t.Fatalf("replay: exit %d, stdout %q\n%s", code, out, errOut)
	}
	if code, out, _ := bulkhead(t, "", "runs", "ls", "--data", data); code != 0 || !regexp.MustCompile(`r1\s+dlq\s+succeeded`).MatchString(out) {
		t.Fatalf("runs ls: %d\n%s", code, out)
	}
	if code, out, _ := bulkhead(t, "", "dlq", "ls", "--data", data); code != 0 || strings.Contains(out, dl) {
		t.Fatalf("dlq ls after replay: %d\n%s", code, out)
	}
	if code, _, errOut := bulkhead(t, "", "checkpoints", "ls", "r1", "--data", data); code != 0 {
		t.Fatalf("checkpoints ls: %d %s", code, errOut)
	}
	// Running the finished run's ID again prints its output; a different input conflicts.
	if code, out2, _ := bulkhead(t, "", "run", flow, "--data", data, "--plugins", plugins, "--run-id", "r1"); code != 0 || out2 != out {
		t.Fatalf("rerun: %d %q", code, out2)
	}
	if code, _, errOut := bulkhead(t, "", "run", flow, "--input", "y", "--data", data, "--plugins", plugins, "--run-id", "r1"); code != exitUsage || !strings.Contains(errOut, "another workflow or input") {
		t.Fatalf("conflicting rerun: %d %s", code, errOut)
	}

	s, err := badgerstore.Open(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := s.StateGet(context.Background(), "nodes", "exec/r1/a")
	if string(a) != "1" {
		t.Errorf("node a executions %q, want only attempt 1", a)
	}
	b, _ := s.StateGet(context.Background(), "step", "exec/r1/b")
	if string(b) != "1,2,3" {
		t.Errorf("node b executions %q, want 1,2 (broken) then 3 (fixed)", b)
	}
}

func TestRun_Usage(t *testing.T) {
	if code, _, errOut := bulkhead(t, "", "run"); code != exitUsage || !strings.Contains(errOut, "want one workflow file") {
		t.Errorf("no file: %d %s", code, errOut)
	}
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nnodes:\n  a: {plugin: nope, needs: [zz]}\n"), 0o644)
	code, _, errOut := bulkhead(t, "", "run", bad, "--data", filepath.Join(tmp, "d"), "--plugins", tmp)
	if code != exitUsage || !strings.Contains(errOut, "bad.yaml:3") || !strings.Contains(errOut, `unknown plugin "nope"`) || !strings.Contains(errOut, `unknown node "zz"`) {
		t.Errorf("bad workflow: %d %s", code, errOut)
	}
	if code, _, _ := bulkhead(t, "", "runs", "bogus", "--data", filepath.Join(tmp, "d")); code != exitUsage {
		t.Errorf("runs bogus: %d", code)
	}
	// IDs are checked as the API checks them, before the store sees them.
	long := strings.Repeat("r", 65000)
	good := filepath.Join(tmp, "good.yaml")
	os.WriteFile(good, []byte("name: good\nnodes:\n  a: {plugin: nope}\n"), 0o644)
	data := "--data=" + filepath.Join(tmp, "d")
	for _, args := range [][]string{
		{"run", good, "--run-id", long},
		{"run", good, "--run-id", "a/b"},
		{"runs", "show", long},
		{"runs", "cancel", long},
		{"runs", "resume", long},
		{"dlq", "show", long},
		{"dlq", "ls", "--run", long},
		{"checkpoints", "ls", long},
	} {
		code, out, errOut := bulkhead(t, "", append(args, data)...)
		if code != exitUsage || !strings.Contains(errOut, "limit") && !strings.Contains(errOut, "only letters") || len(errOut) > 512 {
			t.Errorf("%s %s with a bad ID: exit %d, %d bytes: %.300s%.300s", args[0], args[1], code, len(errOut), out, errOut)
		}
	}
}
