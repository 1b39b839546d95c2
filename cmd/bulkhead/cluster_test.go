package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore"
	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

// Three `bulkhead serve` processes share one PostgreSQL database: runs
// submitted to any of them finish while hosts are killed, frozen,
// restarted one by one, and while the database itself goes away.

// clusterFlow is a 10-node chain whose middle node runs for about a
// second and checkpoints every 4 of its 20 steps.
const clusterFlow = `name: ten
policy:
  retry: {max_attempts: 4, initial_delay: 5ms, jitter: none}
  breaker: {failure_threshold: -1}
nodes:
  n1: {plugin: nodes, function: work}
  n2: {plugin: nodes, function: work, needs: [n1]}
  n3: {plugin: nodes, function: work, needs: [n2], config: {sleep_ms: 20}}
  n4: {plugin: nodes, function: work, needs: [n3]}
  long:
    plugin: nodes
    function: long
    config: {steps: 20, step_ms: 50, every: 4}
    needs: [n4]
  n6: {plugin: nodes, function: work, needs: [long]}
  n7: {plugin: nodes, function: work, needs: [n6], config: {sleep_ms: 20}}
  n8: {plugin: nodes, function: work, needs: [n7]}
  n9: {plugin: nodes, function: work, needs: [n8]}
  n10: {plugin: nodes, function: work, needs: [n9]}
`

// slowFlow has one node that runs for about six seconds, checkpointing.
const slowFlow = `name: slow
nodes:
  long:
    plugin: nodes
    function: long
    config: {steps: 60, step_ms: 100, every: 5}
`

const clusterLease = 2 * time.Second

// cluster is three hosts on one database.
type cluster struct {
	t     *testing.T // the running subtest
	top   *testing.T // owns the hosts: they outlive subtests
	bin   string
	dir   string
	url   string
	mu    sync.Mutex
	hosts []*service
	db    *pgxpool.Pool
	store *pgstore.Store
}

func (c *cluster) args(i int) []string {
	return []string{"--store", c.url, "--host-id", fmt.Sprintf("h%d", i), "--lease", clusterLease.String(),
		"--data", filepath.Join(c.dir, fmt.Sprintf("data-h%d", i)), "--grace-period", "10s"}
}

func (c *cluster) start(i int) *service {
	s := startService(c.top, c.bin, c.dir, c.args(i)...)
	c.mu.Lock()
	c.hosts[i] = s
	c.mu.Unlock()
	return s
}

func (c *cluster) host(i int) *service {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[i]
}

func newCluster(t *testing.T, bin string) *cluster {
	t.Helper()
	url := pgtest.URL(t)
	if code, out, errOut := bulkhead(t, "", "migrate", "--store", url); code != exitOK {
		t.Fatalf("migrate: exit %d %s %s", code, out, errOut)
	}
	c := &cluster{t: t, top: t, bin: bin, url: url, dir: svcDir(t, map[string]string{"ten": clusterFlow, "slow": slowFlow}),
		hosts: make([]*service, 3)}
	// The fixture keeps a state key per executed node, about 12 per run
	// of clusterFlow: the soak's 1,000 runs need more than the default
	// quota of 10,000 keys.
	if err := os.WriteFile(filepath.Join(c.dir, "plugins", "nodes.yaml"), []byte("state_keys: 100000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.db, err = pgxpool.New(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.db.Close)
	if c.store, err = pgstore.Open(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.store.Close() })
	for i := range 3 {
		c.start(i)
	}
	return c
}

// submit submits runs through the hosts in turn; each must be accepted.
func (c *cluster) submit(workflow string, ids []string) {
	c.t.Helper()
	for i, id := range ids {
		var err error
		for try := range 50 {
			h := c.host((i + try) % 3)
			if _, err = h.client.Submit(context.Background(), workflow, json.RawMessage(`"x"`), id); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			c.t.Fatalf("submit %s: %v\n%s", id, err, c.deadHosts())
		}
	}
}

// deadHosts describes the hosts that exited, with the end of their logs.
func (c *cluster) deadHosts() string {
	var b strings.Builder
	for i := range 3 {
		h := c.host(i)
		select {
		case <-h.done:
			lines := strings.Split(strings.TrimSpace(h.logText()), "\n")
			fmt.Fprintf(&b, "host h%d exited (%v); its log ends:\n%s\n", i, h.err, strings.Join(lines[max(0, len(lines)-15):], "\n"))
		default:
		}
	}
	return b.String()
}

// waitFinished waits until none of the runs is unfinished.
func (c *cluster) waitFinished(ids []string, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var n int
		err := c.db.QueryRow(context.Background(),
			"SELECT count(*) FROM runs WHERE status IN ('pending', 'running') AND id = ANY($1)", byteIDs(ids)).Scan(&n)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d runs unfinished after %s (last error %v)", n, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func byteIDs(ids []string) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = []byte(id)
	}
	return out
}

