package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

// parallel runs b.N operations from w goroutines and reports records/s.
func parallel(b *testing.B, w int, fn func(worker, i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, w)
	b.ResetTimer()
	start := time.Now()
	for worker := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := fn(worker, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}

// BenchmarkCompleteNode journals trivial node completions (100-byte
// outputs), each writer on its own run, with and without group commit.
func BenchmarkCompleteNode(b *testing.B) {
	for _, m := range []struct {
		name     string
		maxBatch int
	}{{"group", 0}, {"no-group", 1}} {
		for _, w := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", m.name, w), func(b *testing.B) {
				opts := []pgstore.Option{pgstore.WithMaxConns(w + 2)}
				if m.maxBatch > 0 {
					opts = append(opts, pgstore.WithMaxBatch(m.maxBatch))
				}
				s := open(b, pgtest.URL(b), opts...)
				ctx := context.Background()
				for i := range w {
					if _, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("run-%d", i), Workflow: "wf", Input: []byte("in")}); err != nil {
						b.Fatal(err)
					}
				}
				out := make([]byte, 100)
				now := time.Now()
				parallel(b, w, func(worker, i int) error {
					return s.CompleteNode(ctx, statestore.NodeResult{
						RunID: fmt.Sprintf("run-%d", worker), Node: fmt.Sprintf("node-%d", i),
						Output: out, Attempts: 1, PluginVersion: "sha256:abc", StartedAt: now,
					})
				})
			})
		}
	}
}

// BenchmarkStateUsage asks for the usage of a plugin holding 10,000 keys
// of 100 bytes.
func BenchmarkStateUsage(b *testing.B) {
	s := open(b, pgtest.URL(b))
	ctx := context.Background()
	val := make([]byte, 100)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 10000; i += 16 {
				if err := s.StateSet(ctx, "p", fmt.Sprintf("key-%05d", i), val); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	for range b.N {
		u, err := s.StateUsage(ctx, "p")
		if err != nil || u.Keys != 10000 {
			b.Fatalf("StateUsage = %+v, %v", u, err)
		}
	}
}
