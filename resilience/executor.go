package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Executor runs functions through the pipeline of one Policy, outermost
// first: retry ⊃ breaker ⊃ limiter ⊃ attempt timeout (⊃ chaos ⊃ fn). It is
// safe for concurrent use; its breaker, limiter and retry budget are shared
// by every call.
type Executor struct {
	name   string
	opts   options
	cfg    atomic.Pointer[compiled]
	br     breaker
	budget budget
	st     counters
	setMu  sync.Mutex // serialises SetPolicy
}

// compiled is a Policy turned into what the hot path reads.
type compiled struct {
	policy         Policy
	maxAttempts    int
	backoff        backoffConfig
	totalDeadline  time.Duration
	budget         budgetConfig
	lim            *limiter
	queueWait      time.Duration
	attemptTimeout time.Duration
	chaos          bool
	chaosCfg       Chaos
}

type counters struct {
	calls, successes, failures      atomic.Uint64
	attempts, retries               atomic.Uint64
	rejected, limited, budgetDenied atomic.Uint64
	timeouts, breakerWaits          atomic.Uint64
	chaosErrors, chaosTraps         atomic.Uint64
	chaosLatency                    atomic.Uint64
}

// Stats is a snapshot of an executor's counters.
type Stats struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// Calls is the number of Do/Execute calls; Successes and Failures
	// split the finished ones.
	Calls     uint64 `json:"calls"`
	Successes uint64 `json:"successes"`
	Failures  uint64 `json:"failures"`
	// Attempts counts attempts (fn entered or limiter refused); Retries the
	// attempts after the first.
	Attempts uint64 `json:"attempts"`
	Retries  uint64 `json:"retries"`
	// Rejected counts breaker refusals (ErrCircuitOpen), BreakerWaits the
	// retries that waited for the breaker to half-open, Limited the
	// limiter refusals, BudgetDenied the retries the budget refused,
	// Timeouts the attempts cut by AttemptTimeout.
	Rejected     uint64 `json:"rejected"`
	BreakerWaits uint64 `json:"breaker_waits"`
	Limited      uint64 `json:"limited"`
	BudgetDenied uint64 `json:"budget_denied"`
	Timeouts     uint64 `json:"timeouts"`
	// Opens counts how often the breaker opened.
	Opens uint64 `json:"opens"`
	// ConsecutiveFailures is the breaker's current count; InFlight the
	// attempts holding a limiter slot (0 without a limiter).
	ConsecutiveFailures int64 `json:"consecutive_failures"`
	InFlight            int   `json:"in_flight"`
	// Chaos injections.
	ChaosErrors  uint64 `json:"chaos_errors"`
	ChaosTraps   uint64 `json:"chaos_traps"`
	ChaosLatency uint64 `json:"chaos_latency"`
}

// New validates p, fills its defaults and returns an executor named name
// (the name appears in hooks, logs and Stats).
func New(name string, p Policy, opts ...Option) (*Executor, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := &Executor{name: name, opts: buildOptions(opts)}
	c := compile(p, nil)
	e.cfg.Store(c)
	e.br.init(name, newBreakerConfig(c.policy.Breaker), &e.opts)
	return e, nil
}

func compile(p Policy, old *compiled) *compiled {
	p = p.WithDefaults()
	c := &compiled{
		policy:      p,
		maxAttempts: p.Retry.MaxAttempts,
		backoff: backoffConfig{
			initial: p.Retry.InitialDelay.D(), maxDelay: p.Retry.MaxDelay.D(),
			multiplier: p.Retry.Multiplier, jitter: p.Retry.Jitter, factor: p.Retry.JitterFactor,
		},
		totalDeadline:  p.Retry.TotalDeadline.D(),
		budget:         newBudgetConfig(p.Retry.Budget),
		queueWait:      p.Limiter.MaxQueueWait.D(),
		attemptTimeout: p.AttemptTimeout.D(),
		chaos:          p.Chaos.Enabled(),
		chaosCfg:       p.Chaos,
	}
	if n := p.Limiter.MaxConcurrent; n > 0 {
		if old != nil && old.lim != nil && old.lim.max == int64(n) {
			c.lim = old.lim
		} else {
			c.lim = newLimiter(n)
		}
	}
	return c
}

