package telemetry

import (
	"context"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Middleware puts the W3C trace context of each request (traceparent,
// tracestate) into its context, where Submit finds it.
func (t *Telemetry) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") != "" {
			r = r.WithContext(t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		}
		next.ServeHTTP(w, r)
	})
}

// InjectHeaders writes the traceparent of the span in ctx into h; for
// host.WithHTTPHeaders.
func (t *Telemetry) InjectHeaders(ctx context.Context, h http.Header) {
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// Submit runs submit in a "submit WORKFLOW" span, a child of the trace
// context in ctx (see Middleware) or a new trace, and asks the engine to
// store that span's traceparent in the new run (workflow.WithRunAttrs),
// so the run's spans join the trace.
func (t *Telemetry) Submit(ctx context.Context, wf string, submit func(ctx context.Context) (statestore.Run, error)) (statestore.Run, error) {
	ctx, span := t.tr.Start(ctx, "submit "+wf, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(KeyWorkflow.String(wf)))
	defer span.End()
	carrier := propagation.MapCarrier{}
	t.prop.Inject(ctx, carrier)
	if tp := carrier[AttrTraceParent]; tp != "" {
		ctx = workflow.WithRunAttrs(ctx, map[string]string{AttrTraceParent: tp})
	}
	r, err := submit(ctx)
	span.SetAttributes(KeyRunID.String(r.ID))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return r, err
}

// Workflows returns wf with every Submit run through t.Submit, so runs
// submitted through the API join their caller's trace.
func (t *Telemetry) Workflows(wf api.Workflows) api.Workflows { return tracedWorkflows{wf, t} }

// engine names the embedded api.Workflows, whose Workflows method a field
// of that name would hide.
type engine = api.Workflows

type tracedWorkflows struct {
	engine
	t *Telemetry
}

func (w tracedWorkflows) Submit(ctx context.Context, wf string, input []byte, runID string) (statestore.Run, error) {
	return w.t.Submit(ctx, wf, func(ctx context.Context) (statestore.Run, error) {
		return w.engine.Submit(ctx, wf, input, runID)
	})
}

// Signal forwards an external event to the wrapped engine, so tracing
// does not hide the API's event delivery.
func (w tracedWorkflows) Signal(ctx context.Context, runID, name, eventID string, data []byte) (workflow.SignalResult, error) {
	s, ok := w.engine.(api.Signaller)
	if !ok {
		return workflow.SignalResult{}, fmt.Errorf("%w: this service delivers no events", statestore.ErrUnavailable)
	}
	return s.Signal(ctx, runID, name, eventID, data)
}
