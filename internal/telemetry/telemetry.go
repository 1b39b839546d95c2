package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// AttrTraceParent is the run attribute holding the W3C traceparent of
// the span that submitted the run.
const AttrTraceParent = "traceparent"

// Span attribute keys.
const (
	KeyRunID       = attribute.Key("bulkhead.run_id")
	KeyWorkflow    = attribute.Key("bulkhead.workflow")
	KeyNode        = attribute.Key("bulkhead.node")
	KeyPlugin      = attribute.Key("bulkhead.plugin")
	KeyFunction    = attribute.Key("bulkhead.function")
	KeyVersion     = attribute.Key("bulkhead.plugin.version")
	KeyAttempt     = attribute.Key("bulkhead.attempt")
	KeyAttempts    = attribute.Key("bulkhead.attempts")
	KeyFuel        = attribute.Key("bulkhead.fuel")
	KeyOutcome     = attribute.Key("bulkhead.outcome")
	KeyBreaker     = attribute.Key("bulkhead.breaker")
	KeyRetryDelay  = attribute.Key("bulkhead.retry_delay_ms")
	KeyResumed     = attribute.Key("bulkhead.resumed")
	KeyResumedFrom = attribute.Key("bulkhead.resumed_from")
	KeyStatus      = attribute.Key("bulkhead.status")
	KeyFallback    = attribute.Key("bulkhead.fallback")
	KeyDeadLetter  = attribute.Key("bulkhead.dead_letter")
	KeyBytes       = attribute.Key("bulkhead.bytes")
	KeyInterrupted = attribute.Key("bulkhead.interrupted")
)

// Option configures a Telemetry.
type Option interface{ apply(*options) }

type options struct {
	lookup func(ctx context.Context, runID string) (map[string]string, error)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithRunLookup gives the run attributes of a run whose execution span
// does not exist yet when its first node starts (the engine may queue a
// node before it reports the run started); without it such a run's span
// starts a new trace.
func WithRunLookup(f func(ctx context.Context, runID string) (statestore.Run, error)) Option {
	return optionFunc(func(o *options) {
		o.lookup = func(ctx context.Context, id string) (map[string]string, error) {
			r, err := f(ctx, id)
			return r.Attrs, err
		}
	})
}

// Telemetry traces runs. The zero value is not usable; a disabled one
// (FromEnv without configuration) does nothing.
type Telemetry struct {
	tr   trace.Tracer
	tp   *sdktrace.TracerProvider // owned: shut down by Shutdown
	on   bool
	o    options
	prop propagation.TraceContext

	mu       sync.Mutex
	runs     map[string]*runSpan
	shutdown bool
}

// runSpan is one execution of a run.
type runSpan struct {
	span trace.Span
	ctx  context.Context
}

// New returns a Telemetry tracing with tp.
func New(tp trace.TracerProvider, opts ...Option) *Telemetry {
	t := &Telemetry{tr: tp.Tracer("github.com/bulkhead-run/bulkhead"), on: true, runs: map[string]*runSpan{}}
	for _, o := range opts {
		o.apply(&t.o)
	}
	return t
}

// Disabled returns a Telemetry that traces nothing.
func Disabled() *Telemetry {
	return &Telemetry{tr: noop.NewTracerProvider().Tracer(""), runs: map[string]*runSpan{}}
}

// FromEnv returns a Telemetry exporting spans over OTLP/HTTP when the
// OTEL_* variables getenv reads ask for it (see the package doc), else a
// disabled one. Errors: a bad exporter, protocol or endpoint.
func FromEnv(ctx context.Context, getenv func(string) string, opts ...Option) (*Telemetry, error) {
	on, err := configured(getenv)
	if err != nil || !on {
		return Disabled(), err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return Disabled(), fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "bulkhead")),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return Disabled(), fmt.Errorf("telemetry: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := New(tp, opts...)
	t.tp = tp
	return t, nil
}

// Configured reports whether the OTEL_* variables getenv reads turn
// tracing on (see the package doc), and why they are wrong if they are.
func Configured(getenv func(string) string) (bool, error) { return configured(getenv) }

func configured(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	switch exporter {
	case "none":
		return false, nil
	case "", "otlp":
	default:
		return false, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", exporter)
	}
	if exporter == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return false, nil
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return false, fmt.Errorf("telemetry: OTLP protocol %q: only http/protobuf is supported", proto)
	}
	return true, nil
}

// Enabled reports whether t traces.
func (t *Telemetry) Enabled() bool { return t.on }

