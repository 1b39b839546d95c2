package badgerstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

// BenchmarkBadgerRawSyncWrite is the baseline: Badger with SyncWrites, one
// 16-byte key and 200-byte value per transaction.
func BenchmarkBadgerRawSyncWrite(b *testing.B) {
	for _, w := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithSyncWrites(true).WithLogger(nil))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			val := make([]byte, 200)
			storetest.Parallel(b, w, "records/s", func(_, i int) error {
				var k [16]byte
				binary.BigEndian.PutUint64(k[:], uint64(i))
				return db.Update(func(txn *badger.Txn) error { return txn.Set(k[:], val) })
			})
		})
	}
}

// BenchmarkCompleteNode journals trivial node completions (100-byte
// outputs), each writer on its own run, as runs in flight would.
func BenchmarkCompleteNode(b *testing.B) {
	modes := []struct {
		name string
		opts []badgerstore.Option
	}{
		{"group", nil},
		{"group-syncwrites", []badgerstore.Option{badgerstore.WithSyncWrites(true)}},
		{"no-group", []badgerstore.Option{badgerstore.WithMaxBatch(1)}},
	}
	for _, m := range modes {
		for _, w := range []int{1, 16, 256} {
			if m.name == "no-group" && w == 256 {
				continue
			}
			b.Run(fmt.Sprintf("%s/writers=%d", m.name, w), func(b *testing.B) {
				s, err := badgerstore.Open(b.TempDir(), m.opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				for i := range w {
					if _, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("run-%d", i), Workflow: "wf", Input: []byte("in")}); err != nil {
						b.Fatal(err)
					}
				}
				out := make([]byte, 100)
				now := time.Now()
				storetest.Parallel(b, w, "records/s", func(worker, i int) error {
					return s.CompleteNode(ctx, statestore.NodeResult{
						RunID: fmt.Sprintf("run-%d", worker), Node: fmt.Sprintf("node-%d", i),
						Output: out, Attempts: 1, PluginVersion: "sha256:abc", StartedAt: now,
					})
				})
			})
		}
	}
}

// BenchmarkSaveCheckpoint saves 1 KiB checkpoints, each writer on its own
// run and node (so each save also trims the node's oldest checkpoint).
func BenchmarkSaveCheckpoint(b *testing.B) {
	for _, w := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			s, err := badgerstore.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			for i := range w {
				if _, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("run-%d", i), Workflow: "wf"}); err != nil {
					b.Fatal(err)
				}
			}
			data := make([]byte, 1024)
			storetest.Parallel(b, w, "records/s", func(worker, _ int) error {
				_, err := s.SaveCheckpoint(ctx, fmt.Sprintf("run-%d", worker), "long", data)
				return err
			})
		})
	}
}

// BenchmarkReopenUnfinished opens a store holding 10,000 unfinished runs
// (5 finished nodes each, and 10,000 finished runs beside them) and lists
// the unfinished ones, after a clean close and after a crash (a copy of the
// directory taken while it was open).
func BenchmarkReopenUnfinished(b *testing.B) {
	const runs = 10000
	live := b.TempDir()
	s, err := badgerstore.Open(live)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 2*runs; i += 64 {
				id := fmt.Sprintf("run-%05d", i)
				if _, _, err := s.CreateRun(ctx, statestore.Run{ID: id, Workflow: "wf", Input: make([]byte, 200)}); err != nil {
					b.Error(err)
					return
				}
				for n := range 5 {
					if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: id, Node: fmt.Sprintf("n%d", n), Output: make([]byte, 100)}); err != nil {
						b.Error(err)
						return
					}
				}
				if i%2 == 1 {
					if _, err := s.UpdateRun(ctx, id, func(r *statestore.Run) error { r.Status = statestore.StatusSucceeded; return nil }); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	crashed := b.TempDir()
	copyDir(b, live, crashed)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}

	for _, tc := range []struct{ name, dir string }{{"clean", live}, {"crash", crashed}} {
		b.Run(tc.name, func(b *testing.B) {
			var openTotal, listTotal time.Duration
			for range b.N {
				dir := tc.dir
				if tc.name == "crash" {
					b.StopTimer()
					dir = b.TempDir()
					copyDir(b, tc.dir, dir)
					b.StartTimer()
				}
				t0 := time.Now()
				s, err := badgerstore.Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				un, err := s.UnfinishedRuns(ctx)
				if err != nil || len(un) != runs {
					b.Fatalf("UnfinishedRuns = %d, %v", len(un), err)
				}
				t2 := time.Now()
				openTotal += t1.Sub(t0)
				listTotal += t2.Sub(t1)
				b.StopTimer()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(openTotal.Milliseconds())/float64(b.N), "open-ms")
			b.ReportMetric(float64(listTotal.Milliseconds())/float64(b.N), "unfinished-ms")
		})
	}
}

