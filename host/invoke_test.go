package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

func policy(mut func(*resilience.Policy)) resilience.Policy {
	var p resilience.Policy
	p.Retry.InitialDelay = resilience.Duration(40 * time.Millisecond)
	p.Retry.Multiplier = 2
	p.Retry.Jitter = resilience.JitterKind("factor")
	p.Retry.JitterFactor = 0.25
	p.Breaker.FailureThreshold = 5
	if mut != nil {
		mut(&p)
	}
	return p
}

func TestInvoke_RetriesUntilSuccessWithinJitterBounds(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	if err := h.SetPolicy("kitchen", policy(nil)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := h.Invoke(context.Background(), host.InvokeRequest{Plugin: "kitchen", Function: "flaky", Input: []byte("2")})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Output) != "ok after 3 attempts" || res.Attempts != 3 || res.Version != host.Version(kitchenWasm) {
		t.Fatalf("Invoke = %+v", res)
	}
	// Delays: 40ms and 80ms, each ±25 %: at least 90ms in all.
	if min := 90 * time.Millisecond; elapsed < min {
		t.Fatalf("3 attempts took %s, less than the smallest jittered backoff %s", elapsed, min)
	}
}

func TestInvoke_AttemptNumbersContinueFromInvocation(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	res, err := h.Invoke(context.Background(), host.InvokeRequest{Plugin: "kitchen", Function: "flaky", Input: []byte("4"),
		Invocation: abi.Invocation{RunID: "r", Node: "n", Attempt: 4}})
	if err != nil || string(res.Output) != "ok after 5 attempts" || res.Attempts != 2 {
		t.Fatalf("Invoke = %+v, %v", res, err)
	}
}

func TestInvoke_PermanentFailureTriedOnce(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	h.SetPolicy("kitchen", policy(func(p *resilience.Policy) { p.Breaker.FailureThreshold = 1 }))
	res, err := h.Invoke(context.Background(), host.InvokeRequest{Plugin: "kitchen", Function: "fail_permanent", Input: []byte("bad")})
	if !errors.Is(err, host.ErrPermanent) || res.Attempts != 1 {
		t.Fatalf("Invoke = %+v, %v", res, err)
	}
	if st := h.Breakers()[host.PolicyName("kitchen")]; st.State != resilience.Closed {
		t.Fatalf("breaker %v after a permanent failure", st.State)
	}
}

func TestInvoke_SpinningGuestCutAndRetriedOnFreshInstance(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{Pool: abi.Pool{Max: 1}})
	h.SetPolicy("kitchen", policy(func(p *resilience.Policy) {
		p.AttemptTimeout = resilience.Duration(150 * time.Millisecond)
		p.Retry.MaxAttempts = 2
		p.Retry.InitialDelay = resilience.Duration(time.Millisecond)
	}))
	before, _ := h.Plugin("kitchen")
	res, err := h.Invoke(context.Background(), host.InvokeRequest{Plugin: "kitchen", Function: "spin"})
	var ex *resilience.ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 2 || !errors.Is(err, host.ErrTimeout) || res.Attempts != 2 {
		t.Fatalf("Invoke = %+v, %v", res, err)
	}
	for i, e := range ex.Errors {
		if !errors.Is(e, host.ErrTimeout) {
			t.Fatalf("attempt %d: %v", i+1, e)
		}
	}
	// Each timed-out instance was discarded: the echo runs on a third one.
	if out, err := h.Call(context.Background(), "kitchen", "echo", []byte("fresh")); err != nil || string(out) != "fresh" {
		t.Fatalf("echo after spins = %q, %v", out, err)
	}
	after, _ := h.Plugin("kitchen")
	if after.Calls-before.Calls != 3 {
		t.Fatalf("calls %d → %d", before.Calls, after.Calls)
	}
}

