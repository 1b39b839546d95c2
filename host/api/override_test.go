package api_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/plugins"
)

// A per-plugin policy set with PUT /v1/config/resilience is what the
// plugin runs with after its file is redeployed and after the supervisor
// rebuilds it, and GET shows it.
func TestAPI_PluginPolicyOverrideSurvivesReloadAndRebuild(t *testing.T) {
	dir := t.TempDir()
	wasm := hosttest.Fixture(t, "outcomes.wasm")
	write := func(name string, b []byte) {
		t.Helper()
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("outcomes.yaml", []byte("timeout: 250ms\npolicy:\n  retry: {max_attempts: 3, initial_delay: 1ms}\n  breaker: {failure_threshold: 1000}\n"))
	write("outcomes.wasm", wasm)

	h := hosttest.New(t)
	sv, err := supervisor.New(h, dir,
		supervisor.WithTrapThreshold(3, time.Minute),
		supervisor.WithRegistryOptions(plugins.WithDebounce(20*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := sv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	status := func() supervisor.Status { st, _ := sv.Status("outcomes"); return st }
	poll(t, "the plugin to load", func() bool { return status().State == supervisor.StateOK })

	a, err := api.New(api.Config{Token: token}, api.Deps{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, token, srv.Client())
	if err != nil {
		t.Fatal(err)
	}

	attempts := func() int {
		t.Helper()
		res, err := h.Invoke(ctx, host.InvokeRequest{Plugin: "outcomes", Function: "fail", Input: []byte("no")})
		if err == nil {
			t.Fatal("fail succeeded")
		}
		return res.Attempts
	}
	check := func(when string) {
		t.Helper()
		if n := attempts(); n != 1 {
			t.Errorf("%s: a failing call made %d attempts, want 1", when, n)
		}
		v, err := c.Resilience(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := v.Plugins["outcomes"].Retry.MaxAttempts; n != 1 {
			t.Errorf("%s: GET shows max_attempts %d, want 1", when, n)
		}
	}
	if n := attempts(); n != 3 {
		t.Fatalf("before the override: %d attempts, want the sidecar's 3", n)
	}
	if _, err := c.UpdateResilience(ctx, api.ResilienceUpdate{Plugin: "outcomes",
		Policy: json.RawMessage(`{"retry":{"max_attempts":1}}`)}); err != nil {
		t.Fatal(err)
	}
	check("after PUT")

	// Redeploy: other bytes (an extra custom section), same behaviour.
	loads := status().Loads
	write("outcomes.wasm", append(append([]byte{}, wasm...), 0x00, 0x05, 0x03, 'b', 'h', 'k', 1))
	poll(t, "the redeployed file to load", func() bool { return status().Loads > loads })
	check("after a redeploy")

	// A rebuild: three traps within the window.
	loads = status().Loads
	for range 3 {
		h.Invoke(ctx, host.InvokeRequest{Plugin: "outcomes", Function: "trap"})
	}
	poll(t, "a rebuild", func() bool {
		st := status()
		return st.Causes[supervisor.CauseTraps] > 0 && st.Loads > loads
	})
	check("after a rebuild")
}

// poll waits for cond, failing the test after a generous bound.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
