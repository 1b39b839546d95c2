package resilience

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// limiter is a counting semaphore that, unlike go-resiliency's semaphore,
// honours the caller's context, uses the injected clock and takes one
// atomic compare-and-swap when a slot is free. Waiters sleep on wake, a
// channel that releases signal while anyone waits; a waiter registers
// before its last try and a releaser frees its slot before looking for
// waiters, so no wake-up is lost.
type limiter struct {
	max      int64
	inflight atomic.Int64
	waiters  atomic.Int64
	wake     chan struct{}
}

func newLimiter(n int) *limiter {
	return &limiter{max: int64(n), wake: make(chan struct{}, n)}
}

func (l *limiter) tryAcquire() bool {
	for {
		n := l.inflight.Load()
		if n >= l.max {
			return false
		}
		if l.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// acquire takes a slot, waiting up to wait (0: not at all, negative: until
// ctx is done). It returns ErrLimited or ctx.Err().
func (l *limiter) acquire(ctx context.Context, clk Clock, wait time.Duration) error {
	if l.tryAcquire() {
		return nil
	}
	if wait == 0 {
		return ErrLimited
	}
	l.waiters.Add(1)
	defer l.waiters.Add(-1)
	var expired <-chan time.Time
	if wait > 0 {
		t := clk.NewTimer(wait)
		defer t.Stop()
		expired = t.C()
	}
	for {
		if l.tryAcquire() {
			return nil
		}
		select {
		case <-l.wake:
		case <-expired:
			return ErrLimited
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *limiter) release() {
	l.inflight.Add(-1)
	if l.waiters.Load() > 0 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

func (l *limiter) inFlight() int { return int(l.inflight.Load()) }

// budget is the retry budget: a token balance fed by calls and drawn by
// retries, plus a per-second floor. Lock-free; small overshoot under races
// is acceptable for a budget.
type budget struct {
	balance atomic.Int64 // milli-tokens
	second  atomic.Int64 // unix second of the floor counter
	used    atomic.Int64 // floor retries used in that second
}

type budgetConfig struct {
	on       bool
	deposit  int64 // milli-tokens per call
	capacity int64 // milli-tokens
	floor    int64 // retries per second
}

func newBudgetConfig(b Budget) budgetConfig {
	if b.Ratio < 0 {
		return budgetConfig{}
	}
	return budgetConfig{
		on:       true,
		deposit:  int64(math.Round(b.Ratio * 1000)),
		capacity: int64(max(10, 100*b.Ratio) * 1000),
		floor:    int64(max(b.MinPerSecond, 0)),
	}
}

func (b *budget) deposit(c *budgetConfig) {
	if c.on && b.balance.Load() < c.capacity {
		b.balance.Add(c.deposit)
	}
}

// withdraw reports whether a retry may go ahead, taking a token or a
// floor slot.
func (b *budget) withdraw(c *budgetConfig, now time.Time) bool {
	if !c.on {
		return true
	}
	for {
		v := b.balance.Load()
		if v < 1000 {
			break
		}
		if b.balance.CompareAndSwap(v, v-1000) {
			return true
		}
	}
	if c.floor <= 0 {
		return false
	}
	sec := now.Unix()
	if old := b.second.Load(); old != sec && b.second.CompareAndSwap(old, sec) {
		b.used.Store(0)
	}
	return b.used.Add(1) <= c.floor
}
