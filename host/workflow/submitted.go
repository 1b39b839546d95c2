package workflow

import (
	"context"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// maxSubmitted bounds the runs an engine remembers from its own submits.
const maxSubmitted = 1024

// submitted holds the runs this engine created lately and has not
// executed yet, as created: the first claim of one of them starts from
// this copy instead of reading the run, and a root's first claim does not
// read the journal either (nothing but that claim's holder can have
// journaled the root): two round trips fewer at the start of every run. Runs whose roots another engine
// claimed are forgotten as newer ones arrive. Its methods are called with
// Engine.mu held.
type submitted struct {
	runs map[string]statestore.Run
	ring []string
	next int
}

func (s *submitted) add(r statestore.Run) {
	if s.runs == nil {
		s.runs = map[string]statestore.Run{}
	}
	if _, ok := s.runs[r.ID]; ok {
		return
	}
	if len(s.ring) < maxSubmitted {
		s.ring = append(s.ring, r.ID)
	} else {
		delete(s.runs, s.ring[s.next])
		s.ring[s.next] = r.ID
		s.next = (s.next + 1) % maxSubmitted
	}
	s.runs[r.ID] = r.Clone()
}

// take returns and forgets run id as submitted here, when it is
// remembered and t is the first claim of one of its tasks.
func (s *submitted) take(t statestore.Task) (statestore.Run, bool) {
	r, ok := s.runs[t.RunID]
	if !ok {
		return statestore.Run{}, false
	}
	delete(s.runs, t.RunID) // its slot in ring is reused in turn
	return r, t.Claims == 1
}

// submit stores run r with its roots queued. When a worker is free and
// the store can, the submit also claims the first root for this engine
// (claimed), which Submit hands to a worker once it reported the run:
// the run starts without a claim of its own.
func (e *Engine) submit(ctx context.Context, r statestore.Run, roots []statestore.ReadyNode) (statestore.Run, bool, statestore.Task, bool, error) {
	sc, ok := e.store.(statestore.SubmitClaimer)
	if ok {
		// A worker not busy takes the root: one waiting for work, or one
		// just started that has not reached its wait yet.
		e.mu.Lock()
		ok = e.state == stateStarted && e.o.workers-e.busy > len(e.pending)
		e.mu.Unlock()
	}
	if !ok {
		stored, created, err := e.store.SubmitRun(ctx, r, roots)
		return stored, created, statestore.Task{}, false, err
	}
	return sc.SubmitRunClaim(ctx, r, roots, e.o.owner, e.o.lease)
}

// handOff gives t, claimed by this engine's submit, to a worker, as the
// claimer gives the tasks it claims; an engine stopping meanwhile
// releases it.
func (e *Engine) handOff(t statestore.Task) {
	e.mu.Lock()
	if e.state != stateStarted {
		e.mu.Unlock()
		e.release([]statestore.Task{t})
		return
	}
	e.held[t.Fence()] = &held{}
	e.stats.claims.Add(1)
	e.pending = append(e.pending, t)
	e.work.Signal()
	e.mu.Unlock()
}
