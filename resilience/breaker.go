package resilience

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State is a breaker state.
type State uint32

// Breaker states.
const (
	Closed State = iota
	Open
	HalfOpen
)

var stateNames = [...]string{"closed", "open", "half-open"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// MarshalText implements encoding.TextMarshaler ("closed", "open", "half-open").
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: it reads what
// MarshalText writes and refuses anything else.
func (s *State) UnmarshalText(b []byte) error {
	i := slices.Index(stateNames[:], string(b))
	if i < 0 {
		return fmt.Errorf("resilience: unknown breaker state %q (want closed, open or half-open)", b)
	}
	*s = State(i)
	return nil
}

type outcome uint8

const (
	outcomeSuccess outcome = iota
	outcomeFailure
	outcomeNeutral // admitted but not counted: excluded classes, limiter refusals
)

type breakerConfig struct {
	failureThreshold int64 // <= 0: consecutive rule off
	rateOn           bool
	rate             float64
	window           time.Duration
	minCalls         int
	successThreshold int
	openTimeout      time.Duration
	maxProbes        int
}

func newBreakerConfig(p BreakerPolicy) breakerConfig {
	return breakerConfig{
		failureThreshold: int64(p.FailureThreshold),
		rateOn:           p.FailureRate > 0,
		rate:             p.FailureRate,
		window:           p.Window.D(),
		minCalls:         p.MinimumCalls,
		successThreshold: p.SuccessThreshold,
		openTimeout:      p.OpenTimeout.D(),
		maxProbes:        p.HalfOpenMaxProbes,
	}
}

type transition struct{ from, to State }

// breaker is the circuit breaker. The closed-state success path is
// lock-free: state and generation are packed in one atomic word, and the
// consecutive-failure count is atomic. Everything else happens under mu.
// Lock order: hookMu before mu.
type breaker struct {
	name   string
	clock  Clock
	hook   func(name string, from, to State)
	logger *slog.Logger

	packed    atomic.Uint64 // generation<<2 | state
	openUntil atomic.Int64  // UnixNano when an open breaker half-opens
	consec    atomic.Int64  // consecutive counted failures while closed
	rateOn    atomic.Bool
	opens     atomic.Uint64

	mu      sync.Mutex
	cfg     breakerConfig
	probes  int // half-open calls in flight
	halfOK  int // successful probes in this half-open period
	win     rateWindow
	pending []transition

	hookMu sync.Mutex
}

func (b *breaker) init(name string, cfg breakerConfig, o *options) {
	b.name, b.clock, b.hook, b.logger = name, o.clock, o.stateChange, o.logger
	b.configure(cfg)
}

func (b *breaker) configure(cfg breakerConfig) {
	b.mu.Lock()
	if cfg.window != b.cfg.window {
		b.win.reset(cfg.window)
	}
	b.cfg = cfg
	b.rateOn.Store(cfg.rateOn)
	b.mu.Unlock()
}

func (b *breaker) state() State { return State(b.packed.Load() & 3) }

// allow admits a call. It returns the generation to hand back to record,
// or ok=false with how long until the breaker half-opens (0 when it is
// half-open with every probe slot taken).
func (b *breaker) allow() (gen uint64, ok bool, wait time.Duration) {
	s := b.packed.Load()
	switch State(s & 3) {
	case Closed:
		return s >> 2, true, 0
	case Open: // fail fast without the lock while the timeout runs
		if wait := b.openUntil.Load() - b.clock.Now().UnixNano(); wait > 0 {
			return 0, false, time.Duration(wait)
		}
	}
	b.mu.Lock()
	s = b.packed.Load()
	switch State(s & 3) {
	case Closed:
		b.mu.Unlock()
		return s >> 2, true, 0
	case Open:
		now := b.clock.Now()
		if wait := b.openUntil.Load() - now.UnixNano(); wait > 0 {
			b.mu.Unlock()
			return 0, false, time.Duration(wait)
		}
		b.setState(HalfOpen, now)
	}
	// half-open
	fire := len(b.pending) > 0
	if b.probes < b.cfg.maxProbes {
		b.probes++
		gen = b.packed.Load() >> 2
		ok = true
	}
	b.mu.Unlock()
	if fire {
		b.fire()
	}
	return gen, ok, 0
}

// record reports the result of a call admitted in generation gen. Results
// from an older generation are ignored.
func (b *breaker) record(gen uint64, o outcome) {
	s := b.packed.Load()
	if State(s&3) == Closed && s>>2 == gen {
		switch o {
		case outcomeNeutral:
			return
		case outcomeSuccess:
			if b.consec.Load() == 0 {
				if b.rateOn.Load() {
					b.win.add(b.clock.Now(), false)
				}
				return
			}
		}
	}
	b.mu.Lock()
	s = b.packed.Load()
	if s>>2 != gen {
		b.mu.Unlock()
		return
	}
	switch State(s & 3) {
	case Closed:
		var now time.Time
		if b.cfg.rateOn {
			now = b.clock.Now()
		}
		trip := false
		switch o {
		case outcomeSuccess:
			b.consec.Store(0)
			if b.cfg.rateOn {
				b.win.add(now, false)
			}
		case outcomeFailure:
			c := b.consec.Add(1)
			trip = b.cfg.failureThreshold > 0 && c >= b.cfg.failureThreshold
			if b.cfg.rateOn {
				b.win.add(now, true)
				calls, fails := b.win.sum(now)
				if calls >= b.cfg.minCalls && float64(fails)/float64(calls) > b.cfg.rate {
					trip = true
				}
			}
		}
		if trip {
			if now.IsZero() {
				now = b.clock.Now()
			}
			b.setState(Open, now)
		}
	case HalfOpen:
		b.probes--
		switch o {
		case outcomeSuccess:
			b.halfOK++
			if b.halfOK >= b.cfg.successThreshold {
				b.setState(Closed, time.Time{})
			}
		case outcomeFailure:
			b.setState(Open, b.clock.Now())
		}
	}
	fire := len(b.pending) > 0
	b.mu.Unlock()
	if fire {
		b.fire()
	}
}

// current returns the state, half-opening an open breaker whose timeout
// has passed.
func (b *breaker) current() State {
	st := b.state()
	if st != Open {
		return st
	}
	b.mu.Lock()
	if b.state() == Open && b.clock.Now().UnixNano() >= b.openUntil.Load() {
		b.setState(HalfOpen, time.Time{})
	}
	st = b.state()
	fire := len(b.pending) > 0
	b.mu.Unlock()
	if fire {
		b.fire()
	}
	return st
}

// reset closes the breaker whatever its state.
func (b *breaker) reset() {
	b.mu.Lock()
	if b.state() != Closed {
		b.setState(Closed, time.Time{})
	}
	fire := len(b.pending) > 0
	b.mu.Unlock()
	if fire {
		b.fire()
	}
}

// setState moves to a new generation. Caller holds mu.
func (b *breaker) setState(to State, now time.Time) {
	s := b.packed.Load()
	from := State(s & 3)
	b.packed.Store((s>>2+1)<<2 | uint64(to))
	b.consec.Store(0)
	b.probes, b.halfOK = 0, 0
	b.win.reset(b.cfg.window)
	if to == Open {
		b.openUntil.Store(now.Add(b.cfg.openTimeout).UnixNano())
		b.opens.Add(1)
	}
	b.pending = append(b.pending, transition{from, to})
}

// fire reports pending transitions in order, outside mu.
func (b *breaker) fire() {
	b.hookMu.Lock()
	defer b.hookMu.Unlock()
	b.mu.Lock()
	q := b.pending
	b.pending = nil
	b.mu.Unlock()
	for _, t := range q {
		b.logger.Info("breaker state change", logKeyExecutor, b.name, logKeyFrom, t.from.String(), logKeyTo, t.to.String())
		if b.hook != nil {
			b.hook(b.name, t.from, t.to)
		}
	}
}

const rateBuckets = 10

// rateWindow counts calls and failures over a sliding window made of
// rateBuckets buckets. Its counters are atomic so that successes are
// recorded without the breaker's lock; a bucket rolling over while
// another goroutine adds to it may lose that one count, which a failure
// rate tolerates.
type rateWindow struct {
	width   atomic.Int64 // nanoseconds per bucket
	buckets [rateBuckets]struct {
		epoch        atomic.Int64
		calls, fails atomic.Int64
	}
}

func (w *rateWindow) reset(window time.Duration) {
	w.width.Store(max(int64(window)/rateBuckets, 1))
	for i := range w.buckets {
		bk := &w.buckets[i]
		bk.epoch.Store(-1)
		bk.calls.Store(0)
		bk.fails.Store(0)
	}
}

func (w *rateWindow) add(now time.Time, fail bool) {
	ep := now.UnixNano() / w.width.Load()
	bk := &w.buckets[ep%rateBuckets]
	if old := bk.epoch.Load(); old != ep && bk.epoch.CompareAndSwap(old, ep) {
		bk.calls.Store(0)
		bk.fails.Store(0)
	}
	bk.calls.Add(1)
	if fail {
		bk.fails.Add(1)
	}
}

func (w *rateWindow) sum(now time.Time) (calls, fails int) {
	ep := now.UnixNano() / w.width.Load()
	for i := range w.buckets {
		bk := &w.buckets[i]
		if e := bk.epoch.Load(); e >= 0 && ep-e < rateBuckets {
			calls += int(bk.calls.Load())
			fails += int(bk.fails.Load())
		}
	}
	return calls, fails
}
