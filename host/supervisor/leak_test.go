package supervisor_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/plugins"
)

func heapAlloc() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// After 100 reloads, what the old versions held is gone: their goroutines
// ended and the heap is back within a fraction of one plugin's footprint
// (measured in the same run by loading plugins that stay loaded).
func TestSupervisor_HundredReloadsRetainNothing(t *testing.T) {
	one, two := fixture(t, "one.wasm"), fixture(t, "two.wasm")
	e := newEnv(t, map[string][]byte{"p.wasm": one},
		supervisor.WithRegistryOptions(plugins.WithFSNotify(false), plugins.WithRescanInterval(time.Hour)))
	ctx := context.Background()
	reload := func(i int) {
		b := one
		if i%2 == 1 {
			b = two
		}
		deploy(t, e.dir, "p.wasm", b)
		if _, err := e.sv.Reload(ctx, "p"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.call("p"); err != nil {
			t.Fatal(err)
		}
	}
	// Warm up: both versions compiled and cached, pools at their size.
	for i := range 4 {
		reload(i)
	}
	settle := func(base int) {
		waitFor(t, "old versions to be retired", func() bool { return runtime.NumGoroutine() <= base })
	}
	goroutines := runtime.NumGoroutine()
	before := heapAlloc()
	for i := range 100 {
		reload(i)
	}
	settle(goroutines)
	after := heapAlloc()

	// Calibration: ten plugins that stay loaded.
	for i := range 10 {
		if _, err := e.h.Load(ctx, fmt.Sprintf("keep%d", i), variant(one, i), abi.Manifest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.h.Call(ctx, fmt.Sprintf("keep%d", i), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	per := (int64(heapAlloc()) - int64(after)) / 10
	grew := int64(after) - int64(before)
	t.Logf("heap before %d KiB, after 100 reloads %d KiB (%+d KiB); one loaded plugin holds %d KiB",
		before>>10, after>>10, grew>>10, per>>10)
	if per <= 0 {
		t.Fatalf("calibration failed: a loaded plugin holds %d bytes", per)
	}
	// 100 leaked versions would be 100·per; allow two for noise.
	if grew > 2*per {
		t.Errorf("heap grew %d KiB over 100 reloads, more than two plugins' worth (%d KiB each)", grew>>10, per>>10)
	}
	if st := e.status(t, "p"); st.Loads != 105 || st.Causes[supervisor.CauseManual] != 104 {
		t.Errorf("status %+v", st)
	}
}

// variant returns b with a custom section naming i appended: the same
// code, another version.
func variant(b []byte, i int) []byte {
	name := "bulkhead-variant"
	payload := fmt.Sprintf("%d", i)
	sec := append([]byte{byte(len(name))}, name...)
	sec = append(sec, payload...)
	out := append([]byte{}, b...)
	out = append(out, 0, byte(len(sec)))
	return append(out, sec...)
}
