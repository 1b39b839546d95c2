package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `bulkhead call` accepts what `extism call` users type.
func TestCall_ExtismFlags(t *testing.T) {
	wasm, err := os.ReadFile(kitchen)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(kitchen)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	hash := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kitchen.wasm" {
			http.NotFound(w, r)
			return
		}
		w.Write(wasm)
	}))
	defer srv.Close()
	url := srv.URL + "/kitchen.wasm"

	dir := t.TempDir()
	data := "--data=" + dir
	writeJSON := func(name string, v any) string {
		t.Helper()
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	manifest := writeJSON("manifest.json", map[string]any{
		"wasm":   []map[string]string{{"path": abs, "hash": hash}},
		"config": map[string]string{"greeting": "from the manifest"},
		"memory": map[string]int{"max_pages": 1000},
	})
	shortTimeout := writeJSON("short.json", map[string]any{"wasm": []map[string]string{{"path": abs}}, "timeout_ms": 200})
	longTimeout := writeJSON("long.json", map[string]any{"wasm": []map[string]string{{"path": abs}}, "timeout_ms": 120000})
	badHash := writeJSON("bad-hash.json", map[string]any{"wasm": []map[string]string{{"path": abs, "hash": strings.Repeat("0", 64)}}})
	urlManifest := writeJSON("url.json", map[string]any{"wasm": []map[string]string{{"url": url, "hash": hash}}})
	twoModules := writeJSON("two.json", map[string]any{"wasm": []map[string]string{{"path": abs}, {"path": abs}}})
	mount := filepath.Join(dir, "mount")
	os.MkdirAll(mount, 0o755)
	os.WriteFile(filepath.Join(mount, "note.txt"), []byte("mounted"), 0o644)

	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantOut    string
		wantErrHas string
		wantErrNot string
	}{
		{name: "-i", args: []string{"call", kitchen, "echo", "-i", "short", data}, wantOut: "short"},
		{name: "--input=", args: []string{"call", kitchen, "echo", "--input=long", data}, wantOut: "long"},
		{name: "--stdin", stdin: "piped", args: []string{"call", kitchen, "echo", "--stdin", data}, wantOut: "piped"},
		{name: "--stdin and -i", stdin: "piped", args: []string{"call", kitchen, "echo", "--stdin", "-i", "x", data}, wantCode: 2, wantErrHas: "one of --input"},
		{name: "--wasi", args: []string{"call", kitchen, "echo", "--wasi", "-i", "w", data}, wantOut: "w"},
		{name: "--loop", args: []string{"call", kitchen, "var_incr", "--loop", "3", data}, wantOut: "1\n2\n3\n"},
		{name: "--loop 0", args: []string{"call", kitchen, "echo", "--loop", "0", data}, wantCode: 2, wantErrHas: "--loop"},
		{name: "--set-config", args: []string{"call", kitchen, "config", "-i", "greeting", "--set-config", `{"greeting":"hey"}`, data}, wantOut: "hey"},
		{name: "--config wins over --set-config", args: []string{"call", kitchen, "config", "-i", "greeting", "--set-config", `{"greeting":"hey"}`, "--config", "greeting=ho", data}, wantOut: "ho"},
		{name: "--set-config not JSON", args: []string{"call", kitchen, "echo", "--set-config", `greeting=hey`, data}, wantCode: 2, wantErrHas: "JSON object"},
		{name: "--manifest", args: []string{"call", "--manifest", manifest, "config", "-i", "greeting", data}, wantOut: "from the manifest"},
		{name: "--manifest memory", args: []string{"call", "--manifest", manifest, "membomb", data}, wantCode: 1, wantErrHas: "memory limit"},
		{name: "--manifest timeout_ms", args: []string{"call", "--manifest", shortTimeout, "spin", data}, wantCode: 1, wantErrHas: "deadline"},
		{name: "--timeout over timeout_ms", args: []string{"call", "--manifest", longTimeout, "spin", "--timeout", "200ms", data}, wantCode: 1, wantErrHas: "deadline"},
		{name: "--manifest hash mismatch", args: []string{"call", "--manifest", badHash, "echo", data}, wantCode: 2, wantErrHas: "hash mismatch"},
		{name: "--manifest two modules", args: []string{"call", "--manifest", twoModules, "echo", data}, wantCode: 2, wantErrHas: "one module per plugin"},
		{name: "--manifest url", args: []string{"call", "--manifest", urlManifest, "echo", "-i", "u", "--allow-download", data}, wantOut: "u"},
		{name: "URL needs --allow-download", args: []string{"call", url, "echo", "-i", "u", data}, wantCode: 2, wantErrHas: "--allow-download"},
		{name: "URL", args: []string{"call", url, "echo", "-i", "u", "--allow-download", data}, wantOut: "u"},
		{name: "URL not found", args: []string{"call", srv.URL + "/nope.wasm", "--allow-download", data}, wantCode: 2, wantErrHas: "404"},
		{name: "plain --allow-path", args: []string{"call", kitchen, "readfile", "-i", filepath.Join(mount, "note.txt"), "--allow-path", mount, data}, wantOut: "mounted"},
		{name: "no --allow-path", args: []string{"call", kitchen, "readfile", "-i", filepath.Join(mount, "note.txt"), data}, wantCode: 1},
		{name: "--timeout in ms", args: []string{"call", kitchen, "spin", "--timeout", "200", data}, wantCode: 1, wantErrHas: "deadline"},
		{name: "--timeout nonsense", args: []string{"call", kitchen, "spin", "--timeout", "soon", data}, wantCode: 2, wantErrHas: "milliseconds such as 30000"},
		{name: "--log-level warn", args: []string{"call", kitchen, "log", "-i", "LINE", "--log-level", "warn", data}, wantErrHas: "LINE", wantErrNot: "level=INFO"},
		{name: "--log-level off", args: []string{"call", kitchen, "log", "-i", "LINE", "--log-level", "off", data}, wantErrNot: "LINE"},
		{name: "--log-level trace", args: []string{"call", kitchen, "log", "-i", "LINE", "--log-level", "trace", data}, wantErrHas: "level=DEBUG"},
		{name: "--log-level nonsense", args: []string{"call", kitchen, "log", "--log-level", "loud", data}, wantCode: 2, wantErrHas: "want trace, debug"},
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
			if !strings.Contains(errOut, tt.wantErrHas) {
				t.Fatalf("stderr %q does not mention %q", errOut, tt.wantErrHas)
			}
			if tt.wantErrNot != "" && strings.Contains(errOut, tt.wantErrNot) {
				t.Fatalf("stderr %q mentions %q", errOut, tt.wantErrNot)
			}
		})
	}
}

// Without --data, compiled code goes to the user cache directory, never
// into the working directory.
func TestCall_CacheInUserCacheDir(t *testing.T) {
	abs, err := filepath.Abs(kitchen)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	t.Setenv("BULKHEAD_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", cache)
	work := t.TempDir()
	t.Chdir(work)
	if code, out, errOut := bulkhead(t, "", "call", abs, "echo", "-i", "c"); code != 0 || out != "c" {
		t.Fatalf("exit %d, %q, %s", code, out, errOut)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("call wrote into the working directory: %v", entries)
	}
	if entries, err := os.ReadDir(filepath.Join(cache, "bulkhead")); err != nil || len(entries) == 0 {
		t.Errorf("nothing cached in %s/bulkhead: %v", cache, err)
	}
}
