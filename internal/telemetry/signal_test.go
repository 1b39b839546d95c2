package telemetry_test

import (
	"context"
	"testing"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/internal/telemetry"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// Tracing wraps the engine the API serves; events still reach it.
func TestWorkflows_KeepsSignal(t *testing.T) {
	ctx := context.Background()
	e, err := workflow.New(memstore.New(), hosttest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	w, err := workflow.Parse("approve.yaml", []byte("name: approve\nnodes:\n  ok: {wait_for: approval}\n"), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.AddWorkflow(w)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Stop(ctx) }()
	if _, err := e.Submit(ctx, "approve", nil, "r1"); err != nil {
		t.Fatal(err)
	}
	s, ok := telemetry.Disabled().Workflows(e).(api.Signaller)
	if !ok {
		t.Fatal("the traced engine hides Signal")
	}
	res, err := s.Signal(ctx, "r1", "approval", "ev-1", []byte(`"yes"`))
	if err != nil || !res.Delivered {
		t.Fatalf("Signal through the traced engine = %+v, %v", res, err)
	}
}
