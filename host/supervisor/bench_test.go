package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
)

// dirOf returns a directory of n plugins, each a distinct version of the
// module b, so that each is compiled (and cached) on its own.
func dirOf(tb testing.TB, b []byte, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%02d.wasm", i)), variant(b, i), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// startDir starts a host on cache and a supervisor on dir (the restart of
// a service), checks all n plugins are ready and stops both. timed runs
// the two Starts.
func startDir(tb testing.TB, dir, cache string, n int, timed func(func())) {
	h, err := host.New(host.WithCacheDir(cache))
	if err != nil {
		tb.Fatal(err)
	}
	sv, err := supervisor.New(h, dir)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	timed(func() {
		if err := h.Start(ctx); err != nil {
			tb.Fatal(err)
		}
		if err := sv.Start(ctx); err != nil {
			tb.Fatal(err)
		}
		if err := sv.WaitReady(ctx); err != nil {
			tb.Fatal(err)
		}
	})
	sts := sv.Statuses()
	ok := 0
	for _, st := range sts {
		if st.State == supervisor.StateOK {
			ok++
		}
	}
	if ok != n {
		tb.Fatalf("%d of %d plugins ok after Start", ok, n)
	}
	if err := sv.Stop(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := h.Stop(ctx); err != nil {
		tb.Fatal(err)
	}
}

func timer(b *testing.B) func(func()) {
	return func(f func()) {
		b.StartTimer()
		f()
		b.StopTimer()
	}
}

func untimed(f func()) { f() }

// BenchmarkStart50 measures Start of a directory of 50 small (WAT)
// plugins: cold (an empty compilation cache: every module compiled) and
// warm (a restart on the cache the previous start filled).
func BenchmarkStart50(b *testing.B) {
	dir := dirOf(b, fixture(b, "one.wasm"), 50)
	b.Run("cold", func(b *testing.B) {
		b.StopTimer()
		b.ResetTimer()
		for i := range b.N {
			startDir(b, dir, filepath.Join(b.TempDir(), fmt.Sprint(i)), 50, timer(b))
		}
	})
	b.Run("warm", func(b *testing.B) {
		b.StopTimer()
		cache := b.TempDir()
		startDir(b, dir, cache, 50, untimed)
		b.ResetTimer()
		for range b.N {
			startDir(b, dir, cache, 50, timer(b))
		}
	})
}

// BenchmarkStartGo10 is the warm restart of 10 Go plugins (the 3.8 MB
// kitchen fixture), whose cold compile takes over a second each.
func BenchmarkStartGo10(b *testing.B) {
	b.StopTimer()
	kitchen, err := os.ReadFile("../../testdata/go/kitchen/kitchen.wasm")
	if err != nil {
		b.Skip(err)
	}
	dir, cache := dirOf(b, kitchen, 10), b.TempDir()
	startDir(b, dir, cache, 10, untimed)
	b.ResetTimer()
	for range b.N {
		startDir(b, dir, cache, 10, timer(b))
	}
}

// TestSupervisor_Start50: a restart of a directory of 50 plugins with a
// warm compilation cache compiles nothing: the cache directory is exactly
// as the first start left it. The time is logged; a bound on it would
// measure the machine (BenchmarkStart50 has the figures), so the only
// bound is a loose one that catches a restart stuck on something.
func TestSupervisor_Start50(t *testing.T) {
	dir, cache := dirOf(t, fixture(t, "one.wasm"), 50), t.TempDir()
	startDir(t, dir, cache, 50, untimed) // cold: fills the cache
	before := cacheFiles(t, cache)
	if len(before) < 50 {
		t.Fatalf("the cold start left %d files in the cache, want one or more per plugin", len(before))
	}
	var took time.Duration
	startDir(t, dir, cache, 50, func(f func()) {
		start := time.Now()
		f()
		took = time.Since(start)
	})
	t.Logf("50 plugins ready in %v on a restart with a warm cache", took)
	after := cacheFiles(t, cache)
	for name, st := range after {
		if old, ok := before[name]; !ok || old != st {
			t.Errorf("the warm restart wrote %s to the cache (compiled again)", name)
		}
	}
	if took > 30*time.Second {
		t.Fatalf("50 plugins took %v to be ready on a warm restart", took)
	}
}

type fileStamp struct {
	size int64
	mod  time.Time
}

// cacheFiles lists every file under dir with its size and modification time.
func cacheFiles(t *testing.T, dir string) map[string]fileStamp {
	t.Helper()
	out := map[string]fileStamp{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out[path] = fileStamp{info.Size(), info.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
