package resilience_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eapache/go-resiliency/breaker"
	"github.com/eapache/go-resiliency/semaphore"
	"github.com/sony/gobreaker/v2"

	"github.com/bulkhead-run/bulkhead/resilience"
)

//go:noinline
func noop(context.Context) error { return nil }

func benchExec(b *testing.B, p resilience.Policy) {
	e, err := resilience.New("bench", p)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Do(ctx, noop); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBare is the baseline: a direct call of the no-op function.
func BenchmarkBare(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := noop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipeline: retry ⊃ breaker (consecutive and rate rules) ⊃
// limiter, retry budget on, no attempt timeout.
func BenchmarkPipeline(b *testing.B) {
	benchExec(b, resilience.Policy{
		Breaker: resilience.BreakerPolicy{FailureRate: 0.5},
		Limiter: resilience.LimiterPolicy{MaxConcurrent: 64},
	})
}

// BenchmarkPipelineDefault: Policy{} (consecutive rule only, no limiter).
func BenchmarkPipelineDefault(b *testing.B) { benchExec(b, resilience.Policy{}) }

// BenchmarkPipelineAttemptTimeout: as BenchmarkPipeline plus a per-attempt
// context.WithTimeout.
func BenchmarkPipelineAttemptTimeout(b *testing.B) {
	benchExec(b, resilience.Policy{
		Breaker:        resilience.BreakerPolicy{FailureRate: 0.5},
		Limiter:        resilience.LimiterPolicy{MaxConcurrent: 64},
		AttemptTimeout: resilience.Duration(time.Second),
	})
}

// BenchmarkPipelineAttemptDeadline: BenchmarkPipelineAttemptTimeout
// through DoDeadline, which hands fn the deadline instead of a context.
func BenchmarkPipelineAttemptDeadline(b *testing.B) {
	e, err := resilience.New("bench", resilience.Policy{
		Breaker:        resilience.BreakerPolicy{FailureRate: 0.5},
		Limiter:        resilience.LimiterPolicy{MaxConcurrent: 64},
		AttemptTimeout: resilience.Duration(time.Second),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	fn := func(context.Context, time.Time) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := e.DoDeadline(ctx, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipelineProduction: the production preset (attempt timeout,
// total deadline, limiter, both breaker rules).
func BenchmarkPipelineProduction(b *testing.B) {
	p, _ := resilience.Preset(resilience.PresetProduction)
	benchExec(b, p)
}

// BenchmarkBreakerOnly: retries off, budget off, consecutive rule only.
func BenchmarkBreakerOnly(b *testing.B) {
	benchExec(b, resilience.Policy{
		Retry: resilience.RetryPolicy{MaxAttempts: 1, Budget: resilience.Budget{Ratio: -1}},
	})
}

// BenchmarkPipelineParallel: the BenchmarkPipeline policy from GOMAXPROCS
// goroutines sharing one executor.
func BenchmarkPipelineParallel(b *testing.B) {
	e, _ := resilience.New("bench", resilience.Policy{
		Breaker: resilience.BreakerPolicy{FailureRate: 0.5},
		Limiter: resilience.LimiterPolicy{MaxConcurrent: 64},
	})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			_ = e.Do(ctx, noop)
		}
	})
}

// BenchmarkContextWithTimeout is the cost of the per-attempt deadline alone.
func BenchmarkContextWithTimeout(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, cancel := context.WithTimeout(ctx, time.Second)
		_ = noop(c)
		cancel()
	}
}

// BenchmarkGoResiliencyBreaker: go-resiliency's breaker on the same no-op.
func BenchmarkGoResiliencyBreaker(b *testing.B) {
	br := breaker.New(5, 2, 30*time.Second)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Run(func() error { return noop(ctx) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGobreaker: sony/gobreaker v2 Execute on the same no-op.
func BenchmarkGobreaker(b *testing.B) {
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Name: "bench"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cb.Execute(func() (struct{}, error) { return struct{}{}, noop(ctx) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFailFast: a call rejected by an open breaker.
func BenchmarkFailFast(b *testing.B) {
	e, _ := resilience.New("bench", resilience.Policy{
		Breaker: resilience.BreakerPolicy{FailureThreshold: 1}, Retry: resilience.RetryPolicy{MaxAttempts: 1},
	})
	ctx := context.Background()
	_ = e.Do(ctx, func(context.Context) error { return errBoom })
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Do(ctx, noop); !errors.Is(err, resilience.ErrCircuitOpen) {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoResiliencySemaphore: go-resiliency's semaphore with a free
// ticket, for comparison with the limiter inside BenchmarkPipeline.
func BenchmarkGoResiliencySemaphore(b *testing.B) {
	s := semaphore.New(64, time.Second)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Acquire(); err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}

// BenchmarkExecute: the generic wrapper over the BenchmarkPipeline policy.
func BenchmarkExecute(b *testing.B) {
	e, _ := resilience.New("bench", resilience.Policy{
		Breaker: resilience.BreakerPolicy{FailureRate: 0.5},
		Limiter: resilience.LimiterPolicy{MaxConcurrent: 64},
	})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resilience.Execute(ctx, e, func(context.Context) (int, error) { return 42, nil }); err != nil {
			b.Fatal(err)
		}
	}
}
