package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// InvokeRequest is one node call through the resilience pipeline.
type InvokeRequest struct {
	Plugin   string
	Function string // abi.ExportRun when empty
	Input    []byte
	// Version pins a version by hash prefix; empty means the current one.
	Version string
	// Policy overrides the plugin's policy for this call, under its own
	// breaker and limiter named PolicyKey (for example "workflow/node").
	Policy    *resilience.Policy
	PolicyKey string
	// Invocation is what the guest learns about the call. Its Attempt is
	// the number of the first attempt (1 when zero); later attempts count
	// on from it, so a node resumed after a crash sees a higher number.
	Invocation abi.Invocation
	Durable    Durable
	Logger     *slog.Logger
	// OnAttempt, when set, is called as each attempt starts, with the
	// attempt's context and number; the context it returns is the one the
	// attempt runs with (a tracer's span), and end, when not nil, is
	// called as the attempt ends. Both must be quick.
	OnAttempt func(ctx context.Context, attempt int) (actx context.Context, end func(AttemptEnd))
}

// AttemptEnd is how one attempt of an Invoke ended.
type AttemptEnd struct {
	Err     error
	Version string // the plugin version that ran ("" when none did)
	Fuel    int64
	Breaker resilience.State // the breaker's state as the attempt ran (closed or half-open)
}

// InvokeResult is what a successful Invoke returns.
type InvokeResult struct {
	Output []byte
	// Attempts is how many attempts ran in this Invoke.
	Attempts int
	// Version is the plugin version that produced Output ("" for a fallback).
	Version string
	// Fallback is set when Output is the policy's fallback value.
	Fallback bool
	// Fuel is the CPU all attempts used (see CallStats).
	Fuel int64
}

// PolicyName is the executor name of a plugin's own policy.
func PolicyName(plugin string) string { return "plugin:" + plugin }

// policies holds each plugin's policy in two layers: the base its
// manifest asks for (SetPolicy) and a runtime override (OverridePolicy),
// which wins over the base and outlives every SetPolicy, so a reload or a
// rebuild keeps it. mu is held while the executor is updated, so the two
// layers never apply out of order.
type policies struct {
	mu   sync.Mutex
	base map[string]resilience.Policy
	over map[string]resilience.Policy
}

// SetPolicy sets the resilience policy of a plugin's calls, as its
// manifest asks. A runtime override set with OverridePolicy stays in force
// over it. The breaker, limiter and retry budget keep their state across
// changes.
func (h *Host) SetPolicy(plugin string, p resilience.Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("plugin %s: policy: %w", plugin, err)
	}
	h.pols.mu.Lock()
	defer h.pols.mu.Unlock()
	if h.pols.base == nil {
		h.pols.base = map[string]resilience.Policy{}
	}
	h.pols.base[plugin] = p
	if _, ok := h.pols.over[plugin]; ok {
		return nil
	}
	return h.applyPolicy(plugin, p)
}

// OverridePolicy sets a runtime policy for a plugin's calls that wins over
// the one SetPolicy sets, until the host stops: reloads, rebuilds and
// manifest changes keep it. It is held in memory only.
func (h *Host) OverridePolicy(plugin string, p resilience.Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("plugin %s: policy: %w", plugin, err)
	}
	h.pols.mu.Lock()
	defer h.pols.mu.Unlock()
	if h.pols.over == nil {
		h.pols.over = map[string]resilience.Policy{}
	}
	h.pols.over[plugin] = p
	return h.applyPolicy(plugin, p)
}

// Policy returns the policy a plugin's calls run with: its override, else
// the policy SetPolicy set, else the host's default.
func (h *Host) Policy(plugin string) resilience.Policy {
	h.pols.mu.Lock()
	defer h.pols.mu.Unlock()
	if p, ok := h.pols.over[plugin]; ok {
		return p
	}
	if p, ok := h.pols.base[plugin]; ok {
		return p
	}
	return h.opts.policy
}

// PolicyOverrides returns the overrides OverridePolicy set, by plugin.
func (h *Host) PolicyOverrides() map[string]resilience.Policy {
	h.pols.mu.Lock()
	defer h.pols.mu.Unlock()
	return maps.Clone(h.pols.over)
}

func (h *Host) applyPolicy(plugin string, p resilience.Policy) error {
	name := PolicyName(plugin)
	if _, ok := h.execs.Get(name); ok {
		return h.execs.Update(name, p)
	}
	_, err := h.execs.GetOrCreate(name, p)
	return err
}

// ResetBreaker closes a plugin's breaker and clears its counts, as after a
// fix was deployed: the next call goes through at once.
func (h *Host) ResetBreaker(plugin string) {
	if e, ok := h.execs.Get(PolicyName(plugin)); ok {
		e.ResetBreaker()
	}
}

