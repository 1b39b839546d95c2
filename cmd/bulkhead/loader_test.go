package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

// `run` and `plugins ls` load a plugins directory through one loader: a
// sidecar with a misspelt policy key (max_atempts) is refused by both, with
// the same reason, where `run` once ran the plugin anyway.
func TestLoader_RunAndPluginsAgree(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wasm := hosttest.Fixture(t, "go/nodes/nodes.wasm")
	for name, b := range map[string][]byte{
		"nodes.wasm": wasm,
		"nodes.yaml": []byte("policy:\n  retry:\n    max_atempts: 1\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flow := filepath.Join(tmp, "flow.yaml")
	if err := os.WriteFile(flow, []byte("name: typo\nnodes:\n  a: {plugin: nodes, function: work}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := "--data=" + filepath.Join(tmp, "data")

	code, out, errOut := bulkhead(t, "", "plugins", "ls", "--plugins", dir, data)
	if !strings.Contains(out, "quarantined") || !strings.Contains(out, "max_atempts") {
		t.Fatalf("plugins ls: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = bulkhead(t, "", "run", flow, "--input", "x", "--plugins", dir, data)
	if code != exitUsage || out != "" {
		t.Fatalf("run with a refused sidecar: exit %d, stdout %q\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "skipping plugin nodes (quarantined)") || !strings.Contains(errOut, "max_atempts") {
		t.Fatalf("run does not say why the plugin is skipped:\n%s", errOut)
	}
	// call reads the module's sidecar the same way.
	module := filepath.Join(dir, "nodes.wasm")
	code, out, errOut = bulkhead(t, "", "call", module, "work", "-i", "x", data)
	if code != exitUsage || out != "" || !strings.Contains(errOut, `unknown key "max_atempts"`) {
		t.Fatalf("call with a refused sidecar: exit %d, stdout %q\n%s", code, out, errOut)
	}

	// Fixed, the same directory runs.
	if err := os.WriteFile(filepath.Join(dir, "nodes.yaml"), []byte("policy:\n  retry:\n    max_attempts: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := bulkhead(t, "", "run", flow, "--input", "x", "--plugins", dir, data); code != exitOK {
		t.Fatalf("run with the fixed sidecar: exit %d, stdout %q\n%s", code, out, errOut)
	}
	// Loaded now, work runs (and fails for want of the durable store a
	// one-shot call has not).
	if code, out, errOut := bulkhead(t, "", "call", module, "work", "-i", "x", data); code != exitFailure || !strings.Contains(errOut, "no durable store") {
		t.Fatalf("call with the fixed sidecar: exit %d, stdout %q\n%s", code, out, errOut)
	}
}

// call applies a module's sidecar (config, policy), with its flags over it.
func TestCall_Sidecar(t *testing.T) {
	dir := t.TempDir()
	wasm, err := os.ReadFile(kitchen)
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(dir, "k.wasm")
	os.WriteFile(module, wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "k.yaml"), []byte("config: {greeting: from the sidecar}\npolicy:\n  retry: {max_attempts: 3, initial_delay: 1ms}\n"), 0o644)
	data := "--data=" + t.TempDir()
	if code, out, errOut := bulkhead(t, "", "call", module, "config", "-i", "greeting", data); code != exitOK || out != "from the sidecar" {
		t.Fatalf("sidecar config: exit %d, %q\n%s", code, out, errOut)
	}
	if code, out, errOut := bulkhead(t, "", "call", module, "config", "-i", "greeting", "--config", "greeting=flag", data); code != exitOK || out != "flag" {
		t.Fatalf("--config over the sidecar: exit %d, %q\n%s", code, out, errOut)
	}
	// The sidecar's policy retries (three attempts); --max-attempts wins.
	if code, out, errOut := bulkhead(t, "", "call", module, "flaky", "-i", "2", data); code != exitOK || out != "ok after 3 attempts" {
		t.Fatalf("sidecar policy: exit %d, %q\n%s", code, out, errOut)
	}
	if code, _, errOut := bulkhead(t, "", "call", module, "flaky", "-i", "2", "--max-attempts", "1", data); code != exitFailure {
		t.Fatalf("--max-attempts over the sidecar: exit %d\n%s", code, errOut)
	}
}