// checkRuns checks that every run succeeded with the same output, and that
// no journaled node of theirs ran again.
func (c *cluster) checkRuns(ids []string) {
	c.t.Helper()
	ctx := context.Background()
	var want string
	for _, id := range ids {
		r, err := c.store.GetRun(ctx, id)
		if err != nil {
			c.t.Fatalf("run %s: %v", id, err)
		}
		if r.Status != statestore.StatusSucceeded {
			c.t.Errorf("run %s: %s %s", id, r.Status, r.Error)
			continue
		}
		if want == "" {
			want = string(r.Output)
		}
		if string(r.Output) != want {
			c.t.Errorf("run %s output %s, want %s as every other run with the same input", id, r.Output, want)
		}
		if err := checkJournal(ctx, c.store, id, 10); err != nil {
			c.t.Error(err)
		}
	}
	if n, _ := c.store.CountDeadLetters(ctx); n != 0 {
		c.t.Errorf("%d dead letters", n)
	}
}

// heldTask is a task a host holds: its run, node, claim token and when
// its lease ends.
type heldTask struct {
	run, node string
	token     int64
	leaseEnd  time.Time
}

// held returns the tasks a host holds.
func (c *cluster) held(host string) []heldTask {
	rows, err := c.db.Query(context.Background(),
		"SELECT run_id, node, token, (extract(epoch FROM lease_until) * 1e6)::bigint FROM tasks WHERE owner = $1", []byte(host))
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []heldTask
	for rows.Next() {
		var run, node []byte
		var token, leaseUS int64
		if rows.Scan(&run, &node, &token, &leaseUS) == nil {
			out = append(out, heldTask{string(run), string(node), token, time.UnixMicro(leaseUS)})
		}
	}
	return out
}

// rescue is how one held task was rescued, times since its host's kill:
// when its lease ended, when it was claimed again (no task is still under
// the claim it had: claimed by another host, by the same host ID
// restarted, or completed), by whom ("" when completed), and when its node
// started again (its attempt was recorded after the kill, as an execution
// records it before it runs, or the node is journaled).
type rescue struct {
	expired, claimed, started time.Duration
	by                        string
}

