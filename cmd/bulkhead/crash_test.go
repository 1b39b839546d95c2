package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// TestCLIChild is not a test: the crash test re-executes the test binary
// with BULKHEAD_CLI_ARGS set, and this runs the CLI with those arguments.
func TestCLIChild(t *testing.T) {
	raw := os.Getenv("BULKHEAD_CLI_ARGS")
	if raw == "" {
		t.Skip("runs only as the crash test's child process")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		panic(err)
	}
	os.Exit(doMain(args, os.Stdin, os.Stdout, os.Stderr))
}

// crashFlow is a 50-node workflow: a source, six parallel branches of
// seven nodes, a flaky node, a long checkpointing node, four joins and a
// final join.
func crashFlow() string {
	var b strings.Builder
	b.WriteString(`name: crash
policy:
  retry: {max_attempts: 4, initial_delay: 5ms, jitter: none}
  breaker: {failure_threshold: -1}
nodes:
  src: {plugin: nodes, function: work}
  long:
    plugin: nodes
    function: long
    config: {steps: ` + strconv.Itoa(crashLongSteps) + `, step_ms: 8, every: ` + strconv.Itoa(crashEvery) + `}
    needs: [src]
  flaky:
    plugin: nodes
    function: flaky
    config: {fail_until: 2}
    needs: [src]
`)
	for br := range 6 {
		for j := range 7 {
			need := "src"
			if j > 0 {
				need = fmt.Sprintf("b%d-%d", br, j-1)
			}
			fmt.Fprintf(&b, "  b%d-%d: {plugin: nodes, function: work, config: {sleep_ms: 15}, needs: [%s]}\n", br, j, need)
		}
	}
	b.WriteString("  j01: {plugin: nodes, function: work, needs: [b0-6, b1-6]}\n")
	b.WriteString("  j23: {plugin: nodes, function: work, needs: [b2-6, b3-6]}\n")
	b.WriteString("  j45: {plugin: nodes, function: work, needs: [b4-6, b5-6]}\n")
	b.WriteString("  jlf: {plugin: nodes, function: work, needs: [long, flaky]}\n")
	b.WriteString("  end: {plugin: nodes, function: work, needs: [j01, j23, j45, jlf]}\n")
	return b.String()
}

const (
	crashLongSteps = 120
	crashEvery     = 10
	crashNodes     = 50
)

type child struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	begin  time.Time
	done   chan struct{}
	// running is closed when the child reports that its run started or
	// resumed: start-up (store open, plugin load) is over.
	running chan struct{}

	mu        sync.Mutex
	stderr    bytes.Buffer
	runningAt time.Time
	longAt    time.Time // when "node long finished" was printed
}

func startCLI(t *testing.T, args ...string) *child {
	t.Helper()
	raw, _ := json.Marshal(args)
	c := &child{
		cmd:     exec.Command(os.Args[0], "-test.run=^TestCLIChild$"),
		done:    make(chan struct{}),
		running: make(chan struct{}),
	}
	c.cmd.Env = append(os.Environ(), "BULKHEAD_CLI_ARGS="+string(raw), "BULKHEAD_CACHE="+hosttest.CacheDir())
	c.cmd.Stdout = &c.stdout
	pipe, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.begin = time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.stderr.WriteString(line + "\n")
			first := c.runningAt.IsZero() && runLine.MatchString(line)
			if first {
				c.runningAt = time.Now()
			}
			if strings.HasPrefix(line, "bulkhead: node long finished") {
				c.longAt = time.Now()
			}
			c.mu.Unlock()
			if first {
				close(c.running)
			}
		}
	}()
	return c
}

// runLine is the progress line a child prints when its run begins.
var runLine = regexp.MustCompile(`^bulkhead: run \S+ (started|resumed)$`)

func (c *child) errText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// startUp is how long the child took from its start to its run's first
// progress line (0 before that line).
func (c *child) startUp() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runningAt.IsZero() {
		return 0
	}
	return c.runningAt.Sub(c.begin)
}

// longLife is how long after its run began the child's long node
// finished (0 before that).
func (c *child) longLife() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runningAt.IsZero() || c.longAt.IsZero() {
		return 0
	}
	return c.longAt.Sub(c.runningAt)
}

// waitRunning waits up to d for the child's run to begin; false when
// the child exited first or d passed.
func (c *child) waitRunning(d time.Duration) bool {
	select {
	case <-c.running:
		return true
	case <-c.done:
		return false
	case <-time.After(d):
		return false
	}
}

// exited waits up to d for the child to exit by itself.
func (c *child) exited(d time.Duration) (bool, int) {
	select {
	case <-c.done:
	case <-time.After(d):
		return false, 0
	}
	_ = c.cmd.Wait()
	return true, c.cmd.ProcessState.ExitCode()
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	_ = c.cmd.Wait()
}

// phase says what the child was doing by its own progress lines.
func (c *child) phase() string {
	text := c.errText()
	switch {
	case c.startUp() == 0:
		return "start-up"
	case strings.Contains(text, "node long started") && !strings.Contains(text, "node long finished"):
		return "long running"
	default:
		return "other nodes"
	}
}

