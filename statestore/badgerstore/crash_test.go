package badgerstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const (
	crashDirEnv   = "BADGERSTORE_CRASH_DIR"
	crashRoundEnv = "BADGERSTORE_CRASH_ROUND"
	// crashNextAttempt is the attempt even writers record with each completion.
	crashNextAttempt = 3
)

// crashChild runs the writer half of TestStore_CrashDurability when the test
// binary is started by it, and reports whether it did.
func crashChild() bool {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return false
	}
	if err := crashWriter(dir, os.Getenv(crashRoundEnv)); err != nil {
		fmt.Println("error", err)
	}
	return true
}

// crashWriter completes nodes and saves checkpoints from 32 goroutines until
// it is killed, printing each write after the store acknowledged it.
func crashWriter(dir, round string) error {
	s, err := badgerstore.Open(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if _, _, err := s.CreateRun(ctx, statestore.Run{ID: "run", Workflow: "wf", Input: []byte("input")}); err != nil {
		return err
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	ack("ready")
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if w == 0 {
					// Every other checkpoint is over Badger's value threshold
					// (1 MiB), so it goes through the value log.
					data := []byte("state-" + strconv.Itoa(i))
					if i%2 == 1 {
						data = append(data, make([]byte, 1<<20+1)...)
					}
					seq, err := s.SaveCheckpoint(ctx, "run", "cp-"+round, data)
					if err != nil {
						ack("error %v", err)
						return
					}
					ack("cp %d state-%d", seq, i)
					continue
				}
				if w == 1 {
					// Runs go through their states, moving their index
					// entries with every write.
					id := fmt.Sprintf("r%s-run-%d", round, i/3)
					st := []statestore.RunStatus{statestore.StatusPending, statestore.StatusRunning, statestore.StatusFailed}[i%3]
					var err error
					if st == statestore.StatusPending {
						_, _, err = s.CreateRun(ctx, statestore.Run{ID: id, Workflow: "wf"})
					} else {
						_, err = s.UpdateRun(ctx, id, func(r *statestore.Run) error { r.Status = st; return nil })
					}
					if err != nil {
						ack("error %v", err)
						return
					}
					ack("run %s %s", id, st)
					continue
				}
				node := fmt.Sprintf("r%s-w%d-%d", round, w, i)
				// Even writers reserve an attempt of a dependent node with
				// the completion, as the workflow engine does.
				var next []statestore.NodeAttempt
				if w%2 == 0 {
					next = []statestore.NodeAttempt{{RunID: "run", Node: node + "/next", Attempt: crashNextAttempt}}
				}
				if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "run", Node: node, Output: []byte("out-" + node), Attempts: 1}, next...); err != nil {
					ack("error %v", err)
					return
				}
				ack("node %s", node)
			}
		}()
	}
	wg.Wait()
	return nil
}

// TestStore_CrashDurability kills a writing process with SIGKILL at random
// moments and checks that every write it acknowledged is there after reopen.
func TestStore_CrashDurability(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	dir := t.TempDir()
	ctx := context.Background()
	acked := map[string]bool{}
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var lastSeq uint64
		var lastState string
		n := 0
		killAt := 200 + (round*7919)%1500 // a different moment each round
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 0:
			case f[0] == "error":
				t.Fatalf("round %d: writer: %s", round, sc.Text())
			case f[0] == "node":
				acked[f[1]] = true
			case f[0] == "cp":
				lastSeq, _ = strconv.ParseUint(f[1], 10, 64)
				lastState = f[2]
			}
			n++
			if n == killAt {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: writer ended with %v, want SIGKILL", round, err)
		}

		s, err := badgerstore.Open(dir)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		res, err := s.NodeResults(ctx, "run")
		if err != nil {
			t.Fatal(err)
		}
		for node := range acked {
			if got := res[node]; string(got.Output) != "out-"+node {
				t.Errorf("round %d: acknowledged completion of %s lost (stored %q)", round, node, got.Output)
			}
		}
		// Atomicity: every stored completion of an even writer (acknowledged
		// or not) came with its dependent's attempt, and no odd writer's did.
		for node := range res {
			var r, w, i int
			if _, err := fmt.Sscanf(node, "r%d-w%d-%d", &r, &w, &i); err != nil {
				continue
			}
			want := 0
			if w%2 == 0 {
				want = crashNextAttempt
			}
			if got, err := s.LastAttempt(ctx, "run", node+"/next"); err != nil || got != want {
				t.Errorf("round %d: completion of %s stored, attempt of its dependent = %d, %v; want %d", round, node, got, err, want)
			}
		}
		if lastSeq > 0 {
			cp, err := s.LatestCheckpoint(ctx, "run", "cp-"+strconv.Itoa(round))
			if err != nil || cp.Seq < lastSeq || (cp.Seq == lastSeq && !strings.HasPrefix(string(cp.Data), lastState)) {
				t.Errorf("round %d: acknowledged checkpoint %d (%s) lost: newest is %d (%s), %v", round, lastSeq, lastState, cp.Seq, cp.Data, err)
			}
		}
		// Exactly once: completing an acknowledged node again is a conflict.
		for node := range acked {
			if err := s.CompleteNode(ctx, statestore.NodeResult{RunID: "run", Node: node}); !errors.Is(err, statestore.ErrConflict) {
				t.Errorf("round %d: completing %s again: %v, want ErrConflict", round, node, err)
			}
			break
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// The run indexes agree with the run records.
		rep, err := badgerstore.Check(dir)
		if err != nil || !rep.OK() {
			t.Fatalf("round %d: Check after the kill = %+v, %v", round, rep, err)
		}
		t.Logf("round %d: %d completions acknowledged so far, checkpoint seq %d", round, len(acked), lastSeq)
	}
}
