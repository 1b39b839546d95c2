package resilience

import (
	"fmt"
	"slices"
	"time"
)

// Preset names.
const (
	PresetDevelopment = "development"
	PresetProduction  = "production"
	PresetAPI         = "api"
	PresetDatabase    = "database"
	PresetLongRunning = "long-running"
)

func d(v time.Duration) Duration { return Duration(v) }

// presets are complete policies (every field set) so that they read as
// documentation; tests check each one validates.
var presets = map[string]Policy{
	// development: fail fast and loud, little retrying, short open timeout.
	PresetDevelopment: {
		Breaker: BreakerPolicy{FailureThreshold: 10, OpenTimeout: d(5 * time.Second), SuccessThreshold: 1},
		Retry: RetryPolicy{MaxAttempts: 2, InitialDelay: d(50 * time.Millisecond), MaxDelay: d(time.Second),
			Jitter: JitterNone, TotalDeadline: d(time.Minute), Budget: Budget{Ratio: -1}},
	},
	// production: consecutive and rate rules, full jitter, bounded queue.
	PresetProduction: {
		Breaker: BreakerPolicy{FailureThreshold: 5, FailureRate: 0.5, Window: d(60 * time.Second), MinimumCalls: 20,
			SuccessThreshold: 2, OpenTimeout: d(30 * time.Second), HalfOpenMaxProbes: 1},
		Retry: RetryPolicy{MaxAttempts: 3, InitialDelay: d(200 * time.Millisecond), Multiplier: 2, MaxDelay: d(10 * time.Second),
			Jitter: JitterFull, TotalDeadline: d(2 * time.Minute), Budget: Budget{Ratio: 0.2, MinPerSecond: 10}},
		Limiter:        LimiterPolicy{MaxConcurrent: 64, MaxQueueWait: d(time.Second)},
		AttemptTimeout: d(30 * time.Second),
	},
	// api: 5 attempts from 1s doubling with ±10% jitter,
	// breaker 5 failures / 2 successes / 30s.
	PresetAPI: {
		Breaker: BreakerPolicy{FailureThreshold: 5, FailureRate: 0.5, Window: d(60 * time.Second), MinimumCalls: 20,
			SuccessThreshold: 2, OpenTimeout: d(30 * time.Second), HalfOpenMaxProbes: 1},
		Retry: RetryPolicy{MaxAttempts: 5, InitialDelay: d(time.Second), Multiplier: 2, MaxDelay: d(30 * time.Second),
			Jitter: JitterFactor, JitterFactor: 0.1, TotalDeadline: d(3 * time.Minute), Budget: Budget{Ratio: 0.2, MinPerSecond: 10}},
		Limiter:        LimiterPolicy{MaxConcurrent: 32, MaxQueueWait: d(5 * time.Second)},
		AttemptTimeout: d(30 * time.Second),
	},
	// database: short attempts, quick decorrelated retries, small pool.
	PresetDatabase: {
		Breaker: BreakerPolicy{FailureThreshold: 3, FailureRate: 0.5, Window: d(30 * time.Second), MinimumCalls: 10,
			SuccessThreshold: 2, OpenTimeout: d(10 * time.Second), HalfOpenMaxProbes: 1},
		Retry: RetryPolicy{MaxAttempts: 3, InitialDelay: d(100 * time.Millisecond), Multiplier: 2, MaxDelay: d(2 * time.Second),
			Jitter: JitterDecorrelated, TotalDeadline: d(15 * time.Second), Budget: Budget{Ratio: 0.1, MinPerSecond: 5}},
		Limiter:        LimiterPolicy{MaxConcurrent: 16, MaxQueueWait: d(500 * time.Millisecond)},
		AttemptTimeout: d(5 * time.Second),
	},
	// long-running: hour-long attempts, few of them, patient breaker.
	PresetLongRunning: {
		Breaker: BreakerPolicy{FailureThreshold: 3, SuccessThreshold: 1, OpenTimeout: d(time.Minute), HalfOpenMaxProbes: 1},
		Retry: RetryPolicy{MaxAttempts: 3, InitialDelay: d(5 * time.Second), Multiplier: 3, MaxDelay: d(time.Minute),
			Jitter: JitterEqual, TotalDeadline: d(4 * time.Hour), Budget: Budget{Ratio: -1}},
		Limiter:        LimiterPolicy{MaxConcurrent: 4, MaxQueueWait: -1},
		AttemptTimeout: d(time.Hour),
	},
}

// PresetNames returns the preset names, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Preset returns the named preset policy (with defaults filled in).
func Preset(name string) (Policy, error) {
	p, ok := presets[name]
	if !ok {
		return Policy{}, fmt.Errorf("resilience: unknown preset %q (have %v)", name, PresetNames())
	}
	return p.WithDefaults(), nil
}

func mustPreset(name string) Policy {
	p, err := Preset(name)
	if err != nil {
		panic(err) // unreachable: callers pass the constants above
	}
	return p
}

// ForAPI returns an executor with the api preset.
func ForAPI(name string, opts ...Option) *Executor {
	e, err := New(name, mustPreset(PresetAPI), opts...)
	if err != nil {
		panic(err) // unreachable: presets validate (tested)
	}
	return e
}

// ForDatabase returns an executor with the database preset.
func ForDatabase(name string, opts ...Option) *Executor {
	e, err := New(name, mustPreset(PresetDatabase), opts...)
	if err != nil {
		panic(err) // unreachable: presets validate (tested)
	}
	return e
}

// Custom returns an executor with policy p; it is New
// under the name the other factories share.
func Custom(name string, p Policy, opts ...Option) (*Executor, error) {
	return New(name, p, opts...)
}