// TestRun_Crash kills `bulkhead run` with SIGKILL at random moments of a
// 50-node workflow and restarts it with the same run ID (a new run when
// the last one finished), 25 times (1,000 with BULKHEAD_SOAK=1). Most
// kills wait for the run's first progress line and then land at a
// random moment of the run's life; one in five lands at a random moment
// of start-up. Then every run's output matches an uninterrupted run's,
// every node is journaled, no node ran after it was journaled, attempt
// numbers only grew, the long node redid at most one checkpoint interval
// per interruption, and at least one kill in five interrupted it.
func TestRun_Crash(t *testing.T) {
	kills := 25
	if os.Getenv("BULKHEAD_SOAK") != "" {
		kills = 1000
	}
	tmp := t.TempDir()
	pluginsDir := filepath.Join(tmp, "plugins")
	if err := os.MkdirAll(pluginsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pluginsDir, "nodes.wasm"), hosttest.Fixture(t, "go/nodes/nodes.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	flow := filepath.Join(tmp, "crash.yaml")
	if err := os.WriteFile(flow, []byte(crashFlow()), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--plugins", pluginsDir, "--progress", "plain", "--input", "crash input"}

	// The oracle: one uninterrupted run. It also times start-up and the
	// run's life, which scale the kill moments to this machine.
	oracle := startCLI(t, append([]string{"run", flow, "--data", filepath.Join(tmp, "oracle"), "--run-id", "oracle"}, common...)...)
	if ok, code := oracle.exited(2 * time.Minute); !ok || code != 0 {
		oracle.kill()
		t.Fatalf("uninterrupted run: exit %d\n%s", code, oracle.errText())
	}
	want := oracle.stdout.String()
	if !strings.Contains(want, `"node":"end"`) {
		t.Fatalf("oracle output %q", want)
	}
	startUp := oracle.startUp()
	if startUp <= 0 {
		t.Fatalf("the uninterrupted run printed no %q line:\n%s", runLine, oracle.errText())
	}
	// A mid-run kill lands up to 2/5 of the long node's uninterrupted life
	// after the run begins: enough for the long node to save checkpoints
	// between kills, so the kills spread over the run's life, and short
	// enough that most of them interrupt it.
	window := oracle.longLife() * 2 / 5
	if window <= 0 {
		t.Fatalf("the uninterrupted run did not report the long node finished:\n%s", oracle.errText())
	}

	data := filepath.Join(tmp, "data")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	var runIDs []string
	runID := ""
	newRun := func() {
		runID = fmt.Sprintf("crash-%03d", len(runIDs))
		runIDs = append(runIDs, runID)
	}
	newRun()
	outputs := map[string]string{}
	phases := map[string]int{}
	for k := 0; k < kills; {
		c := startCLI(t, append([]string{"run", flow, "--data", data, "--run-id", runID}, common...)...)
		var delay time.Duration
		// The oracle's start-up may include compiling the plugin, so the
		// first kill waits for the run and the later ones use the last
		// child's start-up.
		if k > 0 && rng.IntN(5) == 0 {
			delay = time.Duration(rng.Int64N(int64(startUp)))
		} else {
			if !c.waitRunning(time.Minute) {
				if ok, _ := c.exited(time.Second); !ok {
					c.kill()
					t.Fatalf("run %s printed no progress within a minute:\n%s", runID, c.errText())
				}
			}
			delay = time.Duration(rng.Int64N(int64(window)))
		}
		ok, code := c.exited(delay)
		if s := c.startUp(); s > 0 {
			startUp = s
		}
		if ok {
			if code != 0 {
				t.Fatalf("run %s exited %d:\n%s", runID, code, c.errText())
			}
			outputs[runID] = c.stdout.String()
			newRun()
			continue
		}
		phase := c.phase()
		c.kill()
		phases[phase]++
		k++
	}
	c := startCLI(t, append([]string{"run", flow, "--data", data, "--run-id", runID}, common...)...)
	ok, code := c.exited(2 * time.Minute)
	if !ok || code != 0 {
		c.kill()
		t.Fatalf("final run %s: exit %d\n%s", runID, code, c.errText())
	}
	outputs[runID] = c.stdout.String()

	store, err := badgerstore.Open(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	interruptedLong := 0
	for _, id := range runIDs {
		if outputs[id] != want {
			t.Errorf("run %s output %q, want %q", id, outputs[id], want)
		}
		r, err := store.GetRun(ctx, id)
		if err != nil || r.Status != statestore.StatusSucceeded {
			t.Fatalf("run %s: %v %s", id, err, r.Status)
		}
		if err := checkJournal(ctx, store, id, crashNodes); err != nil {
			t.Error(err)
		}
		execs, _ := store.StateGet(ctx, "nodes", "exec/"+id+"/long")
		n := len(strings.Split(string(execs), ","))
		interruptedLong += n - 1
		stepsB, _ := store.StateGet(ctx, "nodes", "steps/"+id+"/long")
		steps, _ := strconv.Atoi(string(stepsB))
		if steps < crashLongSteps || steps > crashLongSteps+(n-1)*crashEvery {
			t.Errorf("run %s: long executed %d steps for %d over %d executions; want at most %d redone per interruption",
				id, steps, crashLongSteps, n, crashEvery)
		}
	}
	t.Logf("%d kills over %d runs (last start-up %v, mid-run kill window %v); at the kill: %d in start-up, %d while the long node ran, %d while other nodes ran; the long node was interrupted %d times",
		kills, len(runIDs), startUp.Round(time.Millisecond), window.Round(time.Millisecond),
		phases["start-up"], phases["long running"], phases["other nodes"], interruptedLong)
	if interruptedLong < kills/5 {
		t.Errorf("the long node was interrupted %d times in %d kills, want at least %d", interruptedLong, kills, kills/5)
	}
}

// The ways checkJournal finds a run's journal broken.
var (
	errJournalSize   = errors.New("journal does not hold every node once")
	errNoExecution   = errors.New("journaled attempt left no execution record")
	errAttemptOrder  = errors.New("attempt numbers do not increase")
	errRanAfterEntry = errors.New("node ran after it was journaled")
)

// journalReader is the part of the store checkJournal reads.
type journalReader interface {
	NodeResults(ctx context.Context, runID string) (map[string]statestore.NodeResult, error)
	StateGet(ctx context.Context, plugin, key string) ([]byte, error)
}

// checkJournal checks run runID's journal against the executions the
// nodes plugin recorded in its state ("exec/RUN/NODE": the attempt
// number of each execution, in order). The journal must hold nodes
// entries, and each node's executions must have increasing attempt
// numbers, the last being the journaled attempt: an execution after it
// means the node ran again once journaled. It returns every violation
// joined, matching the err* above, or nil.
func checkJournal(ctx context.Context, s journalReader, runID string, nodes int) error {
	res, err := s.NodeResults(ctx, runID)
	if err != nil {
		return fmt.Errorf("run %s: %w", runID, err)
	}
	var errs []error
	if len(res) != nodes {
		errs = append(errs, fmt.Errorf("run %s: %d nodes journaled, want %d: %w", runID, len(res), nodes, errJournalSize))
	}
	for node, nr := range res {
		b, err := s.StateGet(ctx, "nodes", "exec/"+runID+"/"+node)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %s node %s: %w: %w", runID, node, errNoExecution, err))
			continue
		}
		last := 0
		for _, f := range strings.Split(string(b), ",") {
			a, err := strconv.Atoi(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("run %s node %s: executions %q: %w", runID, node, b, err))
				break
			}
			if a <= last {
				errs = append(errs, fmt.Errorf("run %s node %s: executions %s: %w", runID, node, b, errAttemptOrder))
			}
			last = a
		}
		switch {
		case last > nr.Attempts:
			errs = append(errs, fmt.Errorf("run %s node %s: executions %s, attempt %d journaled: %w", runID, node, b, nr.Attempts, errRanAfterEntry))
		case last < nr.Attempts:
			errs = append(errs, fmt.Errorf("run %s node %s: executions %s, attempt %d journaled: %w", runID, node, b, nr.Attempts, errNoExecution))
		}
	}
	return errors.Join(errs...)
}

// TestCheckJournal plants in a store what a node running again after it
// was journaled would leave, and checks that checkJournal reports it.
func TestCheckJournal(t *testing.T) {
	tests := []struct {
		name string
		// give is the nodes plugin's execution record of node b, written
		// after b's attempt 2 was journaled.
		give string
		want error
	}{
		{name: "clean", give: "1,2"},
		{name: "ran again", give: "1,2,3", want: errRanAfterEntry},
		{name: "ran again same attempt", give: "1,2,2", want: errAttemptOrder},
		{name: "journaled attempt not run", give: "1", want: errNoExecution},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := badgerstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, _, err := s.CreateRun(ctx, statestore.Run{ID: "r", Workflow: "w"}); err != nil {
				t.Fatal(err)
			}
			// Node a succeeded at attempt 1, node b at attempt 2.
			for _, n := range []struct {
				node, execs string
				attempt     int
			}{{"a", "1", 1}, {"b", "1,2", 2}} {
				if err := s.StateSet(ctx, "nodes", "exec/r/"+n.node, []byte(n.execs)); err != nil {
					t.Fatal(err)
				}
				if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "r", Node: n.node, Attempts: n.attempt}); err != nil {
					t.Fatal(err)
				}
			}
			if err := checkJournal(ctx, s, "r", 2); err != nil {
				t.Fatalf("before the plant: %v", err)
			}
			if err := s.StateSet(ctx, "nodes", "exec/r/b", []byte(tt.give)); err != nil {
				t.Fatal(err)
			}
			err = checkJournal(ctx, s, "r", 2)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("checkJournal: %v, want %v", err, tt.want)
			}
			if err := checkJournal(ctx, s, "r", 3); !errors.Is(err, errJournalSize) {
				t.Errorf("checkJournal of 3 nodes: %v, want %v", err, errJournalSize)
			}
		})
	}
}
