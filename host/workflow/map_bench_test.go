package workflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// journalBytes counts the bytes of what the engine journals: the run
// record it submits and every node (and map item) result, as JSON, the
// encoding the Badger and PostgreSQL stores keep them in.
type journalBytes struct {
	statestore.Store
	n atomic.Int64
}

func (s *journalBytes) add(v any) {
	b, _ := json.Marshal(v)
	s.n.Add(int64(len(b)))
}

func (s *journalBytes) SubmitRun(ctx context.Context, r statestore.Run, roots []statestore.ReadyNode) (statestore.Run, bool, error) {
	s.add(r)
	s.add(roots)
	return s.Store.SubmitRun(ctx, r, roots)
}

func (s *journalBytes) CompleteNode(ctx context.Context, res statestore.NodeResult, next ...statestore.NodeAttempt) error {
	s.add(res)
	return s.Store.CompleteNode(ctx, res, next...)
}

func (s *journalBytes) CompleteTask(ctx context.Context, c statestore.Completion) (statestore.Task, bool, error) {
	s.add(c.Result)
	return s.Store.CompleteTask(ctx, c)
}

// flat is a workflow of n no-op nodes written out: 100 parallel chains
// (n/100 nodes each).
func flat(n int) string {
	var b strings.Builder
	const chains = 100
	per := max(n/chains, 1)
	fmt.Fprintf(&b, "name: flat\npolicy: {retry: {max_attempts: 1}, breaker: {failure_threshold: -1}}\noutput: c0_%d\nnodes:\n", per-1)
	for c := range chains {
		for i := range per {
			fmt.Fprintf(&b, "  c%d_%d: {plugin: tiny, function: noop", c, i)
			if i > 0 {
				fmt.Fprintf(&b, ", needs: [c%d_%d]", c, i-1)
			}
			b.WriteString("}\n")
		}
	}
	return b.String()
}

// BenchmarkMap_VsFlat: runs mapping a no-op over 1,000 and 10,000 items
// against the baseline, a run of 10,000 no-op nodes written out (100
// chains; BULKHEAD_MAP_BENCH_FLAT sets its size), all on Badger with 64 at
// a time: items (or nodes) per second and journal bytes per item.
func BenchmarkMap_VsFlat(b *testing.B) {
	flatN := 10000
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_MAP_BENCH_FLAT")); err == nil && v > 0 {
		flatN = v
	}
	const conc = 64
	mapSrc := fmt.Sprintf(`name: map
policy: {retry: {max_attempts: 1}, breaker: {failure_threshold: -1}}
nodes:
  list: {plugin: tiny, function: echo}
  each: {plugin: tiny, function: noop, for_each: list, max_concurrency: %d}
`, conc)
	cases := []struct {
		name, wf, src string
		n             int
	}{
		{fmt.Sprintf("baseline=flat-%d-nodes", flatN/100*100), "flat", flat(flatN), flatN / 100 * 100},
		{"map-1000-items", "map", mapSrc, 1000},
		{"map-10000-items", "map", mapSrc, 10000},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s, err := badgerstore.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			counted := &journalBytes{Store: s}
			h := hosttest.New(b)
			tiny, err := os.ReadFile("../testdata/tiny.wasm")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h.Load(context.Background(), "tiny", tiny, abi.Manifest{Pool: abi.Pool{Max: conc}}); err != nil {
				b.Fatal(err)
			}
			e, err := workflow.New(counted, h, workflow.WithWorkers(conc))
			if err != nil {
				b.Fatal(err)
			}
			w, err := workflow.Parse(c.wf+".yaml", []byte(c.src), workflow.ParseOptions{})
			if err != nil {
				b.Fatal(err)
			}
			e.AddWorkflow(w)
			if err := e.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer e.Stop(context.Background())
			ctx := context.Background()
			n := c.n
			input := []byte("[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]")
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				r, err := e.Submit(ctx, c.wf, input, "")
				if err == nil {
					r, err = e.Wait(ctx, r.ID)
				}
				if err != nil || r.Status != statestore.StatusSucceeded {
					b.Fatal(err, r.Status, r.Error)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "items/s")
			b.ReportMetric(float64(counted.n.Load())/float64(n*b.N), "journal-B/item")
		})
	}
}
