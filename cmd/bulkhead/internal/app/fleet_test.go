package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

type instance struct {
	app   *fxtest.App
	srv   *server.Server
	store statestore.Store
}

// startInstance starts a service on url; withPlugin leaves the tiny plugin
// in its plugins directory, else the directory is empty.
func startInstance(t *testing.T, url string, withPlugin bool) *instance {
	t.Helper()
	cfg := testConfig(t)
	cfg.Store.URL = url
	cfg.Store.Heartbeat = resilience.Duration(300 * time.Millisecond)
	if !withPlugin {
		os.Remove(filepath.Join(cfg.PluginsDir, "tiny.wasm"))
	}
	in := &instance{}
	in.app = fxtest.New(t, Options(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))), fx.Populate(&in.srv, &in.store))
	in.app.RequireStart()
	return in
}

func (in *instance) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + in.srv.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func (in *instance) hosts(t *testing.T) map[string]api.HostView {
	t.Helper()
	var body struct{ Hosts []api.HostView }
	in.get(t, "/v1/hosts", &body)
	out := map[string]api.HostView{}
	for _, h := range body.Hosts {
		out[h.Address] = h
	}
	return out
}

// Two services on one database list each other in GET /v1/hosts; a run
// pinned to the version one of them loaded runs on the other, which has no
// plugin file, fetched from the store; GET /v1/plugins says who serves it;
// a service stopped leaves the list.
func TestOptions_TwoHostsShareOneDatabase(t *testing.T) {
	url := pgtest.URL(t)
	a := startInstance(t, url, true)
	b := startInstance(t, url, false)
	waitUntil(t, "both hosts listed live", 20*time.Second, func() bool {
		hs := a.hosts(t)
		return len(hs) == 2 && hs[a.srv.Addr()].State == api.HostLive && hs[b.srv.Addr()].State == api.HostLive
	})
	if hb := b.hosts(t); len(hb) != 2 {
		t.Fatalf("b lists %v", hb)
	}
	tiny, err := os.ReadFile("../../../../host/testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	v1 := host.Version(tiny)
	var plugins struct{ Versions []api.ServedVersion }
	waitUntil(t, "a listed as serving tiny", 20*time.Second, func() bool {
		b.get(t, "/v1/plugins", &plugins)
		return len(plugins.Versions) == 1 && plugins.Versions[0].Version == v1
	})

	// a stops, as a host that died: only b is left to run the pinned
	// version, which it does not have.
	addrA := a.srv.Addr()
	a.app.RequireStop()

	// A run pinned to v1, left by a host that died; resumed on b.
	const flow = "name: one\nnodes:\n  s0: {plugin: tiny, function: echo}\n"
	ctx := context.Background()
	if _, _, err := b.store.CreateRun(ctx, statestore.Run{ID: "r1", Workflow: "one", Input: []byte("hello"),
		Status: statestore.StatusFailed, Versions: map[string]string{"s0": v1},
		Attrs: map[string]string{workflow.AttrSource: flow}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+b.srv.Addr()+"/v1/runs/r1/resume", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("resume on b: %s", resp.Status)
	}
	waitUntil(t, "r1 to succeed on b", 30*time.Second, func() bool {
		r, err := b.store.GetRun(ctx, "r1")
		if err != nil || r.Status == statestore.StatusFailed {
			t.Fatalf("r1: %s %s, %v", r.Status, r.Error, err)
		}
		return r.Status == statestore.StatusSucceeded && string(r.Output) == "hello"
	})
	waitUntil(t, "b listed as serving v1", 20*time.Second, func() bool {
		b.get(t, "/v1/plugins", &plugins)
		return len(plugins.Versions) == 1 && len(plugins.Versions[0].Hosts) == 1
	})
	if hs := b.hosts(t); len(hs) != 1 || hs[addrA].ID != "" {
		t.Errorf("after a stopped, b lists %v", hs)
	}
	b.app.RequireStop()
}
