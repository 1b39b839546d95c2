package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"go.uber.org/fx"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/fleet"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Version is the service's bulkhead version, as hosts report it to each
// other; main sets it.
var Version = "dev"

// newMember makes the service a member of the hosts sharing its store:
// registered and beating, storing the modules it loads, fetching the
// pinned versions it lacks.
func newMember(cfg *config.Config, log *slog.Logger, store statestore.Store, h *host.Host) (*fleet.Member, *listenAddr, error) {
	fs, ok := store.(fleet.Store)
	if !ok {
		return nil, nil, fmt.Errorf("store %T cannot list hosts or share modules", store)
	}
	addr := &listenAddr{}
	m, err := fleet.New(fs, h, fleet.Config{Version: Version, Heartbeat: cfg.Store.Heartbeat.D(), Address: addr.get},
		log.With("module", "fleet"))
	return m, addr, err
}

// listenAddr is the server's address once it listens (the API, which the
// server serves, needs the member first).
type listenAddr struct{ v atomic.Pointer[string] }

func (a *listenAddr) get() string {
	if p := a.v.Load(); p != nil {
		return *p
	}
	return ""
}

// memberHook starts the membership once the server listens (its address is
// known) and stops it after the engine stopped.
func memberHook(m *fleet.Member, addr *listenAddr, srv *api.Server) fx.Hook {
	return fx.Hook{
		OnStart: func(ctx context.Context) error {
			a := srv.Addr()
			addr.v.Store(&a)
			return m.Start(ctx)
		},
		OnStop: m.Stop,
	}
}
