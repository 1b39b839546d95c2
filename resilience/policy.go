package resilience

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy is the plain-data configuration of an Executor. The zero value of
// every field means its documented default, so Policy{} is a sound policy;
// Validate reports every problem at once.
type Policy struct {
	Breaker BreakerPolicy `yaml:"breaker" json:"breaker"`
	Retry   RetryPolicy   `yaml:"retry" json:"retry"`
	Limiter LimiterPolicy `yaml:"limiter" json:"limiter"`
	// AttemptTimeout bounds each attempt with its own context deadline.
	// 0 (default): no per-attempt deadline (and no per-attempt cost).
	AttemptTimeout Duration `yaml:"attempt_timeout" json:"attempt_timeout"`
	// Fallback is data for the caller to use when a call fails for good;
	// the executor never applies it itself.
	Fallback Fallback `yaml:"fallback" json:"fallback"`
	Chaos    Chaos    `yaml:"chaos" json:"chaos"`
}

// BreakerPolicy configures the circuit breaker.
type BreakerPolicy struct {
	// FailureThreshold opens the breaker after this many consecutive
	// counted failures; a success resets the count. 0: 5. Negative: rule
	// off (with FailureRate 0 as well, the breaker never opens).
	FailureThreshold int `yaml:"failure_threshold" json:"failure_threshold"`
	// FailureRate opens the breaker when failures/calls over Window exceeds
	// it, once at least MinimumCalls were counted in Window. In (0,1].
	// 0 (default): rule off.
	FailureRate float64 `yaml:"failure_rate" json:"failure_rate"`
	// Window is the sliding window of the rate rule. 0: 10s.
	Window Duration `yaml:"window" json:"window"`
	// MinimumCalls is the least number of counted calls in Window before
	// the rate rule may open the breaker. 0: 20.
	MinimumCalls int `yaml:"minimum_calls" json:"minimum_calls"`
	// SuccessThreshold closes a half-open breaker after this many successful
	// probes. 0: 2.
	SuccessThreshold int `yaml:"success_threshold" json:"success_threshold"`
	// OpenTimeout is how long the breaker stays open before it half-opens.
	// 0: 30s.
	OpenTimeout Duration `yaml:"open_timeout" json:"open_timeout"`
	// HalfOpenMaxProbes is how many calls a half-open breaker lets through
	// at once. 0: 1.
	HalfOpenMaxProbes int `yaml:"half_open_max_probes" json:"half_open_max_probes"`
}

// JitterKind selects how a backoff delay is randomised.
type JitterKind string

// Jitter kinds. For attempt n (1-based) the base delay is
// b = min(MaxDelay, InitialDelay·Multiplier^(n-1)).
const (
	JitterNone         JitterKind = "none"         // b
	JitterFactor       JitterKind = "factor"       // b·(1±JitterFactor)
	JitterFull         JitterKind = "full"         // uniform in [0, b]
	JitterEqual        JitterKind = "equal"        // b/2 + uniform in [0, b/2]
	JitterDecorrelated JitterKind = "decorrelated" // uniform in [InitialDelay, 3·previous], capped by MaxDelay
)

// RetryPolicy configures the retry loop.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts in all;
	// 1 means no retry. 0: 3.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// InitialDelay is the base delay before the second attempt. 0: 100ms.
	InitialDelay Duration `yaml:"initial_delay" json:"initial_delay"`
	// Multiplier grows the base delay per attempt, >= 1. 0: 2.
	Multiplier float64 `yaml:"multiplier" json:"multiplier"`
	// MaxDelay caps every delay, retry-after hints included. 0: 30s.
	MaxDelay Duration `yaml:"max_delay" json:"max_delay"`
	// Jitter is the jitter kind. "": factor.
	Jitter JitterKind `yaml:"jitter" json:"jitter"`
	// JitterFactor is the ± fraction of the factor kind, in (0,1]. 0: 0.1.
	JitterFactor float64 `yaml:"jitter_factor" json:"jitter_factor"`
	// TotalDeadline bounds the retry loop: no attempt starts after it and
	// no backoff or breaker wait that would end after it begins. A running
	// attempt is bounded by AttemptTimeout and the caller's context only.
	// 0 (default): no bound besides the caller's context.
	TotalDeadline Duration `yaml:"total_deadline" json:"total_deadline"`
	// WaitOnOpen makes a first attempt that finds the breaker open wait
	// for it to half-open (within the deadline) like a retry does, instead
	// of failing fast with ErrCircuitOpen. Needs MaxAttempts > 1.
	WaitOnOpen bool   `yaml:"wait_on_open" json:"wait_on_open"`
	Budget     Budget `yaml:"budget" json:"budget"`
}

