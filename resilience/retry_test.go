package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/resilience/resiliencetest"
)

// failN returns a function failing n times with errs, then succeeding.
func failN(n int, err error) (func(context.Context) error, *int) {
	calls := 0
	return func(context.Context) error {
		calls++
		if calls <= n {
			return fmt.Errorf("call %d: %w", calls, err)
		}
		return nil
	}, &calls
}

func retryPolicy(attempts int) resilience.Policy {
	return resilience.Policy{Retry: resilience.RetryPolicy{
		MaxAttempts: attempts, InitialDelay: resilience.Duration(100 * time.Millisecond),
		Multiplier: 2, Jitter: resilience.JitterNone, Budget: resilience.Budget{Ratio: -1},
	}, Breaker: resilience.BreakerPolicy{FailureThreshold: -1}}
}

func TestRetry_SucceedsAfterFailures(t *testing.T) {
	e, clk := newExec(t, retryPolicy(3))
	fn, calls := failN(2, errBoom)
	steps, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) })
	if err != nil || *calls != 3 {
		t.Fatalf("err %v after %d calls", err, *calls)
	}
	if fmt.Sprint(steps) != "[100ms 200ms]" {
		t.Fatalf("delays %v, want [100ms 200ms]", steps)
	}
	if s := e.Stats(); s.Attempts != 3 || s.Retries != 2 || s.Successes != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRetry_Exhausted(t *testing.T) {
	e, clk := newExec(t, retryPolicy(3))
	fn, calls := failN(10, errBoom)
	_, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) })
	var ex *resilience.ExhaustedError
	if !errors.As(err, &ex) {
		t.Fatalf("err %T %v, want *ExhaustedError", err, err)
	}
	if *calls != 3 || ex.Attempts != 3 || len(ex.Errors) != 3 || ex.Cause != nil {
		t.Fatalf("calls %d, %+v", *calls, ex)
	}
	for i, e := range ex.Errors {
		if want := fmt.Sprintf("call %d: boom", i+1); e.Error() != want {
			t.Errorf("error %d: %q, want %q", i, e, want)
		}
	}
	if !errors.Is(err, errBoom) || ex.Last() != ex.Errors[2] {
		t.Fatal("the last error is not reachable")
	}
}

func TestRetry_Classifier(t *testing.T) {
	errRate := errors.New("429")
	classify := func(err error) resilience.Class { // a list of retryable errors: only 429
		if errors.Is(err, errRate) {
			return resilience.Retryable
		}
		return resilience.Permanent
	}
	tests := []struct {
		name      string
		give      error
		wantCalls int
	}{
		{"retryable", errRate, 3},
		{"not retryable", errBoom, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, clk := newExec(t, retryPolicy(3), resilience.WithClassifier(classify))
			fn, calls := failN(10, tt.give)
			_, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) })
			if !errors.Is(err, tt.give) || *calls != tt.wantCalls {
				t.Fatalf("err %v calls %d, want %d", err, *calls, tt.wantCalls)
			}
		})
	}
}

func TestRetry_RetryAfterHint(t *testing.T) {
	tests := []struct {
		name string
		hint time.Duration
		want time.Duration
	}{
		{"hint below max", 700 * time.Millisecond, 700 * time.Millisecond},
		{"hint capped by max delay", time.Minute, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := retryPolicy(2)
			p.Retry.MaxDelay = resilience.Duration(2 * time.Second)
			e, clk := newExec(t, p)
			fn, _ := failN(1, errBoom)
			hinted := func(ctx context.Context) error { return resilience.RetryAfter(fn(ctx), tt.hint) }
			steps, err := drive(t, clk, func() error { return e.Do(context.Background(), hinted) })
			if err != nil || len(steps) != 1 || steps[0] != tt.want {
				t.Fatalf("err %v steps %v, want [%v]", err, steps, tt.want)
			}
		})
	}
}

