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
// rescuer closes that gap: every poll interval, while no worker is idle,
// it claims tasks whose lease ended (statestore.Queue.ClaimExpiredTasks,
// never queued ones) and starts them at once on rescue slots, a few
// goroutines beyond the workers that run one rescued node each and leave
// its dependents queued. When it finds more expired tasks than free slots,
// it puts one in front of the pending tasks and has every worker hand the
// dependent it would keep back to the queue: the next worker to finish a
// node runs that task, and the ones after it go idle, so the claimer
// claims for them, and a claim takes expired tasks before queued ones.

type rescueOptions struct {
	slots int
	set   bool
}

// WithRescueSlots sets how many nodes rescued from other engines sharing
// the store (their owner stopped heartbeating and their lease ended) may
// run beyond the workers while every worker is busy (default: workers/8,
// at least 1). A rescue slot runs one node and leaves its dependents
// queued. With 0, no node runs beyond the workers: a rescue waits for a
// worker to finish the node it runs.
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
	// waiting: the last look for expired tasks found more than it could
	// start, so workers hand their dependents back (handBack).
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

// rescuer claims expired tasks while no worker is idle, every poll
// interval, and starts them on rescue slots.
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
		if e.idle > len(e.pending) {
			// A worker is idle: the claimer takes expired tasks first.
			e.rescue.waiting = false
			e.mu.Unlock()
			continue
		}
		free := e.o.rescueSlots() - e.rescue.busy
		want := free
		if len(e.pending) == 0 {
			want++ // one for the next worker to finish a node
		}
		e.mu.Unlock()
		if want == 0 {
			continue
		}
		tasks, err := e.claimExpired(want)
		if err != nil {
			if e.base.Err() == nil {
				e.log.Warn("cannot claim expired nodes", "err", err)
			}
			continue
		}
		e.mu.Lock()
		if e.state != stateStarted {
			e.mu.Unlock()
			e.release(tasks)
			return
		}
		e.rescue.waiting = len(tasks) == want
		for i, t := range tasks {
			e.stats.claims.Add(1)
			if t.Claims > 1 {
				e.stats.rescues.Add(1)
			}
			if i < free {
				e.held[t.Fence()] = &held{rescue: true}
				e.rescue.busy++
				e.wg.Add(1)
				go e.runRescued(t)
				continue
			}
			e.held[t.Fence()] = &held{}
			e.pending = append([]statestore.Task{t}, e.pending...)
			e.work.Signal()
		}
		e.mu.Unlock()
	}
}

func (e *Engine) claimExpired(n int) ([]statestore.Task, error) {
	ctx, cancel := context.WithTimeout(e.base, 10*time.Second)
	defer cancel()
	return e.store.ClaimExpiredTasks(ctx, e.o.owner, n, e.o.lease)
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
