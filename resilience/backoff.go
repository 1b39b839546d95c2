package resilience

import (
	"math"
	"time"
)

type backoffConfig struct {
	initial, maxDelay time.Duration
	multiplier        float64
	jitter            JitterKind
	factor            float64
}

// base returns min(maxDelay, initial·multiplier^(n-1)) for the delay after
// failed attempt n (1-based), without overflow.
func (c *backoffConfig) base(n int) time.Duration {
	f := float64(c.initial) * math.Pow(c.multiplier, float64(n-1))
	if f >= float64(c.maxDelay) || math.IsInf(f, 0) || math.IsNaN(f) {
		return c.maxDelay
	}
	return time.Duration(f)
}

// delay returns the wait after failed attempt n. prev is the previous
// delay (for decorrelated jitter), u a uniform draw in [0,1).
func (c *backoffConfig) delay(n int, prev time.Duration, u float64) time.Duration {
	b := c.base(n)
	var d float64
	switch c.jitter {
	case JitterNone:
		return b
	case JitterFull:
		d = u * float64(b)
	case JitterEqual:
		d = float64(b)/2 + u*float64(b)/2
	case JitterDecorrelated:
		lo := float64(c.initial)
		if prev <= 0 {
			prev = c.initial
		}
		hi := max(3*float64(prev), lo)
		d = lo + u*(hi-lo)
	default: // factor
		d = float64(b) * (1 + c.factor*(2*u-1))
	}
	if d >= float64(c.maxDelay) {
		return c.maxDelay
	}
	return time.Duration(max(d, 0))
}