// Budget limits retries relative to calls so that retries cannot multiply
// the load on a struggling dependency. Every call deposits Ratio of a retry
// token (the balance is capped at max(10, 100·Ratio) tokens); every retry
// takes one token. With no token left, a retry still goes ahead if fewer
// than MinPerSecond retries ran in the current second.
type Budget struct {
	// Ratio of retries to calls. 0: 0.2. Negative: no budget (unlimited).
	Ratio float64 `yaml:"ratio" json:"ratio"`
	// MinPerSecond is the floor of retries allowed per second whatever the
	// ratio. 0: 10. Negative: no floor.
	MinPerSecond int `yaml:"min_per_second" json:"min_per_second"`
}

// LimiterPolicy configures the concurrency limiter (a bulkhead).
type LimiterPolicy struct {
	// MaxConcurrent attempts at once. 0 (default): unlimited.
	MaxConcurrent int `yaml:"max_concurrent" json:"max_concurrent"`
	// MaxQueueWait is how long an attempt waits for a slot before failing
	// with ErrLimited. 0 (default): fail at once. Negative: wait as long as
	// the caller's context allows.
	MaxQueueWait Duration `yaml:"max_queue_wait" json:"max_queue_wait"`
}

// Fallback is a value the caller may return instead of an error when a
// call fails for good (not when the caller cancelled). The executor does
// not apply it; the host returns Value as a node's output.
type Fallback struct {
	Value string `yaml:"value,omitempty" json:"value,omitempty"`
}

// IsSet reports whether a fallback value is configured.
func (f Fallback) IsSet() bool { return f.Value != "" }

// Chaos injects failures into attempts, for testing resilience in
// production-like runs. All rates are probabilities per attempt in [0,1];
// the zero value injects nothing.
type Chaos struct {
	// ErrorRate injects a retryable *ChaosError{Kind: "error"}.
	ErrorRate float64 `yaml:"error_rate" json:"error_rate"`
	// LatencyRate delays an attempt by Latency before it runs (the delay
	// honours the attempt's context).
	LatencyRate float64  `yaml:"latency_rate" json:"latency_rate"`
	Latency     Duration `yaml:"latency" json:"latency"`
	// TrapRate injects a *ChaosError{Kind: "trap"}; a Wasm host treats it
	// like a guest trap.
	TrapRate float64 `yaml:"trap_rate" json:"trap_rate"`
}

// Enabled reports whether any injection is configured.
func (c Chaos) Enabled() bool { return c.ErrorRate > 0 || c.LatencyRate > 0 || c.TrapRate > 0 }

// Defaults.
const (
	DefaultFailureThreshold  = 5
	DefaultWindow            = 10 * time.Second
	DefaultMinimumCalls      = 20
	DefaultSuccessThreshold  = 2
	DefaultOpenTimeout       = 30 * time.Second
	DefaultHalfOpenMaxProbes = 1
	DefaultMaxAttempts       = 3
	DefaultInitialDelay      = 100 * time.Millisecond
	DefaultMultiplier        = 2.0
	DefaultMaxDelay          = 30 * time.Second
	DefaultJitter            = JitterFactor
	DefaultJitterFactor      = 0.1
	DefaultBudgetRatio       = 0.2
	DefaultBudgetMinPerSec   = 10
)