// Shutdown ends the open run spans (marked interrupted), then flushes and
// stops the provider FromEnv made. It is idempotent.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if t.shutdown {
		t.mu.Unlock()
		return nil
	}
	t.shutdown = true
	runs := t.runs
	t.runs = map[string]*runSpan{}
	t.mu.Unlock()
	for _, r := range runs {
		r.span.SetAttributes(KeyInterrupted.Bool(true))
		r.span.End()
	}
	if t.tp != nil {
		return t.tp.Shutdown(ctx)
	}
	return nil
}

// parentOf returns ctx with the remote span a run's traceparent names.
func (t *Telemetry) parentOf(ctx context.Context, attrs map[string]string) context.Context {
	tp := attrs[AttrTraceParent]
	if tp == "" {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier{AttrTraceParent: tp})
}

// run returns the open execution span of a run, starting it when needed;
// attrs are the run's (nil: looked up).
func (t *Telemetry) run(ctx context.Context, runID, wf string, attrs map[string]string) *runSpan {
	t.mu.Lock()
	r, ok := t.runs[runID]
	t.mu.Unlock()
	if ok {
		return r
	}
	if attrs == nil && t.o.lookup != nil {
		attrs, _ = t.o.lookup(ctx, runID)
	}
	// The span's context derives from Background, not from ctx: it
	// outlives the request or node that started it.
	sctx, span := t.tr.Start(t.parentOf(context.Background(), attrs), "run "+wf,
		trace.WithAttributes(KeyRunID.String(runID), KeyWorkflow.String(wf)))
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.runs[runID]; ok { // started meanwhile by another node
		span.End()
		return prev
	}
	if t.shutdown { // not kept: nothing would end it
		span.End()
		return &runSpan{span: span, ctx: sctx}
	}
	r = &runSpan{span: span, ctx: sctx}
	t.runs[runID] = r
	return r
}

// Observer returns a workflow observer that keeps the run spans and then
// calls next (nil: none), during which EventContext sees the event's
// span.
func (t *Telemetry) Observer(next func(workflow.Event)) func(workflow.Event) {
	return func(ev workflow.Event) {
		t.observe(ev)
		if next != nil {
			next(ev)
		}
		if ev.Kind == workflow.EventRunFinished {
			t.finish(ev)
		}
	}
}

func (t *Telemetry) observe(ev workflow.Event) {
	switch ev.Kind {
	case workflow.EventRunStarted:
		r := t.run(context.Background(), ev.RunID, ev.Workflow, ev.Attrs)
		r.span.SetAttributes(KeyResumed.Bool(ev.Resumed))
		if ev.Resumed {
			r.span.SetAttributes(KeyResumedFrom.StringSlice(ev.Ready))
		}
	case workflow.EventNodeFinished:
		t.event(ev.RunID, "node journaled", KeyNode.String(ev.Node), KeyAttempt.Int(ev.Attempt))
	case workflow.EventNodeSkipped:
		t.event(ev.RunID, "node already journaled", KeyNode.String(ev.Node), KeyAttempt.Int(ev.Attempt))
	case workflow.EventNodeFailed:
		t.event(ev.RunID, "dead letter written", KeyNode.String(ev.Node), KeyDeadLetter.String(ev.DeadLetter))
	}
}

func (t *Telemetry) event(runID, name string, attrs ...attribute.KeyValue) {
	t.mu.Lock()
	r := t.runs[runID]
	t.mu.Unlock()
	if r != nil {
		r.span.AddEvent(name, trace.WithAttributes(attrs...))
	}
}

func (t *Telemetry) finish(ev workflow.Event) {
	t.mu.Lock()
	r := t.runs[ev.RunID]
	delete(t.runs, ev.RunID)
	t.mu.Unlock()
	if r == nil {
		return
	}
	r.span.SetAttributes(KeyStatus.String(string(ev.Status)))
	switch ev.Status {
	case statestore.StatusFailed:
		r.span.SetStatus(codes.Error, ev.Err)
	case statestore.StatusRunning: // paused by a store error
		r.span.SetAttributes(KeyInterrupted.Bool(true))
		r.span.SetStatus(codes.Error, ev.Err)
	}
	r.span.End()
}

// EventContext returns a context carrying the span of ev's run execution,
// else the span its Attrs name (a run just accepted), else none, for log
// lines about ev.
func (t *Telemetry) EventContext(ev workflow.Event) context.Context {
	t.mu.Lock()
	r := t.runs[ev.RunID]
	t.mu.Unlock()
	if r == nil {
		return t.parentOf(context.Background(), ev.Attrs)
	}
	return r.ctx
}
