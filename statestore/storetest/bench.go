package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// BenchRuns times CreateRun and ListRuns on stores holding 10,000, 100,000
// and 1,000,000 runs of 100-byte inputs (the oldest 100 running, every
// 1,000th failed, the rest succeeded), each filled by 64 goroutines. Per
// size it reports:
//
//   - fill: the submit rate while filling (runs/s);
//   - list/...: one page of DefaultListLimit runs, newest or oldest first,
//     unfiltered or by status (failed: one run in 1,000 matches; cancelled:
//     none does);
//   - unfinished: UnfinishedRuns (100 runs);
//   - create/writers=W: CreateRun from W goroutines (runs/s), last, as it
//     adds runs.
//
// Select sizes with -bench, e.g. 'Runs/runs=10000$/' (1,000,000 runs take
// minutes to write on a slow disk).
func BenchRuns(b *testing.B, newStore func(b *testing.B) statestore.Store) {
	ctx := context.Background()
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			s := newStore(b)
			defer s.Close()
			rate := fillRuns(b, s, n)
			b.Run("fill", func(b *testing.B) {
				b.ReportMetric(rate, "runs/s")
			})
			list := func(f statestore.RunFilter) func() error {
				return func() error { _, _, err := s.ListRuns(ctx, f); return err }
			}
			for _, tc := range []struct {
				name string
				call func() error
			}{
				{"list/newest", list(statestore.RunFilter{Newest: true})},
				{"list/oldest", list(statestore.RunFilter{})},
				{"list/status=succeeded", list(statestore.RunFilter{Status: statestore.StatusSucceeded, Newest: true})},
				{"list/status=failed", list(statestore.RunFilter{Status: statestore.StatusFailed, Newest: true})},
				{"list/status=cancelled", list(statestore.RunFilter{Status: statestore.StatusCancelled, Newest: true})},
				{"unfinished", func() error { _, err := s.UnfinishedRuns(ctx); return err }},
			} {
				b.Run(tc.name, func(b *testing.B) {
					for b.Loop() {
						if err := tc.call(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			for _, w := range []int{1, 64} {
				b.Run(fmt.Sprintf("create/writers=%d", w), func(b *testing.B) {
					input := make([]byte, 100)
					Parallel(b, w, "runs/s", func(_, i int) error {
						_, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("new-%d-%d", w, i), Workflow: "wf", Input: input})
						return err
					})
				})
			}
		})
	}
}

// benchUnfinished is how many of the runs BenchRuns stores are unfinished,
// whatever their number.
const benchUnfinished = 100

// fillRuns creates n runs from 64 goroutines, one millisecond of creation
// time apart, and returns the rate in runs/s.
func fillRuns(b *testing.B, s statestore.Store, n int) float64 {
	b.Helper()
	ctx := context.Background()
	base := time.Now().Add(-time.Duration(n) * time.Millisecond)
	input := make([]byte, 100)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				st := statestore.StatusSucceeded
				switch {
				case i < benchUnfinished:
					st = statestore.StatusRunning
				case i%1000 == 999:
					st = statestore.StatusFailed
				}
				_, _, err := s.CreateRun(ctx, statestore.Run{
					ID: fmt.Sprintf("fill-%07d", i), Workflow: "wf", Input: input,
					Status: st, CreatedAt: base.Add(time.Duration(i) * time.Millisecond),
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// Parallel runs b.N calls of fn from w goroutines (worker is the
// goroutine's number, i the call's) and reports the rate as unit ("runs/s",
// "records/s"). It is the timing loop of every store's benchmarks.
func Parallel(b *testing.B, w int, unit string, fn func(worker, i int) error) {
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
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
}
