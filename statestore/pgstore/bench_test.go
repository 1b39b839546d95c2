package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
	"github.com/bulkhead-run/bulkhead/statestore/storetest"
)

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

// BenchmarkStateUsage asks for the usage of a plugin holding 10,000 keys
// of 100 bytes, beside another plugin holding as many.
func BenchmarkStateUsage(b *testing.B) {
	u := pgtest.URL(b)
	s := open(b, u)
	ctx := context.Background()
	val := make([]byte, 100)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 20000; i += 16 {
				if err := s.StateSet(ctx, []string{"p", "q"}[i%2], fmt.Sprintf("key-%05d", i/2), val); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	conn := connect(b, u)
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE plugin_state"); err != nil {
		b.Fatal(err)
	}
	b.Log(explain(b, conn, "SELECT count(*), coalesce(sum(size), 0)::bigint FROM plugin_state WHERE plugin = 'p'::bytea"))
	b.ResetTimer()
	for range b.N {
		u, err := s.StateUsage(ctx, "p")
		if err != nil || u.Keys != 10000 {
			b.Fatalf("StateUsage = %+v, %v", u, err)
		}
	}
}

// BenchmarkListRuns pages through 100,000 runs, of which 1 in 100 failed:
// a page of 100 of every run, and a page of 100 failed ones (read through
// the status index), each starting from the middle.
func BenchmarkListRuns(b *testing.B) {
	u := pgtest.URL(b)
	s := open(b, u)
	ctx := context.Background()
	conn := connect(b, u)
	const runs = 100000
	_, err := conn.Exec(ctx, `INSERT INTO runs (id, status, created_ns, body)
SELECT convert_to('run-' || i, 'UTF8'), st, i,
	convert_to(json_build_object('id', 'run-' || i, 'workflow', 'wf', 'status', st)::text, 'UTF8')
FROM (SELECT i, CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'succeeded' END AS st FROM generate_series(1, $1) i) g`, runs)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE runs"); err != nil {
		b.Fatal(err)
	}
	mid := fmt.Sprintf("%016x.run-%d", runs/2, runs/2)
	for _, tc := range []struct {
		name   string
		status statestore.RunStatus
	}{{"all", ""}, {"failed", statestore.StatusFailed}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				page, next, err := s.ListRuns(ctx, statestore.RunFilter{Status: tc.status, Limit: 100, After: mid})
				if err != nil || len(page) != 100 || next == "" {
					b.Fatalf("ListRuns = %d runs, next %q, %v", len(page), next, err)
				}
			}
		})
	}
	b.Log(explain(b, conn, `SELECT body FROM runs WHERE status = 'failed' AND (created_ns, id) > (50000, 'x'::bytea)
ORDER BY created_ns, id LIMIT 101`))
}

// explain returns the plan of q, one line per node.
func explain(b *testing.B, conn *pgx.Conn, q string) string {
	rows, err := conn.Query(context.Background(), "EXPLAIN "+q)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	return "\n" + strings.Join(lines, "\n")
}

// BenchmarkClaimComplete runs tasks as engines on many hosts do: claim one
// task (SKIP LOCKED), complete it under its fence, which queues the next
// node of its run. With keep, the completion hands the next node to the
// same worker claimed already, so a task costs one commit instead of two.
// Each worker is its own owner; runs are endless chains, twice as many as
// workers.
func BenchmarkClaimComplete(b *testing.B) {
	for _, keep := range []bool{false, true} {
		for _, w := range []int{1, 16} {
			mode := "claim"
			if keep {
				mode = "keep"
			}
			b.Run(fmt.Sprintf("%s/workers=%d", mode, w), func(b *testing.B) {
				s := open(b, pgtest.URL(b), pgstore.WithMaxConns(w+2))
				ctx := context.Background()
				for i := range 2 * w {
					if _, _, err := s.SubmitRun(ctx, statestore.Run{ID: fmt.Sprintf("run-%d", i), Workflow: "wf"},
						[]statestore.ReadyNode{{Node: "n0", Block: 1}}); err != nil {
						b.Fatal(err)
					}
				}
				held := make([]*statestore.Task, w)
				out := make([]byte, 100)
				storetest.Parallel(b, w, "tasks/s", func(worker, _ int) error {
					owner := fmt.Sprintf("host-%d", worker)
					task := held[worker]
					for task == nil {
						tasks, err := s.ClaimTasks(ctx, owner, 1, time.Minute)
						if err != nil {
							return err
						}
						if len(tasks) == 1 {
							task = &tasks[0]
						}
					}
					var n int
					if _, err := fmt.Sscanf(task.Node, "n%d", &n); err != nil {
						return err
					}
					next, ok, err := s.CompleteTask(ctx, statestore.Completion{Fence: task.Fence(),
						Result: statestore.NodeResult{RunID: task.RunID, Node: task.Node, Output: out, Attempts: 1},
						Next:   []statestore.ReadyNode{{Node: fmt.Sprintf("n%d", n+1), Needs: []string{task.Node}, Block: 1}},
						Keep:   keep, Lease: time.Minute})
					if err != nil {
						return err
					}
					held[worker] = nil
					if ok {
						held[worker] = &next
					}
					return nil
				})
			})
		}
	}
}