func TestRetry_Budget(t *testing.T) {
	t.Run("ratio", func(t *testing.T) {
		p := retryPolicy(2)
		p.Retry.Budget = resilience.Budget{Ratio: 0.1, MinPerSecond: -1}
		e, _ := newExec(t, p)
		var denied int
		for range 100 {
			err := e.Do(context.Background(), func(context.Context) error { return resilience.RetryAfter(errBoom, 0) })
			if errors.Is(err, resilience.ErrRetryBudget) {
				denied++
			}
		}
		s := e.Stats()
		// 100 calls deposit 10 tokens: at most 10 retries.
		if s.Retries < 9 || s.Retries > 10 || uint64(denied) != s.BudgetDenied || s.Retries+s.BudgetDenied != 100 {
			t.Fatalf("retries %d denied %d (%d seen)", s.Retries, s.BudgetDenied, denied)
		}
	})
	t.Run("floor per second", func(t *testing.T) {
		p := retryPolicy(2)
		p.Retry.Budget = resilience.Budget{Ratio: 0.0001, MinPerSecond: 5}
		e, clk := newExec(t, p)
		for range 20 {
			_ = e.Do(context.Background(), func(context.Context) error { return resilience.RetryAfter(errBoom, 0) })
		}
		if got := e.Stats().Retries; got != 5 {
			t.Fatalf("retries in one second %d, want 5", got)
		}
		clk.Advance(time.Second)
		for range 20 {
			_ = e.Do(context.Background(), func(context.Context) error { return resilience.RetryAfter(errBoom, 0) })
		}
		if got := e.Stats().Retries; got != 10 {
			t.Fatalf("retries after the next second %d, want 10", got)
		}
	})
}

func TestRetry_WaitsForBreakerInsteadOfBurningAttempts(t *testing.T) {
	p := resilience.Policy{
		Breaker: resilience.BreakerPolicy{FailureThreshold: 1, SuccessThreshold: 1, OpenTimeout: resilience.Duration(time.Second)},
		Retry: resilience.RetryPolicy{MaxAttempts: 2, InitialDelay: resilience.Duration(100 * time.Millisecond),
			Jitter: resilience.JitterNone, TotalDeadline: resilience.Duration(10 * time.Second)},
	}
	t.Run("within the deadline", func(t *testing.T) {
		e, clk := newExec(t, p)
		fn, calls := failN(1, errBoom)
		steps, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) })
		if err != nil || *calls != 2 {
			t.Fatalf("err %v calls %d", err, *calls)
		}
		// backoff 100ms, then wait the 900ms left of the open timeout
		if fmt.Sprint(steps) != "[100ms 900ms]" {
			t.Fatalf("steps %v", steps)
		}
		if s := e.Stats(); s.Attempts != 2 || s.BreakerWaits != 1 || s.State != resilience.Closed {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("past the deadline", func(t *testing.T) {
		p := p
		p.Retry.TotalDeadline = resilience.Duration(500 * time.Millisecond)
		e, clk := newExec(t, p)
		fn, calls := failN(1, errBoom)
		_, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) })
		var ex *resilience.ExhaustedError
		if !errors.As(err, &ex) || ex.Cause != resilience.ErrCircuitOpen || *calls != 1 || !errors.Is(err, errBoom) {
			t.Fatalf("err %v calls %d", err, *calls)
		}
	})
}

