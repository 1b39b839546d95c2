package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

const kitchen = "../../testdata/go/kitchen/kitchen.wasm"

func TestMain(m *testing.M) {
	os.Setenv("BULKHEAD_CACHE", hosttest.CacheDir())
	pgtest.Main(m)
}

// bulkhead runs the CLI in-process and returns its exit status and output.
func bulkhead(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = doMain(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCall(t *testing.T) {
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.wasm")
	whole, err := os.ReadFile(kitchen)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(truncated, whole[:len(whole)/3], 0o644)
	notWasm := filepath.Join(dir, "notes.wasm")
	os.WriteFile(notWasm, []byte("these are not the bytes you are looking for"), 0o644)
	data := "--data=" + dir

	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantOut    string
		wantErrHas string
	}{
		{name: "echo", args: []string{"call", kitchen, "echo", "--input", "hello", data}, wantOut: "hello"},
		{name: "stdin", stdin: "from stdin\x00\x01", args: []string{"call", kitchen, "echo", "--input-file", "-", data}, wantOut: "from stdin\x00\x01"},
		{name: "config", args: []string{"call", "--config", "greeting=hi there", kitchen, "config", "--input", "greeting", data}, wantOut: "hi there"},
		{name: "permanent failure", args: []string{"call", kitchen, "fail_permanent", "--input", "bad input", data}, wantCode: 1, wantErrHas: "bad input"},
		{name: "trap", args: []string{"call", kitchen, "trap", data}, wantCode: 1, wantErrHas: "deliberate trap"},
		{name: "timeout", args: []string{"call", kitchen, "spin", "--timeout", "200ms", data}, wantCode: 1, wantErrHas: "deadline"},
		{name: "memory cap", args: []string{"call", kitchen, "membomb", "--memory", "40MiB", data}, wantCode: 1, wantErrHas: "memory limit"},
		{name: "exit", args: []string{"call", kitchen, "exit", data}, wantCode: 1, wantErrHas: "exited with code 3"},
		{name: "retries until success", args: []string{"call", kitchen, "flaky", "--input", "2", "--max-attempts", "3", data}, wantOut: "ok after 3 attempts"},
		{name: "too few attempts", args: []string{"call", kitchen, "flaky", "--input", "2", "--max-attempts", "2", data}, wantCode: 1, wantErrHas: "attempt 2 fails"},
		{name: "chaos is retried", args: []string{"call", kitchen, "echo", "--input", "z", "--max-attempts", "40", "--chaos-error-rate", "0.2", data}, wantOut: "z"},
		{name: "bad preset", args: []string{"call", kitchen, "--policy", "reckless", data}, wantCode: 2, wantErrHas: "reckless"},
		{name: "stats", args: []string{"call", kitchen, "echo", "--input", "s", "--stats", data}, wantOut: "s", wantErrHas: "fuel="},
		{name: "cpu budget", args: []string{"call", kitchen, "spin", "--cpu-budget", "20000000", data}, wantCode: 1, wantErrHas: "CPU budget"},
		{name: "unmetered timeout", args: []string{"call", kitchen, "spin", "--no-fuel", "--timeout", "200ms", data}, wantCode: 1, wantErrHas: "deadline"},
		{name: "missing export", args: []string{"call", kitchen, "nope", data}, wantCode: 2, wantErrHas: `no export "nope"`},
		{name: "truncated module", args: []string{"call", truncated, data}, wantCode: 2, wantErrHas: "cannot load"},
		{name: "not wasm", args: []string{"call", notWasm, data}, wantCode: 2, wantErrHas: "not a WebAssembly module"},
		{name: "missing file", args: []string{"call", filepath.Join(dir, "nothing.wasm"), data}, wantCode: 2, wantErrHas: "no such file"},
		{name: "bad flag", args: []string{"call", kitchen, "--memory", "lots"}, wantCode: 2, wantErrHas: "invalid size"},
		{name: "no module", args: []string{"call"}, wantCode: 2, wantErrHas: "want a module"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErrHas: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := bulkhead(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			if tt.wantCode == 0 && out != tt.wantOut {
				t.Fatalf("stdout = %q, want %q", out, tt.wantOut)
			}
			if tt.wantCode != 0 && out != "" {
				t.Fatalf("stdout must be empty on failure, got %q", out)
			}
			if !strings.Contains(errOut, tt.wantErrHas) {
				t.Fatalf("stderr %q does not mention %q", errOut, tt.wantErrHas)
			}
			if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, ".go:") {
				t.Fatalf("stderr shows a Go stack trace:\n%s", errOut)
			}
		})
	}
}

func TestNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "greeter")
	code, out, errOut := bulkhead(t, "", "new", "--lang", "c", "greeter", "--dir", dir)
	if code != 0 || !strings.Contains(out, "make") {
		t.Fatalf("new = %d %q %q", code, out, errOut)
	}
	for _, f := range []string{"Makefile", "README.md", "main.c"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errOut := bulkhead(t, "", "new", "--lang", "cobol", "x", "--dir", filepath.Join(t.TempDir(), "x")); code != 2 || errOut == "" {
		t.Fatalf("unknown language: exit %d, %q", code, errOut)
	}
	if code, _, _ := bulkhead(t, "", "new", "--lang", "c", "greeter", "--dir", dir); code != 2 {
		t.Fatal("writing over an existing project must fail")
	}
}
