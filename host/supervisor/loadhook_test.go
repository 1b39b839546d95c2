package supervisor_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
)

// TestSupervisor_LoadHook: every loaded version reaches the hook with its
// bytes, in load order; a refused one does not.
func TestSupervisor_LoadHook(t *testing.T) {
	type load struct {
		plugin, version string
		wasm            []byte
	}
	var mu sync.Mutex
	var loads []load
	hook := supervisor.WithLoadHook(func(plugin, version string, wasm []byte, _ abi.Manifest) {
		mu.Lock()
		loads = append(loads, load{plugin, version, bytes.Clone(wasm)})
		mu.Unlock()
	})
	one, two := fixture(t, "one.wasm"), fixture(t, "two.wasm")
	e := newEnv(t, map[string][]byte{"p.wasm": one}, hook)
	deploy(t, e.dir, "p.wasm", []byte("not wasm"))
	deploy(t, e.dir, "p.wasm", two)
	waitFor(t, "the second version", func() bool { return e.status(t, "p").Version == host.Version(two) })
	mu.Lock()
	defer mu.Unlock()
	if len(loads) != 2 {
		t.Fatalf("hook saw %d loads, want 2 (the refused change is not one)", len(loads))
	}
	for i, b := range [][]byte{one, two} {
		if l := loads[i]; l.plugin != "p" || l.version != host.Version(b) || !bytes.Equal(l.wasm, b) {
			t.Errorf("load %d = %s@%s (%d bytes), want p@%s", i, l.plugin, l.version, len(l.wasm), host.Version(b))
		}
	}
}