func TestRetry_FirstAttemptOnOpenBreaker(t *testing.T) {
	p := resilience.Policy{
		Breaker: resilience.BreakerPolicy{FailureThreshold: 1, SuccessThreshold: 1, OpenTimeout: resilience.Duration(time.Second)},
		Retry: resilience.RetryPolicy{MaxAttempts: 2, InitialDelay: resilience.Duration(100 * time.Millisecond),
			Jitter: resilience.JitterNone, TotalDeadline: resilience.Duration(10 * time.Second)},
	}
	tests := []struct {
		name       string
		waitOnOpen bool
		wantErr    error
		wantSteps  string
	}{
		{"fails fast", false, resilience.ErrCircuitOpen, "[]"},
		{"waits with wait_on_open", true, nil, "[1s]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := p
			p.Retry.WaitOnOpen = tt.waitOnOpen
			e, clk := newExec(t, p)
			_, _ = drive(t, clk, func() error { return e.Do(context.Background(), fail) }) // two attempts, both open it
			if e.State() != resilience.Open {
				t.Fatal("setup: breaker not open")
			}
			called := false
			steps, err := drive(t, clk, func() error {
				return e.Do(context.Background(), func(context.Context) error { called = true; return nil })
			})
			if err != tt.wantErr || fmt.Sprint(steps) != tt.wantSteps || called != (tt.wantErr == nil) {
				t.Fatalf("err %v steps %v called %v", err, steps, called)
			}
		})
	}
}

func TestRetry_TotalDeadline(t *testing.T) {
	p := retryPolicy(10)
	p.Retry.TotalDeadline = resilience.Duration(time.Second) // 100+200+400 fit, +800 does not
	e, clk := newExec(t, p)
	fn, calls := failN(100, errBoom)
	steps, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) })
	if !errors.Is(err, resilience.ErrTotalDeadline) || *calls != 4 {
		t.Fatalf("err %v calls %d steps %v", err, *calls, steps)
	}
}

