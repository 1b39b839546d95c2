package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files of cmd/bulkhead/testdata")

// golden compares got with testdata/NAME.golden (rewritten by -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/bulkhead -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (review, then -update):\n--- got\n%s", t.Name(), p, got)
	}
}

// Help goes to stdout with exit 0, for the root and for every command, by
// --help, -h and `help CMD` alike.
func TestCLI_HelpGolden(t *testing.T) {
	code, out, errOut := bulkhead(t, "", "--help")
	if code != exitOK || errOut != "" {
		t.Fatalf("--help: exit %d, stderr %q", code, errOut)
	}
	golden(t, "help", out)
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := bulkhead(t, "", c.name, "--help")
			if code != exitOK || errOut != "" || !strings.HasPrefix(out, "Usage: bulkhead "+c.name) {
				t.Fatalf("%s --help: exit %d, stdout %q, stderr %q", c.name, code, out, errOut)
			}
			golden(t, "help-"+c.name, out)
			for _, args := range [][]string{{c.name, "-h"}, {"help", c.name}} {
				if code, out2, _ := bulkhead(t, "", args...); code != exitOK || out2 != out {
					t.Errorf("%q: exit %d, output differs from --help:\n%s", args, code, out2)
				}
			}
		})
	}
}

func TestCLI_Version(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/bulkhead-run/bulkhead", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
		}}
	v := versionOf(bi)
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "version", v.String()+"\n"+string(js)+"\n")
	// A checkout build without VCS stamps is "dev".
	if got := versionOf(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}).Version; got != "dev" {
		t.Errorf("devel build: version %q, want dev", got)
	}

	// The real binary: --version, -v and version print the same line.
	line := regexp.MustCompile(`^bulkhead \S+ \(.*go1\.\d+.* \w+/\w+\)\n$`)
	var first string
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		code, out, errOut := bulkhead(t, "", args...)
		if code != exitOK || !line.MatchString(out) || errOut != "" {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Errorf("%q prints %q, --version %q", args, out, first)
		}
	}
	code, out, _ := bulkhead(t, "", "version", "-o", "json")
	var got versionInfo
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || got.Go == "" || got.Version == "" || got.Platform == "" {
		t.Fatalf("version -o json: exit %d, %v:\n%s", code, err, out)
	}
}

func TestCLI_CompletionGolden(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := bulkhead(t, "", "completion", shell)
		if code != exitOK || errOut != "" || !strings.Contains(out, "bulkhead") {
			t.Fatalf("completion %s: exit %d, stderr %q", shell, code, errOut)
		}
		golden(t, "completion-"+shell, out)
	}
	// The completion scripts ask the binary; it completes commands and
	// each command's flags.
	_, out, _ := bulkhead(t, "", "__complete", "ru")
	if !strings.Contains(out, "run\t") || !strings.Contains(out, "runs\t") {
		t.Errorf("__complete ru:\n%s", out)
	}
	_, out, _ = bulkhead(t, "", "__complete", "call", "x.wasm", "--allow-")
	if !strings.Contains(out, "--allow-host\n") || !strings.Contains(out, "--allow-path\n") {
		t.Errorf("__complete call --allow-:\n%s", out)
	}
	_, out, _ = bulkhead(t, "", "__complete", "runs", "ls", "--sta")
	if !strings.Contains(out, "--status\n") {
		t.Errorf("__complete runs ls --sta:\n%s", out)
	}
}

// Usage errors exit 2 with one message on stderr; a typo gets suggestions.
func TestCLI_UsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{"no command", nil, []string{"Usage:"}},
		{"typo", []string{"rnu"}, []string{`unknown command "rnu"`, "Did you mean this?", "run"}},
		{"unknown flag", []string{"call", "x.wasm", "--bogus"}, []string{"unknown flag: --bogus", "bulkhead call --help"}},
		{"bad output format", []string{"version", "-o", "yaml"}, []string{"want table or json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := bulkhead(t, "", tt.args...)
			if code != exitUsage || out != "" {
				t.Fatalf("exit %d, stdout %q", code, out)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}
