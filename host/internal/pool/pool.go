package pool

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Acquire once Close has started.
var ErrClosed = errors.New("pool: closed")

// Config sizes a pool.
type Config[T any] struct {
	Min, Max    int
	IdleTimeout time.Duration
	// New creates an object. It is called without holding any lock.
	New func(ctx context.Context) (T, error)
	// Close disposes of an object.
	Close func(T)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

type idle[T any] struct {
	v     T
	since time.Duration // when it was released, on the pool's clock (see stamp)
}

// Pool is a bounded pool. Its methods are safe for concurrent use.
type Pool[T any] struct {
	cfg   Config[T]
	slots chan struct{} // one token per object that may exist
	// epoch is the origin of idle.since; fake is set when Config.Now was.
	epoch time.Time
	fake  bool

	mu      sync.Mutex
	idle    []idle[T] // LIFO: the warmest object is last
	closed  bool
	out     int // acquired and not yet released
	peak    int // most objects acquired at once
	drained chan struct{}

	created, discarded, reused uint64
}

// New returns a pool. It creates no object: call Warm for that.
func New[T any](cfg Config[T]) *Pool[T] {
	if cfg.Max <= 0 {
		cfg.Max = 1
	}
	if cfg.Min > cfg.Max {
		cfg.Min = cfg.Max
	}
	fake := cfg.Now != nil
	if !fake {
		cfg.Now = time.Now
	}
	return &Pool[T]{cfg: cfg, slots: make(chan struct{}, cfg.Max), epoch: cfg.Now(), fake: fake}
}

// stamp is the time on the pool's clock: since the pool was made. On the
// real clock it reads only the monotonic clock, which costs about half a
// time.Now and is what an idle timeout should measure anyway.
func (p *Pool[T]) stamp() time.Duration {
	if p.fake {
		return p.cfg.Now().Sub(p.epoch)
	}
	return time.Since(p.epoch)
}

// Warm creates objects until Min exist.
func (p *Pool[T]) Warm(ctx context.Context) error {
	for {
		p.mu.Lock()
		n, closed := len(p.idle)+p.out, p.closed
		p.mu.Unlock()
		if closed || n >= p.cfg.Min {
			return nil
		}
		select {
		case p.slots <- struct{}{}:
		default:
			return nil // Max objects exist
		}
		v, err := p.cfg.New(ctx)
		if err != nil {
			<-p.slots
			return err
		}
		since := p.stamp()
		p.mu.Lock()
		p.created++
		p.idle = append(p.idle, idle[T]{v: v, since: since})
		p.mu.Unlock()
		<-p.slots
	}
}

// Acquire returns an idle object or creates one, waiting for a free slot
// while Max objects exist. It honours ctx while it waits.
func (p *Pool[T]) Acquire(ctx context.Context) (T, error) {
	var zero T
	select {
	case p.slots <- struct{}{}:
	default:
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return zero, ErrClosed
	}
	p.out++
	p.peak = max(p.peak, p.out)
	if n := len(p.idle); n > 0 {
		v := p.idle[n-1].v
		p.idle[n-1] = idle[T]{}
		p.idle = p.idle[:n-1]
		p.reused++
		p.mu.Unlock()
		return v, nil
	}
	p.mu.Unlock()
	v, err := p.cfg.New(ctx)
	if err != nil {
		p.mu.Lock()
		p.out--
		p.signalDrained()
		p.mu.Unlock()
		<-p.slots
		return zero, err
	}
	p.mu.Lock()
	p.created++
	p.mu.Unlock()
	return v, nil
}

// Release returns v to the pool. With reuse false, or once the pool is
// closed, v is closed instead.
func (p *Pool[T]) Release(v T, reuse bool) {
	var since time.Duration
	if reuse {
		since = p.stamp()
	}
	p.mu.Lock()
	p.out--
	if reuse && !p.closed {
		p.idle = append(p.idle, idle[T]{v: v, since: since})
		p.mu.Unlock()
		<-p.slots
		return
	}
	p.discarded++
	p.signalDrained()
	p.mu.Unlock()
	p.cfg.Close(v)
	<-p.slots
}

// signalDrained wakes Close once the last object is back. p.mu is held.
func (p *Pool[T]) signalDrained() {
	if p.closed && p.out == 0 && p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
}

// EvictIdle closes idle objects above Min unused for IdleTimeout. It returns
// how many it closed.
func (p *Pool[T]) EvictIdle() int {
	if p.cfg.IdleTimeout <= 0 {
		return 0
	}
	cutoff := p.stamp() - p.cfg.IdleTimeout
	p.mu.Lock()
	var evict []T
	// The coldest objects are first.
	for len(p.idle) > p.cfg.Min && p.idle[0].since < cutoff {
		evict = append(evict, p.idle[0].v)
		p.idle[0] = idle[T]{}
		p.idle = p.idle[1:]
	}
	p.discarded += uint64(len(evict))
	p.mu.Unlock()
	for _, v := range evict {
		p.cfg.Close(v)
	}
	return len(evict)
}

// Close stops handing out objects, waits until every acquired one is
// released (or ctx ends) and closes them all. It is idempotent.
func (p *Pool[T]) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	idleObjs := p.idle
	p.idle = nil
	var wait chan struct{}
	if p.out > 0 {
		if p.drained == nil {
			p.drained = make(chan struct{})
		}
		wait = p.drained
	}
	p.discarded += uint64(len(idleObjs))
	p.mu.Unlock()
	for _, o := range idleObjs {
		p.cfg.Close(o.v)
	}
	if wait == nil {
		return nil
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats is a snapshot of a pool.
type Stats struct {
	Idle, InUse, Max           int
	Peak                       int // most objects in use at once
	Created, Discarded, Reused uint64
}

// Stats returns a snapshot.
func (p *Pool[T]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Idle: len(p.idle), InUse: p.out, Max: p.cfg.Max, Peak: p.peak, Created: p.created, Discarded: p.discarded, Reused: p.reused}
}
