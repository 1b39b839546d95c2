package fuel

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"time"
)

// DefaultSlice is the fuel handed to a guest per refill when a Meter is
// created with slice <= 0, and by Refill for a context without a Meter. It
// bounds the time a guest runs between two host checks (deadline, cancel,
// budget, and a point where the Go scheduler and garbage collector can stop
// the goroutine). See doc.go for the measurement behind the value.
const DefaultSlice int64 = 1 << 20

// Meter accounts the fuel of one guest call. Create one per call with
// NewMeter, attach it to the call's context with WithMeter, and read Used
// when the call returns. Its methods are safe for concurrent use; Refill is
// called on the goroutine running the guest.
type Meter struct {
	budget int64
	slice  int64
	// granted is the fuel handed to the guest so far; used = granted minus
	// the guest's counter, which the guest reports on every refill.
	granted atomic.Int64
	used    atomic.Int64
	// growFailed: a memory.grow of the call failed (see GrowFailedCounter).
	growFailed atomic.Bool
	// yielded is when the guest last yielded its P (monotonic nanoseconds
	// since clockEpoch, cheaper to read than the wall clock); it
	// is only touched on the goroutine running the guest.
	yielded int64
	// refilled is set by the call's first refill for more fuel (the one
	// every export makes on entry, see Instrument), which skips the
	// clock read of the yield check: the call has only just started. Only
	// touched on the goroutine running the guest.
	refilled bool
}

// clockEpoch is the origin of Meter.yielded.
var clockEpoch = time.Now()

// yieldEvery is how often a running guest yields its P to the Go
// scheduler at a refill.
const yieldEvery = 500 * time.Microsecond

// NewMeter returns a Meter for one call. budget is the most fuel the call
// may use (about one Wasm instruction per unit); budget <= 0 means no limit,
// so only the context stops the guest. slice is the fuel handed out per
// refill; slice <= 0 means DefaultSlice.
func NewMeter(budget, slice int64) *Meter {
	if slice <= 0 {
		slice = DefaultSlice
	}
	return &Meter{budget: budget, slice: slice}
}

// Reset makes m a new Meter for another call, as NewMeter(budget, slice)
// would, without allocating; the call started at start, so the guest's
// first yield (see Refill) is due yieldEvery after it. No other goroutine
// may use m meanwhile.
func (m *Meter) Reset(budget, slice int64, start time.Time) {
	if slice <= 0 {
		slice = DefaultSlice
	}
	m.budget, m.slice, m.yielded, m.refilled = budget, slice, int64(start.Sub(clockEpoch)), false
	m.granted.Store(0)
	m.used.Store(0)
	m.growFailed.Store(false)
}

// Used returns the fuel the call has used so far: exact once the call has
// returned normally or stopped in a refill (budget, deadline, cancel). After
// any other trap it is the amount at the last refill, short by at most one
// slice.
func (m *Meter) Used() int64 { return m.used.Load() }

// Budget returns the budget the Meter was created with (<= 0: none).
func (m *Meter) Budget() int64 { return m.budget }

// GrowFailedCounter, passed to refill as the counter, reports a failed
// memory.grow (the instrumented module does so after every memory.grow
// that returns -1). No real counter reaches it.
const GrowFailedCounter int64 = math.MinInt64

// StackExhaustedCounter, passed to refill as the counter, reports a call
// that would take the call stack past its bound (see Options.MaxStack):
// Refill returns ErrStackExhausted. No real counter reaches it.
const StackExhaustedCounter int64 = math.MinInt64 + 1

// GrowFailed reports whether a memory.grow failed during the call: the
// guest asked for more memory than its limit allows. wazero reports such a
// grow only by returning -1 to the guest.
func (m *Meter) GrowFailed() bool { return m.growFailed.Load() }

type meterKey struct{}

// WithMeter returns a context carrying m, for the call that m meters.
func WithMeter(ctx context.Context, m *Meter) context.Context {
	return context.WithValue(ctx, meterKey{}, m)
}

// IsMeterKey reports whether key is the context key MeterFrom looks up. A
// context type that carries its call's Meter itself (a pooled call
// context) answers Value for that key, without the allocation of WithMeter.
func IsMeterKey(key any) bool {
	_, ok := key.(meterKey)
	return ok
}

// MeterFrom returns the Meter carried by ctx, or nil.
func MeterFrom(ctx context.Context) *Meter {
	m, _ := ctx.Value(meterKey{}).(*Meter)
	return m
}

// Refill implements the host side of the refill import for the call running
// under ctx; counter is the guest's fuel counter.
//
// A negative counter means the guest is out of fuel: Refill returns the
// context's error (wrapped; errors.Is matches context.DeadlineExceeded or
// context.Canceled) if ctx is done, ErrBudgetExhausted (wrapped) if the
// call's budget is used up, and otherwise the counter's new value: the next
// slice, less the debt, capped by the remaining budget. The host must turn
// an error into a trap (panic with it from the host function).
//
// A non-negative counter is the report an exported function makes when it
// returns: Refill settles the Meter and returns counter unchanged, without
// checking ctx.
//
// Without a Meter in ctx, Refill only checks ctx and hands out
// DefaultSlice.
//
// A counter of GrowFailedCounter is not a counter: the guest reports that a
// memory.grow failed (see Meter.GrowFailed); Refill returns 0, which the
// guest drops. A counter of StackExhaustedCounter is a guest whose call
// stack reached its bound: Refill returns ErrStackExhausted.
func Refill(ctx context.Context, counter int64) (int64, error) {
	m := MeterFrom(ctx)
	if counter == StackExhaustedCounter {
		return counter, ErrStackExhausted
	}
	if counter == GrowFailedCounter {
		if m != nil {
			m.growFailed.Store(true)
		}
		return 0, nil
	}
	if counter >= 0 {
		if m != nil {
			m.used.Store(m.granted.Load() - counter)
		}
		return counter, nil
	}
	if m == nil {
		if err := ctx.Err(); err != nil {
			return counter, fmt.Errorf("fuel: guest stopped: %w", err)
		}
		return DefaultSlice, nil
	}
	granted := m.granted.Load()
	used := granted - counter
	m.used.Store(used)
	if err := ctx.Err(); err != nil {
		return counter, fmt.Errorf("fuel: guest stopped after %d units: %w", used, err)
	}
	next := m.slice
	if m.budget > 0 {
		if used > m.budget {
			return counter, fmt.Errorf("%w: used %d of %d", ErrBudgetExhausted, used, m.budget)
		}
		next = min(next, m.budget-used)
	}
	m.granted.Store(used + next)
	// A spinning guest never blocks, so other goroutines get its P only
	// at async preemption (every 10 ms). runtime.GC yields between sweep
	// steps: with more spinning guests than Ps it took ~270 ms here. So a
	// guest yields at a refill every yieldEvery (not every refill: each
	// yield may move it to another thread, which cost ~8 % when done at
	// every slice). The first refill of a call, on entry, does not
	// check: the call has only just started, and the next refill is at
	// most a slice away.
	if !m.refilled {
		m.refilled = true
	} else if now := int64(time.Since(clockEpoch)); now-m.yielded >= int64(yieldEvery) {
		m.yielded = now
		runtime.Gosched()
	}
	return next, nil
}
