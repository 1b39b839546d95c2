package workflow

import (
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// A sleeping timer's task becomes claimable wakeAhead before its due
// time. The engine that claims it loads its run, finds it due within
// wakeAhead and parks it: it keeps the claim, gives the worker back, and
// completes the node at the due time on a goroutine of its own. So the
// wake-up waits neither for the claimer's next poll nor for the run's
// load, nor for a worker when every worker is busy (with a store that is
// slow to write, say); the journal still records the wake at or after the
// due time.
const wakeAhead = 500 * time.Millisecond

// maxParked bounds the timers one engine holds until their due time; a
// timer beyond it sleeps in the queue as any other.
const maxParked = 4096

// ahead is how long before its due time a timer is parked: wakeAhead, or
// a third of the lease when that is shorter, so the claim, extended by
// heartbeats until the node's first look and not while parked, outlives
// the park.
func (e *Engine) ahead() time.Duration { return min(wakeAhead, e.o.lease/3) }

// releaseDelay is how long the task of node n, due in d, sleeps in the
// queue: a timer's wakes up ahead of its due time, to be parked.
func (e *Engine) releaseDelay(n *Node, d time.Duration) time.Duration {
	if n.Timer != nil && d > e.ahead() {
		return d - e.ahead()
	}
	return d
}

// park holds the claim of timer node n of t until due and then executes
// the task again, when due is within ahead and fewer than maxParked
// timers are parked. It returns false when it did not park the task.
func (e *Engine) park(t statestore.Task, n *Node, due time.Time) bool {
	d := due.Sub(e.now())
	if n.Timer == nil || d > e.ahead() {
		return false
	}
	e.mu.Lock()
	if e.state != stateStarted || e.parked >= maxParked {
		e.mu.Unlock()
		return false
	}
	e.parked++
	e.wg.Add(1)
	e.mu.Unlock()
	go e.wakeParked(t, d)
	return true
}

// wakeParked executes the parked task t after d, on its own goroutine.
// When the engine stops first, it gives the claim back, claimable at the
// due time.
func (e *Engine) wakeParked(t statestore.Task, d time.Duration) {
	defer e.wg.Done()
	f := t.Fence()
	timer := time.NewTimer(d)
	defer timer.Stop()
	due := time.Now().Add(d)
	select {
	case <-e.stopping:
		e.unpark()
		e.releaseAfter(f, max(time.Until(due), 0))
		return
	case <-timer.C:
	}
	e.mu.Lock()
	e.parked--
	if e.state != stateStarted {
		e.mu.Unlock()
		e.releaseAfter(f, 0)
		return
	}
	e.held[f] = &held{}
	e.mu.Unlock()
	next, carry, ok := e.execTask(t, nil)
	if !ok {
		return
	}
	// A dependent the completion claimed for this engine: the workers
	// run it.
	if carry != nil {
		e.unref(carry)
	}
	e.mu.Lock()
	if e.state == stateStarted {
		e.pending = append(e.pending, next)
		e.work.Signal()
		e.mu.Unlock()
		return
	}
	delete(e.held, next.Fence())
	e.mu.Unlock()
	e.release([]statestore.Task{next})
}

func (e *Engine) unpark() {
	e.mu.Lock()
	e.parked--
	e.mu.Unlock()
}
