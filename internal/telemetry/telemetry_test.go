package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/internal/telemetry"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const traced = `
name: traced
policy:
  retry: {max_attempts: 3, initial_delay: 1ms, jitter: none}
nodes:
  fetch: {plugin: kitchen, function: http_get}
  flaky:
    plugin: nodes
    function: flaky
    config: {fail_until: 1}
    needs: [fetch]
  long:
    plugin: nodes
    function: long
    config: {steps: 60, step_ms: 5, every: 5}
    needs: [flaky]
`

// process is one bulkhead process: its Telemetry and engine on a shared
// store and host.
type process struct {
	tel *telemetry.Telemetry
	e   *workflow.Engine
	mu  sync.Mutex
	cps int
}

func startProcess(t *testing.T, tp trace.TracerProvider, store statestore.Store, inv workflow.Invoker, w *workflow.Workflow) *process {
	t.Helper()
	p := &process{tel: telemetry.New(tp, telemetry.WithRunLookup(store.GetRun))}
	e, err := workflow.New(store, p.tel.Invoker(inv), workflow.WithObserver(p.tel.Observer(func(ev workflow.Event) {
		if ev.Kind == workflow.EventCheckpointSaved {
			p.mu.Lock()
			p.cps++
			p.mu.Unlock()
		}
	})))
	if err != nil {
		t.Fatal(err)
	}
	if w != nil {
		e.AddWorkflow(w)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.e = e
	return p
}

func (p *process) checkpoints() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cps
}

// headerInjector hands the host the InjectHeaders of whichever process
// runs now (the host outlives the first process in this test).
type headerInjector struct {
	mu  sync.Mutex
	tel *telemetry.Telemetry
}

func (h *headerInjector) inject(ctx context.Context, hd http.Header) {
	h.mu.Lock()
	tel := h.tel
	h.mu.Unlock()
	if tel != nil {
		tel.InjectHeaders(ctx, hd)
	}
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func hasEvent(s sdktrace.ReadOnlySpan, name string) bool {
	return slices.ContainsFunc(s.Events(), func(e sdktrace.Event) bool { return e.Name == name })
}

// A run submitted under a caller's trace is one trace across a restart:
// submit span (child of the caller's span) → one run span per execution
// (the first interrupted, the second resumed from the long node) → node
// spans → attempt spans; the flaky node's retry is a second attempt span
// carrying the delay; checkpoint saves and the load after the restart
// are events of the long node's attempts; the guest's HTTP request
// carries the attempt's traceparent.
func TestTelemetry_RunTraceWithRetryAndResume(t *testing.T) {
	var seen sync.Map // traceparent headers the guest sent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("traceparent"), true)
		_, _ = w.Write([]byte("pong"))
	}))
	defer srv.Close()

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	inj := &headerInjector{}
	h := hosttest.New(t, host.WithHTTPHeaders(inj.inject))
	ctx := context.Background()
	if _, err := h.Load(ctx, "nodes", hosttest.Fixture(t, "go/nodes/nodes.wasm"), abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(ctx, "kitchen", hosttest.Fixture(t, "go/kitchen/kitchen.wasm"), abi.Manifest{AllowedHosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	w, err := workflow.Parse("traced.yaml", []byte(traced), workflow.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}

	p1 := startProcess(t, tp, store, h, w)
	inj.mu.Lock()
	inj.tel = p1.tel
	inj.mu.Unlock()
	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0xa1, 0xb2, 0xc3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
		SpanID:     trace.SpanID{0xca, 0x11, 0xe7, 1, 2, 3, 4, 5},
		TraceFlags: trace.FlagsSampled, Remote: true,
	})
	r, err := p1.tel.Submit(trace.ContextWithRemoteSpanContext(ctx, caller), "traced", func(ctx context.Context) (statestore.Run, error) {
		return p1.e.Submit(ctx, "traced", []byte(srv.URL+"/ping"), "run-traced")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Attrs[telemetry.AttrTraceParent], caller.TraceID().String()) {
		t.Fatalf("run attrs %v: want the caller's trace in %s", r.Attrs, telemetry.AttrTraceParent)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p1.checkpoints() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for two checkpoints")
		}
		time.Sleep(2 * time.Millisecond)
	}
	// A crash: the engine stops mid-node; the process's telemetry ends.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_ = p1.e.Stop(cancelled)
	if err := p1.tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// The next process knows nothing but the store.
	p2 := startProcess(t, tp, store, h, nil)
	inj.mu.Lock()
	inj.tel = p2.tel
	inj.mu.Unlock()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	done, err := p2.e.Wait(wctx, r.ID)
	wcancel()
	if err != nil || done.Status != statestore.StatusSucceeded {
		t.Fatalf("run %s %v", done.Status, err)
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := p2.e.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	_ = p2.tel.Shutdown(ctx)

	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var submit, runs, nodes, attempts []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() != caller.TraceID() {
			t.Errorf("span %q in trace %s, want the caller's %s", s.Name(), s.SpanContext().TraceID(), caller.TraceID())
		}
		byID[s.SpanContext().SpanID()] = s
		switch {
		case s.Name() == "submit traced":
			submit = append(submit, s)
		case s.Name() == "run traced":
			runs = append(runs, s)
		case strings.HasPrefix(s.Name(), "node "):
			nodes = append(nodes, s)
		case s.Name() == "attempt":
			attempts = append(attempts, s)
		default:
			t.Errorf("unexpected span %q", s.Name())
		}
	}
	if len(submit) != 1 || submit[0].Parent().SpanID() != caller.SpanID() {
		t.Fatalf("submit spans %d, want 1 child of the caller's span", len(submit))
	}
	if len(runs) != 2 {
		t.Fatalf("%d run spans, want 2 (before and after the restart)", len(runs))
	}
	slices.SortFunc(runs, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	first, second := runs[0], runs[1]
	for _, s := range runs {
		if s.Parent().SpanID() != submit[0].SpanContext().SpanID() {
			t.Errorf("run span %v has parent %s, want the submit span", s.Attributes(), s.Parent().SpanID())
		}
	}
	if !attr(first, telemetry.KeyInterrupted).AsBool() || attr(first, telemetry.KeyResumed).AsBool() {
		t.Errorf("first execution: %v, want interrupted and not resumed", first.Attributes())
	}
	if !attr(second, telemetry.KeyResumed).AsBool() || !slices.Equal(attr(second, telemetry.KeyResumedFrom).AsStringSlice(), []string{"long"}) ||
		attr(second, telemetry.KeyStatus).AsString() != "succeeded" {
		t.Errorf("second execution: %v, want resumed from long and succeeded", second.Attributes())
	}
	if !hasEvent(second, "node already journaled") || !hasEvent(second, "node journaled") || !hasEvent(first, "node journaled") {
		t.Errorf("journal events: first %v, second %v", first.Events(), second.Events())
	}

	nodeOf := func(run sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, n := range nodes {
			if n.Name() == "node "+name && n.Parent().SpanID() == run.SpanContext().SpanID() {
				out = append(out, n)
			}
		}
		return out
	}
	attemptsOf := func(node sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, a := range attempts {
			if a.Parent().SpanID() == node.SpanContext().SpanID() {
				out = append(out, a)
			}
		}
		slices.SortFunc(out, func(a, b sdktrace.ReadOnlySpan) int {
			return int(attr(a, telemetry.KeyAttempt).AsInt64() - attr(b, telemetry.KeyAttempt).AsInt64())
		})
		return out
	}
	for _, a := range attempts {
		if _, ok := byID[a.Parent().SpanID()]; !ok || !strings.HasPrefix(byID[a.Parent().SpanID()].Name(), "node ") {
			t.Errorf("attempt span without a node parent: %v", a.Attributes())
		}
	}

	// fetch: one attempt, whose traceparent reached the HTTP server.
	fetch := nodeOf(first, "fetch")
	if len(fetch) != 1 || len(nodeOf(second, "fetch")) != 0 {
		t.Fatalf("fetch node spans: %d in the first execution, %d in the second", len(fetch), len(nodeOf(second, "fetch")))
	}
	fa := attemptsOf(fetch[0])
	if len(fa) != 1 {
		t.Fatalf("fetch attempts %d", len(fa))
	}
	want := "00-" + caller.TraceID().String() + "-" + fa[0].SpanContext().SpanID().String() + "-01"
	if _, ok := seen.Load(want); !ok {
		var got []any
		seen.Range(func(k, _ any) bool { got = append(got, k); return true })
		t.Errorf("the guest's HTTP request carried traceparent %v, want %s", got, want)
	}

	// flaky: attempt 1 failed, attempt 2 succeeded after a delay.
	flaky := nodeOf(first, "flaky")
	if len(flaky) != 1 {
		t.Fatalf("flaky node spans %d", len(flaky))
	}
	fl := attemptsOf(flaky[0])
	if len(fl) != 2 {
		t.Fatalf("flaky attempts %d, want 2", len(fl))
	}
	if fl[0].Status().Code != codes.Error || attr(fl[0], telemetry.KeyOutcome).AsString() != "failure" ||
		attr(fl[1], telemetry.KeyOutcome).AsString() != "success" {
		t.Errorf("flaky attempts: %v / %v", fl[0].Attributes(), fl[1].Attributes())
	}
	if attr(fl[1], telemetry.KeyRetryDelay).Type() != attribute.INT64 || attr(fl[0], telemetry.KeyRetryDelay).Type() != attribute.EMPTY {
		t.Errorf("the retry attempt has no delay: %v", fl[1].Attributes())
	}
	for _, a := range fl {
		if attr(a, telemetry.KeyVersion).AsString() != host.Version(hosttest.Fixture(t, "go/nodes/nodes.wasm")) ||
			attr(a, telemetry.KeyBreaker).AsString() == "" || attr(a, telemetry.KeyFuel).Type() != attribute.INT64 {
			t.Errorf("attempt attributes %v", a.Attributes())
		}
	}
	if attr(flaky[0], telemetry.KeyAttempts).AsInt64() != 2 || attr(flaky[0], telemetry.KeyOutcome).AsString() != "success" {
		t.Errorf("flaky node span %v", flaky[0].Attributes())
	}

	// long: checkpoints saved before the crash, loaded after it.
	l1, l2 := nodeOf(first, "long"), nodeOf(second, "long")
	if len(l1) != 1 || len(l2) != 1 {
		t.Fatalf("long node spans %d and %d, want one per execution", len(l1), len(l2))
	}
	a1, a2 := attemptsOf(l1[0]), attemptsOf(l2[0])
	if len(a1) != 1 || len(a2) != 1 || !hasEvent(a1[0], "checkpoint saved") || !hasEvent(a2[0], "checkpoint loaded") {
		t.Errorf("long attempts: before %d, after %d; want checkpoint saved before and loaded after", len(a1), len(a2))
	}
	if attr(l1[0], telemetry.KeyOutcome).AsString() != "canceled" || attr(l2[0], telemetry.KeyOutcome).AsString() != "success" {
		t.Errorf("long outcomes %v / %v", l1[0].Attributes(), l2[0].Attributes())
	}
	if n := attr(a2[0], telemetry.KeyAttempt).AsInt64(); n <= attr(a1[0], telemetry.KeyAttempt).AsInt64() {
		t.Errorf("attempt after the restart %d, want above the one before", n)
	}
}
