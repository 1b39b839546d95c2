package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is a service of a plugin directory holding tiny.wasm, an
// empty workflow directory and a fresh data directory.
func testConfig(t *testing.T) server.Config {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"plugins", "workflows"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "plugins", "tiny.wasm"), hosttest.Fixture(t, "../testdata/tiny.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	return server.Config{Listen: "127.0.0.1:0", PluginsDir: filepath.Join(dir, "plugins"), WorkflowsDir: filepath.Join(dir, "workflows"),
		DataDir: filepath.Join(dir, "data"), CacheDir: hosttest.CacheDir(), GracePeriod: time.Second}
}

// Run serves until its context is cancelled, then drains and stops every
// component (goleak checks the goroutines) and closes the store, which
// another process may then open. A stopped server does not start again.
func TestServer_RunServesUntilCancelled(t *testing.T) {
	cfg := testConfig(t)
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if addr := srv.Addr(); addr != "" {
			if resp, err := hc.Post("http://"+addr+"/v1/plugins/tiny/call?function=echo", "application/octet-stream", strings.NewReader("ping")); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the service never called tiny")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context was cancelled")
	}
	st, err := server.OpenStore(context.Background(), server.StoreOptions{DataDir: cfg.DataDir})
	if err != nil {
		t.Fatalf("the store is still held after Run: %v", err)
	}
	st.Close()
	if err := srv.Start(context.Background()); !errors.Is(err, server.ErrStarted) {
		t.Errorf("Start after Stop = %v, want ErrStarted", err)
	}
}

// A Start that fails half-way (the listen address is taken) stops what it
// had started: the store is released and no goroutine is left.
func TestServer_FailedStartStopsWhatStarted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t)
	cfg.Listen = ln.Addr().String()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Start on a taken address = %v, want a listen error", err)
	}
	st, err := server.OpenStore(context.Background(), server.StoreOptions{DataDir: cfg.DataDir})
	if err != nil {
		t.Fatalf("the store is still held after a failed Start: %v", err)
	}
	st.Close()
	if err := srv.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Start = %v", err)
	}
}

func TestNew_RefusesAnUnknownStoreScheme(t *testing.T) {
	cfg := testConfig(t)
	cfg.Store.URL = "mysql://u:s3cret@db/bh"
	if _, err := server.New(cfg); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("New with a mysql URL = %v, want an error without the password", err)
	}
}
