package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// config show prints the configuration even when serve would refuse it,
// marks the problem and exits 1.
func TestConfigShow_MarksProblems(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bulkhead.yaml")
	missing := filepath.Join(dir, "no-token")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:7070\ntoken_file: "+missing+"\nlog_level: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := bulkhead(t, "", "config", "show", "--config", file)
	if code != exitFailure {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{"! token_file", "log_level", "debug", "1 problem(s)", file + ":2: token_file:", "no such file"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = bulkhead(t, "", "config", "show", "--config", file, "-o", "json")
	var got struct {
		Settings []struct{ Key, Value string }
		Problems []string
	}
	if err := json.Unmarshal([]byte(out), &got); code != exitFailure || err != nil || len(got.Problems) != 1 || len(got.Settings) == 0 {
		t.Fatalf("-o json: exit %d, %v:\n%s", code, err, out)
	}
	// A good configuration: no problem, exit 0.
	os.WriteFile(missing, []byte("a-token-of-enough-length"), 0o600)
	code, out, _ = bulkhead(t, "", "config", "show", "--config", file, "--json")
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || len(got.Problems) != 0 {
		t.Fatalf("good config: exit %d, %v:\n%s", code, err, out)
	}
	// A file that does not decode is shown for what it could read.
	os.WriteFile(file, []byte("log_level: warn\nlisten: [1]\npolicy: {}\n"), 0o644)
	code, out, _ = bulkhead(t, "", "config", "show", "--config", file)
	if code != exitFailure || !strings.Contains(out, `unknown key "policy"`) || !strings.Contains(out, "want a string, got a list") || strings.Contains(out, "resilience.Policy") {
		t.Fatalf("bad file: exit %d:\n%s", code, out)
	}
}

// serve refuses a plugins directory it cannot read with exit 2 (a
// configuration error a service manager must not retry) and one sentence
// naming what set it.
func TestServe_MissingPluginsDirIsUsageError(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	file := filepath.Join(dir, "bulkhead.yaml")
	os.WriteFile(file, []byte("plugins_dir: "+missing+"\n"), 0o644)
	tests := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"flag", []string{"--plugins", missing}, "", "set by flag --plugins"},
		{"file", []string{"--config", file}, "", "set by file " + file + ":1 (plugins_dir)"},
		{"env", nil, missing, "set by env BULKHEAD_PLUGINS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BULKHEAD_PLUGINS", tt.env)
			args := append([]string{"serve", "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0"}, tt.args...)
			code, _, errOut := bulkhead(t, "", args...)
			if code != exitUsage || !strings.Contains(errOut, "the plugins directory "+missing+" cannot be read") || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			if n := strings.Count(strings.TrimSpace(errOut), "\n"); n != 0 {
				t.Errorf("want one sentence, got %d lines:\n%s", n+1, errOut)
			}
		})
	}
}
