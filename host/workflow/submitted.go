package workflow

import "github.com/bulkhead-run/bulkhead/statestore"

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
