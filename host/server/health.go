package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/resilience"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// pluginHealth keeps one plugin:NAME health component per plugin of the
// directory: registered when the plugin appears, registered afresh when
// it changes (a new version starts with a clean record) and removed with
// its file, so a plugin that is gone never holds the health down.
type pluginHealth struct {
	mon   *resilience.Monitor
	h     *host.Host
	sv    *supervisor.Supervisor // set once the supervisor exists, before it starts
	every time.Duration
	log   *slog.Logger
}

// pluginComponent is the health component name of a plugin.
func pluginComponent(name string) string { return "plugin:" + name }

// changed is the supervisor's change hook; calls for one plugin come one
// at a time.
func (p *pluginHealth) changed(name string, removed bool) {
	comp := pluginComponent(name)
	if err := p.mon.Unregister(comp); err != nil && !errors.Is(err, resilience.ErrUnknownCheck) {
		p.log.Warn("health component not removed", "component", comp, "err", err)
	}
	if removed {
		return
	}
	err := p.mon.Register(comp, p.check(name), p.every)
	if err != nil && !errors.Is(err, resilience.ErrMonitorStopped) {
		p.log.Warn("health component not added", "component", comp, "err", err)
	}
}

// check is the host's check of the plugin, reporting a quarantined
// plugin as failed with the supervisor's reason.
func (p *pluginHealth) check(name string) resilience.CheckFunc {
	base := p.h.PluginCheck(name)
	return func(ctx context.Context) resilience.CheckResult {
		if p.sv != nil {
			if st, ok := p.sv.Status(name); ok && st.State == supervisor.StateQuarantined {
				return resilience.CheckResult{Message: "quarantined: " + st.Reason}
			}
		}
		return base(ctx)
	}
}

// storeCheck reads a key that does not exist: the store answers
// ErrNotFound when it is open and readable.
func storeCheck(ctx context.Context, s statestore.Store) error {
	_, err := s.GetRun(ctx, "\x01health")
	if err == nil || errors.Is(err, statestore.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("store: %w", err)
}

// pluginDirCheck reports the plugin directory: failed when it cannot be
// read, degraded while a plugin is refused or quarantined (not while it
// is being loaded).
func pluginDirCheck(sup *supervisor.Supervisor) resilience.CheckResult {
	dir := sup.Registry().Dir()
	if _, err := os.ReadDir(dir); err != nil {
		return resilience.CheckResult{Message: err.Error()}
	}
	var bad []string
	for _, st := range sup.Statuses() {
		// A plugin still being loaded (no state yet) is not a fault.
		if st.State != supervisor.StateOK && st.State != "" {
			bad = append(bad, st.Name+" "+string(st.State)+": "+st.Reason)
		}
	}
	res := resilience.CheckResult{OK: true, Metadata: map[string]any{"dir": dir, "plugins": len(sup.Statuses())}}
	if len(bad) > 0 {
		res.Degraded, res.Message = true, strings.Join(bad, "; ")
	}
	return res
}