func TestInvoke_BreakerOpensFailsFastThenRecovers(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	ctx := context.Background()
	// The baseline: the slowest of a few guest calls through Invoke on this
	// machine, now. Failing fast must stay well under one such call's
	// scheduling noise (50 ms plus five calls), and the breaker stays open
	// six times that, so the call made while it is open cannot miss it.
	var call time.Duration
	for range 3 {
		start := time.Now()
		if _, err := h.Invoke(ctx, host.InvokeRequest{Plugin: "kitchen", Function: "echo", Input: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		call = max(call, time.Since(start))
	}
	fast := 50*time.Millisecond + 5*call
	openFor := 6 * fast
	h.SetPolicy("kitchen", policy(func(p *resilience.Policy) {
		p.Retry.MaxAttempts = 1
		p.Breaker.FailureThreshold = 3
		p.Breaker.OpenTimeout = resilience.Duration(openFor)
		p.Breaker.SuccessThreshold = 1
	}))
	for range 3 {
		if _, err := h.Invoke(ctx, host.InvokeRequest{Plugin: "kitchen", Function: "fail", Input: []byte("down")}); !errors.Is(err, host.ErrFailed) {
			t.Fatalf("fail = %v", err)
		}
	}
	if st := h.Breakers()[host.PolicyName("kitchen")]; st.State != resilience.Open {
		t.Fatalf("breaker %v after 3 failures", st.State)
	}
	before, _ := h.Plugin("kitchen")
	start := time.Now()
	_, err := h.Invoke(ctx, host.InvokeRequest{Plugin: "kitchen", Function: "echo", Input: []byte("x")})
	if !errors.Is(err, resilience.ErrCircuitOpen) {
		t.Fatalf("call on an open breaker = %v", err)
	}
	if d := time.Since(start); d > fast {
		t.Fatalf("failing fast took %s, want <= %s (guest call %s)", d, fast, call)
	}
	if after, _ := h.Plugin("kitchen"); after.Calls != before.Calls {
		t.Fatal("a call entered Wasm while the breaker was open")
	}
	deadline := time.Now().Add(openFor + 5*time.Second)
	for {
		res, err := h.Invoke(ctx, host.InvokeRequest{Plugin: "kitchen", Function: "echo", Input: []byte("probe")})
		if err == nil {
			if string(res.Output) != "probe" {
				t.Fatalf("probe output %q", res.Output)
			}
			break
		}
		if !errors.Is(err, resilience.ErrCircuitOpen) || time.Now().After(deadline) {
			t.Fatalf("probe = %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := h.Breakers()[host.PolicyName("kitchen")]; st.State != resilience.Closed {
		t.Fatalf("breaker %v after a successful probe", st.State)
	}
}

func TestInvoke_RetryAfterHintSetsTheDelay(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	h.SetPolicy("kitchen", policy(func(p *resilience.Policy) {
		p.Retry.MaxAttempts = 2
		p.Retry.InitialDelay = resilience.Duration(time.Millisecond)
		p.Retry.Jitter = resilience.JitterKind("none")
	}))
	start := time.Now()
	_, err := h.Invoke(context.Background(), host.InvokeRequest{Plugin: "kitchen", Function: "retry_after", Input: []byte("250")})
	if err == nil || !strings.Contains(err.Error(), "rate limited") {
		t.Fatalf("Invoke = %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("second attempt came after %s; the guest asked for 250ms", d)
	}
}

func TestInvoke_FallbackValue(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	h.SetPolicy("kitchen", policy(func(p *resilience.Policy) {
		p.Retry.MaxAttempts = 1
		p.Fallback.Value = "cached answer"
	}))
	res, err := h.Invoke(context.Background(), host.InvokeRequest{Plugin: "kitchen", Function: "fail", Input: []byte("down")})
	if err != nil || !res.Fallback || string(res.Output) != "cached answer" {
		t.Fatalf("Invoke = %+v, %v", res, err)
	}
}

func TestInvoke_ChaosErrorsAreRetried(t *testing.T) {
	h := newHost(t)
	load(t, h, "kitchen", abi.Manifest{})
	h.SetPolicy("kitchen", policy(func(p *resilience.Policy) {
		p.Retry.MaxAttempts = 50
		p.Retry.InitialDelay = resilience.Duration(time.Millisecond)
		p.Retry.MaxDelay = resilience.Duration(time.Millisecond)
		p.Breaker.FailureThreshold = -1
		p.Retry.Budget.Ratio = -1 // this test retries on purpose
		p.Chaos.ErrorRate = 0.5
	}))
	for range 10 {
		if out, err := h.Invoke(context.Background(), host.InvokeRequest{Plugin: "kitchen", Function: "echo", Input: []byte("y")}); err != nil || string(out.Output) != "y" {
			t.Fatalf("Invoke under chaos = %+v, %v", out, err)
		}
	}
	if st := h.Breakers()[host.PolicyName("kitchen")]; st.ChaosErrors == 0 {
		t.Fatalf("no chaos injected: %+v", st)
	}
}
