package supervisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/plugins"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// hammer calls plugin from 8 goroutines until stop is called, checking
// every output against want.
type hammer struct {
	calls, failures, wrong atomic.Int64
	mu                     sync.Mutex
	firstErr               error
	seen                   map[string]int
	stop                   func()
}

func startHammer(t *testing.T, e *env, plugin string, want ...string) *hammer {
	t.Helper()
	hm := &hammer{seen: map[string]int{}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for {
				select {
				case <-done:
					hm.mu.Lock()
					for k, v := range local {
						hm.seen[k] += v
					}
					hm.mu.Unlock()
					return
				default:
				}
				out, err := e.call(plugin)
				hm.calls.Add(1)
				switch {
				case err != nil:
					hm.failures.Add(1)
					hm.mu.Lock()
					if hm.firstErr == nil {
						hm.firstErr = err
					}
					hm.mu.Unlock()
				case !slices.Contains(want, out):
					hm.wrong.Add(1)
				}
				local[out]++
			}
		}()
	}
	var once sync.Once
	hm.stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(hm.stop)
	return hm
}

func (hm *hammer) check(t *testing.T) {
	t.Helper()
	hm.stop()
	if n := hm.failures.Load(); n > 0 {
		t.Errorf("%d of %d calls failed; first: %v", n, hm.calls.Load(), hm.firstErr)
	}
	if n := hm.wrong.Load(); n > 0 {
		t.Errorf("%d of %d calls gave an output of neither version", n, hm.calls.Load())
	}
}