// rescued waits until every task in tasks is claimed and started again.
func (c *cluster) rescued(tasks []heldTask, killed time.Time) []rescue {
	ctx := context.Background()
	out := make([]rescue, len(tasks))
	for i, t := range tasks {
		out[i].expired = t.leaseEnd.Sub(killed)
	}
	claimed, started := make([]bool, len(tasks)), make([]bool, len(tasks))
	left := len(tasks)
	for left > 0 && time.Since(killed) < time.Minute {
		for i, t := range tasks {
			if !claimed[i] {
				var token int64
				var owner []byte
				err := c.db.QueryRow(ctx, "SELECT token, owner FROM tasks WHERE run_id = $1 AND node = $2",
					[]byte(t.run), []byte(t.node)).Scan(&token, &owner)
				if errors.Is(err, pgx.ErrNoRows) || err == nil && token != t.token {
					claimed[i], out[i].claimed, out[i].by = true, time.Since(killed), string(owner)
				}
			}
			if !started[i] {
				var startedNS int64
				var journaled bool
				err := c.db.QueryRow(ctx, `SELECT coalesce((SELECT started_ns FROM node_attempts WHERE run_id = $1 AND node = $2), 0),
	EXISTS (SELECT 1 FROM node_results WHERE run_id = $1 AND node = $2)`, []byte(t.run), []byte(t.node)).Scan(&startedNS, &journaled)
				if err == nil && (journaled || startedNS > killed.UnixNano()) {
					started[i], out[i].started = true, time.Since(killed)
					if !claimed[i] {
						claimed[i], out[i].claimed = true, out[i].started
					}
					left--
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range out {
		if !started[i] {
			out[i].started = time.Minute
		}
		if !claimed[i] {
			out[i].claimed = time.Minute
		}
	}
	return out
}

// distribution describes durations: min, median, p90, max.
func distribution(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	ds = slices.Sorted(slices.Values(ds))
	at := func(q float64) time.Duration { return ds[int(q*float64(len(ds)-1))].Round(time.Millisecond) }
	return fmt.Sprintf("min %s, median %s, p90 %s, max %s", at(0), at(0.5), at(0.9), at(1))
}

// killEvent is a kill of a host, and how long after it the host's restart
// was serving (its engine started).
type killEvent struct {
	host string
	at   time.Time
	up   time.Duration
}

// reportRescues logs where the time from each kill to the restart of its
// nodes went, and returns the worst time to a restart. A node whose new
// owner was itself killed before it started is left out of the restart
// times of the first kill: the later kill held it, and times its rescue.
func reportRescues(t *testing.T, kills [][]rescue, killedHosts []string, killedAt []time.Time, allKills []killEvent) time.Duration {
	var lastClaim, lastStart, expiry, toClaim, toStart, up, startOther, startRestart []time.Duration
	upOf := map[killEvent]time.Duration{}
	for _, ke := range allKills {
		up = append(up, ke.up)
		upOf[killEvent{host: ke.host, at: ke.at}] = ke.up
	}
	var worst time.Duration
	byRestarted, byOther, done, rekilled := 0, 0, 0, 0
	var slow []string
	for k, rs := range kills {
		var lc, ls time.Duration
		for _, r := range rs {
			lc = max(lc, r.claimed)
			expiry = append(expiry, r.expired)
			toClaim = append(toClaim, r.claimed-r.expired)
			switch r.by {
			case "":
				done++
			case killedHosts[k]:
				byRestarted++
			default:
				byOther++
			}
			if slices.ContainsFunc(allKills, func(ke killEvent) bool {
				return ke.host == r.by && ke.at.After(killedAt[k].Add(r.claimed-50*time.Millisecond)) && ke.at.Before(killedAt[k].Add(r.started))
			}) {
				rekilled++
				continue
			}
			ls = max(ls, r.started)
			toStart = append(toStart, r.started-r.claimed)
			switch r.by {
			case "":
			case killedHosts[k]:
				startRestart = append(startRestart, r.started)
			default:
				startOther = append(startOther, r.started)
			}
			if r.started > clusterLease+time.Second && len(slow) < 10 {
				slow = append(slow, fmt.Sprintf("%s killed: its lease ended at %s, claimed by %q at %s, started at %s (restart serving at %s)",
					killedHosts[k], r.expired.Round(time.Millisecond), r.by, r.claimed.Round(time.Millisecond), r.started.Round(time.Millisecond),
					upOf[killEvent{host: killedHosts[k], at: killedAt[k]}].Round(time.Millisecond)))
			}
		}
		lastClaim, lastStart = append(lastClaim, lc), append(lastStart, ls)
		worst = max(worst, ls)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%d kills with held nodes (lease %s, load average %s)", len(kills), clusterLease, strings.Join(strings.Fields(string(load))[:3], " "))
	t.Logf("per kill, until every held node was claimed again: %s", distribution(lastClaim))
	t.Logf("per kill, until every held node started again:     %s", distribution(lastStart))
	t.Logf("per node, kill to lease end:                       %s", distribution(expiry))
	t.Logf("per node, lease end to new claim:                  %s", distribution(toClaim))
	t.Logf("per node, new claim to start:                      %s", distribution(toStart))
	t.Logf("per node, kill to start on another host:           %s", distribution(startOther))
	t.Logf("per node, kill to start on the restarted host:     %s", distribution(startRestart))
	t.Logf("per kill, until the restarted host was serving:    %s", distribution(up))
	t.Logf("claimed again by another host %d, by the killed host's restart %d; completed before the kill %d; "+
		"new owner killed before it started %d", byOther, byRestarted, done, rekilled)
	for _, l := range slow {
		t.Logf("late: %s", l)
	}
	return worst
}

func runIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return ids
}

// TestCluster runs the cluster's must-haves on one database and one set
// of hosts. BULKHEAD_SOAK=1 runs the failover soak with 1,000 runs.
func TestCluster(t *testing.T) {
	pgtest.Get(t)
	bin := buildBinary(t, t.TempDir())
	c := newCluster(t, bin)
	t.Run("Failover", func(t *testing.T) {
		c.t = t
		n, kills := 60, 4
		if os.Getenv("BULKHEAD_SOAK") != "" {
			n, kills = 1000, 40
		}
		testFailover(c, n, kills)
	})
	t.Run("Fencing", func(t *testing.T) { c.t = t; testFencing(c) })
	t.Run("RollingRestart", func(t *testing.T) { c.t = t; testRollingRestart(c) })
	t.Run("DatabaseOutage", func(t *testing.T) { c.t = t; testOutage(c) })
}

// testFailover: runs submitted through all three hosts while a random
// host is killed with SIGKILL every second or so and started again: at
// once, when it takes back the nodes it held, or, every fourth kill, only
// after lease + 1.5 s, so the other hosts rescue them.
func testFailover(c *cluster, n, kills int) {
	t := c.t
	ids := runIDs("fo", n)
	c.submit("ten", ids)
	var rescues [][]rescue
	var killedHosts []string
	var killedAt []time.Time
	var allKills []killEvent
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range kills {
		time.Sleep(time.Duration(800+rand.IntN(800)) * time.Millisecond)
		i := rand.IntN(3)
		host := fmt.Sprintf("h%d", i)
		held := c.held(host)
		killed := time.Now()
		if err := c.host(i).cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-c.host(i).done
		mu.Lock()
		allKills = append(allKills, killEvent{host: host, at: killed})
		ki := len(allKills) - 1
		mu.Unlock()
		if len(held) > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := c.rescued(held, killed)
				mu.Lock()
				rescues, killedHosts, killedAt = append(rescues, r), append(killedHosts, host), append(killedAt, killed)
				mu.Unlock()
			}()
		}
		t.Logf("kill %d: %s held %d nodes", k+1, host, len(held))
		if k%4 == 3 {
			time.Sleep(clusterLease + 1500*time.Millisecond)
		}
		restarted := c.start(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !strings.Contains(restarted.logText(), `"msg":"serving"`) && time.Since(killed) < time.Minute {
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			allKills[ki].up = time.Since(killed)
			mu.Unlock()
		}()
	}
	c.waitFinished(ids, 3*time.Minute)
	wg.Wait()
	c.checkRuns(ids)
	if len(rescues) > 0 {
		// A held node is rescued once its lease ends; the lease was last
		// extended at most a heartbeat (lease/3) before the kill.
		if worst := reportRescues(t, rescues, killedHosts, killedAt, allKills); worst > clusterLease+time.Second {
			t.Errorf("a node started again %s after its host was killed, want within lease + 1s", worst)
		}
	}
}

// testFencing freezes the host running a long node past its lease:
// another host finishes the run; once thawed, the frozen host's writes
// are refused and the journal keeps the other host's output.
func testFencing(c *cluster) {
	t := c.t
	ctx := context.Background()
	c.submit("slow", []string{"fence-1"})
	var owner string
	waitUntil(t, 30*time.Second, "a checkpoint of the long node", func() bool {
		var o []byte
		if c.db.QueryRow(ctx, "SELECT owner FROM tasks WHERE run_id = $1", []byte("fence-1")).Scan(&o) != nil || o == nil {
			return false
		}
		cps, _ := c.store.ListCheckpoints(ctx, "fence-1", "long")
		owner = string(o)
		return len(cps) > 0
	})
	i := int(owner[1] - '0')
	frozen := c.host(i)
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	c.waitFinished([]string{"fence-1"}, time.Minute)
	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	res, err := c.store.NodeResults(ctx, "fence-1")
	if err != nil || res["long"].Host == owner || res["long"].Host == "" {
		t.Fatalf("journal %+v, %v: want the long node journaled by a host other than the frozen %s", res["long"], err, owner)
	}
	waitUntil(t, 20*time.Second, "the frozen host to report its lost claim", func() bool {
		return strings.Contains(frozen.logText(), "claim of a node lost")
	})
	// Counted, on both sides.
	_, body := frozen.get("/metrics", frozen.token)
	lost := metric(t, body, fmt.Sprintf(`bulkhead_queue_leases_lost_total{host="%s"}`, owner)) +
		metric(t, body, fmt.Sprintf(`bulkhead_queue_fenced_writes_total{host="%s"}`, owner))
	if lost < 1 {
		t.Errorf("the frozen host counts %v lost claims and fenced writes, want at least 1", lost)
	}
	rescuer := res["long"].Host
	_, body = c.host(int(rescuer[1]-'0')).get("/metrics", frozen.token)
	if n := metric(t, body, fmt.Sprintf(`bulkhead_queue_rescues_total{host="%s"}`, rescuer)); n < 1 {
		t.Errorf("the rescuing host counts %v rescues, want at least 1", n)
	}
	r, _ := c.store.GetRun(ctx, "fence-1")
	if r.Status != statestore.StatusSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	res2, _ := c.store.NodeResults(ctx, "fence-1")
	if string(res2["long"].Output) != string(res["long"].Output) || res2["long"].Host != res["long"].Host {
		t.Errorf("the journal changed after the frozen host woke: %+v, was %+v", res2["long"], res["long"])
	}
}

// testRollingRestart restarts every host with SIGTERM, one after the
// other, while runs execute: none fails.
func testRollingRestart(c *cluster) {
	t := c.t
	ids := runIDs("roll", 30)
	c.submit("ten", ids)
	for i := range 3 {
		if code, took := c.host(i).stop(syscall.SIGTERM, 30*time.Second); code != 0 {
			t.Fatalf("host h%d exited %d after SIGTERM (%s):\n%s", i, code, took, c.host(i).logText())
		}
		c.start(i)
	}
	c.waitFinished(ids, 3*time.Minute)
	c.checkRuns(ids)
}

// testOutage stops PostgreSQL for ten seconds under load: the hosts go
// unready and come back by themselves, and every accepted run finishes.
func testOutage(c *cluster) {
	t := c.t
	ids := runIDs("out", 30)
	c.submit("ten", ids)
	pg := pgtest.Get(t)
	if err := pg.Crash(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	waitUntil(t, 20*time.Second, "every host unready", func() bool {
		for i := range 3 {
			if code, _ := c.host(i).get("/readyz", ""); code != 503 {
				return false
			}
		}
		return true
	})
	if code, _ := c.host(0).get("/v1/runs", c.host(0).token); code == 200 {
		t.Errorf("listing runs during the outage answered 200")
	}
	time.Sleep(10*time.Second - time.Since(down))
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "every host ready again", func() bool {
		for i := range 3 {
			if code, _ := c.host(i).get("/readyz", ""); code != 200 {
				return false
			}
		}
		return true
	})
	c.waitFinished(ids, 3*time.Minute)
	c.checkRuns(ids)
}
