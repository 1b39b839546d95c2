package workflow_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// sizeSink is a slog handler that keeps the size of the largest record.
type sizeSink struct {
	mu      sync.Mutex
	largest int
}

func (s *sizeSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *sizeSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *sizeSink) WithGroup(string) slog.Handler            { return s }
func (s *sizeSink) Handle(_ context.Context, r slog.Record) error {
	n := len(r.Message)
	r.Attrs(func(a slog.Attr) bool { n += len(a.Key) + len(a.Value.String()); return true })
	s.mu.Lock()
	s.largest = max(s.largest, n)
	s.mu.Unlock()
	return nil
}

// abuseEngine runs workflows of testdata/abuse.wasm (host/testdata), loaded
// as "abuse" with manifest m, over store.
func abuseEngine(t *testing.T, store statestore.Store, m abi.Manifest, log *slog.Logger, src string) *workflow.Engine {
	t.Helper()
	h := hosttest.New(t, host.WithLogger(log))
	if _, err := h.Load(context.Background(), "abuse", hosttest.Fixture(t, "../host/testdata/abuse.wasm"), m); err != nil {
		t.Fatal(err)
	}
	e, err := workflow.New(store, h, workflow.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("abuse.yaml", []byte(src), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, e) })
	return e
}

func u64s(vs ...uint64) []byte {
	b := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}

// TestEngine_GuestErrorIsCapped: a node failing with a 16 MiB error leaves
// a run record, dead-letter attempts and log lines cut at max_error.
func TestEngine_GuestErrorIsCapped(t *testing.T) {
	store, sink := memstore.New(), &sizeSink{}
	e := abuseEngine(t, store, abi.Manifest{}, slog.New(sink), `
name: big_error
policy:
  retry: {max_attempts: 2, initial_delay: 1ms, jitter: none}
nodes:
  a: {plugin: abuse, function: big_error}
`)
	ctx := context.Background()
	r, err := e.Submit(ctx, "big_error", []byte(strings.Repeat("x", 16<<20)), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	r = wait(t, e, r.ID)
	const max = abi.DefaultMaxErrorBytes + 1<<10
	if r.Status != statestore.StatusFailed || len(r.Error) > max || !strings.Contains(r.Error, "bytes dropped at max_error") {
		t.Fatalf("run %s with a %d-byte error, want failed and at most %d", r.Status, len(r.Error), max)
	}
	dls, _, err := store.ListDeadLetters(ctx, statestore.DeadLetterFilter{RunID: r.ID})
	if err != nil || len(dls) != 1 || len(dls[0].Attempts) != 2 {
		t.Fatalf("dead letters %d, %v", len(dls), err)
	}
	for _, a := range dls[0].Attempts {
		if len(a.Error) > max {
			t.Fatalf("dead-letter attempt %d error of %d bytes", a.Attempt, len(a.Error))
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.largest > max {
		t.Fatalf("a %d-byte log line", sink.largest)
	}
}

// TestEngine_StateQuotaCountsStoredState: the quota counts the state a
// plugin already has in the store; a node gets HostQuota past it.
func TestEngine_StateQuotaCountsStoredState(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"} {
		if err := store.StateSet(ctx, "abuse", k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	e := abuseEngine(t, store, abi.Manifest{StateKeys: 10}, slog.New(slog.DiscardHandler), `
name: state
nodes:
  a: {plugin: abuse, function: state_loop}
`)
	r, err := e.Submit(ctx, "state", u64s(5, 1, 0), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	if ok, rc := binary.LittleEndian.Uint64(r.Output), binary.LittleEndian.Uint64(r.Output[8:]); ok != 2 || rc != uint64(abi.HostQuota) {
		t.Fatalf("%d writes accepted, last code %d; want 2 and HostQuota", ok, rc)
	}
	if u, err := store.StateUsage(ctx, "abuse"); err != nil || u.Keys != 10 {
		t.Fatalf("the store holds %+v, %v; want 10 keys", u, err)
	}
}

// TestEngine_CheckpointsBounded: a node saving checkpoints in a loop keeps
// at most the newest 10, each within max_checkpoint.
func TestEngine_CheckpointsBounded(t *testing.T) {
	store := memstore.New()
	e := abuseEngine(t, store, abi.Manifest{MaxCheckpoint: 1 << 10}, slog.New(slog.DiscardHandler), `
name: cp
nodes:
  a: {plugin: abuse, function: checkpoint_loop}
`)
	ctx := context.Background()
	r, err := e.Submit(ctx, "cp", u64s(25, 1<<10), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if r = wait(t, e, r.ID); r.Status != statestore.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	cps, err := store.ListCheckpoints(ctx, r.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	bytes := 0
	for _, c := range cps {
		bytes += len(c.Data)
	}
	if len(cps) != statestore.DefaultMaxCheckpoints || bytes > statestore.DefaultMaxCheckpoints<<10 {
		t.Fatalf("%d checkpoints of %d bytes kept", len(cps), bytes)
	}
}
