package dbosbench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// hostsPart is the part of a benchmark's name that says how many bulkhead
// hosts ran it; its DBOS peer is the same name without it.
var hostsPart = regexp.MustCompile(`hosts=\d+/`)

// printRatios prints bulkhead's figures as ratios of DBOS's.
func printRatios() {
	var lines []string
	results.Range(func(k, v any) bool {
		name := k.(string)
		if !strings.HasPrefix(name, "BenchmarkBulkhead") {
			return true
		}
		peer := hostsPart.ReplaceAllString(strings.Replace(name, "BenchmarkBulkhead", "BenchmarkDBOS", 1), "")
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
	clusterDir = c.Dir
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

// settle quiets the server before a measure of the system whose
// database is at own: it vacuums every other database of the cluster and
// writes a checkpoint. The measure before leaves dead rows that
// autovacuum would otherwise clean up at a time of its own, often in the
// middle of the next measure, which is the other system's. The measured
// system's own database is left as its own measures left it: a VACUUM
// of tables still empty would price them as empty, and plans made then
// read them whole as they grow (DBOS's fell by a fifth that way).
func settle(b *testing.B, own string) {
	b.Helper()
	c := pgtest.Get(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")
	if err != nil {
		b.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range names {
		if c.URL(name) == own {
			continue
		}
		db, err := pgx.Connect(ctx, c.URL(name))
		if err != nil {
			b.Fatal(err)
		}
		_, err = db.Exec(ctx, "VACUUM")
		db.Close(ctx)
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Fatal(err)
	}
}

// clusterDir is the test cluster's directory.
var clusterDir string

// cpuTimes are the CPU times used so far by this process (the system
// under test runs in it) and by the database server's processes.
type cpuTimes struct {
	self, db time.Duration
	ok       bool
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{self: a.self - b.self, db: a.db - b.db, ok: a.ok && b.ok}
}

// cpuNow reads the CPU times from getrusage and /proc: CPU time per step
// tells what a step costs when the machine is shared, and so busy, where
// completions per second tell only how fast it went. The database's are
// those of the test cluster's postmaster and its children, live or
// exited.
func cpuNow() cpuTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}
	}
	t := cpuTimes{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	pidFile, err := os.ReadFile(filepath.Join(clusterDir, "data", "postmaster.pid"))
	if err != nil {
		return t
	}
	postmaster, _, _ := strings.Cut(string(pidFile), "\n")
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return t
	}
	for _, d := range dirs {
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime cutime cstime: fields
		// 14 to 17.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 || (d.Name() != postmaster && f[1] != postmaster) {
			continue
		}
		// The postmaster's cutime and cstime hold its children that
		// exited (backends of closed connections).
		var ticks int64
		for _, k := range []int{11, 12, 13, 14} {
			n, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += n
		}
		t.db += time.Duration(ticks) * time.Second / 100 // USER_HZ
		t.ok = true
	}
	return t
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

func startBulkhead(url string) (*bulkheadSystem, error) { return startHost(url, "") }

// startHost starts one bulkhead host on the database at url: its own
// store (pool), Wasm host and engine, under owner (a generated name when
// empty).
func startHost(url, owner string) (*bulkheadSystem, error) {
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
	opts := []workflow.Option{workflow.WithWorkers(256), workflow.WithLogger(log)}
	if owner != "" {
		opts = append(opts, workflow.WithOwner(owner))
	}
	e, err := workflow.New(s, h, opts...)
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

// cluster is n bulkhead hosts on one database, as n `bulkhead serve`
// processes would be (here in one process, so on the same cores): runs
// are submitted to each in turn and waited for where they were
// submitted; every host claims and rescues any run's nodes.
type cluster struct {
	hosts []*bulkheadSystem
	next  atomic.Int64
}

func (c *cluster) url() string { return c.hosts[0].db }

func (c *cluster) run(ctx context.Context) error {
	return c.hosts[int(c.next.Add(1))%len(c.hosts)].run(ctx)
}

func (c *cluster) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range c.hosts {
		_ = s.e.Stop(ctx)
		_ = s.h.Stop(ctx)
		_ = s.s.Close()
	}
}

// startCluster starts n hosts on a database of their own.
func startCluster(b *testing.B, n int) *cluster {
	url := database(b, fmt.Sprintf("bulkhead_%d_hosts", n))
	c := &cluster{}
	for i := range n {
		s, err := startHost(url, fmt.Sprintf("bench-host-%d", i))
		if err != nil {
			c.stop()
			b.Fatal(err)
		}
		c.hosts = append(c.hosts, s)
	}
	return c
}

// --- the measures ---

// completions runs b.N steps' worth of workflows (b.N/10 of them) with
// inflight at a time and reports step completions per second.
func completions(b *testing.B, sys system, inflight int) {
	runs := max(1, (b.N+steps-1)/steps)
	// Warm up first, as many runs as are in flight and at least a tenth
	// of the measure: connections, plans and the tables' first pages are
	// the same for both systems and not what is measured.
	if err := drive(sys, inflight, max(inflight, runs/10)); err != nil {
		b.Fatal(err)
	}
	settle(b, sys.url())
	before, okBefore := stats(sys.url())
	cpuBefore := cpuNow()
	b.ResetTimer()
	start := time.Now()
	err := drive(sys, inflight, runs)
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	report(b, float64(runs*steps)/elapsed.Seconds(), "completions/s")
	if cpu := cpuNow().sub(cpuBefore); cpu.ok {
		report(b, float64(cpu.self.Microseconds())/float64(runs*steps), "host-cpu-us/step")
		report(b, float64(cpu.db.Microseconds())/float64(runs*steps), "db-cpu-us/step")
	}
	time.Sleep(1100 * time.Millisecond) // see stats
	if after, ok := stats(sys.url()); ok && okBefore {
		report(b, float64(after.xacts-before.xacts)/float64(runs*steps), "xacts/step")
		report(b, float64(after.syncs-before.syncs)/float64(runs*steps), "walsyncs/step")
	}
}

// drive runs n workflows, inflight at a time, and returns the first
// error.
func drive(sys system, inflight, n int) error {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range inflight {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := sys.run(ctx); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	err, _ := failed.Load().(error)
	return err
}

// latency runs b.N workflows one at a time and reports the median and
// 99th percentile of start-to-result.
func latency(b *testing.B, sys system) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	if err := drive(sys, 1, max(1, b.N/10)); err != nil { // warm up, as completions does
		b.Fatal(err)
	}
	settle(b, sys.url())
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
	// Two and three hosts sharing the database: the ratios are against
	// DBOS's one process at the same number in flight.
	for _, hosts := range []int{2, 3} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			c := startCluster(b, hosts)
			defer c.stop()
			for _, n := range inflights {
				b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) { completions(b, c, n) })
			}
		})
	}
}

