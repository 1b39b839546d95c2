package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.M(m))
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"plugins", "workflows"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	tiny, err := os.ReadFile("../../../../host/testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "plugins", "tiny.wasm"), tiny, 0o644)
	env := map[string]string{
		"BULKHEAD_PLUGINS": filepath.Join(dir, "plugins"), "BULKHEAD_WORKFLOWS": filepath.Join(dir, "workflows"),
		"BULKHEAD_DATA": filepath.Join(dir, "data"), "BULKHEAD_CACHE": hosttest.CacheDir(),
		"BULKHEAD_LISTEN": "127.0.0.1:0", "BULKHEAD_GRACE_PERIOD": "1s",
	}
	cfg, err := config.Load(config.Options{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestOptions_Validate(t *testing.T) {
	if err := fx.ValidateApp(Options(testConfig(t), slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
}

func TestOptions_StartServeStop(t *testing.T) {
	var srv *server.Server
	app := fxtest.New(t, Options(testConfig(t), slog.New(slog.NewTextHandler(io.Discard, nil))), fx.Populate(&srv))
	app.RequireStart()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	// Start does not wait for the plugins: /readyz does.
	waitUntil(t, "/readyz", 30*time.Second, func() bool {
		resp, err := hc.Get("http://" + srv.Addr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	for _, path := range []string{"/readyz", "/v1/plugins"} {
		resp, err := hc.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s", path, resp.Status)
		}
	}
	req, _ := http.NewRequestWithContext(context.Background(), "POST", "http://"+srv.Addr()+"/v1/plugins/tiny/call?function=noop", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("call: %s", resp.Status)
	}
	app.RequireStop()
}

// Modules whose start function spins, in the plugins directory beside a
// good plugin, do not hold the service back: it answers /healthz within
// 2 s of its start, the good plugin is callable within 2 s too, and the
// spinners end up quarantined with a reason naming the start timeout,
// after which /readyz answers 200.
func TestOptions_StartSpinningModulesDelayNothing(t *testing.T) {
	cfg := testConfig(t)
	spin, err := os.ReadFile("../../../../host/testdata/startspin.wasm")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a-spin1", "a-spin2", "a-spin3"} {
		if err := os.WriteFile(filepath.Join(cfg.PluginsDir, name+".wasm"), spin, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A known port, so the test can knock while the start is under way.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg.Listen = addr
	app := fxtest.New(t, Options(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))))
	begin := time.Now()
	started := make(chan error, 1)
	go func() { started <- app.Start(context.Background()) }()
	defer func() {
		if err := <-started; err != nil {
			t.Errorf("start: %v", err)
		}
		app.RequireStop()
	}()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	status := func(method, path string) int {
		req, _ := http.NewRequestWithContext(context.Background(), method, "http://"+addr+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitUntil(t, "/healthz to answer", 10*time.Second, func() bool { return status("GET", "/healthz") == 200 })
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("/healthz answered %v after start, want within 2 s", took)
	}
	waitUntil(t, "the good plugin to be callable", 10*time.Second, func() bool {
		return status("POST", "/v1/plugins/tiny/call?function=noop") == 200
	})
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("the good plugin was callable %v after start, want within 2 s", took)
	} else {
		t.Logf("healthz and the good plugin served %v after start", took)
	}

	waitUntil(t, "the spinners to be quarantined", time.Minute, func() bool {
		resp, err := hc.Get("http://" + addr + "/v1/plugins")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Plugins []api.PluginStatus `json:"plugins"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range body.Plugins {
			if strings.HasPrefix(p.Name, "a-spin") && p.State == "quarantined" {
				if !strings.Contains(p.Reason, "start timeout") {
					t.Fatalf("%s quarantined with reason %q, want the start timeout named", p.Name, p.Reason)
				}
				n++
			}
		}
		return n == 3
	})
	waitUntil(t, "/readyz to answer 200", 30*time.Second, func() bool { return status("GET", "/readyz") == 200 })
}

// waitUntil polls cond until it holds, failing the test after bound.
func waitUntil(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