// BenchmarkRuns times CreateRun and pages of runs at 10,000, 100,000 and
// 1,000,000 stored runs (storetest.BenchRuns).
func BenchmarkRuns(b *testing.B) {
	storetest.BenchRuns(b, func(b *testing.B) statestore.Store {
		s, err := badgerstore.Open(b.TempDir(), badgerstore.WithGCInterval(-1))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// BenchmarkOpen_BuildStatusIndex opens a store of 100,000 runs written
// before the status index (layout 1), which builds the index.
func BenchmarkOpen_BuildStatusIndex(b *testing.B) {
	const runs = 100_000
	dir := b.TempDir()
	s, err := badgerstore.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < runs; i += 64 {
				if _, _, err := s.CreateRun(ctx, statestore.Run{ID: fmt.Sprintf("run-%06d", i), Workflow: "wf", Input: make([]byte, 100)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		toLayout1(b, dir, nil)
		b.StartTimer()
		s, err := badgerstore.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkQueue_Claim claims tasks one at a time from a backlog of 1,000
// and of 200,000 queued tasks. Every 256 claims the claimed tasks are
// completed (untimed in claim-ns/op), each queueing a dependent, so the
// backlog keeps its size while completed tasks leave deleted keys behind
// the claim cursor. claim-ns/op, the time spent in ClaimTasks per task,
// stays flat when claims read only what lies after the cursor.
func BenchmarkQueue_Claim(b *testing.B) {
	for _, backlog := range []int{1_000, 200_000} {
		s, err := badgerstore.Open(b.TempDir(), badgerstore.WithGCInterval(-1))
		if err != nil {
			b.Fatal(err)
		}
		enqueueMany(b, s, "q", backlog)
		next := 0
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			ctx := context.Background()
			var claiming time.Duration
			var batch []statestore.Task
			flush := func() {
				var wg sync.WaitGroup
				sem := make(chan struct{}, 64)
				for _, task := range batch {
					next++
					dep := statestore.ReadyNode{Node: fmt.Sprintf("m%08d", next), Needs: []string{task.Node}, Block: 1}
					wg.Add(1)
					sem <- struct{}{}
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						if _, _, err := s.CompleteTask(ctx, statestore.Completion{Fence: task.Fence(),
							Result: statestore.NodeResult{RunID: task.RunID, Node: task.Node}, Next: []statestore.ReadyNode{dep}}); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				batch = batch[:0]
			}
			for range b.N {
				start := time.Now()
				tasks, err := s.ClaimTasks(ctx, "h1", 1, time.Hour)
				claiming += time.Since(start)
				if err != nil || len(tasks) != 1 {
					b.Fatalf("ClaimTasks = %d tasks, %v", len(tasks), err)
				}
				batch = append(batch, tasks[0])
				if len(batch) == 256 {
					flush()
				}
			}
			flush()
			b.ReportMetric(float64(claiming.Nanoseconds())/float64(b.N), "claim-ns/op")
		})
		_ = s.Close()
	}
}
