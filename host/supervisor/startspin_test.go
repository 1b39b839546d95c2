package supervisor_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/plugins"
)

// spinStart is the start timeout of the start-spin tests: long enough that
// a plugin that waited for a spinning one would show it plainly, short
// enough to see the spinners quarantined.
const spinStart = 10 * time.Second

// Modules whose start function spins, dropped beside a good plugin (their
// names sort first, so a registry that loaded one plugin after the other
// would reach the good one last), delay nothing: Start returns at once,
// the good plugin serves long before any spinner's start timeout, a good
// plugin dropped while a spinner is loading serves as soon, and the
// spinners end up quarantined with a reason naming the start timeout.
func TestSupervisor_StartSpinDelaysNoOtherPlugin(t *testing.T) {
	spin, err := os.ReadFile("../testdata/startspin.wasm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"a-spin1", "a-spin2", "a-spin3"} {
		deploy(t, dir, name+".wasm", spin)
	}
	deploy(t, dir, "z-good.wasm", fixture(t, "one.wasm"))
	h := hosttest.New(t, host.WithStartTimeout(spinStart))
	sv, err := supervisor.New(h, dir, supervisor.WithRegistryOptions(plugins.WithDebounce(20*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	call := func(plugin string) bool {
		out, err := h.Call(context.Background(), plugin, "", nil)
		return err == nil && string(out) == outOne
	}

	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the good plugin to serve", func() bool { return call("z-good") })
	// Loaded one after the other, the good plugin would serve no sooner
	// than three start timeouts after Start.
	if took := time.Since(begin); took >= spinStart*8/10 {
		t.Errorf("the good plugin served %v after Start, next to spinning modules (start timeout %v)", took, spinStart)
	} else {
		t.Logf("the good plugin served %v after Start", took)
	}

	// Hot add: a spinner, then, while it is loading, a good plugin.
	deploy(t, dir, "b-spin.wasm", spin)
	waitFor(t, "the spinner to be seen", func() bool { _, ok := sv.Registry().Get("b-spin"); return ok })
	dropped := time.Now()
	deploy(t, dir, "z-good2.wasm", fixture(t, "one.wasm"))
	waitFor(t, "the second good plugin to serve", func() bool { return call("z-good2") })
	if took := time.Since(dropped); took >= spinStart*8/10 {
		t.Errorf("a good plugin dropped while a spinner loads served after %v (start timeout %v)", took, spinStart)
	} else {
		t.Logf("the second good plugin served %v after it was dropped", took)
	}
	if !call("z-good") {
		t.Error("the first good plugin stopped serving")
	}

	waitForLong(t, "the spinners to be quarantined", 3*spinStart, func() bool {
		for _, name := range []string{"a-spin1", "a-spin2", "a-spin3", "b-spin"} {
			st, ok := sv.Status(name)
			if !ok || st.State != supervisor.StateQuarantined {
				return false
			}
		}
		return true
	})
	for _, name := range []string{"a-spin1", "b-spin"} {
		st, _ := sv.Status(name)
		if !strings.Contains(st.Reason, "start timeout (10s)") {
			t.Errorf("%s quarantined with reason %q, want the start timeout named", name, st.Reason)
		}
	}
	select {
	case <-sv.Ready():
	default:
		t.Error("Ready is not closed once every plugin of the scan is settled")
	}
}

// waitForLong is waitFor with its own bound.
func waitForLong(t testing.TB, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
