package resilience_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/resilience/resiliencetest"
)

func TestMain(m *testing.M) {
	// go-resiliency's breaker (used only in comparison tests) times its
	// open state with a goroutine sleeping through the whole timeout,
	// which nothing can stop.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"))
}

var errBoom = errors.New("boom")

// newExec builds an executor on a fake clock with seeded randomness.
func newExec(t *testing.T, p resilience.Policy, opts ...resilience.Option) (*resilience.Executor, *resiliencetest.Clock) {
	t.Helper()
	clk := resiliencetest.NewClock(time.Time{})
	opts = append([]resilience.Option{resilience.WithClock(clk), resilience.WithRand(rand.New(rand.NewPCG(1, 2)))}, opts...)
	e, err := resilience.New(t.Name(), p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e, clk
}

// noRetry is a policy with one attempt and the given breaker.
func noRetry(b resilience.BreakerPolicy) resilience.Policy {
	return resilience.Policy{Breaker: b, Retry: resilience.RetryPolicy{MaxAttempts: 1}}
}

func fail(context.Context) error { return errBoom }
func ok(context.Context) error   { return nil }

// drive runs do in a goroutine and advances clk to each timer it waits
// on until do returns; it returns the steps taken and do's error.
func drive(t *testing.T, clk *resiliencetest.Clock, do func() error) ([]time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- do() }()
	var steps []time.Duration
	for {
		select {
		case err := <-done:
			return steps, err
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		step, err := clk.AdvanceToNext(ctx)
		cancel()
		if err == nil {
			steps = append(steps, step)
		}
		if len(steps) > 1000 {
			t.Fatal("drive: too many steps")
		}
	}
}

// gate is a function that blocks until released, reporting entry.
type gate struct {
	entered chan struct{}
	release chan error
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 100), release: make(chan error)} }

func (g *gate) fn(ctx context.Context) error {
	g.entered <- struct{}{}
	select {
	case err := <-g.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func waitEntered(t *testing.T, g *gate, n int) {
	t.Helper()
	for range n {
		select {
		case <-g.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("call did not enter the function")
		}
	}
}

// async runs f in a goroutine and returns a channel with its error.
func async(wg *sync.WaitGroup, f func() error) <-chan error {
	ch := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ch <- f()
	}()
	return ch
}

func recv(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("call did not return")
		return nil
	}
}
