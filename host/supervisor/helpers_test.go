package supervisor_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/plugins"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Outputs of the fixtures' run export.
const (
	outOne = "answer-1"
	outTwo = "answer-2"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deploy writes b as dir/name the safe way: a hidden temporary file, then
// a rename over the target.
func deploy(t testing.TB, dir, name string, b []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

type env struct {
	dir string
	h   *host.Host
	sv  *supervisor.Supervisor
}

// newEnv returns a started supervisor of a fresh directory holding files,
// with a 20 ms debounce and the shared compilation cache.
func newEnv(t testing.TB, files map[string][]byte, opts ...supervisor.Option) *env {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := hosttest.New(t)
	opts = append([]supervisor.Option{
		supervisor.WithRegistryOptions(plugins.WithDebounce(20 * time.Millisecond)),
	}, opts...)
	sv, err := supervisor.New(h, dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Registered after the host's cleanup, so it runs first.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &env{dir: dir, h: h, sv: sv}
}

func (e *env) call(plugin string) (string, error) {
	out, err := e.h.Call(context.Background(), plugin, "", nil)
	return string(out), err
}

func (e *env) status(t testing.TB, plugin string) supervisor.Status {
	t.Helper()
	st, ok := e.sv.Status(plugin)
	if !ok {
		t.Fatalf("no status for %s", plugin)
	}
	return st
}

// waitFor polls cond until it holds, failing the test after a generous
// bound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