// Name returns the executor's name.
func (e *Executor) Name() string { return e.name }

// Policy returns the current policy, defaults filled in.
func (e *Executor) Policy() Policy { return e.cfg.Load().policy }

// SetPolicy validates p and swaps it in. Breaker state, counters and the
// retry budget carry over; calls in flight finish under the policy they
// started with. A changed MaxConcurrent starts a fresh limiter (attempts
// in flight release their slot to the old one).
func (e *Executor) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	e.setMu.Lock()
	defer e.setMu.Unlock()
	c := compile(p, e.cfg.Load())
	e.br.configure(newBreakerConfig(c.policy.Breaker))
	e.cfg.Store(c)
	return nil
}

// State returns the breaker state (an open breaker whose timeout has
// passed reports, and becomes, half-open).
func (e *Executor) State() State { return e.br.current() }

// ResetBreaker closes the breaker, for instance after the protected
// resource was rebuilt.
func (e *Executor) ResetBreaker() { e.br.reset() }

// Stats returns a snapshot of the counters.
func (e *Executor) Stats() Stats {
	s := Stats{
		Name:                e.name,
		State:               e.State(),
		Calls:               e.st.calls.Load(),
		Successes:           e.st.successes.Load(),
		Failures:            e.st.failures.Load(),
		Attempts:            e.st.attempts.Load(),
		Retries:             e.st.retries.Load(),
		Rejected:            e.st.rejected.Load(),
		BreakerWaits:        e.st.breakerWaits.Load(),
		Limited:             e.st.limited.Load(),
		BudgetDenied:        e.st.budgetDenied.Load(),
		Timeouts:            e.st.timeouts.Load(),
		Opens:               e.br.opens.Load(),
		ConsecutiveFailures: e.br.consec.Load(),
		ChaosErrors:         e.st.chaosErrors.Load(),
		ChaosTraps:          e.st.chaosTraps.Load(),
		ChaosLatency:        e.st.chaosLatency.Load(),
	}
	if l := e.cfg.Load().lim; l != nil {
		s.InFlight = l.inFlight()
	}
	return s
}

type attemptKey struct{}

// AttemptFromContext returns the 1-based number of the attempt whose
// context ctx is (or derives from). Outside any executor it returns 1: a
// plain call is a first attempt.
func AttemptFromContext(ctx context.Context) int {
	if n, ok := ctx.Value(attemptKey{}).(int); ok {
		return n
	}
	return 1
}

// Execute runs fn through e like Do and returns its result.
func Execute[T any](ctx context.Context, e *Executor, fn func(ctx context.Context) (T, error)) (T, error) {
	var out T
	err := e.Do(ctx, func(ctx context.Context) error {
		v, err := fn(ctx)
		if err == nil {
			out = v
		}
		return err
	})
	return out, err
}

// Do runs fn through the pipeline and returns nil on success. When no
// attempt ran it returns ErrCircuitOpen (the breaker rejected the first
// attempt) or the caller's context error. Otherwise it returns an
// *ExhaustedError holding every attempt's error.
//
// Retries: an attempt whose error classifies as Retryable is retried after
// the backoff delay (or the error's RetryAfter hint, capped by MaxDelay),
// while attempts remain, the retry budget allows and TotalDeadline is not
// passed. A retry that finds the breaker open waits until it half-opens,
// without using an attempt, if that moment falls before the deadline
// (TotalDeadline or the caller's, compared on the executor's clock);
// otherwise the call ends with Cause ErrCircuitOpen. A first attempt that
// finds the breaker open fails fast with ErrCircuitOpen, unless the
// policy sets WaitOnOpen.
func (e *Executor) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	return e.do(ctx, fn, nil)
}

