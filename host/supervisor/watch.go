package supervisor

import (
	"strings"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// watcher is what the supervisor registers with its host (host.Watch)
// while it runs: breaker openings and trapped calls ask for rebuilds.
func (s *Supervisor) watcher() host.Watcher {
	return host.Watcher{BreakerChange: s.breakerChanged, Trap: func(ge *host.GuestError) { s.noteTrap(ge.Plugin) }}
}

// breakerChanged asks for a rebuild of the plugin whose own breaker
// (host.PolicyName(plugin)) or a per-call override under it opened. It
// never blocks.
func (s *Supervisor) breakerChanged(name string, _, to resilience.State) {
	if to != resilience.Open {
		return
	}
	plugin, ok := strings.CutPrefix(name, host.PolicyName(""))
	if !ok {
		return
	}
	plugin, _, _ = strings.Cut(plugin, "/")
	s.trigger(plugin, CauseBreaker)
}
