package workflow_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// sleeperHeapLimit is the most heap one sleeping run may cost.
const sleeperHeapLimit = 2 << 10

// liveHeap returns the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestTimer_SleepersRestart puts many runs to sleep on a badgerstore
// (10,000; 100,000 with BULKHEAD_SOAK=1; BULKHEAD_SLEEPERS sets it),
// measures the heap each sleeping run costs, closes the engine and the
// store, reopens both, and checks that every run wakes within a second of
// its due time and succeeds once. make test runs it without the race
// detector, make soak with 100,000 runs.
func TestTimer_SleepersRestart(t *testing.T) {
	if raceEnabled {
		t.Skip("measures heap and wake-up times: make test runs it without the race detector")
	}
	// The runs are submitted at rate runs/s, so their due times spread at
	// that rate: the wake-ups of a second must fit in a second.
	n, rate := 10_000, 1000
	if os.Getenv("BULKHEAD_SOAK") != "" {
		n, rate = 100_000, 500
	}
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_SLEEPERS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_SLEEPERS_RATE")); err == nil && v > 0 {
		rate = v
	}
	// The last run must still sleep when the restart is done: sleepers go
	// to sleep at thousands per second.
	// Submission may fall behind its rate; each start puts 1,500 or more
	// runs to sleep a second.
	nap := time.Duration(float64(n)/float64(rate)*1.3*float64(time.Second)) + time.Duration(n/1500)*time.Second + 5*time.Second
	if v, err := time.ParseDuration(os.Getenv("BULKHEAD_SLEEP")); err == nil && v > 0 {
		nap = v
	}
	flow := fmt.Sprintf("name: sleepers\nnodes:\n  nap: {sleep: %s}\n", nap)
	w, err := workflow.Parse("sleepers.yaml", []byte(flow), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	var waiting, finished atomic.Int64
	observe := func(ev workflow.Event) {
		switch {
		case ev.Kind == workflow.EventNodeWaiting:
			waiting.Add(1)
		case ev.Kind == workflow.EventRunFinished && ev.Status == statestore.StatusSucceeded:
			finished.Add(1)
		}
	}
	open := func() (*badgerstore.Store, *workflow.Engine) {
		s, err := badgerstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		var opts []workflow.Option
		if os.Getenv("BULKHEAD_SLEEPERS_LOG") != "" {
			opts = append(opts, workflow.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		}
		e, err := workflow.New(s, noPlugins{}, append(opts, workflow.WithObserver(observe), workflow.WithWorkers(256))...)
		if err != nil {
			t.Fatal(err)
		}
		e.AddWorkflow(w)
		return s, e
	}
	sleepAll := func(e *workflow.Engine, phase string) (uint64, time.Duration) {
		waiting.Store(0)
		base := liveHeap()
		start := time.Now()
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Minute); waiting.Load() < int64(n); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d runs asleep after %s", phase, waiting.Load(), n, time.Since(start))
			}
		}
		took := time.Since(start)
		// The last sleepers are let go just after their event.
		waitFor(t, phase+": the engine to hold no sleeping run", func() bool { return e.Active() == 0 })
		heap := liveHeap()
		per := uint64(0)
		if heap > base {
			per = (heap - base) / uint64(n)
		}
		t.Logf("%s: %d runs asleep in %s; heap %d MiB -> %d MiB, %d B per sleeping run",
			phase, n, took.Round(time.Millisecond), base>>20, heap>>20, per)
		if per > sleeperHeapLimit {
			t.Errorf("%s: %d B of heap per sleeping run, want at most %d", phase, per, sleeperHeapLimit)
		}
		return per, took
	}

	// Queue the runs as Submit stores them.
	s, e := open()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	tokens := make(chan struct{}, 64)
	go func() {
		defer close(tokens)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for sent := 0; sent < n; {
			<-tick.C
			for range min(rate/100, n-sent) {
				tokens <- struct{}{}
				sent++
			}
		}
	}()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tokens {
				i := next.Add(1) - 1
				r := statestore.Run{ID: fmt.Sprintf("s-%07d", i), Workflow: w.Name, Status: statestore.StatusRunning,
					Attrs: map[string]string{workflow.AttrSource: string(w.Source)}}
				if _, _, err := s.SubmitRun(ctx, r, []statestore.ReadyNode{{Node: "nap", Block: 1}}); err != nil {
					t.Error(err) // and keep draining the tokens
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("submitted %d runs in %s", n, time.Since(start).Round(time.Millisecond))
	first, err := s.GetRun(ctx, "s-0000000")
	if err != nil {
		t.Fatal(err)
	}
	lastRun, err := s.GetRun(ctx, fmt.Sprintf("s-%07d", n-1))
	if err != nil {
		t.Fatal(err)
	}
	sleepAll(e, "first start")
	stop(t, e)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: a new store handle (its claims and delays were in memory)
	// and a new engine. Every run must be asleep again before it is due.
	s, e = open()
	defer func() { _ = s.Close() }()
	sleepAll(e, "restart")
	if finished.Load() != 0 || time.Now().After(first.CreatedAt.Add(nap)) {
		t.Fatalf("runs woke before the restart completed (finished %d): raise BULKHEAD_SLEEP above %s", finished.Load(), nap)
	}
	if path := os.Getenv("BULKHEAD_SLEEPERS_CPUPROFILE"); path != "" {
		// The wake-ups only: from the restart to the last run's end.
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	waitFor2 := lastRun.CreatedAt.Add(nap + 30*time.Second)
	for finished.Load() < int64(n) {
		if time.Now().After(waitFor2) {
			left, _ := s.UnfinishedRuns(ctx)
			for i, r := range left {
				if i == 5 {
					break
				}
				info, err := e.Get(ctx, r.ID)
				t.Logf("unfinished: %s %+v %v", r.ID, info.Nodes, err)
			}
			t.Fatalf("%d of %d runs finished; %d unfinished", finished.Load(), n, len(left))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop(t, e)

	// Every run woke within a second of its due time, once.
	late := make([]time.Duration, 0, n)
	worstOf := map[int64]time.Duration{} // second of the due time → latest wake-up
	for i := range n {
		id := fmt.Sprintf("s-%07d", i)
		r, err := s.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.NodeResults(ctx, id)
		if err != nil || len(res) != 1 {
			t.Fatalf("run %s journal %v, %v", id, res, err)
		}
		d := res["nap"].FinishedAt.Sub(r.CreatedAt.Add(nap))
		if d < 0 {
			t.Fatalf("run %s woke %s before its due time", id, -d)
		}
		late = append(late, d)
		sec := r.CreatedAt.Add(nap).Unix()
		worstOf[sec] = max(worstOf[sec], d)
	}
	if len(worstOf) > 0 {
		secs := slices.Collect(maps.Keys(worstOf))
		slices.SortFunc(secs, func(a, b int64) int { return cmp.Compare(worstOf[b], worstOf[a]) })
		first := slices.Min(secs)
		var worst []string
		for _, sec := range secs[:min(5, len(secs))] {
			worst = append(worst, fmt.Sprintf("+%ds: %s", sec-first, worstOf[sec].Round(time.Millisecond)))
		}
		t.Logf("latest wake-up per second of due times, worst five (seconds after the first due time): %s", strings.Join(worst, ", "))
	}
	slices.Sort(late)
	p50, p99, worst := late[n/2], late[n*99/100], late[n-1]
	t.Logf("woke after due time: p50 %s, p99 %s, max %s", p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	if worst > time.Second {
		t.Errorf("a run woke %s after its due time, want within a second", worst)
	}
}
