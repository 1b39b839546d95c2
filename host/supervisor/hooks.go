package supervisor

import (
	"errors"
	"strings"
	"sync/atomic"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// Hooks carries what the host's resilience pipeline sees to a supervisor:
// breaker transitions and trapped calls. Create it before the host, build
// the host with HostOptions, and hand it to New with WithHooks. Signals that
// arrive before New or after Stop are dropped.
type Hooks struct {
	sv atomic.Pointer[Supervisor]
}

// NewHooks returns unbound hooks.
func NewHooks() *Hooks { return &Hooks{} }

// HostOptions returns the host options that install the hooks: a breaker
// state-change hook (StateChange) and a classifier (Classify) that calls
// host.Classify. A caller that needs its own state-change hook or
// classifier installs those instead and calls the methods from them.
func (k *Hooks) HostOptions() []host.Option {
	return []host.Option{host.WithResilienceOptions(
		resilience.WithStateChange(k.StateChange),
		resilience.WithClassifier(k.Classify),
	)}
}

// StateChange reports a breaker transition; an executor named
// host.PolicyName(plugin) (or a per-call override under it) that opens
// asks the supervisor to rebuild that plugin. It never blocks.
func (k *Hooks) StateChange(name string, _, to resilience.State) {
	if to != resilience.Open {
		return
	}
	plugin, ok := strings.CutPrefix(name, host.PolicyName(""))
	if !ok {
		return
	}
	plugin, _, _ = strings.Cut(plugin, "/")
	if sv := k.sv.Load(); sv != nil {
		sv.trigger(plugin, CauseBreaker)
	}
}

// Classify is host.Classify, counting every trapped attempt against its
// plugin's trap threshold on the way. It never blocks.
func (k *Hooks) Classify(err error) resilience.Class {
	var ge *host.GuestError
	if errors.As(err, &ge) && ge.Kind == host.KindTrap {
		if sv := k.sv.Load(); sv != nil {
			sv.noteTrap(ge.Plugin)
		}
	}
	return host.Classify(err)
}