// alternating measures both systems in rounds at the same number in
// flight, b.N steps each per round, DBOS first in even rounds and
// bulkhead first in odd ones, and reports the median, lowest and highest
// of the rounds' ratios (bulkhead's completions/s over DBOS's). The
// machine's speed drifts by a fifth or more within minutes; a ratio of
// two measures taken seconds apart, in either order, is what each round
// compares, and the median of several is steadier than one ratio of two
// benchmarks run a minute apart.
func alternating(b *testing.B, inflight, rounds int) {
	systems := []system{dbosEnv(b), bulkheadEnv(b)}
	runs := max(1, (b.N+steps-1)/steps)
	// Warm up with a whole round's workflows, unmeasured: DBOS's rate
	// still rose over the first rounds after completions' warm-up of a
	// tenth.
	for _, sys := range systems {
		if err := drive(sys, inflight, max(inflight, runs)); err != nil {
			b.Fatal(err)
		}
	}
	measure := func(sys system) float64 {
		settle(b, sys.url())
		start := time.Now()
		if err := drive(sys, inflight, runs); err != nil {
			b.Fatal(err)
		}
		return float64(runs*steps) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	var ratios, dbosRates, bhRates []float64
	for r := range rounds {
		var d, h float64
		if r%2 == 0 {
			d = measure(systems[0])
			h = measure(systems[1])
		} else {
			h = measure(systems[1])
			d = measure(systems[0])
		}
		ratios, dbosRates, bhRates = append(ratios, h/d), append(dbosRates, d), append(bhRates, h)
		b.Logf("round %d: bulkhead %.0f, DBOS %.0f completions/s: %.2f×", r+1, h, d, h/d)
	}
	b.StopTimer()
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	b.ReportMetric(median(bhRates), "bulkhead-completions/s")
	b.ReportMetric(median(dbosRates), "dbos-completions/s")
	b.ReportMetric(median(ratios), "ratio-median")
	b.ReportMetric(slices.Min(ratios), "ratio-min")
	b.ReportMetric(slices.Max(ratios), "ratio-max")
}

// BenchmarkAlternating_Completions runs seven alternating rounds at 16
// and 256 in flight (one round for the benchmark's first, one-step call).
func BenchmarkAlternating_Completions(b *testing.B) {
	for _, n := range []int{16, 256} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) {
			rounds := 7
			if b.N < 100 {
				rounds = 1
			}
			alternating(b, n, rounds)
		})
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
	c0 := cpuNow()
	start := time.Now()
	for i := range b.N {
		if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", i, val); err != nil {
			b.Fatal(err)
		}
	}
	report(b, float64(b.N)/time.Since(start).Seconds(), "commits/s")
	if c := cpuNow().sub(c0); c.ok {
		report(b, float64(c.db.Microseconds())/float64(b.N), "db-cpu-us/commit")
	}
}
