package host_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// wantStackOverflow fails t unless err is a trap for a call stack over
// max_stack, which Invoke retries on a fresh instance.
func wantStackOverflow(t *testing.T, err error) {
	t.Helper()
	var ge *host.GuestError
	if !errors.As(err, &ge) || ge.Kind != host.KindTrap || !errors.Is(err, host.ErrTrap) ||
		!strings.Contains(ge.Msg, "stack overflow") || !strings.Contains(ge.Msg, "max_stack") {
		t.Fatalf("got %v, want a stack overflow trap naming max_stack", err)
	}
	if c := host.Classify(err); c != resilience.Retryable {
		t.Fatalf("classified %v, want retryable", c)
	}
}

// TestLimits_MaxStack: loop-free recursion without end traps as a stack
// overflow at the plugin's max_stack; a deep recursion within the default
// succeeds, and fails once max_stack is lowered below what it needs.
func TestLimits_MaxStack(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	wasm := hosttest.Fixture(t, "../host/testdata/stack.wasm")
	if _, err := h.Load(ctx, "stack", wasm, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(ctx, "small", wasm, abi.Manifest{MaxStack: 512 << 10}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the trapped instance is replaced
		_, err := h.Call(ctx, "stack", "runaway", nil)
		wantStackOverflow(t, err)
		if _, err := h.Call(ctx, "stack", "deep", nil); err != nil {
			t.Fatalf("deep, default max_stack: %v", err)
		}
	}
	_, err := h.Call(ctx, "small", "deep", nil)
	wantStackOverflow(t, err)
	if !strings.Contains(err.Error(), "512KiB") {
		t.Fatalf("%v does not name the bound", err)
	}
}

// TestLimits_MaxStackCachedPerBound: the on-disk cache of rewritten
// modules keeps one per bound, so the same module loaded with another
// max_stack gets its own.
func TestLimits_MaxStackCachedPerBound(t *testing.T) {
	h := newHost(t, host.WithCacheDir(t.TempDir()))
	ctx := context.Background()
	wasm := hosttest.Fixture(t, "../host/testdata/stack.wasm")
	for _, tt := range []struct {
		max  abi.Size
		fits bool
	}{{512 << 10, false}, {0, true}, {512 << 10, false}} {
		if _, err := h.Load(ctx, "stack", wasm, abi.Manifest{MaxStack: tt.max}); err != nil {
			t.Fatal(err)
		}
		_, err := h.Call(ctx, "stack", "deep", nil)
		if tt.fits && err != nil {
			t.Fatalf("max_stack %v: %v", tt.max, err)
		}
		if !tt.fits {
			wantStackOverflow(t, err)
		}
	}
}

// TestLimits_MaxStackHostMemoryHammer: each of 16 concurrent runaway
// recursions allocates a bounded amount, and together they grow the
// process's resident memory by a bounded amount (wazero's stack buffer for
// a call within max_stack, 4 MiB by default, takes at most about twice
// that, plus copies left behind as it grows; without the bound each call
// grew it to over 100 MiB), also when each frame keeps many values on the
// operand stack; once the trapped instances are discarded their memory is
// garbage.
func TestLimits_MaxStackHostMemoryHammer(t *testing.T) {
	const calls = 16
	h := newHost(t)
	ctx := context.Background()
	wasm := hosttest.Fixture(t, "../host/testdata/stack.wasm")
	if _, err := h.Load(ctx, "stack", wasm, abi.Manifest{Pool: abi.Pool{Max: calls}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Call(ctx, "stack", "deep", nil); err != nil {
		t.Fatal(err)
	}
	for _, export := range []string{"runaway", "wide"} {
		runtime.GC()
		base, baseHeap := rss(), heap()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		if base == 0 {
			t.Skip("no VmRSS in /proc/self/status")
		}
		stop := make(chan struct{})
		peak := make(chan int64)
		go func() {
			top := base
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					peak <- top
					return
				case <-tick.C:
					top = max(top, rss())
				}
			}
		}()
		var wg sync.WaitGroup
		errs := make([]error, calls)
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = h.Call(ctx, "stack", export, nil)
			}()
		}
		wg.Wait()
		close(stop)
		top := <-peak
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		perCall := int64(ms1.TotalAlloc-ms0.TotalAlloc) / calls
		runtime.GC()
		t.Logf("%s: %d MiB allocated per call; RSS %d MiB before, %d MiB at most during the calls, %d MiB after; Go heap %d MiB before, %d MiB after",
			export, perCall>>20, base>>20, top>>20, rss()>>20, baseHeap>>20, heap()>>20)
		// What a call allocates does not depend on how many run at once:
		// the stack buffers it grows through and a new instance.
		if perCall > 6*abi.DefaultMaxStackBytes {
			t.Errorf("%s: %d MiB allocated per call, want < %d MiB", export, perCall>>20, 6*abi.DefaultMaxStackBytes>>20)
		}
		// Four times max_stack a call covers the stack buffer, the copies
		// it leaves as it grows and a new instance; the race detector
		// shadows what the runtime copies, which triples it.
		limit := int64(calls * 4 * abi.DefaultMaxStackBytes)
		if raceEnabled {
			limit *= 3
		}
		if grew := top - base; grew > limit {
			t.Errorf("%s: resident memory grew by %d MiB during %d calls, want < %d MiB", export, grew>>20, calls, limit>>20)
		}
		if grew := int64(heap()) - int64(baseHeap); grew > 4*abi.DefaultMaxStackBytes {
			t.Errorf("%s: Go heap %d MiB above its level before the calls once they returned", export, grew>>20)
		}
		for _, err := range errs {
			wantStackOverflow(t, err)
		}
	}
}

// heap returns the bytes of live and not yet swept heap objects.
func heap() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rss returns the process's resident set size, 0 if unknown.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return n << 10
			}
		}
	}
	return 0
}
