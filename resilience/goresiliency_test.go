package resilience_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eapache/go-resiliency/breaker"

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
	if testing.Short() {
		t.Skip("waits on go-resiliency's real-time open timeout")
	}
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
