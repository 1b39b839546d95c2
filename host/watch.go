package host

import (
	"errors"
	"sync"

	"github.com/bulkhead-run/bulkhead/resilience"
)

// Watcher hears what the host's resilience pipeline sees. Either field may
// be nil. Both are called on the goroutine of the call that caused the
// event, outside the host's locks; they must not block.
type Watcher struct {
	// BreakerChange is called after a breaker of the host changes state;
	// name is the executor's name (PolicyName(plugin) for a plugin's own
	// breaker, PolicyName(plugin)+"/..." for a per-call override).
	BreakerChange func(name string, from, to resilience.State)
	// Trap is called for every attempt a guest trap ended (a
	// *GuestError of KindTrap), before the attempt is classified.
	Trap func(err *GuestError)
}

// watchers holds the registered Watchers; its hooks are installed in
// every executor the host creates.
type watchers struct {
	mu   sync.RWMutex
	next int
	all  map[int]Watcher
}

// Watch registers w and returns the function that removes it (idempotent).
// A supervisor uses it to rebuild plugins whose breaker opens or that keep
// trapping.
func (h *Host) Watch(w Watcher) (remove func()) {
	ws := &h.watchers
	ws.mu.Lock()
	if ws.all == nil {
		ws.all = make(map[int]Watcher)
	}
	id := ws.next
	ws.next++
	ws.all[id] = w
	ws.mu.Unlock()
	return func() {
		ws.mu.Lock()
		delete(ws.all, id)
		ws.mu.Unlock()
	}
}

func (ws *watchers) each(f func(Watcher)) {
	ws.mu.RLock()
	list := make([]Watcher, 0, len(ws.all))
	for _, w := range ws.all {
		list = append(list, w)
	}
	ws.mu.RUnlock()
	for _, w := range list {
		f(w)
	}
}

func (ws *watchers) breakerChanged(name string, from, to resilience.State) {
	ws.each(func(w Watcher) {
		if w.BreakerChange != nil {
			w.BreakerChange(name, from, to)
		}
	})
}

// classify is Classify, telling the watchers about traps first.
func (ws *watchers) classify(err error) resilience.Class {
	var ge *GuestError
	if errors.As(err, &ge) && ge.Kind == KindTrap {
		ws.each(func(w Watcher) {
			if w.Trap != nil {
				w.Trap(ge)
			}
		})
	}
	return Classify(err)
}