// Breakers returns the stats of every executor by name (the plugin ones
// are named by PolicyName).
func (h *Host) Breakers() map[string]resilience.Stats { return h.execs.Stats() }

// Executor returns the executor of a plugin's policy, creating it with the
// host's default policy.
func (h *Host) executor(req *InvokeRequest) (*resilience.Executor, error) {
	if req.Policy != nil {
		key := req.PolicyKey
		if key == "" {
			key = PolicyName(req.Plugin) + "/override"
		}
		return h.execs.GetOrCreate(key, *req.Policy)
	}
	if m := h.execByPlugin.Load(); m != nil {
		if e := (*m)[req.Plugin]; e != nil {
			return e, nil
		}
	}
	e, err := h.execs.GetOrCreate(PolicyName(req.Plugin), h.opts.policy)
	if err != nil {
		return nil, err
	}
	if view := h.pluginsView.Load(); view == nil || (*view)[req.Plugin] == nil {
		return e, nil // cache loaded plugins only: the copy costs O(plugins)
	}
	h.execMu.Lock()
	next := map[string]*resilience.Executor{req.Plugin: e}
	if m := h.execByPlugin.Load(); m != nil {
		maps.Copy(next, *m)
		next[req.Plugin] = e
	}
	h.execByPlugin.Store(&next)
	h.execMu.Unlock()
	return e, nil
}

// Invoke calls a plugin through its resilience pipeline, outermost first:
// retry ⊃ circuit breaker ⊃ concurrency limiter ⊃ attempt timeout ⊃ Call.
// Failures are classified by Classify. When every attempt fails, the error
// is a *resilience.ExhaustedError holding each attempt's error, unless the
// policy has a fallback value, which is then returned as the output.
func (h *Host) Invoke(ctx context.Context, req InvokeRequest) (InvokeResult, error) {
	e, err := h.executor(&req)
	if err != nil {
		return InvokeResult{}, err
	}
	base := req.Invocation.Attempt
	if base < 1 {
		base = 1
	}
	var res InvokeResult
	// The attempt timeout is the call context's deadline (DoDeadline), so
	// an attempt costs no timer of its own.
	err = e.DoDeadline(ctx, func(ctx context.Context, deadline time.Time) error {
		inv := req.Invocation
		inv.Attempt = base + resilience.AttemptFromContext(ctx) - 1
		res.Attempts++
		var end func(AttemptEnd)
		if req.OnAttempt != nil {
			ctx, end = req.OnAttempt(ctx, inv.Attempt)
		}
		co := callOptions{durable: req.Durable, logger: req.Logger, version: req.Version, inv: inv, deadline: deadline}
		out, version, err := h.callWith(ctx, req.Plugin, req.Function, req.Input, &co)
		res.Fuel += co.fuel
		if end != nil {
			end(attemptEnd(e, version, co.fuel, err))
		}
		if err != nil {
			var ge *GuestError
			if errors.As(err, &ge) && ge.Hint > 0 {
				return resilience.RetryAfter(err, ge.Hint)
			}
			return err
		}
		res.Output, res.Version = out, version
		return nil
	})
	if err == nil {
		return res, nil
	}
	if fb := e.Policy().Fallback; fb.IsSet() && ctx.Err() == nil {
		h.log.Warn("plugin failed, using the policy's fallback", "plugin", req.Plugin, "err", err)
		return InvokeResult{Output: []byte(fb.Value), Attempts: res.Attempts, Fallback: true, Fuel: res.Fuel}, nil
	}
	return res, err
}

func attemptEnd(e *resilience.Executor, version string, fuel int64, err error) AttemptEnd {
	var ge *GuestError
	if err != nil && errors.As(err, &ge) {
		version = ge.Version
	}
	return AttemptEnd{Err: err, Version: version, Fuel: fuel, Breaker: e.State()}
}

// Classify tells the resilience pipeline how to treat a call's error:
//
//	permanent failure code, bad input, unknown plugin or export: not retried, not counted
//	retryable code, trap, timeout:                              retried, counted
//	memory cap, CPU budget, output limit:                       not retried, counted
//	the caller's cancellation, a stopping host:                 ignored
func Classify(err error) resilience.Class {
	var ge *GuestError
	if errors.As(err, &ge) {
		switch ge.Kind {
		case KindPermanent:
			return resilience.Permanent
		case KindMemory, KindLimit, KindCPU:
			return resilience.Fatal
		case KindCanceled:
			return resilience.Ignored
		}
		return resilience.Retryable
	}
	var le *LimitError
	switch {
	case errors.As(err, &le), errors.Is(err, ErrNoPlugin), errors.Is(err, ErrNoExport):
		return resilience.Permanent
	case errors.Is(err, ErrClosed):
		return resilience.Ignored
	}
	return resilience.DefaultClassifier(err)
}
