package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/internal/smallfs"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// TestServe_DiskFull fills a 64 MiB data directory through the API with
// runs of 1 MiB inputs until the service refuses them: the refusals are
// 507 with a message that says why, the service stays up and stops
// cleanly, and once the file system has grown, the next start finishes
// every run it acknowledged with 202.
func TestServe_DiskFull(t *testing.T) {
	mnt := smallfs.Mount(t, 64<<20)
	bin := buildBinary(t, t.TempDir())
	dir := svcDir(t, map[string]string{"chain": chainFlow})
	extra := []string{"--data", filepath.Join(mnt, "data"), "--max-run-input", "2MiB", "--free-space-reserve", "16MiB"}
	s := startService(t, bin, dir, extra...)
	ctx := context.Background()
	input := json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)

	var acked []string
	var refusals []*api.Error
	for i := 0; i < 200 && len(refusals) < 3; i++ {
		id := fmt.Sprintf("full-%03d", i)
		_, err := s.client.Submit(ctx, "chain", input, id)
		var ae *api.Error
		switch {
		case err == nil:
			if len(refusals) > 0 {
				t.Errorf("run %s accepted after a refusal", id)
			}
			acked = append(acked, id)
		case errors.As(err, &ae) && (ae.Status == 507 || ae.Status == 503):
			refusals = append(refusals, ae)
		default:
			t.Fatalf("submit %s: %v\n%s", id, err, s.logText())
		}
	}
	if len(refusals) == 0 {
		t.Fatalf("%d runs of 1 MiB accepted on a 64 MiB file system, none refused", len(acked))
	}
	t.Logf("%d runs accepted, then: %d %s: %s", len(acked), refusals[0].Status, refusals[0].Code, refusals[0].Message)
	if len(acked) < 3 {
		t.Errorf("only %d runs accepted", len(acked))
	}
	for _, r := range refusals {
		if r.Status != 507 || r.Code != api.CodeNoSpace || !strings.Contains(r.Message, "no space left") {
			t.Errorf("refusal: %d %s %q, want 507 %s saying no space left", r.Status, r.Code, r.Message, api.CodeNoSpace)
		}
	}
	if code, body := s.get("/readyz", ""); code != 200 {
		t.Errorf("readyz with the disk full: %d %s", code, body)
	}
	exit, _ := s.stop(syscall.SIGTERM, 60*time.Second)
	logs := s.logText()
	if strings.Contains(logs, "SIGBUS") || strings.Contains(logs, "fatal error") {
		t.Fatalf("the service crashed:\n%s", logs)
	}
	if exit != 0 {
		t.Errorf("exit %d after SIGTERM with the disk full:\n%s", exit, lastLogLines(logs, 20))
	}

	smallfs.Grow(t, mnt, 128<<20)
	s2 := startService(t, bin, dir, extra...)
	waitUntil(t, 60*time.Second, "every accepted run to finish", func() bool {
		for _, id := range acked {
			if r, err := s2.client.Run(ctx, id); err != nil || r.Status != statestore.StatusSucceeded {
				return false
			}
		}
		return true
	})
	for _, id := range acked {
		if r, err := s2.client.Run(ctx, id); err != nil || !bytes.Equal(r.Input, input) {
			t.Errorf("accepted run %s: input of %d bytes, %v", id, len(r.Input), err)
		}
	}
	if exit, _ := s2.stop(syscall.SIGTERM, 60*time.Second); exit != 0 {
		t.Errorf("second exit %d:\n%s", exit, lastLogLines(s2.logText(), 20))
	}
}

func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestRun_ExitIsBoundedWhenTheStoreCannotFlush removes the data directory
// under a running `bulkhead run`: Badger then cannot flush its memtable
// and would retry forever, so the command must still exit, non-zero, with
// an error that says the store was not closed.
func TestRun_ExitIsBoundedWhenTheStoreCannotFlush(t *testing.T) {
	tmp := t.TempDir()
	plugins := filepath.Join(tmp, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile("../../testdata/go/nodes/nodes.wasm")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(plugins, "nodes.wasm"), wasm, 0o644)
	flow := filepath.Join(tmp, "slow.yaml")
	os.WriteFile(flow, []byte(`name: slow
nodes:
  a: {plugin: nodes, function: work}
  b:
    plugin: nodes
    function: long
    config: {steps: 100, step_ms: 20, every: 10}
    needs: [a]
`), 0o644)
	data := filepath.Join(tmp, "data")
	c := startCLI(t, "run", flow, "--data", data, "--plugins", plugins, "--progress", "plain")
	if !c.waitRunning(60 * time.Second) {
		c.kill()
		t.Fatalf("the run did not start:\n%s", c.errText())
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	exited, code := c.exited(90 * time.Second)
	if !exited {
		c.kill()
		t.Fatalf("bulkhead run did not exit within 90s of its data directory being removed:\n%s", c.errText())
	}
	t.Logf("exit %d, %s after the data directory was removed", code, time.Since(start).Round(time.Millisecond))
	if code == exitOK || !strings.Contains(c.errText(), "close store") || !strings.Contains(c.errText(), "not closed in time") {
		t.Fatalf("exit %d, stderr:\n%s", code, c.errText())
	}
}
