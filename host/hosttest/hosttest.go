package hosttest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
)

// CacheDir returns the compilation cache shared by tests
// ($BULKHEAD_TEST_CACHE, else a folder in the system's temporary directory).
func CacheDir() string {
	if d := os.Getenv("BULKHEAD_TEST_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "bulkhead-test-cache")
}

// New returns a started Host using the shared cache, stopped when t ends.
func New(t testing.TB, opts ...host.Option) *host.Host {
	t.Helper()
	h, err := host.New(append([]host.Option{host.WithCacheDir(CacheDir())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("host.Stop: %v", err)
		}
	})
	return h
}

// Fixture reads a committed fixture, relative to the repository's testdata
// directory, failing the test with a hint when it is missing.
func Fixture(t testing.TB, rel string) []byte {
	t.Helper()
	for _, dir := range []string{"testdata", "../testdata", "../../testdata", "../../../testdata"} {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err == nil {
			return b
		}
	}
	t.Fatalf("fixture testdata/%s not found; run `make testdata`", rel)
	return nil
}
