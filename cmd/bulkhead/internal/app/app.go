// Package app wires `bulkhead serve` with fx: it opens the configured
// store (so that a store that cannot be used fails the construction, with
// its own message) and runs the service, server.Server, over it with one
// lifecycle hook. Everything else is server's.
package app

import (
	"context"
	"log/slog"
	"os"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/server"
	"github.com/bulkhead-run/bulkhead/statestore"
)

// Version is the service's bulkhead version, as hosts report it to each
// other; main sets it.
var Version = "dev"

// Options returns the fx options of the service configured by cfg,
// logging to log.
func Options(cfg *config.Config, log *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg, log),
		fx.WithLogger(func() fxevent.Logger {
			if log.Enabled(context.Background(), slog.LevelDebug) {
				return &fxevent.SlogLogger{Logger: log.With("module", "fx")}
			}
			return fxevent.NopLogger
		}),
		fx.StartTimeout(2*time.Minute),
		fx.StopTimeout(cfg.Drain.GracePeriod.D()+server.StopSlack),
		fx.Provide(newStore, newServer),
		fx.Invoke(register),
	)
}

// StoreOptionsOf returns the store options of cfg.
func StoreOptionsOf(cfg *config.Config, log *slog.Logger) server.StoreOptions {
	return server.StoreOptions{
		URL: cfg.Store.URL, DataDir: cfg.DataDir, Logger: log,
		Retention: cfg.Store.Retention.D(), MaxCheckpoints: cfg.Store.MaxCheckpoints,
		Reserve: int64(cfg.Store.FreeSpaceReserve),
	}
}

// storeOpenTimeout bounds the connection to a PostgreSQL store and its
// migrations at start.
const storeOpenTimeout = time.Minute

func newStore(cfg *config.Config, log *slog.Logger) (statestore.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	return server.OpenStore(ctx, StoreOptionsOf(cfg, log.With("module", "store")))
}

// ServerConfig is the service configuration cfg describes.
func ServerConfig(cfg *config.Config) (server.Config, error) {
	pol, err := cfg.Policy()
	if err != nil {
		return server.Config{}, err
	}
	return server.Config{
		Listen: cfg.Listen, PublicNames: cfg.PublicNames, Token: cfg.Token(),
		PluginsDir: cfg.PluginsDir, WorkflowsDir: cfg.WorkflowsDir, DataDir: cfg.DataDir, CacheDir: cfg.CacheDir,
		Policy: &pol, Preset: cfg.Resilience.Preset, Dashboard: cfg.DashboardEnabled(),
		MaxBody: int64(cfg.Limits.MaxBody), MaxRunInput: int64(cfg.Limits.MaxRunInput),
		MaxModuleSize: int64(cfg.Plugins.MaxModuleSize), StartTimeout: cfg.Plugins.StartTimeout.D(),
		Engine: cfg.Plugins.Engine, HealthCheckInterval: cfg.Resilience.HealthCheckInterval.D(),
		HTTP: api.ServerConfig{
			ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.D(),
			ReadTimeout:       cfg.HTTP.ReadTimeout.D(),
			WriteTimeout:      cfg.HTTP.WriteTimeout.D(),
			IdleTimeout:       cfg.HTTP.IdleTimeout.D(),
		},
		Store:  StoreOptionsOf(cfg, nil),
		HostID: cfg.Store.HostID, Lease: cfg.Store.Lease.D(), Heartbeat: cfg.Store.Heartbeat.D(),
		GracePeriod: cfg.Drain.GracePeriod.D(),
		Version:     Version,
	}, nil
}

func newServer(cfg *config.Config, log *slog.Logger, store statestore.Store) (*server.Server, error) {
	sc, err := ServerConfig(cfg)
	if err != nil {
		return nil, err
	}
	return server.New(sc, server.WithLogger(log), server.WithStore(store), server.WithGetenv(os.Getenv))
}

// register closes the store after the service stopped.
func register(lc fx.Lifecycle, srv *server.Server, store statestore.Store) {
	lc.Append(fx.Hook{OnStop: func(ctx context.Context) error { return server.CloseStore(ctx, store) }})
	lc.Append(fx.Hook{OnStart: srv.Start, OnStop: srv.Stop})
}
