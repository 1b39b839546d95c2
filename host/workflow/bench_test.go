package workflow_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// chain is a workflow of n sequential trivial nodes (the tiny WAT guest's
// noop), each journaled durably.
func chain(n int) string {
	var b strings.Builder
	b.WriteString("name: chain\npolicy: {retry: {max_attempts: 1}, breaker: {failure_threshold: -1}}\nnodes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  s%d: {plugin: tiny, function: noop", i)
		if i > 0 {
			fmt.Fprintf(&b, ", needs: [s%d]", i-1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func benchEngine(b *testing.B, dir string, opts ...workflow.Option) (*workflow.Engine, *badgerstore.Store) {
	b.Helper()
	return benchEngineOn(b, dir, "", opts...)
}

// benchEngineOn is benchEngine with the tiny plugin on the named Wasm
// engine (abi.EngineNative or abi.EngineExtism; "" is the host's default).
func benchEngineOn(b *testing.B, dir, wasmEngine string, opts ...workflow.Option) (*workflow.Engine, *badgerstore.Store) {
	b.Helper()
	s, err := badgerstore.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	h := hosttest.New(b)
	tiny, err := os.ReadFile("../testdata/tiny.wasm")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := h.Load(context.Background(), "tiny", tiny, abi.Manifest{Pool: abi.Pool{Max: 8}, Engine: wasmEngine}); err != nil {
		b.Fatal(err)
	}
	e, err := workflow.New(s, h, append([]workflow.Option{workflow.WithWorkers(256)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	w, err := workflow.Parse("chain.yaml", []byte(chain(10)), workflow.ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	e.AddWorkflow(w)
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = e.Stop(context.Background())
		_ = s.Close()
	})
	return e, s
}

// BenchmarkEngine_Completions: durable node completions per second with
// 10-node runs of trivial nodes, 1, 16 and 256 runs in flight, on each Wasm
// engine (native and go-sdk), beside Badger's raw sync write rate (one
// writer, SyncWrites, one 16-byte key and 200-byte value per transaction)
// measured in the same run.
func BenchmarkEngine_Completions(b *testing.B) {
	b.Run("baseline=badger-raw-sync-write", func(b *testing.B) {
		db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithSyncWrites(true).WithLogger(nil))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		val := make([]byte, 200)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			var k [16]byte
			binary.BigEndian.PutUint64(k[:], uint64(i))
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set(k[:], val) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
	})
	for _, inflight := range []int{1, 16, 256} {
		for _, wasmEngine := range []string{abi.EngineExtism, abi.EngineNative} {
			benchCompletions(b, inflight, wasmEngine)
		}
	}
}

func benchCompletions(b *testing.B, inflight int, wasmEngine string) {
	b.Run(fmt.Sprintf("inflight=%d/wasm=%s", inflight, wasmEngine), func(b *testing.B) {
		e, _ := benchEngineOn(b, b.TempDir(), wasmEngine)
		ctx := context.Background()
		runs := (b.N + 9) / 10
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Value
		b.ResetTimer()
		start := time.Now()
		for range inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(runs) {
					r, err := e.Submit(ctx, "chain", nil, "")
					if err == nil {
						r, err = e.Wait(ctx, r.ID)
					}
					if err == nil && r.Status != statestore.StatusSucceeded {
						err = fmt.Errorf("run %s: %s", r.Status, r.Error)
					}
					if err != nil {
						failed.Store(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(runs*10)/elapsed.Seconds(), "completions/s")
	})
}

// BenchmarkEngine_Run10Latency: one 10-step run at a time on an idle
// engine; reports the median and 99th percentile of submit-to-finished.
func BenchmarkEngine_Run10Latency(b *testing.B) {
	e, _ := benchEngine(b, b.TempDir())
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r, err := e.Submit(ctx, "chain", nil, "")
		if err == nil {
			r, err = e.Wait(ctx, r.ID)
		}
		if err != nil || r.Status != statestore.StatusSucceeded {
			b.Fatal(err, r.Status)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkEngine_Resume10k: 10,000 unfinished runs are in the store (as
// a crash leaves them); a new engine's Start re-dispatches all of them.
// Reports the time Start took (every run's journal read and its ready
// nodes queued) and the time until every run had a node running again.
func BenchmarkEngine_Resume10k(b *testing.B) {
	const n = 10000
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		s, err := badgerstore.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		w, _ := workflow.Parse("chain.yaml", []byte(chain(10)), workflow.ParseOptions{})
		tiny, _ := os.ReadFile("../testdata/tiny.wasm")
		v := host.Version(tiny)
		versions := map[string]string{}
		for _, name := range w.Order {
			versions[name] = v
		}
		var wg sync.WaitGroup
		for g := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < n; i += 64 {
					_, _, err := s.CreateRun(context.Background(), statestore.Run{ID: fmt.Sprintf("r%05d", i), Workflow: "chain",
						Status: statestore.StatusRunning, Versions: versions, Attrs: map[string]string{workflow.AttrSource: string(w.Source)}})
					if err != nil {
						panic(err)
					}
				}
			}()
		}
		wg.Wait()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		var started sync.Map
		var count atomic.Int64
		all := make(chan struct{})
		observer := func(ev workflow.Event) {
			if ev.Kind == workflow.EventNodeStarted {
				if _, loaded := started.LoadOrStore(ev.RunID, true); !loaded && count.Add(1) == n {
					close(all)
				}
			}
		}
		s, err = badgerstore.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		h := hosttest.New(b)
		if _, err := h.Load(context.Background(), "tiny", tiny, abi.Manifest{Pool: abi.Pool{Max: 8}}); err != nil {
			b.Fatal(err)
		}
		e, err := workflow.New(s, h, workflow.WithWorkers(256), workflow.WithObserver(observer))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := e.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		startTook := time.Since(start)
		<-all
		allTook := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(startTook.Milliseconds()), "start-ms")
		b.ReportMetric(float64(allTook.Milliseconds()), "all-running-ms")
		_ = e.Stop(context.Background())
		_ = s.Close()
	}
}
