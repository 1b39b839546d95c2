package host_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

func TestFuel_CPUBudgetStopsASpinningGuest(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{CPUBudget: 50_000_000})
	start := time.Now()
	var stats host.CallStats
	_, err := h.Call(context.Background(), "kitchen", "spin", nil, host.WithStats(&stats))
	var ge *host.GuestError
	if !errors.Is(err, host.ErrCPUBudget) || !errors.As(err, &ge) || ge.Kind != host.KindCPU {
		t.Fatalf("spin under a CPU budget = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a 50M budget took %s to run out", d)
	}
	if stats.Fuel < 50_000_000 || !stats.Metered {
		t.Fatalf("stats %+v", stats)
	}
	if host.Classify(err).String() != "fatal" {
		t.Fatalf("a spent CPU budget classifies as %v, want fatal (not retried, counted)", host.Classify(err))
	}
	if out, err := h.Call(context.Background(), "kitchen", "echo", []byte("ok")); err != nil || string(out) != "ok" {
		t.Fatalf("echo after = %q, %v", out, err)
	}
}

func TestFuel_DeadlineStopsMeteredGuestPromptly(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	if info, _ := h.Plugin("kitchen"); !info.Metered {
		t.Fatalf("kitchen is not metered: %q", info.Unmetered)
	}
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := h.Call(ctx, "kitchen", "spin", nil)
		cancel()
		if !errors.Is(err, host.ErrTimeout) {
			t.Fatalf("spin = %v", err)
		}
		// The guest stops within a slice of its deadline; the bound also
		// covers closing its instance, which the race detector slows.
		bound := 50 * time.Millisecond
		if raceEnabled {
			bound = 250 * time.Millisecond
		}
		if late := time.Since(start) - 100*time.Millisecond; late > bound {
			t.Fatalf("stopped %s after its deadline", late)
		}
	}
}

// TestFuel_Differential runs the same calls on a metered and an unmetered
// host: outputs and errors match.
func TestFuel_Differential(t *testing.T) {
	metered, plain := newHost(t), newHost(t, host.WithFuel(false))
	m := abi.Manifest{Config: map[string]string{"k": "v"}, Pool: abi.Pool{Max: 1}}
	load(t, metered, "kitchen", m)
	load(t, plain, "kitchen", m)
	if info, _ := plain.Plugin("kitchen"); info.Metered {
		t.Fatal("WithFuel(false) still metered")
	}
	big := bytes.Repeat([]byte{0, 1, 2, 250}, 1<<18)
	calls := []struct {
		fn string
		in []byte
	}{
		{"echo", nil}, {"echo", []byte("x")}, {"echo", big},
		{"json", []byte(`{"a":1,"b":2}`)}, {"json", []byte(`nope`)},
		{"config", []byte("k")}, {"config", []byte("missing")},
		{"fail", []byte("why")}, {"fail_permanent", []byte("bad")}, {"trap", nil},
	}
	ctx := context.Background()
	for _, c := range calls {
		out1, err1 := metered.Call(ctx, "kitchen", c.fn, c.in)
		out2, err2 := plain.Call(ctx, "kitchen", c.fn, c.in)
		if !bytes.Equal(out1, out2) || errString(err1) != errString(err2) {
			t.Fatalf("%s: metered %q/%v, unmetered %q/%v", c.fn, out1, err1, out2, err2)
		}
	}
}

