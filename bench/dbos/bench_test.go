package dbosbench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

// Steps is the length of the workflow both systems run.
const steps = 10

func TestMain(m *testing.M) {
	code := pgtest.M(stopAfter{m}).Run()
	printRatios()
	os.Exit(code)
}

// stopAfter runs the benchmarks, then stops both systems before the
// cluster stops.
type stopAfter struct{ m *testing.M }

func (s stopAfter) Run() int {
	code := s.m.Run()
	if dbosSys != nil {
		dbos.Shutdown(dbosSys.ctx, 10*time.Second)
	}
	if bhSys != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bhSys.e.Stop(ctx)
		_ = bhSys.h.Stop(ctx)
		_ = bhSys.s.Close()
	}
	return code
}

// results holds each figure by benchmark name, for the closing ratios.
var results sync.Map

func report(b *testing.B, v float64, unit string) {
	b.ReportMetric(v, unit)
	results.Store(b.Name()+" "+unit, v)
}

// printRatios prints bulkhead's figures as ratios of DBOS's.
func printRatios() {
	var lines []string
	results.Range(func(k, v any) bool {
		name := k.(string)
		if !strings.HasPrefix(name, "BenchmarkBulkhead") {
			return true
		}
		peer := strings.Replace(name, "BenchmarkBulkhead", "BenchmarkDBOS", 1)
		if pv, ok := results.Load(peer); ok && pv.(float64) > 0 {
			lines = append(lines, fmt.Sprintf("  %-50s %8.2f× DBOS (%.1f vs %.1f)", strings.TrimPrefix(name, "BenchmarkBulkhead_"), v.(float64)/pv.(float64), v.(float64), pv.(float64)))
		}
		return true
	})
	if len(lines) == 0 {
		return
	}
	sort.Strings(lines)
	fmt.Println("bulkhead / DBOS, same PostgreSQL, same run:")
	fmt.Println(strings.Join(lines, "\n"))
}

// database creates a fresh database in the cluster and returns its URL.
// Databases live until the cluster stops with the test binary.
func database(b *testing.B, name string) string {
	b.Helper()
	c := pgtest.Get(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	name = fmt.Sprintf("%s_%d", name, time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		b.Fatal(err)
	}
	return c.URL(name)
}

// system is one of the two workflow engines under test.
type system interface {
	// run runs one 10-step workflow to its end.
	run(ctx context.Context) error
	// url is the URL of the system's own database.
	url() string
}

// dbStats are counters of the database server.
type dbStats struct {
	// xacts counts the transactions the system's database committed,
	// read-only ones included; syncs the WAL flushes of the whole
	// cluster (the other system is idle meanwhile).
	xacts, syncs int64
}

// stats reads the counters, or returns false. Backends publish their
// counts within about a second, so the caller waits that long after its
// last transaction: the figures are close, not exact.
func stats(url string) (dbStats, bool) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return dbStats{}, false
	}
	defer conn.Close(ctx)
	var st dbStats
	err = conn.QueryRow(ctx, `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
	(SELECT wal_sync FROM pg_stat_wal)`).Scan(&st.xacts, &st.syncs)
	return st, err == nil
}

// --- DBOS Transact ---

type dbosSystem struct {
	ctx dbos.Context
	db  string
}

func (d *dbosSystem) url() string { return d.db }

func noop(context.Context) (int, error) { return 0, nil }

func tenSteps(ctx dbos.Context, _ string) (int, error) {
	for i := range steps {
		if _, err := dbos.RunAsStep(ctx, noop, dbos.WithStepName(fmt.Sprintf("s%d", i))); err != nil {
			return 0, err
		}
	}
	return steps, nil
}

var (
	dbosOnce sync.Once
	dbosSys  *dbosSystem
	dbosErr  error
)

func dbosEnv(b *testing.B) *dbosSystem {
	dbosOnce.Do(func() {
		url := database(b, "dbos")
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		ctx, err := dbos.NewContext(context.Background(), dbos.Config{DatabaseURL: url, AppName: "bench", Logger: log})
		if err != nil {
			dbosErr = err
			return
		}
		dbos.RegisterWorkflow(ctx, tenSteps)
		if dbosErr = dbos.Launch(ctx); dbosErr == nil {
			dbosSys = &dbosSystem{ctx: ctx, db: url}
		}
	})
	if dbosErr != nil {
		b.Fatal(dbosErr)
	}
	return dbosSys
}