// loadTime is how long a cold Load (compile and first instance, no
// cache) of b takes on a fresh host.
func loadTime(t *testing.T, b []byte) time.Duration {
	t.Helper()
	h, err := host.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	start := time.Now()
	if _, err := h.Load(context.Background(), "probe", b, abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

func TestSupervisor_SwapUnderLoadHammer(t *testing.T) {
	one, two := fixture(t, "one.wasm"), fixture(t, "two.wasm")
	// A 10 ms debounce: the registry waits for a file to be stable for one
	// debounce before it reads it, which this test counts in the latency.
	e := newEnv(t, map[string][]byte{"p.wasm": one},
		supervisor.WithRegistryOptions(plugins.WithDebounce(10*time.Millisecond)))
	if out, err := e.call("p"); err != nil || out != outOne {
		t.Fatalf("first call = %q, %v", out, err)
	}
	hm := startHammer(t, e, "p", outOne, outTwo)

	const swaps = 50
	var lats, loads []time.Duration
	for i := 1; i <= swaps; i++ {
		b, want := two, outTwo
		if i%2 == 0 {
			b, want = one, outOne
		}
		if i%5 == 0 {
			// The baseline: a cold load of the same module under the same
			// hammer, so a busy machine slows both alike.
			loads = append(loads, loadTime(t, b))
		}
		start := time.Now()
		deploy(t, e.dir, "p.wasm", b)
		waitFor(t, "the new version to serve", func() bool {
			out, err := e.call("p")
			return err == nil && out == want
		})
		lats = append(lats, time.Since(start))
	}
	hm.check(t)
	slices.Sort(lats)
	slices.Sort(loads)
	p50, worst := lats[len(lats)/2], lats[len(lats)-1]
	compile := loads[len(loads)/2]
	t.Logf("%d calls; swap to serving: p50 %v, max %v; cold load %v; seen %v",
		hm.calls.Load(), p50, worst, compile, hm.seen)
	// A swap is a debounce (10 ms), a read, a compile and the swap itself;
	// compile is the median cold load measured beside the swaps. The
	// median swap must stay within twice that plus 50 ms: a supervisor
	// several times slower than a cold load fails, however busy the
	// machine.
	if limit := 2*compile + 50*time.Millisecond; p50 > limit {
		t.Errorf("median swap latency %v over twice the median cold load + 50 ms = %v", p50, limit)
	}
	if limit := compile + 500*time.Millisecond; worst > limit {
		t.Errorf("worst swap latency %v over %v", worst, limit)
	}
	if hm.seen[outOne] == 0 || hm.seen[outTwo] == 0 {
		t.Errorf("outputs seen %v, want both versions", hm.seen)
	}
	st := e.status(t, "p")
	if st.State != supervisor.StateOK || st.Version != host.Version(one) {
		t.Errorf("status %+v, want ok at version one", st)
	}
	if st.Causes[supervisor.CauseChanged] != swaps || st.Loads != swaps+1 {
		t.Errorf("loads %d, causes %v; want %d changes", st.Loads, st.Causes, swaps)
	}
}

func TestSupervisor_BadFilesKeepOldVersionHammer(t *testing.T) {
	one, two := fixture(t, "one.wasm"), fixture(t, "two.wasm")
	e := newEnv(t, map[string][]byte{"p.wasm": one})
	hm := startHammer(t, e, "p", outOne, outTwo)

	bad := []struct {
		name string
		give []byte
	}{
		{"garbage", []byte("this is not a WebAssembly module at all")},
		{"truncated", one[:len(one)/2]},
	}
	for _, tt := range bad {
		deploy(t, e.dir, "p.wasm", tt.give)
		v := host.Version(tt.give)
		waitFor(t, tt.name+" to be refused", func() bool {
			st, _ := e.sv.Status("p")
			return st.FileVersion == v && st.LoadFailures > 0
		})
		st := e.status(t, "p")
		if st.State != supervisor.StateFailed || st.Version != host.Version(one) || st.Reason == "" {
			t.Errorf("%s: status %+v, want failed with a reason, version one serving", tt.name, st)
		}
		t.Logf("%s: reason %q", tt.name, st.Reason)
		if err := e.sv.Check("p"); err != nil {
			t.Errorf("%s: Check = %v, want nil (the old version serves)", tt.name, err)
		}
	}
	if st := e.status(t, "p"); st.LoadFailures != 2 {
		t.Errorf("load failures %d, want 2", st.LoadFailures)
	}

	deploy(t, e.dir, "p.wasm", two)
	waitFor(t, "the good file to serve", func() bool {
		out, err := e.call("p")
		return err == nil && out == outTwo
	})
	hm.check(t)
	if hm.seen[outOne] == 0 {
		t.Errorf("outputs %v: the old version never served", hm.seen)
	}
	st := e.status(t, "p")
	if st.State != supervisor.StateOK || st.Reason != "" || st.Version != host.Version(two) {
		t.Errorf("after recovery: %+v", st)
	}
}

func TestSupervisor_Quarantine(t *testing.T) {
	e := newEnv(t, map[string][]byte{
		"junk.wasm": []byte("junk"),
		"side.wasm": fixture(t, "one.wasm"),
		"side.yaml": []byte("memroy: 64MiB\n"),
		"ok.wasm":   fixture(t, "one.wasm"),
	})
	for _, name := range []string{"junk", "side"} {
		st := e.status(t, name)
		if st.State != supervisor.StateQuarantined || st.Reason == "" || st.Version != "" {
			t.Errorf("%s: status %+v, want quarantined with a reason", name, st)
		}
		err := e.sv.Check(name)
		var qe *supervisor.QuarantineError
		if !errors.Is(err, supervisor.ErrQuarantined) || !errors.As(err, &qe) || qe.Reason != st.Reason {
			t.Errorf("%s: Check = %v, want a QuarantineError with the reason", name, err)
		}
		res, err := e.sv.Invoke(context.Background(), host.InvokeRequest{Plugin: name})
		if !errors.Is(err, supervisor.ErrQuarantined) || res.Attempts != 0 {
			t.Errorf("%s: Invoke = %+v, %v; want a fast ErrQuarantined", name, res, err)
		}
	}
	if !strings.Contains(e.status(t, "side").Reason, "memroy") {
		t.Errorf("side: reason %q does not name the bad key", e.status(t, "side").Reason)
	}
	if err := e.sv.Check("ok"); err != nil {
		t.Errorf("ok: Check = %v", err)
	}
	if err := e.sv.Check("nope"); !errors.Is(err, host.ErrNoPlugin) {
		t.Errorf("unknown: Check = %v, want ErrNoPlugin", err)
	}

	// Fixing the files releases them.
	deploy(t, e.dir, "junk.wasm", fixture(t, "two.wasm"))
	deploy(t, e.dir, "side.yaml", []byte("memory: 64MiB\n"))
	for _, name := range []string{"junk", "side"} {
		waitFor(t, name+" to leave quarantine", func() bool { return e.sv.Check(name) == nil })
		res, err := e.sv.Invoke(context.Background(), host.InvokeRequest{Plugin: name})
		if err != nil || len(res.Output) == 0 {
			t.Errorf("%s: Invoke after the fix = %q, %v", name, res.Output, err)
		}
	}
}

func TestSupervisor_RemoveDrainsCalls(t *testing.T) {
	e := newEnv(t, map[string][]byte{"s.wasm": fixture(t, "slow.wasm")})
	started := time.Now()
	type result struct {
		out string
		err error
		end time.Time
	}
	res := make(chan result, 1)
	go func() {
		out, err := e.call("s")
		res <- result{out, err, time.Now()}
	}()
	if err := os.Remove(filepath.Join(e.dir, "s.wasm")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin to be unloaded", func() bool {
		_, ok := e.sv.Status("s")
		return !ok
	})
	gone := time.Now()
	r := <-res
	if r.err != nil || r.out != "answer-s" {
		t.Errorf("call in flight = %q, %v; want it to finish on the removed version", r.out, r.err)
	}
	// The call (about 0.1 s) outlasts the removal's detection (one 20 ms
	// debounce): the unload waited for it.
	if r.end.After(gone.Add(20 * time.Millisecond)) {
		t.Errorf("unloaded %v before the call in flight finished", r.end.Sub(gone))
	}
	t.Logf("call in flight took %v, unloaded %v after the start", r.end.Sub(started), gone.Sub(started))
	if _, err := e.call("s"); !errors.Is(err, host.ErrNoPlugin) {
		t.Errorf("call after removal: %v, want ErrNoPlugin", err)
	}
	if err := e.sv.Check("s"); !errors.Is(err, host.ErrNoPlugin) {
		t.Errorf("Check after removal: %v, want ErrNoPlugin", err)
	}
}

func TestSupervisor_ManifestChange(t *testing.T) {
	e := newEnv(t, map[string][]byte{"p.wasm": fixture(t, "one.wasm"), "p.yaml": []byte("pool: {max: 2}\n")})
	if st := e.status(t, "p"); st.PoolMax != 2 {
		t.Fatalf("pool max %d, want 2", st.PoolMax)
	}
	// A limit changed: the module is reloaded with the new manifest.
	deploy(t, e.dir, "p.yaml", []byte("pool: {max: 3}\n"))
	// The status's pool size and its load counters are not one snapshot:
	// wait for all three.
	waitFor(t, "the new manifest, loaded once more", func() bool {
		st := e.status(t, "p")
		return st.PoolMax == 3 && st.Causes[supervisor.CauseManifest] == 1 && st.Loads == 2
	})
	// Only the policy changed: no reload.
	deploy(t, e.dir, "p.yaml", []byte("pool: {max: 3}\npreset: database\npolicy:\n  retry: {max_attempts: 7}\n"))
	waitFor(t, "the policy", func() bool {
		p, err := e.sv.Policy("p")
		return err == nil && p.Retry.MaxAttempts == 7
	})
	time.Sleep(50 * time.Millisecond) // the event follows the catalogue
	if st := e.status(t, "p"); st.Loads != 2 || st.State != supervisor.StateOK {
		t.Errorf("after a policy change: %+v, want no reload", st)
	}
	// A bad policy is a broken sidecar: the last good manifest stays.
	deploy(t, e.dir, "p.yaml", []byte("pool: {max: 3}\npolicy:\n  retry: {attempts: 7}\n"))
	waitFor(t, "the refusal", func() bool { return e.status(t, "p").State == supervisor.StateFailed })
	if st := e.status(t, "p"); !strings.Contains(st.Reason, "attempts") || st.PoolMax != 3 {
		t.Errorf("after a bad policy: %+v", st)
	}
	if out, err := e.call("p"); err != nil || out != outOne {
		t.Errorf("call = %q, %v", out, err)
	}
}

// A plugin whose every call fails, with a sidecar that opens its breaker
// after 3 failures for 50 ms. The registry's watcher is off, so only the
// supervisor's rebuilds can find the fixed file.
func TestSupervisor_RebuildsFailingPlugin(t *testing.T) {
	const sidecar = `policy:
  breaker: {failure_threshold: 3, open_timeout: 50ms, success_threshold: 1}
  retry: {max_attempts: 1}
`
	const backoffMin = 40 * time.Millisecond
	e := newEnv(t, map[string][]byte{"p.wasm": fixture(t, "fail.wasm"), "p.yaml": []byte(sidecar)},
		supervisor.WithRegistryOptions(plugins.WithFSNotify(false), plugins.WithRescanInterval(time.Hour)),
		supervisor.WithBackoff(backoffMin, time.Second))
	invoke := func() error {
		_, err := e.sv.Invoke(context.Background(), host.InvokeRequest{Plugin: "p"})
		return err
	}
	// Rebuild times, read from LoadedAt of each rebuild's load.
	var loads []time.Time
	last := e.status(t, "p").LoadedAt
	for len(loads) < 4 {
		err := invoke()
		if err == nil {
			t.Fatal("the failing plugin succeeded")
		}
		if st := e.status(t, "p"); !st.LoadedAt.Equal(last) {
			if st.LastCause != supervisor.CauseBreaker {
				t.Fatalf("reloaded for %s, want %s", st.LastCause, supervisor.CauseBreaker)
			}
			last = st.LoadedAt
			loads = append(loads, last)
		}
		time.Sleep(time.Millisecond)
	}
	for i := 2; i < len(loads); i++ {
		gap, min := loads[i].Sub(loads[i-1]), backoffMin<<(i-2)
		if gap < min-5*time.Millisecond {
			t.Errorf("rebuild %d came %v after the one before, want at least %v (backoff)", i+1, gap, min)
		}
	}
	t.Logf("rebuild gaps: %v %v %v", loads[1].Sub(loads[0]), loads[2].Sub(loads[1]), loads[3].Sub(loads[2]))

	// The fix is dropped while the plugin keeps failing; the next rebuild
	// reads it.
	fixed := fixture(t, "one.wasm")
	deploy(t, e.dir, "p.wasm", fixed)
	waitFor(t, "a successful call", func() bool {
		time.Sleep(time.Millisecond)
		return invoke() == nil
	})
	// The host serves a version as soon as it loaded it; the supervisor
	// records the load right after.
	waitFor(t, "the fixed version's status", func() bool { return e.status(t, "p").Version == host.Version(fixed) })
	st := e.status(t, "p")
	if st.Version != host.Version(fixed) || st.LastCause != supervisor.CauseBreaker || st.Causes[supervisor.CauseChanged] != 0 {
		t.Errorf("status %+v: want the fixed version, loaded by a rebuild", st)
	}
	if st.Rebuilds < 5 || st.State != supervisor.StateOK {
		t.Errorf("status %+v, want at least 5 rebuilds and ok", st)
	}
	for range 10 {
		if err := invoke(); err != nil {
			t.Fatalf("after the fix: %v", err)
		}
	}
	if b := e.h.Breakers()[host.PolicyName("p")]; b.State != resilience.Closed {
		t.Errorf("breaker %v, want closed", b.State)
	}
}

func TestSupervisor_RebuildsTrappingPlugin(t *testing.T) {
	// The breaker never opens: only the trap rule can rebuild.
	const sidecar = `policy:
  breaker: {failure_threshold: -1}
  retry: {max_attempts: 1}
`
	e := newEnv(t, map[string][]byte{"p.wasm": fixture(t, "trap.wasm"), "p.yaml": []byte(sidecar)},
		supervisor.WithRegistryOptions(plugins.WithFSNotify(false), plugins.WithRescanInterval(time.Hour)),
		supervisor.WithTrapThreshold(3, time.Minute),
		supervisor.WithBackoff(20*time.Millisecond, 100*time.Millisecond))
	for range 3 {
		if _, err := e.sv.Invoke(context.Background(), host.InvokeRequest{Plugin: "p"}); !errors.Is(err, host.ErrTrap) {
			t.Fatalf("Invoke = %v, want a trap", err)
		}
	}
	waitFor(t, "a rebuild for traps", func() bool { return e.status(t, "p").Causes[supervisor.CauseTraps] == 1 })
	deploy(t, e.dir, "p.wasm", fixture(t, "two.wasm"))
	for range 3 {
		e.sv.Invoke(context.Background(), host.InvokeRequest{Plugin: "p"})
	}
	waitFor(t, "the fixed file", func() bool {
		out, err := e.call("p")
		return err == nil && out == outTwo
	})
	if st := e.status(t, "p"); st.Rebuilds != 2 || st.LastCause != supervisor.CauseTraps {
		t.Errorf("status %+v, want 2 rebuilds for traps", st)
	}
}

// A supervisor of a plain host, built with no option, hears its
// breakers open: it registers its own watcher.
func TestSupervisor_WatchesAPlainHost(t *testing.T) {
	dir := t.TempDir()
	deploy(t, dir, "p.yaml", []byte("policy:\n  breaker: {failure_threshold: 2}\n  retry: {max_attempts: 1}\n"))
	deploy(t, dir, "p.wasm", fixture(t, "fail.wasm"))
	h, err := host.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	sv, err := supervisor.New(h, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := sv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sv.Stop(context.Background())
	if err := sv.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		sv.Invoke(context.Background(), host.InvokeRequest{Plugin: "p"})
	}
	waitFor(t, "a rebuild", func() bool {
		st, _ := sv.Status("p")
		return st.Causes[supervisor.CauseBreaker] == 1
	})
}

func TestSupervisor_ReloadBeforeStart(t *testing.T) {
	dir := t.TempDir()
	deploy(t, dir, "p.wasm", fixture(t, "one.wasm"))
	deploy(t, dir, "bad.wasm", []byte("bad"))
	h, err := host.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	sv, err := supervisor.New(h, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sv.Stop(context.Background())
	st, err := sv.Reload(context.Background(), "p")
	if err != nil || st.State != supervisor.StateOK || st.Causes[supervisor.CauseManual] != 1 {
		t.Errorf("Reload(p) = %+v, %v", st, err)
	}
	st, err = sv.Reload(context.Background(), "bad")
	if !errors.Is(err, host.ErrInvalidModule) || st.State != supervisor.StateQuarantined {
		t.Errorf("Reload(bad) = %+v, %v", st, err)
	}
	if _, err := sv.Reload(context.Background(), "none"); !errors.Is(err, plugins.ErrNotFound) {
		t.Errorf("Reload(none) = %v, want ErrNotFound", err)
	}
	if got := len(sv.Statuses()); got != 2 {
		t.Errorf("%d statuses, want 2", got)
	}
}

func TestSupervisor_StartStop(t *testing.T) {
	h, err := host.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	if _, err := supervisor.New(h, t.TempDir(), supervisor.WithBackoff(time.Second, time.Millisecond)); err == nil {
		t.Error("New accepted min backoff > max")
	}
	sv, err := supervisor.New(h, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := sv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sv.Start(context.Background()); !errors.Is(err, supervisor.ErrStarted) {
		t.Errorf("second Start = %v", err)
	}
	for range 2 {
		if err := sv.Stop(context.Background()); err != nil {
			t.Errorf("Stop = %v", err)
		}
	}
}

func TestPolicyOf(t *testing.T) {
	api, _ := resilience.Preset(resilience.PresetAPI)
	tests := []struct {
		name    string
		give    plugins.Manifest
		want    func(resilience.Policy) bool
		wantErr string
	}{
		{"none", plugins.Manifest{}, func(p resilience.Policy) bool { return p == resilience.Policy{} }, ""},
		{"preset", plugins.Manifest{Preset: "api"}, func(p resilience.Policy) bool { return p == api }, ""},
		{"overlay", plugins.Manifest{Preset: "api", PolicyYAML: []byte("breaker: {open_timeout: 1s}\n")},
			func(p resilience.Policy) bool {
				return p.Breaker.OpenTimeout.D() == time.Second && p.Breaker.FailureThreshold == api.Breaker.FailureThreshold
			}, ""},
		{"unknown preset", plugins.Manifest{Preset: "nope"}, nil, "unknown preset"},
		{"unknown key", plugins.Manifest{PolicyYAML: []byte("retry: {attempts: 3}\n")}, nil, "attempts"},
		{"invalid", plugins.Manifest{PolicyYAML: []byte("retry: {max_attempts: -1}\n")}, nil, "max_attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := supervisor.PolicyOf(tt.give, resilience.Policy{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.want(got) {
				t.Errorf("PolicyOf = %+v, %v", got, err)
			}
		})
	}
}

// Stop right after a change: the change already observed is applied or
// abandoned cleanly, and every goroutine ends (goleak in TestMain).
func TestSupervisor_StopWithChangePending(t *testing.T) {
	e := newEnv(t, map[string][]byte{"p.wasm": fixture(t, "one.wasm")})
	deploy(t, e.dir, "p.wasm", fixture(t, "two.wasm"))
	e.sv.Invoke(context.Background(), host.InvokeRequest{Plugin: "p"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.sv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := e.call("p"); err != nil || (out != outOne && out != outTwo) {
		t.Errorf("after Stop the plugin still serves: %q, %v", out, err)
	}
}