// WithDefaults returns p with every zero field replaced by its default.
// Negative "off" markers are kept.
func (p Policy) WithDefaults() Policy {
	b := &p.Breaker
	if b.FailureThreshold == 0 {
		b.FailureThreshold = DefaultFailureThreshold
	}
	if b.Window == 0 {
		b.Window = Duration(DefaultWindow)
	}
	if b.MinimumCalls == 0 {
		b.MinimumCalls = DefaultMinimumCalls
	}
	if b.SuccessThreshold == 0 {
		b.SuccessThreshold = DefaultSuccessThreshold
	}
	if b.OpenTimeout == 0 {
		b.OpenTimeout = Duration(DefaultOpenTimeout)
	}
	if b.HalfOpenMaxProbes == 0 {
		b.HalfOpenMaxProbes = DefaultHalfOpenMaxProbes
	}
	r := &p.Retry
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.InitialDelay == 0 {
		r.InitialDelay = Duration(DefaultInitialDelay)
	}
	if r.Multiplier == 0 {
		r.Multiplier = DefaultMultiplier
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = Duration(DefaultMaxDelay)
	}
	if r.Jitter == "" {
		r.Jitter = DefaultJitter
	}
	if r.JitterFactor == 0 {
		r.JitterFactor = DefaultJitterFactor
	}
	if r.Budget.Ratio == 0 {
		r.Budget.Ratio = DefaultBudgetRatio
	}
	if r.Budget.MinPerSecond == 0 {
		r.Budget.MinPerSecond = DefaultBudgetMinPerSec
	}
	return p
}

// Validate reports every problem of p at once (errors.Join), each prefixed
// with its YAML path. Zero values are valid (they mean the defaults).
func (p Policy) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	rate := func(field string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 1 {
			bad(field, "must be in [0,1], got %v", v)
		}
	}
	nonNegDur := func(field string, d Duration) {
		if d < 0 {
			bad(field, "must not be negative, got %v", d)
		}
	}
	b := p.Breaker
	rate("breaker.failure_rate", b.FailureRate)
	nonNegDur("breaker.window", b.Window)
	if b.MinimumCalls < 0 {
		bad("breaker.minimum_calls", "must not be negative, got %d", b.MinimumCalls)
	}
	if b.SuccessThreshold < 0 {
		bad("breaker.success_threshold", "must not be negative, got %d", b.SuccessThreshold)
	}
	nonNegDur("breaker.open_timeout", b.OpenTimeout)
	if b.HalfOpenMaxProbes < 0 {
		bad("breaker.half_open_max_probes", "must not be negative, got %d", b.HalfOpenMaxProbes)
	}
	r := p.Retry
	if r.MaxAttempts < 0 {
		bad("retry.max_attempts", "must not be negative, got %d", r.MaxAttempts)
	}
	nonNegDur("retry.initial_delay", r.InitialDelay)
	if math.IsNaN(r.Multiplier) || math.IsInf(r.Multiplier, 0) || (r.Multiplier != 0 && r.Multiplier < 1) {
		bad("retry.multiplier", "must be >= 1, got %v", r.Multiplier)
	}
	nonNegDur("retry.max_delay", r.MaxDelay)
	if r.MaxDelay > 0 && r.InitialDelay > r.MaxDelay {
		bad("retry.initial_delay", "%v exceeds retry.max_delay %v", r.InitialDelay, r.MaxDelay)
	}
	switch r.Jitter {
	case "", JitterNone, JitterFactor, JitterFull, JitterEqual, JitterDecorrelated:
	default:
		bad("retry.jitter", "unknown kind %q (want none, factor, full, equal or decorrelated)", r.Jitter)
	}
	rate("retry.jitter_factor", r.JitterFactor)
	nonNegDur("retry.total_deadline", r.TotalDeadline)
	if math.IsNaN(r.Budget.Ratio) || math.IsInf(r.Budget.Ratio, 0) {
		bad("retry.budget.ratio", "must be a number, got %v", r.Budget.Ratio)
	}
	if p.Limiter.MaxConcurrent < 0 {
		bad("limiter.max_concurrent", "must not be negative, got %d", p.Limiter.MaxConcurrent)
	}
	nonNegDur("attempt_timeout", p.AttemptTimeout)
	c := p.Chaos
	rate("chaos.error_rate", c.ErrorRate)
	rate("chaos.latency_rate", c.LatencyRate)
	rate("chaos.trap_rate", c.TrapRate)
	nonNegDur("chaos.latency", c.Latency)
	if c.ErrorRate+c.TrapRate > 1 {
		bad("chaos", "error_rate + trap_rate must not exceed 1, got %v", c.ErrorRate+c.TrapRate)
	}
	if c.LatencyRate > 0 && c.Latency == 0 {
		bad("chaos.latency", "must be set when chaos.latency_rate > 0")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("resilience: invalid policy: %w", errors.Join(errs...))
}
