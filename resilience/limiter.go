package resilience

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// limiter is a counting semaphore over a buffered channel that, unlike
// go-resiliency's semaphore, honours the caller's context, uses the
// injected clock and allocates nothing when a slot is free.
type limiter struct{ sem chan struct{} }

func newLimiter(n int) *limiter { return &limiter{sem: make(chan struct{}, n)} }

// acquire takes a slot, waiting up to wait (0: not at all, negative: until
// ctx is done). It returns ErrLimited or ctx.Err().
func (l *limiter) acquire(ctx context.Context, clk Clock, wait time.Duration) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	default:
	}
	if wait == 0 {
		return ErrLimited
	}
	var expired <-chan time.Time
	if wait > 0 {
		t := clk.NewTimer(wait)
		defer t.Stop()
		expired = t.C()
	}
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-expired:
		return ErrLimited
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *limiter) release() { <-l.sem }

func (l *limiter) inFlight() int { return len(l.sem) }

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
