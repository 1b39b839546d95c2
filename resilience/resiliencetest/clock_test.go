package resiliencetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/resilience/resiliencetest"
)

var _ resilience.Clock = (*resiliencetest.Clock)(nil)

func fired(t resilience.Timer) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestClock_Timers(t *testing.T) {
	c := resiliencetest.NewClock(time.Time{})
	start := c.Now()
	a := c.NewTimer(time.Second)
	b := c.NewTimer(3 * time.Second)
	stopped := c.NewTimer(2 * time.Second)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once")
	}
	if c.Timers() != 2 {
		t.Fatalf("timers %d", c.Timers())
	}
	c.Advance(999 * time.Millisecond)
	if fired(a) || fired(b) {
		t.Fatal("fired early")
	}
	c.Advance(time.Millisecond)
	if !fired(a) || fired(b) {
		t.Fatal("a should fire at 1s, b not")
	}
	step, err := c.AdvanceToNext(context.Background())
	if err != nil || step != 2*time.Second || !fired(b) || c.Now().Sub(start) != 3*time.Second {
		t.Fatalf("AdvanceToNext: %v %v", step, err)
	}
	if fired(stopped) {
		t.Fatal("stopped timer fired")
	}
	if !fired(c.NewTimer(0)) {
		t.Fatal("a zero timer fires at once")
	}
}

func TestClock_WaitTimers(t *testing.T) {
	c := resiliencetest.NewClock(time.Time{})
	done := make(chan error)
	go func() { done <- resilience.Sleep(context.Background(), c, time.Minute) }()
	if err := c.WaitTimers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := c.WaitTimers(ctx, 1); err == nil {
		t.Fatal("WaitTimers returned with no timer pending")
	}
}
