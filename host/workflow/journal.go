package workflow

import (
	"context"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// A run's journal entries never change once committed (a node is
// journaled once, and a second completion keeps the first entry), so an
// engine keeps the entries it read or committed in the run's state and
// skips the read of the journal a node would otherwise start with: a
// chain of nodes on one engine reads the journal once, when its run is
// loaded.

// remember records committed journal entries of rs.
func (rs *runState) remember(results ...statestore.NodeResult) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range results {
		if _, ok := rs.journal[r.Node]; !ok {
			rs.journal[r.Node] = r
		}
	}
}

// known returns the remembered entries of names, and whether every one
// of them is remembered.
func (rs *runState) known(names []string) (map[string]statestore.NodeResult, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make(map[string]statestore.NodeResult, len(names))
	for _, name := range names {
		r, ok := rs.journal[name]
		if !ok {
			return nil, false
		}
		out[name] = r
	}
	return out, true
}

// journalFor returns the journal entries node n of rs starts from: those
// of its needs and, when it is journaled already, its own. A kept claim
// (its task was queued, and claimed for this engine, by the completion
// before it, which found it not journaled; only its claim's holder can
// journal it) whose needs are all remembered reads nothing.
func (e *Engine) journalFor(ctx context.Context, rs *runState, n *Node, kept bool) (map[string]statestore.NodeResult, error) {
	if kept {
		if results, ok := rs.known(n.Needs); ok {
			return results, nil
		}
	}
	results, err := e.store.NodeResults(ctx, rs.id)
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		rs.remember(r)
	}
	return results, nil
}

// journalComplete returns the whole journal of rs after the completion of
// one of its nodes: the remembered entries when they cover every node,
// else the store's.
func (e *Engine) journalComplete(rs *runState) (map[string]statestore.NodeResult, error) {
	if results, ok := rs.known(rs.wf.Order); ok {
		return results, nil
	}
	results, err := e.store.NodeResults(e.base, rs.id)
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		rs.remember(r)
	}
	return results, nil
}
