package resilience_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eapache/go-resiliency/breaker"
	"github.com/eapache/go-resiliency/retrier"

	"github.com/bulkhead-run/bulkhead/resilience"
)

// These tests pin down why resilience does not wrap go-resiliency's
// breaker (see doc.go). Each runs the same scenario against it and
// against ours.

func TestGoResiliencyBreaker_NeverDecaysErrors(t *testing.T) {
	// 3 errors spread among 30,000 successes, threshold 3, 1-minute window.
	theirs := breaker.New(3, 1, time.Minute)
	ours, _ := newExec(t, noRetry(resilience.BreakerPolicy{FailureThreshold: 3, OpenTimeout: resilience.Duration(time.Minute)}))
	for i := range 30_003 {
		var err error
		if i%10_000 == 9_999 {
			err = errBoom
		}
		_ = theirs.Run(func() error { return err })
		_ = ours.Do(context.Background(), func(context.Context) error { return err })
	}
	if err := theirs.Run(func() error { return nil }); !errors.Is(err, breaker.ErrBreakerOpen) {
		t.Fatalf("go-resiliency: %v; expected its breaker to have opened (successes do not decay errors)", err)
	}
	if st := ours.State(); st != resilience.Closed {
		t.Fatalf("ours: %v, want closed", st)
	}
}

func TestGoResiliencyBreaker_HalfOpenAdmitsEveryone(t *testing.T) {
	// go-resiliency sleeps on the wall clock: a short real timeout.
	theirs := breaker.New(1, 1, 20*time.Millisecond)
	_ = theirs.Run(func() error { return errBoom })
	deadline := time.Now().Add(5 * time.Second)
	for theirs.GetState() != breaker.HalfOpen && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	const callers = 8
	var entered atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = theirs.Run(func() error { entered.Add(1); <-release; return nil })
		}()
	}
	for entered.Load() < callers && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := entered.Load(); got != callers {
		t.Fatalf("go-resiliency half-open let %d of %d callers in; expected all", got, callers)
	}
}

func TestBreaker_HalfOpenAdmitsOnlyProbes(t *testing.T) {
	// Same scenario as above against ours: HalfOpenMaxProbes 1.
	e, clk := newExec(t, noRetry(resilience.BreakerPolicy{FailureThreshold: 1, OpenTimeout: resilience.Duration(20 * time.Millisecond)}))
	_ = e.Do(context.Background(), fail)
	clk.Advance(20 * time.Millisecond)
	const callers = 8
	var entered atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	var rejected atomic.Int32
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.Do(context.Background(), func(context.Context) error { entered.Add(1); <-release; return nil })
			if errors.Is(err, resilience.ErrCircuitOpen) {
				rejected.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for entered.Load()+rejected.Load() < callers && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if entered.Load() != 1 || rejected.Load() != callers-1 {
		t.Fatalf("entered %d rejected %d, want 1 and %d", entered.Load(), rejected.Load(), callers-1)
	}
}

func TestGoResiliencyBackoff_Overflows(t *testing.T) {
	// go-resiliency doubles without a cap or overflow check.
	delays := retrier.ExponentialBackoff(40, 100*time.Millisecond)
	negative := -1
	for i, d := range delays {
		if d < 0 {
			negative = i
			break
		}
	}
	if negative < 0 {
		t.Fatal("expected go-resiliency's exponential backoff to overflow")
	}
	t.Logf("go-resiliency ExponentialBackoff(40, 100ms) is negative from retry %d", negative+1)
}

func TestFromRetrierClassifier(t *testing.T) {
	errRate := errors.New("429")
	e, clk := newExec(t, retryPolicy(3), resilience.WithClassifier(
		resilience.FromRetrierClassifier(retrier.WhitelistClassifier{errRate})))
	fn, calls := failN(10, errRate)
	if _, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) }); !errors.Is(err, errRate) || *calls != 3 {
		t.Fatalf("whitelisted: %v after %d calls", err, *calls)
	}
	fn, calls = failN(10, errBoom)
	if _, err := drive(t, clk, func() error { return e.Do(context.Background(), fn) }); !errors.Is(err, errBoom) || *calls != 1 {
		t.Fatalf("not whitelisted: %v after %d calls", err, *calls)
	}
}
