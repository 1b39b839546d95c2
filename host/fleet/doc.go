// Package fleet is one host's part in a fleet of bulkhead hosts that share
// a store (PostgreSQL): membership and plugin modules.
//
// A Member registers the host in the store (statestore.Hosts) when it
// starts and beats every Config.Heartbeat with the plugin versions the host
// serves; other hosts list it as live until it misses
// statestore.MissedHeartbeats beats, on the store's clock. Stop removes it.
//
// Record, installed as the supervisor's load hook, stores the bytes of each
// version the host loads (statestore.Modules, by SHA-256, idempotent), from
// the member's goroutine, before the next heartbeat lists the version.
// Invoker wraps the engine's invoker: a call pinned to a version the host
// does not have fetches that version from the store, checks its hash,
// compiles it beside the current one (host.LoadPinned) and runs on it, so
// any host can run any run whatever plugin files it was given. A fetched
// version runs under the manifest recorded with it and the host's default
// resilience policy.
//
// Lifecycle: New validates; Start registers (returning its error) and
// starts the one goroutine; Stop stops and waits for it, then removes the
// host from the store. A Member is safe for concurrent use.
package fleet