// TestFuel_Deterministic: the same call uses the same fuel on every instance
// and every time. (A Go guest's runtime does background work paced by the
// clock, so its counts vary slightly; this uses a WAT guest.)
func TestFuel_Deterministic(t *testing.T) {
	wasm := hosttest.Fixture(t, "../host/testdata/tiny.wasm")
	var counts []int64
	for range 2 {
		h := newHost(t)
		if _, err := h.Load(context.Background(), "tiny", wasm, abi.Manifest{}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 100, 4096} {
			var s host.CallStats
			if _, err := h.Call(context.Background(), "tiny", "echo", make([]byte, n), host.WithStats(&s)); err != nil {
				t.Fatal(err)
			}
			counts = append(counts, s.Fuel)
		}
	}
	for i := range 3 {
		if counts[i] <= 0 || counts[i] != counts[i+3] {
			t.Fatalf("fuel per call %v: the two instances differ", counts)
		}
	}
	if !(counts[0] < counts[1] && counts[1] < counts[2]) {
		t.Fatalf("fuel %v does not grow with the input", counts)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestHost_SleepingGuestStopsAtDeadline: a guest blocked in sleep is woken
// by its call's deadline, metered or not.
func TestHost_SleepingGuestStopsAtDeadline(t *testing.T) {
	for _, metered := range []bool{true, false} {
		h := newHost(t, host.WithFuel(metered))
		load(t, h, "kitchen", abi.Manifest{})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err := h.Call(ctx, "kitchen", "sleep", []byte("10000"))
		cancel()
		if !errors.Is(err, host.ErrTimeout) {
			t.Fatalf("metered=%v: sleep past the deadline = %v", metered, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("metered=%v: a 10 s sleep with a 200 ms deadline returned after %s", metered, d)
		}
	}
}

// A module's start function runs while Load instantiates it, before any
// call: a start function that never returns fails the load at the start
// timeout, whatever the plugin's call timeout, instead of hanging it.
func TestLoad_StartFunctionThatSpinsFailsAtStartTimeout(t *testing.T) {
	h := newHost(t, host.WithStartTimeout(200*time.Millisecond))
	wasm := hosttest.Fixture(t, "../host/testdata/startspin.wasm")
	start := time.Now()
	_, err := h.Load(context.Background(), "startspin", wasm, abi.Manifest{Timeout: abi.Duration(time.Hour)})
	took := time.Since(start)
	var le *host.LoadError
	if !errors.As(err, &le) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Load = %v, want a *host.LoadError wrapping context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "start timeout (200ms)") {
		t.Errorf("Load = %v, want the start timeout named", err)
	}
	if took > 5*time.Second {
		t.Fatalf("Load took %s with a 200ms start timeout", took)
	}
	if _, ok := h.Plugin("startspin"); ok {
		t.Fatal("the plugin is loaded")
	}
	t.Logf("Load failed after %s: %v", took, err)
}

// A metered module reports every failed memory.grow, so the memory cap is
// told apart exactly: a guest that traps after a grow failed, its memory
// far below the cap, is KindMemory; one that traps at its cap after grows
// that all succeeded is KindTrap.
func TestMemoryCap_ClassifiedByFailedGrow(t *testing.T) {
	testMemoryCapClassified(t, newHost(t))
}

// The native engine allocates guest memory itself and sees every grow the
// cap refuses, so an unmetered module is classified as exactly.
func TestMemoryCap_ExactUnmeteredNative(t *testing.T) {
	h := newHost(t, host.WithFuel(false), host.WithEngine(abi.EngineNative))
	testMemoryCapClassified(t, h, "bigGrow")
	if info, _ := h.Plugin("grow"); info.Metered {
		t.Fatal("the module is metered")
	}
	// bigGrow's request is past what Wasm allows any memory: wazero
	// refuses it before the cap is asked, so unmetered it is unseen and
	// the call is a plain trap (a documented difference from metered).
	_, err := h.Call(context.Background(), "grow", "bigGrow", nil)
	var ge *host.GuestError
	if !errors.As(err, &ge) || ge.Kind != host.KindTrap {
		t.Fatalf("unmetered bigGrow = %v, want a trap", err)
	}
}

func testMemoryCapClassified(t *testing.T, h *host.Host, skip ...string) {
	t.Helper()
	wasm := hosttest.Fixture(t, "../host/testdata/grow.wasm")
	if _, err := h.Load(context.Background(), "grow", wasm, abi.Manifest{Memory: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		export string
		want   host.Kind
	}{
		{"bigGrow", host.KindMemory},
		{"capGrow", host.KindMemory},
		{"nearCapTrap", host.KindTrap},
	} {
		if slices.Contains(skip, tt.export) {
			continue
		}
		_, err := h.Call(context.Background(), "grow", tt.export, nil)
		var ge *host.GuestError
		if !errors.As(err, &ge) || ge.Kind != tt.want {
			t.Errorf("%s = %v, want a %v error", tt.export, err, tt.want)
		}
		if tt.want == host.KindMemory && !errors.Is(err, host.ErrMemoryLimit) {
			t.Errorf("%s = %v, want it to match ErrMemoryLimit", tt.export, err)
		}
	}
}
