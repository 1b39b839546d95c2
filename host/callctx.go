package host

import (
	"context"
	"sync"
	"time"

	"github.com/bulkhead-run/bulkhead/host/internal/fuel"
)

// callCtx is the context of one guest call: the caller's context, bounded
// by the plugin's timeout, carrying the call's state and fuel meter. It
// replaces context.WithTimeout, WithValue and fuel.WithMeter, which cost a
// timer and five allocations per call, and it is pooled, so a call that
// never blocks allocates nothing for it:
//
//   - Err compares the clock with the deadline (and asks the parent), so a
//     metered guest, which checks Err at each refill, stops at the deadline
//     without any timer.
//   - Done is made on first use only, by whatever can block (a guest's HTTP
//     request or sleep, a durable host function, waiting for a pooled
//     instance, wazero's close-on-context-done of an unmetered module); only
//     then does the context arm a timer for its deadline and watch its
//     parent. A callCtx whose Done was made is closed when the call ends and
//     never reused, so anything still holding it sees a cancelled context.
//
// A callCtx must not be used after its call returns: host functions run
// synchronously inside the call and must not keep their context.
type callCtx struct {
	parent   context.Context
	deadline time.Time
	st       callState
	meter    fuel.Meter
	metered  bool

	mu         sync.Mutex
	done       chan struct{} // made by Done
	err        error         // set once the context is done
	timer      *time.Timer
	stopParent func() bool
}

var callCtxPool = sync.Pool{New: func() any { return new(callCtx) }}

// newCallCtx returns a pooled callCtx for a call under parent that may
// run for at most timeout.
func newCallCtx(parent context.Context, start time.Time, timeout time.Duration) *callCtx {
	c := callCtxPool.Get().(*callCtx)
	c.parent = parent
	c.deadline = start.Add(timeout)
	if dl, ok := parent.Deadline(); ok && dl.Before(c.deadline) {
		c.deadline = dl
	}
	return c
}

// release ends the call: a Done channel given out is closed (with
// context.Canceled when the call ended before its deadline), and the
// context goes back to the pool only if none was.
func (c *callCtx) release() {
	c.mu.Lock()
	handedOut := c.done != nil
	if handedOut {
		c.finishLocked(context.Canceled)
	}
	c.mu.Unlock()
	if handedOut {
		return
	}
	c.parent, c.st, c.metered, c.err = nil, callState{}, false, nil
	callCtxPool.Put(c)
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if err := c.parent.Err(); err != nil {
		c.finishLocked(err)
	} else if time.Until(c.deadline) <= 0 { // monotonic: cheaper than time.Now
		c.finishLocked(context.DeadlineExceeded)
	}
	return c.err
}

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err != nil {
		close(c.done)
		return c.done
	}
	if err := c.parent.Err(); err != nil {
		c.finishLocked(err)
		return c.done
	}
	d := time.Until(c.deadline)
	if d <= 0 {
		c.finishLocked(context.DeadlineExceeded)
		return c.done
	}
	c.timer = time.AfterFunc(d, func() { c.finish(context.DeadlineExceeded) })
	if c.parent.Done() != nil {
		parent := c.parent
		c.stopParent = context.AfterFunc(parent, func() { c.finish(parent.Err()) })
	}
	return c.done
}

func (c *callCtx) Value(key any) any {
	switch key.(type) {
	case callKey:
		if c.st.host == nil {
			return nil // not in the call yet (an instance being made)
		}
		return &c.st
	}
	if fuel.IsMeterKey(key) {
		if c.metered {
			return &c.meter
		}
		return nil
	}
	return c.parent.Value(key)
}

func (c *callCtx) finish(err error) {
	c.mu.Lock()
	c.finishLocked(err)
	c.mu.Unlock()
}

// finishLocked marks the context done with err (the first error wins) and
// stops its timer and parent watch.
func (c *callCtx) finishLocked(err error) {
	if c.err == nil {
		c.err = err
		if c.done != nil {
			close(c.done)
		}
	}
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.stopParent != nil {
		c.stopParent()
		c.stopParent = nil
	}
}
