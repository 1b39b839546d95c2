// Package server is `bulkhead serve` as a library: the state store, the
// host, the plugin supervisor, the workflow engine, the health monitor,
// the fleet membership and the HTTP API, built from one Config and started
// and stopped together. The bulkhead command is flag parsing around it; a
// Go program embeds the same service with
//
//	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", PluginsDir: "plugins"})
//	...
//	err = srv.Run(ctx) // serves until ctx is done, then drains
//
// The pieces fit without glue: the supervisor is the engine's
// workflow.Invoker and registers its own watcher with the host, the engine
// and the supervisor are the API's api.Workflows and api.Plugins, and the
// engine's events feed api.Metrics.Observe.
//
// # Lifecycle
//
// New checks the configuration; it does no I/O and starts nothing. Start
// opens the store (Config.Store, unless WithStore gives one), then starts
// the host, the supervisor (which loads the plugin directory without
// waiting for slow modules), the monitor, the HTTP server, the fleet
// membership and the engine, which loads the workflows and resumes
// unfinished runs once the plugins of the start-up scan are settled (at
// most PluginsWait). It returns once the engine runs; /readyz answers 503
// until then, while draining, and while the store cannot be read. A Start
// that fails stops what it had started.
//
// Stop drains: the API refuses new runs and calls (503 draining), the
// engine stops starting nodes and lets running ones finish within
// GracePeriod, then cancels them so they resume on the next start; then
// the HTTP server, membership, monitor, supervisor and host stop and the
// store it opened is closed (flushed). Stop is idempotent and bounded by
// its ctx; a stopped Server does not start again (ErrStarted). Run is Start,
// wait for ctx, Stop.
//
// # Stores and plugins
//
// OpenStore opens the embedded store in a data directory (StoreDir) or
// PostgreSQL (a postgres:// URL), for the service and for every command
// that reads a store; its errors never hold the URL's password
// (ScrubError, RedactURL). NewLoader is the one way a plugin directory is
// loaded into a host, by the service and by the `run` and `plugins`
// commands alike, so a sidecar one refuses is refused by all; ReadPlugin
// reads a single plugin the same way.
//
// The Server changes no process-wide state: it reads the environment only
// through WithGetenv (for OpenTelemetry) and installs no signal handler.
package server
