// Package app wires `bulkhead serve` with fx: the state store, the host,
// the plugin supervisor, the workflow engine, the health monitor and the
// HTTP API, each built by its fx-free constructor and started and stopped
// by lifecycle hooks in a fixed order.
//
// Start order: store (opened by its provider), host, supervisor (loads the
// plugin directory), monitor, HTTP server, engine (loads the workflows and
// resumes unfinished runs). Stop runs the hooks in reverse, after a first
// hook that drains the API (new runs and calls get 503, /readyz fails):
// the engine stops starting nodes and lets running ones finish within the
// grace period, then cancels them so they resume on the next start; then
// the HTTP server shuts down, the monitor, supervisor and host stop, and
// the store is closed (flushed). Every hook returns once its component is
// ready or stopped; none blocks for the life of the service.
//
// OpenStore opens the configured store, the embedded one in the data
// directory or PostgreSQL (store.url), for the service and for every CLI
// command alike; its errors never hold the URL's password. The monitor's
// "store" check and /readyz read the store, so /readyz answers 503 while
// a PostgreSQL store cannot be reached.
package app
