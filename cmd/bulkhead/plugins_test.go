package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/supervisor"
)

const goodPlugin = "../../host/supervisor/testdata/one.wasm"

func pluginsDir(t *testing.T) (dir, data string) {
	t.Helper()
	dir = t.TempDir()
	good, err := os.ReadFile(goodPlugin)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"good.wasm":   good,
		"good.yaml":   []byte("pool: {max: 3}\npreset: api\n"),
		"junk.wasm":   []byte("not a module"),
		"policy.wasm": good,
		"policy.yaml": []byte("policy:\n  retry: {attempts: 2}\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, "--data=" + t.TempDir()
}

func TestPluginsLs(t *testing.T) {
	dir, data := pluginsDir(t)
	// Two plugins are quarantined: ls fails (it gates CI) and says which.
	code, out, errOut := bulkhead(t, "", "plugins", "ls", "--plugins", dir, data)
	if code != exitFailure || !strings.Contains(errOut, "2 plugin(s) not ok: junk, policy") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("output:\n%s", out)
	}
	want := map[string][]string{
		"good":   {"ok", "closed", "1/3"},
		"junk":   {"quarantined", "not a WebAssembly module"},
		"policy": {"quarantined", "attempts"},
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		for _, w := range want[f[0]] {
			if !strings.Contains(line, w) {
				t.Errorf("%s: line %q lacks %q", f[0], line, w)
			}
		}
		delete(want, f[0])
	}
	if len(want) != 0 {
		t.Errorf("missing plugins %v in:\n%s", want, out)
	}

	code, out, _ = bulkhead(t, "", "plugins", "ls", "--json", "--plugins", dir, data)
	var sts []struct {
		Name    string
		State   supervisor.State
		Loads   int
		Breaker string
		PoolMax int `json:"pool_max"`
	}
	if err := json.Unmarshal([]byte(out), &sts); code != exitFailure || err != nil || len(sts) != 3 {
		t.Fatalf("--json: exit %d, %v:\n%s", code, err, out)
	}
	if s := sts[0]; s.Name != "good" || s.State != supervisor.StateOK || s.Loads != 1 || s.Breaker != "closed" || s.PoolMax != 3 {
		t.Errorf("--json: %+v", s)
	}
}

func TestPluginsReload(t *testing.T) {
	dir, data := pluginsDir(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOutHas string
		wantErrHas string
	}{
		{"good", []string{"reload", "good"}, exitOK, "ok", ""},
		{"junk", []string{"reload", "junk"}, exitFailure, "bad magic number", ""},
		{"bad policy", []string{"reload", "policy"}, exitFailure, "attempts", ""},
		{"missing", []string{"reload", "nope"}, exitUsage, "", "not found"},
		{"no name", []string{"reload"}, exitUsage, "", "want ls or reload NAME"},
		{"unknown", []string{"frob"}, exitUsage, "", "want ls or reload NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"plugins"}, tt.args...)
			code, out, errOut := bulkhead(t, "", append(args, "--plugins", dir, data)...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOutHas) || !strings.Contains(errOut, tt.wantErrHas) {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
	code, out, _ := bulkhead(t, "", "plugins", "reload", "policy", "-o", "json", "--plugins", dir, data)
	var st struct{ Name, State, Reason string }
	if err := json.Unmarshal([]byte(out), &st); code != exitFailure || err != nil || st.Name != "policy" || st.State != "quarantined" || !strings.Contains(st.Reason, `unknown key "attempts"`) {
		t.Errorf("reload -o json: exit %d, %v\n%s", code, err, out)
	}
	if code, _, errOut := bulkhead(t, "", "plugins", "ls", "--plugins", filepath.Join(dir, "none")); code != exitUsage || !strings.Contains(errOut, "not a directory") {
		t.Errorf("missing dir: exit %d, %s", code, errOut)
	}
}

// A directory whose every plugin loads passes the gate; -o json is --json.
func TestPluginsLs_AllOK(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(goodPlugin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "good.wasm"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := bulkhead(t, "", "plugins", "ls", "-o", "json", "--plugins", dir, "--data="+t.TempDir())
	var sts []struct{ Name, State string }
	if err := json.Unmarshal([]byte(out), &sts); code != exitOK || err != nil || len(sts) != 1 || sts[0].State != "ok" {
		t.Fatalf("exit %d, %v:\n%s%s", code, err, out, errOut)
	}
}
