package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// logLines is a JSON log written by several goroutines.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// find returns the lines with msg whose fields include want.
func (l *logLines) find(t *testing.T, msg string, want map[string]any) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] != msg {
			continue
		}
		match := true
		for k, v := range want {
			if m[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// finished waits for the line of a run's end: Wait returns as the run
// ends, before its event is observed.
func (l *logLines) finished(t *testing.T, want map[string]any) {
	t.Helper()
	waitFor(t, "run finished line", func() bool { return len(l.find(t, "run finished", want)) > 0 })
	l.expect(t, "run finished", want)
}

func (l *logLines) expect(t *testing.T, msg string, want map[string]any) map[string]any {
	t.Helper()
	got := l.find(t, msg, want)
	if len(got) != 1 {
		t.Fatalf("%d log lines %q with %v, want 1; log:\n%s", len(got), msg, want, l)
	}
	return got[0]
}

// The run events reach the log at info level (warn for failures), one
// line each with the run ID and the node: a retried node, a dead letter
// and a resume from a checkpoint after the engine stopped mid-node.
func TestLogEvents_RunLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.h.Load(ctx, "step", f.wasm, abi.Manifest{Config: map[string]string{"broken": "true"}}); err != nil {
		t.Fatal(err)
	}
	var lines logLines
	log := slog.New(slog.NewJSONHandler(&lines, &slog.HandlerOptions{Level: slog.LevelInfo}))
	logged := workflow.LogEvents(log)
	observe := func(ev workflow.Event) { f.observe(ev); logged(ev) }
	newEngine := func() *workflow.Engine {
		e, err := workflow.New(f.store, f.h, workflow.WithObserver(observe))
		if err != nil {
			t.Fatal(err)
		}
		for i, src := range []string{diamond, brokenFlow, longFlow} {
			w, err := workflow.Parse("wf"+string(rune('0'+i))+".yaml", []byte(src), workflow.ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			e.AddWorkflow(w)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return e
	}
	e1 := newEngine()

	// A retried node: c fails twice, then succeeds.
	ok, err := e1.Submit(ctx, "diamond", []byte("x"), "run-ok")
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, e1, ok.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("diamond: %s %s", r.Status, r.Error)
	}
	lines.expect(t, "run accepted", map[string]any{"run_id": "run-ok", "workflow": "diamond", "level": "INFO"})
	lines.expect(t, "run started", map[string]any{"run_id": "run-ok", "level": "INFO"})
	for _, a := range []float64{1, 2} {
		l := lines.expect(t, "node attempt failed", map[string]any{"run_id": "run-ok", "node": "c", "attempt": a, "level": "WARN"})
		if l["version"] == "" || !strings.Contains(l["err"].(string), "flaky") {
			t.Errorf("attempt failure without version or cause: %v", l)
		}
	}
	for _, a := range []float64{2, 3} {
		l := lines.expect(t, "node retried", map[string]any{"run_id": "run-ok", "node": "c", "attempt": a, "level": "INFO"})
		if d, err := time.ParseDuration(l["delay"].(string)); err != nil || d <= 0 {
			t.Errorf("retry without its delay: %v", l)
		}
	}
	lines.finished(t, map[string]any{"run_id": "run-ok", "status": "succeeded", "level": "INFO"})
	if got := lines.find(t, "node started", nil); len(got) != 0 {
		t.Errorf("node starts logged at info level: %v", got)
	}

	// A dead letter.
	bad, err := e1.Submit(ctx, "broken", []byte("x"), "run-bad")
	if err != nil {
		t.Fatal(err)
	}
	failed := wait(t, e1, bad.ID)
	dl := failed.Attrs[workflow.AttrDeadLetter]
	if dl == "" {
		t.Fatalf("run %s without a dead letter", failed.Status)
	}
	lines.expect(t, "node dead-lettered", map[string]any{"run_id": "run-bad", "node": "c", "dead_letter": dl, "level": "WARN"})
	lines.finished(t, map[string]any{"run_id": "run-bad", "status": "failed", "level": "WARN"})

	// A resume from a checkpoint: the engine stops mid-node, a new one
	// resumes the run from the long node.
	long, err := e1.Submit(ctx, "longflow", []byte("x"), "run-long")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two checkpoints", func() bool { return len(f.events(workflow.EventCheckpointSaved, "long")) >= 2 })
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_ = e1.Stop(cancelled)
	e2 := newEngine()
	defer stop(t, e2)
	if r := wait(t, e2, long.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("longflow: %s %s", r.Status, r.Error)
	}
	l := lines.expect(t, "run resumed", map[string]any{"run_id": "run-long", "level": "INFO"})
	if from, _ := l["from"].([]any); len(from) != 1 || from[0] != "long" {
		t.Errorf("resumed from %v, want [long]", l["from"])
	}
	l = lines.expect(t, "node resumed from checkpoint", map[string]any{"run_id": "run-long", "node": "long", "level": "INFO"})
	if seq, _ := l["checkpoint_seq"].(float64); seq < 1 {
		t.Errorf("resumed from checkpoint %v", l["checkpoint_seq"])
	}
	lines.finished(t, map[string]any{"run_id": "run-long", "status": "succeeded"})
}
