package resilience_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
)

// TestDoDeadline_AttemptTimeout: on the real clock fn gets the attempt's
// deadline instead of a bounded context; failing past it is an attempt
// timeout, counted and retried as with Do.
func TestDoDeadline_AttemptTimeout(t *testing.T) {
	e, err := resilience.New("dl", resilience.Policy{
		AttemptTimeout: resilience.Duration(20 * time.Millisecond),
		Retry:          resilience.RetryPolicy{MaxAttempts: 2, InitialDelay: resilience.Duration(time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var deadlines []time.Time
	start := time.Now()
	err = e.DoDeadline(context.Background(), func(ctx context.Context, dl time.Time) error {
		if _, ok := ctx.Deadline(); ok {
			t.Error("fn's context has a deadline: the attempt timeout is fn's to enforce")
		}
		deadlines = append(deadlines, dl)
		time.Sleep(time.Until(dl)) // a guest stopped at its deadline
		return context.DeadlineExceeded
	})
	if !errors.Is(err, resilience.ErrAttemptTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if s := e.Stats(); s.Timeouts != 2 || s.Attempts != 2 {
		t.Fatalf("stats %+v: both attempts timed out", s)
	}
	if len(deadlines) != 2 || deadlines[0].Sub(start) < 20*time.Millisecond || deadlines[0].Sub(start) > time.Second || !deadlines[1].After(deadlines[0]) {
		t.Fatalf("deadlines %v (start %v): each attempt gets its own, AttemptTimeout after it starts", deadlines, start)
	}
}

// TestDoDeadline_FailureBeforeDeadlineIsNoTimeout: an error returned
// before the deadline is classified as it is.
func TestDoDeadline_FailureBeforeDeadlineIsNoTimeout(t *testing.T) {
	e, err := resilience.New("dl", resilience.Policy{
		AttemptTimeout: resilience.Duration(time.Minute),
		Retry:          resilience.RetryPolicy{MaxAttempts: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = e.DoDeadline(context.Background(), func(context.Context, time.Time) error { return boom })
	if !errors.Is(err, boom) || errors.Is(err, resilience.ErrAttemptTimeout) || e.Stats().Timeouts != 0 {
		t.Fatalf("err %v, stats %+v", err, e.Stats())
	}
}

// TestDoDeadline_NoAttemptTimeout: without AttemptTimeout the deadline is
// zero.
func TestDoDeadline_NoAttemptTimeout(t *testing.T) {
	e, err := resilience.New("dl", resilience.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	err = e.DoDeadline(context.Background(), func(_ context.Context, dl time.Time) error {
		if !dl.IsZero() {
			t.Errorf("deadline %v, want zero", dl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDoDeadline_OtherClockBoundsContext: on a clock other than the real
// one the deadline is that clock's, so DoDeadline bounds fn's context as
// Do does and passes a zero deadline.
func TestDoDeadline_OtherClockBoundsContext(t *testing.T) {
	p := retryPolicy(1)
	p.AttemptTimeout = resilience.Duration(time.Second)
	e, clk := newExec(t, p)
	steps, err := drive(t, clk, func() error {
		return e.DoDeadline(context.Background(), func(ctx context.Context, dl time.Time) error {
			if !dl.IsZero() {
				t.Errorf("deadline %v, want zero", dl)
			}
			<-ctx.Done()
			return ctx.Err()
		})
	})
	if !errors.Is(err, resilience.ErrAttemptTimeout) || len(steps) != 1 || steps[0] != time.Second {
		t.Fatalf("err %v steps %v", err, steps)
	}
}

// TestDoDeadline_AllocatesNothing: a successful attempt under an attempt
// timeout allocates nothing (Do's context.WithTimeout allocates a timer).
func TestDoDeadline_AllocatesNothing(t *testing.T) {
	e, err := resilience.New("dl", resilience.Policy{
		AttemptTimeout: resilience.Duration(time.Minute),
		Limiter:        resilience.LimiterPolicy{MaxConcurrent: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fn := func(context.Context, time.Time) error { return nil }
	if n := testing.AllocsPerRun(100, func() { _ = e.DoDeadline(ctx, fn) }); n != 0 {
		t.Fatalf("DoDeadline allocates %v times per call", n)
	}
}
