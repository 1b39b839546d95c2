package workflow

import (
	"context"
	"maps"
	"slices"

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
// journal it) whose needs are all remembered reads nothing. Other nodes
// read the entries of their needs that are not remembered and their own,
// and no other, so a run of n nodes reads O(n) entries, not n². A map node
// reads the whole journal: its items' entries are in it.
func (e *Engine) journalFor(ctx context.Context, rs *runState, n *Node, kept bool) (map[string]statestore.NodeResult, error) {
	if kept {
		if results, ok := rs.known(n.Needs); ok {
			return results, nil
		}
	}
	if n.Map != nil {
		results, err := e.store.NodeResults(ctx, rs.id)
		if err != nil {
			return nil, err
		}
		rs.remember(slices.Collect(maps.Values(results))...)
		return results, nil
	}
	results, missing := rs.some(n.Needs)
	if r, ok := rs.entry(n.Name); ok {
		results[n.Name] = r
	} else {
		missing = append(missing, n.Name)
	}
	read, err := e.store.NodeResultsOf(ctx, rs.id, missing)
	if err != nil {
		return nil, err
	}
	for _, r := range read {
		results[r.Node] = r
		rs.remember(r)
	}
	return results, nil
}

// some returns the remembered entries of names and the names that are
// not remembered.
func (rs *runState) some(names []string) (map[string]statestore.NodeResult, []string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make(map[string]statestore.NodeResult, len(names)+1)
	var missing []string
	for _, name := range names {
		if r, ok := rs.journal[name]; ok {
			out[name] = r
		} else {
			missing = append(missing, name)
		}
	}
	return out, missing
}

// entry returns the remembered entry of node name.
func (rs *runState) entry(name string) (statestore.NodeResult, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.journal[name]
	return r, ok
}

// journalComplete returns the journal of rs after the completion of one
// of its nodes, to tell whether every node is journaled: the remembered
// entries when they cover every node; else those with the entries of the
// nodes that are not remembered, read from the store (map items are left
// out: journaledAll and the run's output do not need them). The last
// node not remembered (in topological order: the likeliest to be still
// running) is read on its own first: when it is not journaled the run is
// not done and the rest is not read, so a run of many nodes that nothing
// needs reads about one entry per completion.
func (e *Engine) journalComplete(rs *runState) (map[string]statestore.NodeResult, error) {
	results, missing := rs.some(rs.wf.Order)
	if len(missing) == 0 {
		return results, nil
	}
	if last := len(missing) - 1; last > 0 {
		probe, err := e.store.NodeResultsOf(e.base, rs.id, missing[last:])
		if err != nil {
			return nil, err
		}
		r, ok := probe[missing[last]]
		if !ok {
			return results, nil
		}
		results[r.Node] = r
		rs.remember(r)
		missing = missing[:last]
	}
	read, err := e.store.NodeResultsOf(e.base, rs.id, missing)
	if err != nil {
		return nil, err
	}
	for _, r := range read {
		results[r.Node] = r
		rs.remember(r)
	}
	return results, nil
}
