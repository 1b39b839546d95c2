package resilience

import (
	"slices"
	"sync"
)

// Registry holds named executors (one per plugin, per destination host, …)
// created with the registry's options. Safe for concurrent use.
type Registry struct {
	opts []Option
	mu   sync.RWMutex
	m    map[string]*Executor
}

// NewRegistry returns an empty registry; opts apply to every executor it
// creates.
func NewRegistry(opts ...Option) *Registry {
	return &Registry{opts: opts, m: make(map[string]*Executor)}
}

// Get returns the named executor.
func (r *Registry) Get(name string) (*Executor, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.m[name]
	return e, ok
}

// GetOrCreate returns the named executor, creating it with p if missing.
// An existing executor keeps its policy (use Update to change it).
func (r *Registry) GetOrCreate(name string, p Policy) (*Executor, error) {
	if e, ok := r.Get(name); ok {
		return e, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[name]; ok {
		return e, nil
	}
	e, err := New(name, p, r.opts...)
	if err != nil {
		return nil, err
	}
	r.m[name] = e
	return e, nil
}

// Update swaps the named executor's policy, keeping its breaker state,
// or creates it with p.
func (r *Registry) Update(name string, p Policy) error {
	r.mu.Lock()
	e, ok := r.m[name]
	if !ok {
		defer r.mu.Unlock()
		e, err := New(name, p, r.opts...)
		if err != nil {
			return err
		}
		r.m[name] = e
		return nil
	}
	r.mu.Unlock()
	return e.SetPolicy(p)
}

// Remove forgets the named executor; it reports whether one existed.
func (r *Registry) Remove(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[name]
	delete(r.m, name)
	return ok
}

// Names returns the executor names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	r.mu.RUnlock()
	slices.Sort(names)
	return names
}

// Stats returns every executor's stats by name.
func (r *Registry) Stats() map[string]Stats {
	r.mu.RLock()
	es := make([]*Executor, 0, len(r.m))
	for _, e := range r.m {
		es = append(es, e)
	}
	r.mu.RUnlock()
	out := make(map[string]Stats, len(es))
	for _, e := range es {
		out[e.name] = e.Stats()
	}
	return out
}
