package pool

import (
	"context"
	"errors"
	"slices"
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
//
// A slot is the right to hold an object out of the idle list: every
// acquired object and every object Warm is creating holds one, and at most
// Max are taken. A released slot goes straight to the longest waiting
// Acquire, if any. Slots are counted under mu, so an Acquire that finds a
// free slot costs one lock and no channel operation.
type Pool[T any] struct {
	cfg Config[T]
	// epoch is the origin of idle.since; fake is set when Config.Now was.
	epoch time.Time
	fake  bool

	mu      sync.Mutex
	idle    []idle[T] // LIFO: the warmest object is last
	closed  bool
	held    int             // slots taken (at most cfg.Max)
	waiters []chan struct{} // Acquire calls waiting for a slot, oldest first
	out     int             // acquired and not yet released
	peak    int             // most objects acquired at once
	drained chan struct{}

	created, discarded, reused uint64
}

// waiterChans recycles the channels a waiting Acquire receives its slot
// on (buffered, so a hand-over never blocks under mu).
var waiterChans = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

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
	return &Pool[T]{cfg: cfg, epoch: cfg.Now(), fake: fake}
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

// freeSlotLocked gives up a slot: to the oldest waiter, else to the pool.
// p.mu is held.
func (p *Pool[T]) freeSlotLocked() {
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		w <- struct{}{} // the slot passes to the waiter: held is unchanged
		return
	}
	p.held--
}

func (p *Pool[T]) freeSlot() {
	p.mu.Lock()
	p.freeSlotLocked()
	p.mu.Unlock()
}

// Warm creates objects until Min exist.
func (p *Pool[T]) Warm(ctx context.Context) error {
	for {
		p.mu.Lock()
		n := len(p.idle) + p.out
		if p.closed || n >= p.cfg.Min || p.held >= p.cfg.Max {
			p.mu.Unlock()
			return nil
		}
		p.held++
		p.mu.Unlock()
		v, err := p.cfg.New(ctx)
		if err != nil {
			p.freeSlot()
			return err
		}
		since := p.stamp()
		p.mu.Lock()
		p.created++
		if p.closed {
			p.discarded++
			p.mu.Unlock()
			p.cfg.Close(v)
			p.freeSlot()
			return nil
		}
		p.idle = append(p.idle, idle[T]{v: v, since: since})
		p.freeSlotLocked()
		p.mu.Unlock()
	}
}

// Acquire returns an idle object or creates one, waiting for a free slot
// while Max objects are out. It honours ctx while it waits.
func (p *Pool[T]) Acquire(ctx context.Context) (T, error) {
	var zero T
	p.mu.Lock()
	if p.held < p.cfg.Max {
		p.held++
	} else {
		w := waiterChans.Get().(chan struct{})
		p.waiters = append(p.waiters, w)
		p.mu.Unlock()
		select {
		case <-w:
			waiterChans.Put(w)
		case <-ctx.Done():
			p.mu.Lock()
			if i := slices.Index(p.waiters, w); i >= 0 {
				p.waiters = slices.Delete(p.waiters, i, i+1)
				p.mu.Unlock()
			} else {
				// The slot came meanwhile: pass it on.
				<-w
				p.freeSlotLocked()
				p.mu.Unlock()
			}
			waiterChans.Put(w)
			return zero, ctx.Err()
		}
		p.mu.Lock()
	}
	if p.closed {
		p.freeSlotLocked()
		p.mu.Unlock()
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
		p.freeSlotLocked()
		p.mu.Unlock()
		return zero, err
	}
	p.mu.Lock()
	p.created++
	p.mu.Unlock()
	return v, nil
}

// Release returns v to the pool. With reuse false, or once the pool is
// closed, v is closed instead, before its slot is freed.
func (p *Pool[T]) Release(v T, reuse bool) {
	var since time.Duration
	if reuse {
		since = p.stamp()
	}
	p.mu.Lock()
	p.out--
	if reuse && !p.closed {
		p.idle = append(p.idle, idle[T]{v: v, since: since})
		p.freeSlotLocked()
		p.mu.Unlock()
		return
	}
	p.discarded++
	p.signalDrained()
	p.mu.Unlock()
	p.cfg.Close(v)
	p.freeSlot()
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
