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
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const (
	queueCrashDirEnv   = "BADGERSTORE_QUEUE_CRASH_DIR"
	queueCrashRoundEnv = "BADGERSTORE_QUEUE_CRASH_ROUND"
	// chainLength is the number of nodes of each run of the queue crash
	// test: n0 → n1 → … → n4.
	chainLength = 5
)

func chainNode(i int) string { return "n" + strconv.Itoa(i) }

// queueCrashChild runs the worker half of TestQueue_CrashDurability when
// the test binary is started by it, and reports whether it did.
func queueCrashChild() bool {
	dir := os.Getenv(queueCrashDirEnv)
	if dir == "" {
		return false
	}
	if err := queueCrashWorker(dir, os.Getenv(queueCrashRoundEnv)); err != nil {
		fmt.Println("error", err)
	}
	return true
}

// queueCrashWorker submits runs of chains and executes them with 8
// workers that claim tasks and complete them (keeping the next node), as
// the engine does, until it is killed; it prints each write after the
// store acknowledged it.
func queueCrashWorker(dir, round string) error {
	s, err := badgerstore.Open(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
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
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			id := fmt.Sprintf("q%s-%d", round, i)
			_, _, err := s.SubmitRun(ctx, statestore.Run{ID: id, Workflow: "chain", Status: statestore.StatusRunning},
				[]statestore.ReadyNode{{Node: chainNode(0), Block: 1}})
			if err != nil {
				ack("error %v", err)
				return
			}
			ack("sub %s", id)
		}
	}()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := "w" + strconv.Itoa(w)
			for {
				tasks, err := s.ClaimTasks(ctx, owner, 2, time.Minute)
				if err != nil {
					ack("error %v", err)
					return
				}
				for _, task := range tasks {
					for ok := true; ok; {
						c := statestore.Completion{Fence: task.Fence(), Keep: true, Lease: time.Minute,
							Result: statestore.NodeResult{RunID: task.RunID, Node: task.Node, Output: []byte(task.Node)}}
						var i int
						fmt.Sscanf(task.Node, "n%d", &i)
						if i+1 < chainLength {
							c.Next = []statestore.ReadyNode{{Node: chainNode(i + 1), Needs: []string{task.Node}, Block: 1}}
						}
						next, kept, err := s.CompleteTask(ctx, c)
						if err != nil {
							ack("error %v", err)
							return
						}
						ack("done %s %s", task.RunID, task.Node)
						task, ok = next, kept
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// TestQueue_CrashDurability kills a process that submits and executes
// runs through the queue with SIGKILL at random moments, and checks after
// reopening that every acknowledged submission and completion is stored,
// that a completion and the task it queued were written together (every
// run has exactly one task, for the first node not journaled, or none
// when finished), and that a task queued before the kill is claimed as a
// rescue.
func TestQueue_CrashDurability(t *testing.T) {
	rounds, spread := 8, 1500
	if testing.Short() {
		rounds, spread = 2, 500
	}
	dir := t.TempDir()
	ctx := context.Background()
	submitted := map[string]bool{}
	done := map[string]bool{}
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), queueCrashDirEnv+"="+dir, queueCrashRoundEnv+"="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		killAt := 200 + (round*7919)%spread
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 0:
			case f[0] == "error":
				t.Fatalf("round %d: worker: %s", round, sc.Text())
			case f[0] == "sub":
				submitted[f[1]] = true
			case f[0] == "done":
				done[f[1]+"/"+f[2]] = true
			}
			if n++; n == killAt {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: worker ended with %v, want SIGKILL", round, err)
		}

		s, err := badgerstore.Open(dir)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		runs, err := s.UnfinishedRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stored := map[string]bool{}
		finished, pending := 0, 0
		for _, r := range runs {
			stored[r.ID] = true
			res, err := s.NodeResults(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			j := 0
			for ; j < chainLength && res[chainNode(j)].Node != ""; j++ {
			}
			if len(res) != j {
				t.Errorf("round %d: run %s journaled %d nodes, not the first %d of its chain", round, r.ID, len(res), j)
			}
			for node := range res {
				delete(done, r.ID+"/"+node)
			}
			tasks, err := s.ClaimRunTasks(ctx, "check", r.ID, 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if j < chainLength {
				want = r.ID + "/" + chainNode(j)
				pending++
			} else {
				finished++
			}
			if got := names(tasks); got != want {
				t.Errorf("round %d: run %s with %d nodes journaled has tasks %q, want %q", round, r.ID, j, got, want)
			}
			for _, task := range tasks {
				if task.Claims < 2 {
					t.Errorf("round %d: task %s/%s queued before the kill claimed with Claims %d, want a rescue", round, task.RunID, task.Node, task.Claims)
				}
			}
		}
		for id := range submitted {
			if !stored[id] {
				t.Errorf("round %d: acknowledged run %s lost", round, id)
			}
		}
		for k := range done {
			t.Errorf("round %d: acknowledged completion %s lost", round, k)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := badgerstore.Check(dir)
		if err != nil || !rep.OK() {
			t.Fatalf("round %d: Check after the kill = %+v, %v", round, rep, err)
		}
		t.Logf("round %d: %d runs stored, %d finished their chain, %d with a task", round, len(runs), finished, pending)
	}
}
