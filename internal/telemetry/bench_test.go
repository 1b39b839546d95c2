package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/internal/telemetry"
	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
	"github.com/bulkhead-run/bulkhead/statestore/memstore"
)

// discard is a span exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// chain is a workflow of n sequential no-op nodes.
func chain(n int) string {
	var b strings.Builder
	b.WriteString("name: chain\npolicy: {retry: {max_attempts: 1}, breaker: {failure_threshold: -1}}\nnodes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  s%d: {plugin: tiny, function: noop", i)
		if i > 0 {
			fmt.Fprintf(&b, ", needs: [s%d]", i-1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// Modes of the benchmark.
const (
	modeBaseline = "baseline=no-observer" // the engine alone: no events, no attempt hook, no log
	modeOff      = "tracing=off"          // as bulkhead serve runs without OTEL_*
	modeOn       = "tracing=on"
)

// benchEngine wires an engine as bulkhead serve does: a counting
// observer and the run-event log (to a discarded info-level logger), and
// tracing on, the telemetry of an SDK provider sampling every span and
// batching them to a discarding exporter; the baseline has no observer.
// The store is Badger (durable) or the in-memory one, where the CPU cost
// of tracing is not hidden by fsync.
func benchEngine(b *testing.B, mode string, durable bool) *workflow.Engine {
	b.Helper()
	var s statestore.Store = memstore.New()
	if durable {
		bs, err := badgerstore.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		s = bs
	}
	tel := telemetry.Disabled()
	var tp *sdktrace.TracerProvider
	if mode == modeOn {
		tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		tel = telemetry.New(tp, telemetry.WithRunLookup(s.GetRun))
	}
	var hostOpts []host.Option
	if tel.Enabled() {
		hostOpts = append(hostOpts, host.WithHTTPHeaders(tel.InjectHeaders))
	}
	h := hosttest.New(b, hostOpts...)
	tiny, err := os.ReadFile("../../host/testdata/tiny.wasm")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := h.Load(context.Background(), "tiny", tiny, abi.Manifest{Pool: abi.Pool{Max: 8}}); err != nil {
		b.Fatal(err)
	}
	var finished atomic.Int64
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	logEvents := workflow.LogEvents(log)
	observe := func(ev workflow.Event) {
		if ev.Kind == workflow.EventRunFinished {
			finished.Add(1)
		}
		logEvents(ev)
	}
	var inv workflow.Invoker = h
	if tel.Enabled() {
		inv = tel.Invoker(inv)
		logEvents = workflow.LogEventsContext(log, tel.EventContext)
		observe = tel.Observer(observe)
	}
	opts := []workflow.Option{workflow.WithWorkers(256), workflow.WithObserver(observe)}
	if mode == modeBaseline {
		opts = opts[:1]
	}
	e, err := workflow.New(s, inv, opts...)
	if err != nil {
		b.Fatal(err)
	}
	w, err := workflow.Parse("chain.yaml", []byte(chain(10)), workflow.ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	e.AddWorkflow(w)
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = e.Stop(context.Background())
		_ = tel.Shutdown(context.Background())
		if tp != nil {
			_ = tp.Shutdown(context.Background())
		}
		_ = s.Close()
	})
	return e
}

func runOnce(ctx context.Context, e *workflow.Engine) error {
	r, err := e.Submit(ctx, "chain", nil, "")
	if err == nil {
		r, err = e.Wait(ctx, r.ID)
	}
	if err == nil && r.Status != statestore.StatusSucceeded {
		err = fmt.Errorf("run %s: %s", r.Status, r.Error)
	}
	return err
}

// BenchmarkTelemetry_NoopRun: 10-node runs of no-op nodes on the bare
// engine, with tracing off (as bulkhead serve runs without OTEL_*) and
// on, in one run, on Badger and in memory: the latency of one run at a time (p50, p99) and node completions
// per second with 16 runs in flight.
func BenchmarkTelemetry_NoopRun(b *testing.B) {
	for _, durable := range []bool{true, false} {
		store := map[bool]string{true: "store=badger/", false: "store=memory/"}[durable]
		for _, mode := range []string{modeBaseline, modeOff, modeOn} {
			benchNoopRun(b, store+mode, mode, durable)
		}
	}
}

func benchNoopRun(b *testing.B, name, mode string, durable bool) {
	{
		b.Run(name+"/latency", func(b *testing.B) {
			e := benchEngine(b, mode, durable)
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := runOnce(ctx, e); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
		b.Run(name+"/inflight=16", func(b *testing.B) {
			e := benchEngine(b, mode, durable)
			ctx := context.Background()
			runs := (b.N + 9) / 10
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ResetTimer()
			start := time.Now()
			for range 16 {
				wg.Go(func() {
					for next.Add(1) <= int64(runs) {
						if err := runOnce(ctx, e); err != nil {
							failed.Store(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(runs*10)/elapsed.Seconds(), "completions/s")
		})
	}
}

// fakeInvoker runs one attempt that does nothing.
type fakeInvoker struct{}

func (fakeInvoker) Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	if req.OnAttempt != nil {
		_, end := req.OnAttempt(ctx, 1)
		if end != nil {
			end(host.AttemptEnd{Version: "v"})
		}
	}
	return host.InvokeResult{Output: []byte("ok"), Attempts: 1, Version: "v"}, nil
}

func (fakeInvoker) Plugin(string) (host.PluginInfo, bool) { return host.PluginInfo{}, true }

// BenchmarkTelemetry_NodeOverhead: the CPU and allocations tracing adds
// to one node call (node and attempt spans, sampled, batched to a
// discarding exporter), next to the same call untraced, without Wasm or
// a store: what the run benchmarks cannot resolve on a noisy machine.
func BenchmarkTelemetry_NodeOverhead(b *testing.B) {
	req := host.InvokeRequest{Plugin: "p", Invocation: abi.Invocation{RunID: "r", Workflow: "w", Node: "n", Attempt: 1}}
	b.Run("tracing=off", func(b *testing.B) {
		var inv workflow.Invoker = fakeInvoker{}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = inv.Invoke(context.Background(), req)
		}
	})
	b.Run("tracing=on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		tel := telemetry.New(tp)
		defer func() { _ = tel.Shutdown(context.Background()) }()
		inv := tel.Invoker(fakeInvoker{})
		b.ReportAllocs()
		for b.Loop() {
			_, _ = inv.Invoke(context.Background(), req)
		}
	})
}
