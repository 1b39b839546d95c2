package quota

import (
	"sync"
	"sync/atomic"
	"time"
)

// summaryEvery is how often a Limiter hands out a summary at most.
const summaryEvery = time.Second

// Limiter is a token bucket of lines and bytes per second, whose burst is
// one second's worth. A rate of 0 or less does not limit.
type Limiter struct {
	lineRate, byteRate float64

	mu           sync.Mutex
	lines, bytes float64 // tokens
	last         time.Time
	dropped      Usage // Keys counts lines
	lastSummary  time.Time
	// anyDropped is dropped.Keys > 0, readable without mu: Summary, asked
	// after every call, returns at once when nothing was dropped.
	anyDropped atomic.Bool
}

// NewLimiter returns a full bucket.
func NewLimiter(linesPerSec, bytesPerSec int64) *Limiter {
	return &Limiter{lineRate: float64(linesPerSec), byteRate: float64(bytesPerSec),
		lines: float64(linesPerSec), bytes: float64(bytesPerSec)}
}

// Allow reports whether a line of n bytes may be written at now, taking
// its tokens; a refused line is counted as dropped.
func (l *Limiter) Allow(now time.Time, n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		if dt := now.Sub(l.last).Seconds(); dt > 0 {
			l.lines = min(l.lineRate, l.lines+dt*l.lineRate)
			l.bytes = min(l.byteRate, l.bytes+dt*l.byteRate)
		}
	}
	l.last = now
	lineOK := l.lineRate <= 0 || l.lines >= 1
	// A line longer than a second's worth of bytes passes when the bucket
	// is full, so a low rate never silences a plugin for good.
	byteOK := l.byteRate <= 0 || l.bytes >= float64(n) || l.bytes >= l.byteRate
	if !lineOK || !byteOK {
		l.dropped.Keys++
		l.dropped.Bytes += int64(n)
		l.anyDropped.Store(true)
		return false
	}
	if l.lineRate > 0 {
		l.lines--
	}
	if l.byteRate > 0 {
		l.bytes -= float64(n)
	}
	return true
}

// Summary returns the lines and bytes dropped since the last summary and
// resets them, when there are some and the last summary is at least a
// second old.
func (l *Limiter) Summary(now time.Time) (lines, bytes int64, ok bool) {
	if !l.anyDropped.Load() {
		return 0, 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped.Keys == 0 || !l.lastSummary.IsZero() && now.Sub(l.lastSummary) < summaryEvery {
		return 0, 0, false
	}
	d := l.dropped
	l.dropped, l.lastSummary = Usage{}, now
	l.anyDropped.Store(false)
	return d.Keys, d.Bytes, true
}
