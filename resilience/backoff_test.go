package resilience

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoff_JitterBounds(t *testing.T) {
	const (
		initial = 100 * time.Millisecond
		maxD    = 5 * time.Second
	)
	base := func(n int, _ time.Duration) time.Duration { // 100ms, 200ms, 400ms, ... capped
		return min(initial<<(n-1), maxD)
	}
	tests := []struct {
		name   string
		jitter JitterKind
		lo, hi func(n int, prev time.Duration) time.Duration
	}{
		{"none", JitterNone, base, base},
		{"factor", JitterFactor,
			func(n int, _ time.Duration) time.Duration { return time.Duration(float64(base(n, 0)) * 0.75) },
			func(n int, _ time.Duration) time.Duration { return min(time.Duration(float64(base(n, 0))*1.25), maxD) }},
		{"full", JitterFull, func(int, time.Duration) time.Duration { return 0 }, base},
		{"equal", JitterEqual, func(n int, _ time.Duration) time.Duration { return base(n, 0) / 2 }, base},
		{"decorrelated", JitterDecorrelated,
			func(int, time.Duration) time.Duration { return initial },
			func(_ int, prev time.Duration) time.Duration { return min(3*max(prev, initial), maxD) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := backoffConfig{initial: initial, maxDelay: maxD, multiplier: 2, jitter: tt.jitter, factor: 0.25}
			r := rand.New(rand.NewPCG(1, 2))
			var sawLow, sawHigh bool
			for range 200 {
				var prev time.Duration
				for n := 1; n <= 12; n++ {
					d := c.delay(n, prev, r.Float64())
					lo, hi := tt.lo(n, prev), tt.hi(n, prev)
					if d < lo || d > hi {
						t.Fatalf("attempt %d (prev %v): delay %v outside [%v, %v]", n, prev, d, lo, hi)
					}
					if n == 3 && hi > lo {
						// the draws spread over the range, not a point in it
						span := hi - lo
						sawLow = sawLow || d < lo+span/4
						sawHigh = sawHigh || d > hi-span/4
					}
					prev = d
				}
			}
			if tt.jitter != JitterNone && tt.jitter != JitterDecorrelated && (!sawLow || !sawHigh) {
				t.Errorf("draws did not cover the range: low %v high %v", sawLow, sawHigh)
			}
		})
	}
}

func TestBackoff_NoOverflow(t *testing.T) {
	c := backoffConfig{initial: 100 * time.Millisecond, maxDelay: time.Hour, multiplier: 2, jitter: JitterNone}
	for n := 1; n < 200; n++ {
		if d := c.delay(n, 0, 0.5); d <= 0 || d > time.Hour {
			t.Fatalf("attempt %d: delay %v", n, d)
		}
	}
	if d := c.delay(100, 0, 0); d != time.Hour {
		t.Errorf("attempt 100: delay %v, want the cap", d)
	}
}