// DoDeadline is Do for an fn that enforces its attempt's deadline itself.
// Instead of a context that AttemptTimeout bounds, which costs a timer and
// a context per attempt, fn gets the attempt's deadline (zero when the
// policy has no AttemptTimeout) and must return by then; an attempt that
// fails at or after its deadline is an attempt timeout, as with Do. On a
// clock other than RealClock, or with Chaos, it is Do: fn's context carries
// the deadline and the deadline argument is zero.
func (e *Executor) DoDeadline(ctx context.Context, fn func(ctx context.Context, deadline time.Time) error) error {
	return e.do(ctx, nil, fn)
}

// do is Do with fn, or DoDeadline with fnd.
func (e *Executor) do(ctx context.Context, fn func(context.Context) error, fnd func(context.Context, time.Time) error) error {
	c := e.cfg.Load()
	e.st.calls.Add(1)
	e.budget.deposit(&c.budget)
	var deadline time.Time
	if c.totalDeadline > 0 {
		deadline = e.opts.clock.Now().Add(c.totalDeadline)
	}
	nested := ctx.Value(attemptKey{}) != nil
	var (
		errs  []error
		prev  time.Duration
		retry bool
	)
	for attempt := 1; ; {
		if err := ctx.Err(); err != nil {
			return e.fail(errs, err)
		}
		gen, ok, wait := e.br.allow()
		if !ok {
			e.st.rejected.Add(1)
			if !retry && (!c.policy.Retry.WaitOnOpen || c.maxAttempts < 2) {
				e.st.failures.Add(1)
				return ErrCircuitOpen
			}
			if wait <= 0 { // half-open, probe slots taken: back off, at least 1ms
				wait = max(c.backoff.delay(max(attempt-1, 1), prev, e.opts.rand()), time.Millisecond)
			}
			if !e.fits(ctx, deadline, wait) {
				return e.fail(errs, ErrCircuitOpen)
			}
			e.st.breakerWaits.Add(1)
			if err := Sleep(ctx, e.opts.clock, wait); err != nil {
				return e.fail(errs, err)
			}
			continue
		}
		cls, err := e.attempt(ctx, c, gen, attempt, nested || attempt > 1, fn, fnd)
		if err == nil {
			e.st.successes.Add(1)
			return nil
		}
		errs = append(errs, err)
		if cls == Ignored && ctx.Err() != nil {
			return e.fail(errs, ctx.Err())
		}
		if !cls.retried() || attempt >= c.maxAttempts {
			return e.fail(errs, nil)
		}
		// Next delay: the hint wins over the computed backoff.
		var delay time.Duration
		var hint interface{ RetryAfter() time.Duration }
		if errors.As(err, &hint) && hint.RetryAfter() >= 0 {
			delay = min(hint.RetryAfter(), c.backoff.maxDelay)
		} else {
			delay = c.backoff.delay(attempt, prev, e.opts.rand())
		}
		prev = delay
		if !deadline.IsZero() && e.opts.clock.Now().Add(delay).After(deadline) {
			return e.fail(errs, ErrTotalDeadline)
		}
		if !e.budget.withdraw(&c.budget, e.opts.clock.Now()) {
			e.st.budgetDenied.Add(1)
			return e.fail(errs, ErrRetryBudget)
		}
		if err := Sleep(ctx, e.opts.clock, delay); err != nil {
			return e.fail(errs, err)
		}
		e.st.retries.Add(1)
		retry = true
		attempt++
		if !deadline.IsZero() && !e.opts.clock.Now().Before(deadline) {
			return e.fail(errs, ErrTotalDeadline)
		}
	}
}

// fits reports whether a wait of d ends before both deadlines.
func (e *Executor) fits(ctx context.Context, deadline time.Time, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	return !deadline.IsZero() && !e.opts.clock.Now().Add(d).After(deadline)
}

