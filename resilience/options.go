package resilience

import (
	"log/slog"
	"math/rand/v2"
	"sync"
)

// Option configures an Executor, a Registry (applied to every executor it
// creates) or a Monitor (which uses WithClock and WithLogger only).
type Option interface{ apply(*options) }

type options struct {
	clock       Clock
	classifier  Classifier
	rand        func() float64
	stateChange func(name string, from, to State)
	logger      *slog.Logger
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

func buildOptions(opts []Option) options {
	o := options{clock: RealClock{}, classifier: DefaultClassifier, rand: rand.Float64}
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// WithClock sets the clock (default RealClock).
func WithClock(c Clock) Option {
	return optionFunc(func(o *options) {
		if c != nil {
			o.clock = c
		}
	})
}

// WithClassifier sets the error classifier (default DefaultClassifier).
func WithClassifier(c Classifier) Option {
	return optionFunc(func(o *options) {
		if c != nil {
			o.classifier = c
		}
	})
}

// WithRand makes jitter and chaos draw from r (guarded by a mutex), for
// reproducible runs. Default: math/rand/v2's global source.
func WithRand(r *rand.Rand) Option {
	return optionFunc(func(o *options) {
		if r == nil {
			return
		}
		var mu sync.Mutex
		o.rand = func() float64 {
			mu.Lock()
			defer mu.Unlock()
			return r.Float64()
		}
	})
}

// WithStateChange registers a hook called after every breaker state change,
// outside the breaker's lock, on the goroutine that caused the change.
func WithStateChange(f func(name string, from, to State)) Option {
	return optionFunc(func(o *options) { o.stateChange = f })
}

// WithLogger sets the logger; nil discards.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}
