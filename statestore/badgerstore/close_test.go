package badgerstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const closeDirEnv = "BADGERSTORE_CLOSE_DIR"

// closeChild runs the store half of TestStore_CloseIsBounded when the test
// binary is started by it, and reports whether it did. It exits without
// waiting for Badger, which may still be retrying its flush.
func closeChild() bool {
	dir := os.Getenv(closeDirEnv)
	if dir == "" {
		return false
	}
	s, err := badgerstore.Open(dir, badgerstore.WithCloseTimeout(time.Second))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	if _, _, err := s.CreateRun(ctx, statestore.Run{ID: "r", Workflow: "wf", Input: []byte("in")}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	start := time.Now()
	err = s.Close()
	fmt.Printf("closed in %s, timeout=%v: %v\n", time.Since(start).Round(time.Millisecond), errors.Is(err, badgerstore.ErrCloseTimeout), err)
	os.Exit(0)
	return true
}

// TestStore_CloseIsBounded removes the data directory under an open store
// with unflushed writes: Badger's Close retries the failed memtable flush
// forever, and Close must still return, within its timeout, an error
// matching ErrCloseTimeout. It runs in a child process, which exits with
// Badger still retrying.
func TestStore_CloseIsBounded(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), closeDirEnv+"="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("Close did not return within 60s with a 1s close timeout:\n%s", lastLines(out.String(), 20))
	}
	line := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "closed in ") {
			line = l
		}
	}
	if !strings.Contains(line, "timeout=true") || !strings.Contains(line, "not flushed") && !strings.Contains(line, "has not flushed") {
		t.Fatalf("Close after the directory was removed: %q\n%s", line, lastLines(out.String(), 20))
	}
	t.Log(line)
}