func TestRetry_AttemptTimeout(t *testing.T) {
	p := retryPolicy(2)
	p.AttemptTimeout = resilience.Duration(time.Second)
	p.Breaker = resilience.BreakerPolicy{FailureThreshold: 2}
	e, clk := newExec(t, p)
	spin := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	steps, err := drive(t, clk, func() error { return e.Do(context.Background(), spin) })
	if !errors.Is(err, resilience.ErrAttemptTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if fmt.Sprint(steps) != "[1s 100ms 1s]" {
		t.Fatalf("steps %v", steps)
	}
	if s := e.Stats(); s.Timeouts != 2 || s.Attempts != 2 || s.State != resilience.Open {
		t.Fatalf("stats %+v: timeouts count and are retried", s)
	}
}

func TestRetry_AttemptTimeoutRealClock(t *testing.T) {
	e, err := resilience.New("real", resilience.Policy{
		AttemptTimeout: resilience.Duration(10 * time.Millisecond), Retry: resilience.RetryPolicy{MaxAttempts: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Do(context.Background(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if !errors.Is(err, resilience.ErrAttemptTimeout) || e.Stats().Timeouts != 1 {
		t.Fatalf("err %v", err)
	}
}

func TestRetry_CallerCancelStopsRetrying(t *testing.T) {
	e, clk := newExec(t, retryPolicy(5))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Do(ctx, fail) }()
	if err := clk.WaitTimers(context.Background(), 1); err != nil { // asleep in the backoff
		t.Fatal(err)
	}
	cancel()
	err := recv(t, done)
	var ex *resilience.ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestAttemptFromContext(t *testing.T) {
	e, clk := newExec(t, retryPolicy(3))
	inner, _ := newExec(t, retryPolicy(1))
	var seen, innerSeen []int
	fn := func(ctx context.Context) error {
		seen = append(seen, resilience.AttemptFromContext(ctx))
		_ = inner.Do(ctx, func(ctx context.Context) error {
			innerSeen = append(innerSeen, resilience.AttemptFromContext(ctx))
			return nil
		})
		if len(seen) < 3 {
			return errBoom
		}
		return nil
	}
	_, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) })
	if err != nil || fmt.Sprint(seen) != "[1 2 3]" || fmt.Sprint(innerSeen) != "[1 1 1]" {
		t.Fatalf("err %v seen %v inner %v", err, seen, innerSeen)
	}
	if n := resilience.AttemptFromContext(context.Background()); n != 1 {
		t.Fatalf("outside an executor: %d", n)
	}
}

func TestExecute_ReturnsValue(t *testing.T) {
	e, clk := newExec(t, retryPolicy(3))
	n := 0
	var got string
	_, err := drive(t, clk, func() error {
		var err error
		got, err = resilience.Execute(context.Background(), e, func(context.Context) (string, error) {
			n++
			if n < 2 {
				return "partial", errBoom
			}
			return "done", nil
		})
		return err
	})
	if err != nil || got != "done" {
		t.Fatalf("%q %v", got, err)
	}
	got, err = resilience.Execute(context.Background(), e, func(context.Context) (string, error) {
		return "junk", resilience.MarkPermanent(errBoom)
	})
	if err == nil || got != "" {
		t.Fatalf("failure returned %q %v", got, err)
	}
}

func TestLimiter(t *testing.T) {
	lim := func(wait time.Duration) resilience.Policy {
		return resilience.Policy{
			Retry:   resilience.RetryPolicy{MaxAttempts: 1},
			Breaker: resilience.BreakerPolicy{FailureThreshold: 1},
			Limiter: resilience.LimiterPolicy{MaxConcurrent: 1, MaxQueueWait: resilience.Duration(wait)},
		}
	}
	t.Run("full without queue wait fails at once", func(t *testing.T) {
		e, _ := newExec(t, lim(0))
		g := newGate()
		var wg sync.WaitGroup
		first := async(&wg, func() error { return e.Do(context.Background(), g.fn) })
		waitEntered(t, g, 1)
		err := e.Do(context.Background(), ok)
		if !errors.Is(err, resilience.ErrLimited) {
			t.Fatalf("err %v", err)
		}
		if s := e.Stats(); s.Limited != 1 || s.InFlight != 1 || s.State != resilience.Closed {
			t.Fatalf("stats %+v: a refusal must not count against the breaker", s)
		}
		g.release <- nil
		_ = recv(t, first)
		wg.Wait()
	})
	t.Run("waits for a slot", func(t *testing.T) {
		e, clk := newExec(t, lim(time.Second))
		g := newGate()
		var wg sync.WaitGroup
		first := async(&wg, func() error { return e.Do(context.Background(), g.fn) })
		waitEntered(t, g, 1)
		second := async(&wg, func() error { return e.Do(context.Background(), ok) })
		if err := clk.WaitTimers(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(999 * time.Millisecond)
		g.release <- nil
		if err := recv(t, first); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, second); err != nil {
			t.Fatalf("queued call: %v", err)
		}
		wg.Wait()
	})
	t.Run("queue wait expires", func(t *testing.T) {
		e, clk := newExec(t, lim(time.Second))
		g := newGate()
		var wg sync.WaitGroup
		first := async(&wg, func() error { return e.Do(context.Background(), g.fn) })
		waitEntered(t, g, 1)
		second := async(&wg, func() error { return e.Do(context.Background(), ok) })
		if err := clk.WaitTimers(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		if err := recv(t, second); !errors.Is(err, resilience.ErrLimited) {
			t.Fatalf("err %v", err)
		}
		g.release <- nil
		_ = recv(t, first)
		wg.Wait()
	})
}

func TestChaos(t *testing.T) {
	t.Run("error", func(t *testing.T) {
		p := noRetry(resilience.BreakerPolicy{FailureThreshold: -1})
		p.Chaos.ErrorRate = 1
		e, _ := newExec(t, p)
		called := false
		err := e.Do(context.Background(), func(context.Context) error { called = true; return nil })
		var ce *resilience.ChaosError
		if !errors.As(err, &ce) || ce.Kind != resilience.ChaosKindError || called || e.Stats().ChaosErrors != 1 {
			t.Fatalf("err %v called %v", err, called)
		}
	})
	t.Run("trap", func(t *testing.T) {
		p := noRetry(resilience.BreakerPolicy{FailureThreshold: -1})
		p.Chaos.TrapRate = 1
		e, _ := newExec(t, p)
		err := e.Do(context.Background(), ok)
		var ce *resilience.ChaosError
		if !errors.As(err, &ce) || ce.Kind != resilience.ChaosKindTrap || e.Stats().ChaosTraps != 1 {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("latency", func(t *testing.T) {
		p := noRetry(resilience.BreakerPolicy{})
		p.Chaos = resilience.Chaos{LatencyRate: 1, Latency: resilience.Duration(3 * time.Second)}
		e, clk := newExec(t, p)
		steps, err := drive(t, clk, func() error { return e.Do(context.Background(), ok) })
		if err != nil || fmt.Sprint(steps) != "[3s]" || e.Stats().ChaosLatency != 1 {
			t.Fatalf("err %v steps %v", err, steps)
		}
	})
	t.Run("rate", func(t *testing.T) {
		p := noRetry(resilience.BreakerPolicy{FailureThreshold: -1})
		p.Chaos.ErrorRate = 0.3
		e, _ := newExec(t, p)
		for range 1000 {
			_ = e.Do(context.Background(), ok)
		}
		// binomial(1000, 0.3): sd ≈ 14.5; ±5 sd
		if n := e.Stats().ChaosErrors; n < 228 || n > 372 {
			t.Fatalf("%d injected errors in 1000 calls at rate 0.3", n)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		e, _ := newExec(t, resilience.Policy{})
		for range 100 {
			if err := e.Do(context.Background(), ok); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestRetry_FactorJitterDelaysWithinBounds(t *testing.T) {
	p := retryPolicy(5)
	p.Retry.Jitter = resilience.JitterFactor
	p.Retry.JitterFactor = 0.2
	for seed := range uint64(20) {
		clk := resiliencetest.NewClock(time.Time{})
		e, err := resilience.New("jitter", p, resilience.WithClock(clk), resilience.WithRand(rand.New(rand.NewPCG(seed, 7))))
		if err != nil {
			t.Fatal(err)
		}
		fn, _ := failN(4, errBoom)
		steps, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) })
		if err != nil || len(steps) != 4 {
			t.Fatalf("err %v steps %v", err, steps)
		}
		for i, d := range steps {
			base := 100 * time.Millisecond << i
			if lo, hi := base*8/10, base*12/10; d < lo || d > hi {
				t.Fatalf("seed %d delay %d: %v outside [%v, %v]", seed, i+1, d, lo, hi)
			}
		}
	}
}

func TestExecutor_PanicReleasesSlots(t *testing.T) {
	p := resilience.Policy{
		Retry:   resilience.RetryPolicy{MaxAttempts: 1},
		Breaker: resilience.BreakerPolicy{FailureThreshold: 1, OpenTimeout: resilience.Duration(time.Second), SuccessThreshold: 1},
		Limiter: resilience.LimiterPolicy{MaxConcurrent: 1},
	}
	e, clk := newExec(t, p)
	boom := func() (r any) {
		defer func() { r = recover() }()
		_ = e.Do(context.Background(), func(context.Context) error { panic("guest bug") })
		return nil
	}
	if r := boom(); r != "guest bug" {
		t.Fatalf("panic not propagated: %v", r)
	}
	if s := e.Stats(); s.State != resilience.Open || s.InFlight != 0 {
		t.Fatalf("after a panic: %+v (want open, no slot held)", s)
	}
	clk.Advance(time.Second)
	if r := boom(); r != "guest bug" { // the probe panics: reopen, probe slot freed
		t.Fatal(r)
	}
	clk.Advance(time.Second)
	if err := e.Do(context.Background(), ok); err != nil {
		t.Fatalf("probe after panics: %v", err)
	}
	if st := e.State(); st != resilience.Closed {
		t.Fatalf("state %v", st)
	}
}
