package host_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// TestInvoke_NoOpAllocatesNothing: a no-op call through the whole Invoke
// path (retry, breaker, deadline, metered call; then also a limiter and an
// attempt timeout) and through Call allocates nothing on the native engine.
func TestInvoke_NoOpAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled objects at random")
	}
	h, err := host.New(host.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Stop(context.Background()) })
	ctx := context.Background()
	wasm, err := os.ReadFile("testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(ctx, "tiny", wasm, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	req := host.InvokeRequest{Plugin: "tiny", Function: "noop"}
	invoke := func() {
		if _, err := h.Invoke(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	call := func() {
		if _, err := h.Call(ctx, "tiny", "noop", nil); err != nil {
			t.Fatal(err)
		}
	}
	invoke()
	if n := testing.AllocsPerRun(200, invoke); n != 0 {
		t.Errorf("Invoke of a no-op: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(200, call); n != 0 {
		t.Errorf("Call of a no-op: %v allocations per call, want 0", n)
	}
	if err := h.SetPolicy("tiny", resilience.Policy{
		Retry:          resilience.RetryPolicy{MaxAttempts: 3},
		Limiter:        resilience.LimiterPolicy{MaxConcurrent: 8},
		AttemptTimeout: resilience.Duration(time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	invoke()
	if n := testing.AllocsPerRun(200, invoke); n != 0 {
		t.Errorf("Invoke of a no-op under a limiter and an attempt timeout: %v allocations per call, want 0", n)
	}
}
