package host_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// A Watcher of a plain host hears every trapped attempt and the plugin's
// breaker opening, and nothing once it is removed.
func TestHost_Watch(t *testing.T) {
	h := hosttest.New(t)
	ctx := context.Background()
	wasm := hosttest.Fixture(t, "../host/testdata/grow.wasm")
	for _, name := range []string{"grow", "grow2"} {
		if _, err := h.Load(ctx, name, wasm, abi.Manifest{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.SetPolicy("grow", resilience.Policy{Retry: resilience.RetryPolicy{MaxAttempts: 1},
		Breaker: resilience.BreakerPolicy{FailureThreshold: 2}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var traps int
	var opened []string
	remove := h.Watch(host.Watcher{
		Trap: func(ge *host.GuestError) {
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(ge, host.ErrTrap) {
				traps++
			}
		},
		BreakerChange: func(name string, _, to resilience.State) {
			mu.Lock()
			defer mu.Unlock()
			if to == resilience.Open {
				opened = append(opened, name)
			}
		},
	})
	call := func(plugin string) error {
		_, err := h.Invoke(ctx, host.InvokeRequest{Plugin: plugin, Function: "nearCapTrap"})
		return err
	}
	call("grow")
	call("grow")
	mu.Lock()
	if traps != 2 || len(opened) != 1 || opened[0] != host.PolicyName("grow") {
		t.Errorf("heard %d traps and breakers %v opening, want 2 and [%s]", traps, opened, host.PolicyName("grow"))
	}
	mu.Unlock()
	remove()
	remove() // idempotent
	if err := call("grow2"); !errors.Is(err, host.ErrTrap) {
		t.Fatalf("grow2: %v, want a trap", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if traps != 2 {
		t.Errorf("a removed watcher heard %d traps, want 2", traps)
	}
}
