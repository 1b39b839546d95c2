package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/plugins"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
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
	var srv *api.Server
	app := fxtest.New(t, Options(testConfig(t), slog.New(slog.NewTextHandler(io.Discard, nil))), fx.Populate(&srv))
	app.RequireStart()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
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

func TestMapError_Plugins(t *testing.T) {
	m := mapError(func() *api.API { return nil })
	for _, tt := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("reload ghost: %w", plugins.ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("reload ../x: %w", plugins.ErrInvalidName), http.StatusBadRequest},
	} {
		if got := m(tt.err); got == nil || got.Status != tt.want {
			t.Errorf("mapError(%v) = %+v, want status %d", tt.err, got, tt.want)
		}
	}
}
