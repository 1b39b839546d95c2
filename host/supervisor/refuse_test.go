package supervisor_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/plugins"
)

// Module files the registry refuses (over the size cap, or a symbolic link
// leading outside the directory) and plugins whose sidecar links outside
// are quarantined with the reason, which never repeats the outside file; a
// working plugin whose file is replaced by one over the cap keeps serving.
func TestSupervisor_RefusedFilesAreQuarantined(t *testing.T) {
	const secret = "SECRET-CONTENT-of-another-file"
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "passwd"), []byte(secret+":x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "m.wasm"), fixture(t, "one.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, map[string][]byte{"p.wasm": fixture(t, "one.wasm"), "side.wasm": fixture(t, "one.wasm")},
		supervisor.WithRegistryOptions(plugins.WithMaxModuleSize(1<<20)))
	if out, err := e.call("p"); err != nil || out != outOne {
		t.Fatalf("p = %q, %v", out, err)
	}

	big := filepath.Join(e.dir, "big.wasm")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "m.wasm"), filepath.Join(e.dir, "out.wasm")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(e.dir, "side.yaml")); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(e.dir, ".p.wasm.tmp")
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(tmp, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, "p.wasm")); err != nil {
		t.Fatal(err)
	}

	want := map[string]struct {
		state  supervisor.State
		reason string
	}{
		"big":  {supervisor.StateQuarantined, "8MiB, over the cap of 1MiB"},
		"out":  {supervisor.StateQuarantined, "leads outside the plugin directory"},
		"p":    {supervisor.StateFailed, "8MiB, over the cap of 1MiB"},
		"side": {supervisor.StateFailed, "leads outside the plugin directory"},
	}
	waitFor(t, "the refusals", func() bool {
		for name, w := range want {
			st, ok := e.sv.Status(name)
			if !ok || st.State != w.state || !strings.Contains(st.Reason, w.reason) {
				return false
			}
		}
		return true
	})
	for name := range want {
		st := e.status(t, name)
		if strings.Contains(st.Reason, "SECRET") {
			t.Errorf("%s: the reason repeats the outside file: %s", name, st.Reason)
		}
		t.Logf("%s %s: %s", name, st.State, st.Reason)
	}
	if out, err := e.call("p"); err != nil || out != outOne {
		t.Errorf("p after a refused replacement = %q, %v, want the old version serving", out, err)
	}
}