func (e *Executor) fail(errs []error, cause error) error {
	e.st.failures.Add(1)
	if len(errs) == 0 {
		return cause
	}
	return &ExhaustedError{Attempts: len(errs), Errors: errs, Cause: cause}
}

// attempt runs one attempt inside the breaker admission gen: limiter,
// attempt timeout, chaos, fn. It records the outcome with the breaker.
func (e *Executor) attempt(ctx context.Context, c *compiled, gen uint64, n int, mark bool, fn func(context.Context) error, fnd func(context.Context, time.Time) error) (cls Class, err error) {
	e.st.attempts.Add(1)
	if c.lim != nil {
		if err := c.lim.acquire(ctx, e.opts.clock, c.queueWait); err != nil {
			e.br.record(gen, outcomeNeutral)
			if err == ErrLimited {
				e.st.limited.Add(1)
				return Retryable, err
			}
			return Ignored, err
		}
		defer c.lim.release()
	}
	actx := ctx
	if mark {
		actx = context.WithValue(ctx, attemptKey{}, n)
	}
	var deadline time.Time // the attempt's deadline, when fnd enforces it
	if c.attemptTimeout > 0 {
		if _, real := e.opts.clock.(RealClock); real && fnd != nil && !c.chaos {
			deadline = time.Now().Add(c.attemptTimeout)
		} else {
			var cancel context.CancelFunc
			actx, cancel = e.withTimeout(actx, c.attemptTimeout)
			defer cancel()
		}
	}
	done := false
	defer func() {
		if !done { // fn panicked: count it, free the probe slot, re-panic
			e.br.record(gen, outcomeFailure)
		}
	}()
	if c.chaos {
		err = e.chaos(actx, c, n)
	}
	if err == nil {
		if fnd != nil {
			err = fnd(actx, deadline)
		} else {
			err = fn(actx)
		}
	}
	done = true
	if err == nil {
		e.br.record(gen, outcomeSuccess)
		return Retryable, nil
	}
	switch {
	case ctx.Err() != nil:
		cls = Ignored
	case !deadline.IsZero() && !time.Now().Before(deadline),
		actx != ctx && c.attemptTimeout > 0 && actx.Err() != nil:
		e.st.timeouts.Add(1)
		cls = Retryable
		err = fmt.Errorf("%w (%v, attempt %d): %w", ErrAttemptTimeout, c.attemptTimeout, n, err)
	default:
		cls = e.opts.classifier(err)
	}
	if cls.counts() {
		e.br.record(gen, outcomeFailure)
	} else {
		e.br.record(gen, outcomeNeutral)
	}
	return cls, err
}

// withTimeout is context.WithTimeout on the real clock; on another clock
// the deadline is a timer of that clock.
func (e *Executor) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, real := e.opts.clock.(RealClock); real {
		return context.WithTimeout(ctx, d)
	}
	actx, cancel := context.WithCancelCause(ctx)
	t := e.opts.clock.NewTimer(d)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-t.C():
			cancel(context.DeadlineExceeded)
		case <-stop:
			t.Stop()
		}
	}()
	return actx, func() {
		close(stop)
		wg.Wait()
		cancel(context.Canceled)
	}
}

func (e *Executor) chaos(ctx context.Context, c *compiled, n int) error {
	ch := c.chaosCfg
	if ch.LatencyRate > 0 && e.opts.rand() < ch.LatencyRate {
		e.st.chaosLatency.Add(1)
		if err := Sleep(ctx, e.opts.clock, ch.Latency.D()); err != nil {
			return err
		}
	}
	if ch.TrapRate > 0 || ch.ErrorRate > 0 {
		u := e.opts.rand()
		switch {
		case u < ch.TrapRate:
			e.st.chaosTraps.Add(1)
			return &ChaosError{Kind: ChaosKindTrap, Attempt: n}
		case u < ch.TrapRate+ch.ErrorRate:
			e.st.chaosErrors.Add(1)
			return &ChaosError{Kind: ChaosKindError, Attempt: n}
		}
	}
	return nil
}
