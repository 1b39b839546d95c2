package badgerstore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/internal/smallfs"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const (
	fullDirEnv     = "BADGERSTORE_FULL_DIR"
	fullReserveEnv = "BADGERSTORE_FULL_RESERVE"
	fullInput      = 1 << 20
)

// fullInputOf is the 1 MiB input of run i.
func fullInputOf(i int) []byte {
	return bytes.Repeat([]byte{byte('a' + i%26)}, fullInput)
}

// fullChild runs the writer half of TestStore_DiskFull when the test
// binary is started by it, and reports whether it did.
func fullChild() bool {
	dir := os.Getenv(fullDirEnv)
	if dir == "" {
		return false
	}
	reserve, _ := strconv.ParseInt(os.Getenv(fullReserveEnv), 10, 64)
	if err := fullWriter(dir, reserve); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	return true
}

// fullWriter creates runs with 1 MiB inputs and completes a node of each
// until the store refuses a write, printing each acknowledged write; then it
// checks that more writes are refused too and closes the store.
func fullWriter(dir string, reserve int64) error {
	s, err := badgerstore.Open(dir, badgerstore.WithReserve(reserve))
	if err != nil {
		return err
	}
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	refused := 0
	for i := 0; refused < 3 && i < 1000; i++ {
		id := "run-" + strconv.Itoa(i)
		_, _, err := s.CreateRun(ctx, statestore.Run{ID: id, Workflow: "wf", Input: fullInputOf(i)})
		if err == nil {
			fmt.Fprintf(out, "run %s\n", id)
			err = s.CompleteNode(ctx, statestore.NodeResult{RunID: id, Node: "a", Output: []byte("out-" + id), Attempts: 1})
			if err == nil {
				fmt.Fprintf(out, "node %s\n", id)
			}
		}
		if err != nil {
			if !errors.Is(err, statestore.ErrNoSpace) {
				return fmt.Errorf("write %d: %w", i, err)
			}
			fmt.Fprintf(out, "refused %v\n", err)
			refused++
		}
		out.Flush()
	}
	if refused == 0 {
		return errors.New("never refused: the file system did not fill")
	}
	return s.Close()
}

// TestStore_DiskFull fills a 64 MiB tmpfs with runs of 1 MiB inputs from a
// child process until the store refuses: the refusals match
// statestore.ErrNoSpace, the child neither crashes (a write into a mapped
// page the file system cannot back is a SIGBUS) nor fails to close, and
// after the file system grows every acknowledged write is there and the
// store takes writes again.
func TestStore_DiskFull(t *testing.T) {
	mnt := smallfs.Mount(t, 64<<20)
	dir := filepath.Join(mnt, "store")
	const reserve = 16 << 20
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fullDirEnv+"="+dir, fullReserveEnv+"="+strconv.Itoa(reserve))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("writer: %v\nstdout:\n%s\nstderr:\n%s", err, lastLines(string(out), 5), lastLines(stderr.String(), 30))
	}
	var runs, nodes []string
	var refusals []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "run":
			runs = append(runs, rest)
		case "node":
			nodes = append(nodes, rest)
		case "refused":
			refusals = append(refusals, rest)
		case "error":
			t.Fatalf("writer: %s", rest)
		}
	}
	t.Logf("%d runs and %d completions acknowledged, then refused in %s: %s", len(runs), len(nodes), time.Since(start).Round(time.Millisecond), refusals[0])
	if len(runs) < 10 {
		t.Fatalf("only %d runs of 1 MiB fit on 64 MiB with a 16 MiB reserve", len(runs))
	}
	for _, r := range refusals {
		if !strings.Contains(r, "no space left") || !strings.Contains(r, "reserve") {
			t.Errorf("refusal does not say why: %s", r)
		}
	}

	smallfs.Grow(t, mnt, 128<<20)
	s := open(t, dir, badgerstore.WithReserve(reserve))
	ctx := context.Background()
	for i, id := range runs {
		r, err := s.GetRun(ctx, id)
		if err != nil || !bytes.Equal(r.Input, fullInputOf(i)) {
			t.Errorf("acknowledged run %s: %v (input %d bytes)", id, err, len(r.Input))
		}
	}
	for _, id := range nodes {
		res, err := s.NodeResults(ctx, id)
		if err != nil || string(res["a"].Output) != "out-"+id {
			t.Errorf("acknowledged completion of %s/a: %v %q", id, err, res["a"].Output)
		}
	}
	if _, _, err := s.CreateRun(ctx, statestore.Run{ID: "after", Workflow: "wf", Input: fullInputOf(0)}); err != nil {
		t.Errorf("write after the file system grew: %v", err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestOpen_TooLittleSpace: Badger writes when it opens, so Open refuses a
// file system with less than half the reserve free, with an error that
// says so, rather than letting Badger fault.
func TestOpen_TooLittleSpace(t *testing.T) {
	mnt := smallfs.Mount(t, 32<<20)
	_, err := badgerstore.Open(filepath.Join(mnt, "store"), badgerstore.WithReserve(128<<20))
	if !errors.Is(err, statestore.ErrNoSpace) || !errors.Is(err, badgerstore.ErrNotWritable) || !strings.Contains(err.Error(), "reserve") {
		t.Fatalf("Open with 32 MiB free and a 128 MiB reserve: %v", err)
	}
	s := open(t, filepath.Join(mnt, "store"), badgerstore.WithReserve(16<<20))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
