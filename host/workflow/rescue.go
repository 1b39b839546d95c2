package workflow

import (
	"context"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Rescues on a busy engine. The claimer claims only for idle workers, and
// a worker that completes a node keeps the dependent it makes ready, so on
// an engine whose workers are all busy a node whose owner died (its lease
// ended) would wait for a worker to finish a whole chain of nodes. The
// rescuer closes that gap, every poll interval while no worker is idle:
//
//   - it claims tasks whose lease ended (statestore.Queue.ClaimExpiredTasks,
//     never queued ones), as many as it has free rescue slots, and starts
//     them at once on those slots: goroutines beyond the workers that run
//     one rescued node each and leave its dependents queued;
//   - when its slots are full, it looks whether expired tasks still wait
//     (statestore.Queue.ExpiredFor, which claims nothing). While they do,
//     every worker hands the dependent it would keep back to the queue:
//     it goes idle at its next node boundary, and the claimer's claim for
//     it takes expired tasks before queued ones and starts them on that
//     worker at once;
//   - once an expired task has waited rescueGrace, no engine sharing the
//     store had room for it: the rescuer claims expired tasks and starts
//     them beyond its slots, up to as many more as it has workers, so a
//     dead engine's node starts within its lease plus about a second even
//     when every engine is saturated with long nodes.
//
// So a rescued node is never claimed into the pending queue behind busy
// workers, where it would wait while another engine could start it.

// rescueGrace is how long a task whose lease ended may wait for a free
// worker or rescue slot before an engine starts it beyond them.
const rescueGrace = 300 * time.Millisecond

type rescueOptions struct {
	slots int
	set   bool
}

// WithRescueSlots sets how many nodes rescued from other engines sharing
// the store (their owner stopped heartbeating and their lease ended) may
// start at once beyond the workers while every worker is busy (default:
// workers/8, at least 1). A rescue slot runs one node and leaves its
// dependents queued. A rescue that found no free worker or slot on any
// engine for 300 ms starts beyond them anyway, up to as many more nodes
// as there are workers. With 0, no node runs beyond the workers: a rescue
// waits for a worker to reach a node boundary.
func WithRescueSlots(n int) Option {
	return optionFunc(func(o *options) { o.rescue = rescueOptions{slots: n, set: true} })
}

// rescueSlots is the number of rescue slots.
func (o *options) rescueSlots() int {
	if o.rescue.set {
		return o.rescue.slots
	}
	return max(1, o.workers/8)
}

// rescueState is the rescuer's state, under Engine.mu.
type rescueState struct {
	// busy counts the rescue slots running a node.
	busy int
	// waiting: expired tasks waited for a rescue at the rescuer's last
	// look, beyond what its free slots took, so workers hand their
	// dependents back (handBack).
	waiting bool
}

// handBack reports whether the completion of f's node queues all its
// dependents instead of keeping one for its worker: f runs on a rescue
// slot, or expired tasks wait for a worker. e.mu is held.
func (e *Engine) handBack(f statestore.Fence) bool {
	if e.rescue.waiting {
		return true
	}
	h := e.held[f]
	return h != nil && h.rescue
}

// rescuer claims expired tasks for its free rescue slots while no worker
// is idle, every poll interval, and has workers hand their dependents
// back while more wait.
func (e *Engine) rescuer() {
	defer e.wg.Done()
	tick := time.NewTicker(e.o.poll)
	defer tick.Stop()
	for {
		select {
		case <-e.stopping:
			return
		case <-tick.C:
		}
		e.mu.Lock()
		// With a worker idle, the claimer's claim takes expired tasks
		// first: look only to end a hand-back.
		idle := e.idle > len(e.pending)
		free := e.o.rescueSlots() - e.rescue.busy
		waiting := e.rescue.waiting
		e.mu.Unlock()
		if idle && !waiting {
			continue
		}
		if !idle && free > 0 {
			n, err := e.rescueOnSlots(free)
			if err != nil {
				continue
			}
			if n < free {
				e.setWaiting(false)
				continue
			}
		}
		ctx, cancel := context.WithTimeout(e.base, 10*time.Second)
		waited, more, err := e.store.ExpiredFor(ctx)
		cancel()
		if err != nil {
			if e.base.Err() == nil {
				e.log.Warn("cannot look for expired nodes", "err", err)
			}
			continue
		}
		e.setWaiting(more)
		if !more || waited < rescueGrace || e.o.rescueSlots() == 0 {
			continue
		}
		e.mu.Lock()
		beyond := e.o.rescueSlots() + e.o.workers - e.rescue.busy
		e.mu.Unlock()
		if beyond > 0 {
			_, _ = e.rescueOnSlots(beyond)
		}
	}
}

func (e *Engine) setWaiting(on bool) {
	e.mu.Lock()
	e.rescue.waiting = on
	e.mu.Unlock()
}

// rescueOnSlots claims up to n expired tasks and starts each on a rescue
// slot, and returns how many it claimed.
func (e *Engine) rescueOnSlots(n int) (int, error) {
	ctx, cancel := context.WithTimeout(e.base, 10*time.Second)
	tasks, err := e.store.ClaimExpiredTasks(ctx, e.o.owner, n, e.o.lease)
	cancel()
	if err != nil {
		if e.base.Err() == nil {
			e.log.Warn("cannot claim expired nodes", "err", err)
		}
		return 0, err
	}
	e.mu.Lock()
	if e.state != stateStarted {
		e.mu.Unlock()
		e.release(tasks)
		return len(tasks), nil
	}
	for _, t := range tasks {
		e.stats.claims.Add(1)
		if t.Claims > 1 {
			e.stats.rescues.Add(1)
		}
		e.held[t.Fence()] = &held{rescue: true}
		e.rescue.busy++
		e.wg.Add(1)
		go e.runRescued(t)
	}
	e.mu.Unlock()
	return len(tasks), nil
}

// runRescued runs the node of t on a rescue slot.
func (e *Engine) runRescued(t statestore.Task) {
	defer e.wg.Done()
	var carry *runState
	for ok := true; ok; {
		t, carry, ok = e.execTask(t, carry)
	}
	e.mu.Lock()
	e.rescue.busy--
	e.mu.Unlock()
}
