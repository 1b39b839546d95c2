package workflow_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const (
	backlogDirEnv = "BULKHEAD_TEST_BACKLOG_DIR"
	// backlogHeapLimit is the most heap a draining engine may hold,
	// whatever the backlog.
	backlogHeapLimit = 256 << 20
)

const backlogFlow = `name: one
policy: {retry: {max_attempts: 1}, breaker: {failure_threshold: -1}}
nodes:
  a: {plugin: tiny, function: noop}
`

// backlogEngine opens the store in dir and an engine over it with the tiny
// guest loaded.
func backlogEngine(t testing.TB, dir string, observe func(workflow.Event)) (*workflow.Engine, *badgerstore.Store) {
	t.Helper()
	s, err := badgerstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := hosttest.New(t)
	tiny, err := os.ReadFile("../testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(context.Background(), "tiny", tiny, abi.Manifest{Pool: abi.Pool{Max: 32}}); err != nil {
		t.Fatal(err)
	}
	e, err := workflow.New(s, h, workflow.WithWorkers(32), workflow.WithObserver(observe),
		workflow.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("one.yaml", []byte(backlogFlow), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	return e, s
}

// TestBacklogChild drains the backlog in BULKHEAD_TEST_BACKLOG_DIR until
// it is killed (TestBacklog_Million runs it).
func TestBacklogChild(t *testing.T) {
	dir := os.Getenv(backlogDirEnv)
	if dir == "" {
		t.Skip("run by TestBacklog_Million")
	}
	e, _ := backlogEngine(t, dir, nil)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {} // until SIGKILL
}

// TestBacklog_Million queues a backlog of runs (1,000,000, or
// BULKHEAD_BACKLOG), lets a process drain it for a while, kills that
// process with SIGKILL, and drains the rest here: the engine's heap stays
// bounded by its workers, not by the backlog, and every run finishes
// exactly once. BULKHEAD_SOAK=1 runs it (make soak, without the race
// detector: it measures the engine's own heap).
func TestBacklog_Million(t *testing.T) {
	if os.Getenv("BULKHEAD_SOAK") == "" {
		t.Skip("a soak: BULKHEAD_SOAK=1 runs it")
	}
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_BACKLOG")); err == nil && v > 0 {
		n = v
	}
	dir := t.TempDir()
	ctx := context.Background()

	// Queue the backlog as Submit stores it, without executing it.
	e, s := backlogEngine(t, dir, nil)
	w, _ := e.Workflow("one")
	tiny := "" // the version Submit pins
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := e.Submit(ctx, "one", []byte(`"x"`), "probe"); err != nil {
		t.Fatal(err)
	} else {
		tiny = r.Versions["a"]
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				r := statestore.Run{ID: fmt.Sprintf("b-%08d", i), Workflow: "one", Input: []byte(`"x"`),
					Status: statestore.StatusRunning, Versions: map[string]string{"a": tiny},
					Attrs: map[string]string{workflow.AttrSource: string(w.Source)}}
				if _, _, err := s.SubmitRun(ctx, r, []statestore.ReadyNode{{Node: "a", Block: 1}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("queued %d runs in %s", n, time.Since(start).Round(time.Millisecond))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A process drains part of it and is killed mid-drain.
	child := exec.Command(os.Args[0], "-test.run=^TestBacklogChild$")
	child.Env = append(os.Environ(), backlogDirEnv+"="+dir)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()

	// Restart here and drain the rest, sampling the heap.
	var finished atomic.Int64
	opening := time.Now()
	e, s = backlogEngine(t, dir, func(ev workflow.Event) {
		if ev.Kind == workflow.EventRunFinished && ev.Status == statestore.StatusSucceeded {
			finished.Add(1)
		}
	})
	// The live heap as of the last collection: what the engine and the
	// store hold, not the garbage a collection has yet to reclaim.
	var peak uint64
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	profile := os.Getenv("BULKHEAD_BACKLOG_HEAPPROFILE") // written at each new peak
	sample := func() {
		metrics.Read(live)
		v := live[0].Value.Uint64()
		if v > peak && profile != "" {
			if f, err := os.Create(profile); err == nil {
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}
		peak = max(peak, v)
	}
	opened := time.Since(opening) // the store's checks of its files, Badger's open
	restart := time.Now()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(restart)
	sample()
	drain := time.Now()
	lastFinished, lastProgress, lastLog := int64(0), time.Now(), time.Now()
	for {
		time.Sleep(500 * time.Millisecond)
		sample()
		if time.Since(lastLog) >= time.Minute { // a long drain shows its progress
			lastLog = time.Now()
			t.Logf("draining: %d runs finished in %s, peak live heap %d MiB",
				finished.Load(), time.Since(drain).Round(time.Second), peak>>20)
		}
		runs, _, err := s.ListRuns(ctx, statestore.RunFilter{Status: statestore.StatusRunning, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 0 {
			break
		}
		if f := finished.Load(); f != lastFinished {
			lastFinished, lastProgress = f, time.Now()
		} else if time.Since(lastProgress) > 20*time.Second {
			stalled(t, s, runs[0])
		}
		if time.Since(drain) > 2*time.Hour {
			t.Fatal("the backlog did not drain in two hours")
		}
	}
	d := time.Since(drain)
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got := finished.Load()
	t.Logf("restart after SIGKILL: opened in %s, started in %s; drained %d runs in %s (%.0f runs/s); peak live heap %d MiB",
		opened.Round(time.Millisecond), ready.Round(time.Millisecond), got, d.Round(time.Millisecond), float64(got)/d.Seconds(), peak>>20)
	if peak > backlogHeapLimit {
		t.Errorf("peak live heap %d MiB while draining a backlog of %d runs, want at most %d MiB", peak>>20, n, backlogHeapLimit>>20)
	}
	if failed, _, err := s.ListRuns(ctx, statestore.RunFilter{Status: statestore.StatusFailed, Limit: 1}); err != nil || len(failed) > 0 {
		t.Fatalf("failed runs: %v, %v", failed, err)
	}
	// Every run succeeded once: one journal entry each.
	page, _, err := s.ListRuns(ctx, statestore.RunFilter{Status: statestore.StatusSucceeded, Limit: 1000})
	if err != nil || len(page) == 0 {
		t.Fatalf("succeeded runs: %d, %v", len(page), err)
	}
	for _, r := range page {
		res, err := s.NodeResults(ctx, r.ID)
		if err != nil || len(res) != 1 {
			t.Fatalf("run %s journal %v, %v", r.ID, res, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// stalled fails the test with what the store holds for a run that stays
// running while the engine claims nothing.
func stalled(t *testing.T, s *badgerstore.Store, r statestore.Run) {
	t.Helper()
	ctx := context.Background()
	res, err := s.NodeResults(ctx, r.ID)
	t.Logf("stalled run %s: status %s, journal %v (%v)", r.ID, r.Status, res, err)
	tasks, err := s.ClaimRunTasks(ctx, "diagnosis", r.ID, 10, time.Minute)
	t.Logf("its tasks: %+v (%v)", tasks, err)
	more, err := s.ClaimTasks(ctx, "diagnosis", 10, time.Minute)
	t.Logf("ClaimTasks now: %+v (%v)", more, err)
	t.FailNow()
}
