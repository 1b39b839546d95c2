package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const oneFlow = `name: one
nodes:
  only: {plugin: nodes, function: work}
`

// testLoad submits runs from many concurrent clients and checks that
// every run finishes exactly once. Full size (200 clients, 10,000 runs)
// unless -short or BULKHEAD_LOAD_RUNS says otherwise.
func testLoad(t *testing.T, bin string) {
	clients, runs := 200, 10000
	if testing.Short() {
		clients, runs = 50, 1000
	}
	if v := os.Getenv("BULKHEAD_LOAD_RUNS"); v != "" {
		fmt.Sscan(v, &runs)
	}
	dir := svcDir(t, map[string]string{"one": oneFlow})
	s := startService(t, bin, dir)
	ctx := context.Background()
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxIdleConns: clients}}
	defer hc.CloseIdleConnections()
	c, err := api.NewClient("http://"+s.addr, s.token, hc)
	if err != nil {
		t.Fatal(err)
	}

	// Memory: sample the service's heap and RSS while it works.
	type sample struct{ heap, rss float64 }
	var (
		memMu   sync.Mutex
		samples []sample
	)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			code, body := s.get("/metrics", "")
			if code != 200 {
				continue
			}
			memMu.Lock()
			samples = append(samples, sample{metric(t, body, "go_memstats_heap_inuse_bytes"), metric(t, body, "process_resident_memory_bytes")})
			memMu.Unlock()
		}
	}()

	start := time.Now()
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := cl; i < runs; i += clients {
				id := fmt.Sprintf("load-%05d", i)
				t0 := time.Now()
				sub, err := c.Submit(ctx, "one", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), id)
				lat[cl] = append(lat[cl], time.Since(t0))
				if err != nil || sub.RunID != id {
					errs <- fmt.Errorf("submit %s: %+v %v", id, sub, err)
					return
				}
				// Every tenth submission is sent twice: idempotent.
				if i%10 == 0 {
					if again, err := c.Submit(ctx, "one", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), id); err != nil || again.RunID != id {
						errs <- fmt.Errorf("resubmit %s: %+v %v", id, again, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	submitted := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		_, body := s.get("/metrics", "")
		succeeded := metric(t, body, `bulkhead_runs_finished_total{status="succeeded"}`)
		running := metric(t, body, `bulkhead_runs_unfinished{status="running"}`)
		if succeeded == float64(runs) && running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for every run to finish: %v of %d succeeded, %v running", succeeded, runs, running)
		}
	}
	finished := time.Since(start)
	close(stopSampling)
	<-sampled

	// None lost, none duplicated: page through every run.
	seen := make(map[string]bool, runs)
	after := ""
	for {
		page, err := c.Runs(ctx, statestore.RunFilter{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Runs {
			if seen[r.ID] {
				t.Fatalf("run %s listed twice", r.ID)
			}
			seen[r.ID] = true
			if r.Status != statestore.StatusSucceeded {
				t.Errorf("run %s is %s: %s", r.ID, r.Status, r.Error)
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if len(seen) != runs {
		t.Fatalf("%d runs stored, want %d", len(seen), runs)
	}
	for i := range runs {
		if !seen[fmt.Sprintf("load-%05d", i)] {
			t.Fatalf("run load-%05d lost", i)
		}
	}
	_, body := s.get("/metrics", "")
	if got := metric(t, body, `bulkhead_call_duration_seconds_count{outcome="success",plugin="nodes"}`); got != float64(runs) {
		t.Errorf("%v node calls for %d runs: a node ran twice or not at all", got, runs)
	}

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p int) time.Duration { return all[(len(all)-1)*p/100] }
	memMu.Lock()
	defer memMu.Unlock()
	t.Logf("%d clients, %d runs: submitted in %s (%.0f/s), all finished in %s (%.0f runs/s); submit latency p50 %s p99 %s max %s",
		clients, runs, submitted.Round(time.Millisecond), float64(runs)/submitted.Seconds(), finished.Round(time.Millisecond),
		float64(runs)/finished.Seconds(), pct(50), pct(99), all[len(all)-1])
	if len(samples) >= 8 {
		q := len(samples) / 4
		maxOf := func(ss []sample) (h, r float64) {
			for _, s := range ss {
				h, r = max(h, s.heap), max(r, s.rss)
			}
			return
		}
		h1, r1 := maxOf(samples[q : 2*q])
		h4, r4 := maxOf(samples[3*q:])
		t.Logf("memory: heap in use %.1f MiB (second quarter) → %.1f MiB (last quarter); RSS %.1f → %.1f MiB; %d samples",
			h1/(1<<20), h4/(1<<20), r1/(1<<20), r4/(1<<20), len(samples))
		// Flat: no growth with the number of runs done (generous bound
		// for GC timing).
		if h4 > 2*h1+32<<20 {
			t.Errorf("heap grew from %.1f to %.1f MiB over the run", h1/(1<<20), h4/(1<<20))
		}
	}
	if exit, _ := s.stop(syscall.SIGTERM, 60*time.Second); exit != 0 {
		t.Errorf("exit %d", exit)
	}
}
