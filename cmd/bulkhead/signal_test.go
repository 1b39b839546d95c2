package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// runs signal delivers an event once per ID; runs show lists it and the
// waiting node; resuming the run gives the node the event's payload.
func TestRunsSignal(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "d")
	src := []byte("name: approve\nnodes:\n  ok: {wait_for: approval, timeout: 1h}\n")
	flow := filepath.Join(tmp, "approve.yaml")
	if err := os.WriteFile(flow, src, 0o644); err != nil {
		t.Fatal(err)
	}
	// A run as Submit stores it, waiting for its event.
	s, err := badgerstore.Open(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	r := statestore.Run{ID: "r1", Workflow: "approve", Status: statestore.StatusRunning, CreatedAt: time.Now(),
		Attrs: map[string]string{workflow.AttrSource: string(src), workflow.AttrFile: flow}}
	if _, _, err := s.SubmitRun(context.Background(), r, []statestore.ReadyNode{{Node: "ok", Block: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := bulkhead(t, "", "runs", "show", "r1", "--data", data)
	if code != exitOK || !regexp.MustCompile(`ok\s+waiting for event approval \(timeout in (1h|59m\d+s)\)`).MatchString(out) {
		t.Fatalf("runs show before the event: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = bulkhead(t, "", "runs", "signal", "r1", "approval", "--payload", `{"approved": true}`, "--id", "e1", "--data", data)
	if code != exitOK || !strings.Contains(out, "event approval (ID e1) delivered to run r1") {
		t.Fatalf("runs signal: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = bulkhead(t, "", "runs", "signal", "r1", "approval", "--payload", `{"approved": false}`, "--id", "e1", "--data", data)
	if code != exitOK || !strings.Contains(out, "nothing changed") {
		t.Fatalf("runs signal again: %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := bulkhead(t, "", "runs", "signal", "r1", "approval", "--payload", `{nope`, "--data", data); code != exitUsage || !strings.Contains(errOut, "not JSON") {
		t.Fatalf("runs signal with a bad payload: %d %s", code, errOut)
	}
	code, out, errOut = bulkhead(t, "", "runs", "show", "r1", "--data", data)
	if code != exitOK || !regexp.MustCompile(`approval\s+e1\s+\S+ \S+\s+\{"approved":true\}`).MatchString(out) {
		t.Fatalf("runs show lists no event: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = bulkhead(t, "", "runs", "resume", "r1", "--data", data, "--plugins", tmp)
	if code != exitOK || !strings.Contains(out, `{"approved":true}`) {
		t.Fatalf("runs resume: %d\n%s%s", code, out, errOut)
	}
}