func (d *dbosSystem) run(context.Context) error {
	h, err := dbos.RunWorkflow(d.ctx, tenSteps, "")
	if err != nil {
		return err
	}
	n, err := h.GetResult()
	if err == nil && n != steps {
		err = fmt.Errorf("workflow returned %d", n)
	}
	return err
}

// --- bulkhead ---

type bulkheadSystem struct {
	e  *workflow.Engine
	h  *host.Host
	s  *pgstore.Store
	db string
}

func (s *bulkheadSystem) url() string { return s.db }

// chain is a workflow of n sequential no-op nodes of the tiny plugin.
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

var (
	bhOnce sync.Once
	bhSys  *bulkheadSystem
	bhErr  error
)

func bulkheadEnv(b *testing.B) *bulkheadSystem {
	bhOnce.Do(func() { bhSys, bhErr = startBulkhead(database(b, "bulkhead")) })
	if bhErr != nil {
		b.Fatal(bhErr)
	}
	return bhSys
}

func startBulkhead(url string) (*bulkheadSystem, error) {
	ctx := context.Background()
	s, err := pgstore.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	h, err := host.New(host.WithCacheDir(os.TempDir() + "/bulkhead-bench-cache"))
	if err != nil {
		return nil, err
	}
	if err := h.Start(ctx); err != nil {
		return nil, err
	}
	tiny, err := os.ReadFile("../../host/testdata/tiny.wasm")
	if err != nil {
		return nil, err
	}
	if _, err := h.Load(ctx, "tiny", tiny, abi.Manifest{Pool: abi.Pool{Max: 8}}); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := workflow.New(s, h, workflow.WithWorkers(256), workflow.WithLogger(log))
	if err != nil {
		return nil, err
	}
	w, err := workflow.Parse("chain.yaml", []byte(chain(steps)), workflow.ParseOptions{})
	if err != nil {
		return nil, err
	}
	e.AddWorkflow(w)
	if err := e.Start(ctx); err != nil {
		return nil, err
	}
	// The engine, host and store stay up until the test binary exits.
	return &bulkheadSystem{e: e, h: h, s: s, db: url}, nil
}

func (s *bulkheadSystem) run(ctx context.Context) error {
	r, err := s.e.Submit(ctx, "chain", nil, "")
	if err == nil {
		r, err = s.e.Wait(ctx, r.ID)
	}
	if err == nil && r.Status != statestore.StatusSucceeded {
		err = fmt.Errorf("run %s: %s", r.Status, r.Error)
	}
	return err
}

// --- the measures ---

// completions runs b.N steps' worth of workflows (b.N/10 of them) with
// inflight at a time and reports step completions per second.
func completions(b *testing.B, sys system, inflight int) {
	ctx := context.Background()
	runs := max(1, (b.N+steps-1)/steps)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	before, okBefore := stats(sys.url())
	b.ResetTimer()
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(runs) {
				if err := sys.run(ctx); err != nil {
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
	report(b, float64(runs*steps)/elapsed.Seconds(), "completions/s")
	time.Sleep(1100 * time.Millisecond) // see stats
	if after, ok := stats(sys.url()); ok && okBefore {
		report(b, float64(after.xacts-before.xacts)/float64(runs*steps), "xacts/step")
		report(b, float64(after.syncs-before.syncs)/float64(runs*steps), "walsyncs/step")
	}
}

// latency runs b.N workflows one at a time and reports the median and
// 99th percentile of start-to-result.
func latency(b *testing.B, sys system) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := sys.run(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	report(b, float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	report(b, float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

var inflights = []int{1, 16, 256}

func BenchmarkDBOS_Completions(b *testing.B) {
	for _, n := range inflights {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) { completions(b, dbosEnv(b), n) })
	}
}

func BenchmarkBulkhead_Completions(b *testing.B) {
	for _, n := range inflights {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) { completions(b, bulkheadEnv(b), n) })
	}
}

func BenchmarkDBOS_Run10Latency(b *testing.B)     { latency(b, dbosEnv(b)) }
func BenchmarkBulkhead_Run10Latency(b *testing.B) { latency(b, bulkheadEnv(b)) }

// BenchmarkPostgres_CommitBaseline: the database's own rate of durable
// one-row commits from one connection, the floor under both systems.
func BenchmarkPostgres_CommitBaseline(b *testing.B) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, database(b, "baseline"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id bigint PRIMARY KEY, v bytea)"); err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 200)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", i, val); err != nil {
			b.Fatal(err)
		}
	}
	report(b, float64(b.N)/time.Since(start).Seconds(), "commits/s")
}
