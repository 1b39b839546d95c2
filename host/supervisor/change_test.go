package supervisor_test

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/supervisor"
)

// changes records the change hook's calls.
type changes struct {
	mu  sync.Mutex
	got []string
}

func (c *changes) hook(name string, removed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if removed {
		name = "-" + name
	} else {
		name = "+" + name
	}
	c.got = append(c.got, name)
}

func (c *changes) has(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.got, s)
}

func (c *changes) count(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, g := range c.got {
		if g == s {
			n++
		}
	}
	return n
}

// The change hook follows the directory: plugins found by the scan (the
// quarantined one too), an update, a plugin added later, and removals,
// each reported once the change was applied.
func TestSupervisor_ChangeHook(t *testing.T) {
	var c changes
	e := newEnv(t, map[string][]byte{
		"ok.wasm":   fixture(t, "one.wasm"),
		"junk.wasm": []byte("junk"),
	}, supervisor.WithChangeHook(c.hook))
	if !c.has("+ok") || !c.has("+junk") {
		t.Fatalf("after the scan: %v, want +ok and +junk", c.got)
	}
	deploy(t, e.dir, "ok.wasm", fixture(t, "two.wasm"))
	waitFor(t, "the update", func() bool { return c.count("+ok") == 2 })
	if out, err := e.call("ok"); err != nil || out != outTwo {
		t.Errorf("after the hook the update is not applied: %q, %v", out, err)
	}
	deploy(t, e.dir, "late.wasm", fixture(t, "one.wasm"))
	waitFor(t, "the new plugin", func() bool { return c.has("+late") })
	for _, name := range []string{"junk", "late"} {
		if err := os.Remove(filepath.Join(e.dir, name+".wasm")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, name+" removed", func() bool { return c.has("-" + name) })
		if _, ok := e.sv.Status(name); ok {
			t.Errorf("%s: still has a status when the hook reports it removed", name)
		}
	}
}
