package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/resilience"
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

func newPluginHealth(cfg *config.Config, log *slog.Logger, mon *resilience.Monitor, h *host.Host) *pluginHealth {
	return &pluginHealth{mon: mon, h: h, every: cfg.Resilience.HealthCheckInterval.D(), log: log.With("module", "health")}
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
