package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/workflow"
)

// Invoker returns next with a "node NAME" span around each workflow node
// call (under its run's execution span) and an "attempt" span around each
// of its attempts. Calls that belong to no run pass through untraced.
func (t *Telemetry) Invoker(next workflow.Invoker) workflow.Invoker {
	return tracedInvoker{Invoker: next, t: t}
}

type tracedInvoker struct {
	workflow.Invoker
	t *Telemetry
}

func (i tracedInvoker) Invoke(ctx context.Context, req host.InvokeRequest) (host.InvokeResult, error) {
	inv := req.Invocation
	if inv.RunID == "" {
		return i.Invoker.Invoke(ctx, req)
	}
	t := i.t
	r := t.run(ctx, inv.RunID, inv.Workflow, nil)
	// The node span is the run span's child, in the engine's own context
	// (its cancellation and values stay).
	ctx = trace.ContextWithSpan(ctx, r.span)
	ctx, span := t.tr.Start(ctx, "node "+inv.Node, trace.WithAttributes(
		KeyRunID.String(inv.RunID), KeyNode.String(inv.Node), KeyPlugin.String(req.Plugin),
		KeyFunction.String(function(req.Function)), KeyAttempt.Int(max(inv.Attempt, 1))))
	defer span.End()
	req.OnAttempt = t.attempts(req.Plugin, req.OnAttempt)
	if req.Durable != nil {
		req.Durable = tracedDurable{req.Durable}
	}
	res, err := i.Invoker.Invoke(ctx, req)
	span.SetAttributes(KeyAttempts.Int(res.Attempts), KeyFuel.Int64(res.Fuel), KeyOutcome.String(api.Outcome(err)),
		KeyFallback.Bool(res.Fallback))
	if res.Version != "" {
		span.SetAttributes(KeyVersion.String(res.Version))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return res, err
}

func function(f string) string {
	if f == "" {
		return abi.ExportRun
	}
	return f
}

// attempts chains an "attempt" span before next (the engine's hook).
// Attempts of one Invoke run one after another.
func (t *Telemetry) attempts(plugin string, next func(context.Context, int) (context.Context, func(host.AttemptEnd))) func(context.Context, int) (context.Context, func(host.AttemptEnd)) {
	var failedAt time.Time
	return func(ctx context.Context, attempt int) (context.Context, func(host.AttemptEnd)) {
		ctx, span := t.tr.Start(ctx, "attempt", trace.WithAttributes(KeyPlugin.String(plugin), KeyAttempt.Int(attempt)))
		if !failedAt.IsZero() {
			span.SetAttributes(KeyRetryDelay.Int64(time.Since(failedAt).Milliseconds()))
		}
		var end func(host.AttemptEnd)
		if next != nil {
			ctx, end = next(ctx, attempt)
		}
		return ctx, func(a host.AttemptEnd) {
			if end != nil {
				end(a)
			}
			span.SetAttributes(KeyVersion.String(a.Version), KeyFuel.Int64(a.Fuel),
				KeyOutcome.String(api.Outcome(a.Err)), KeyBreaker.String(a.Breaker.String()))
			if a.Err != nil {
				failedAt = time.Now()
				span.SetStatus(codes.Error, a.Err.Error())
			}
			span.End()
		}
	}
}

// tracedDurable records checkpoint saves and loads as events of the
// attempt span in the guest call's context.
type tracedDurable struct{ host.Durable }

func (d tracedDurable) SaveCheckpoint(ctx context.Context, data []byte) error {
	err := d.Durable.SaveCheckpoint(ctx, data)
	if err == nil {
		trace.SpanFromContext(ctx).AddEvent("checkpoint saved", trace.WithAttributes(KeyBytes.Int(len(data))))
	}
	return err
}

func (d tracedDurable) LoadCheckpoint(ctx context.Context) ([]byte, error) {
	b, err := d.Durable.LoadCheckpoint(ctx)
	if err == nil && b != nil {
		trace.SpanFromContext(ctx).AddEvent("checkpoint loaded", trace.WithAttributes(KeyBytes.Int(len(b))))
	}
	return b, err
}
