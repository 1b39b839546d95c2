// Package api is the HTTP face of `bulkhead serve`: the JSON API under
// /v1, the liveness and readiness probes, the Prometheus metrics, the
// dashboard, and a Client for CLI commands that talk to a running service.
//
// # Routes
//
// Routes are net/http ServeMux patterns ("POST /v1/plugins/{name}/call").
// openapi.json documents every one of them and is served at
// /v1/openapi.json; a test fails when a route is added without being
// documented, or documented without being served. Unknown paths and wrong
// methods get the same JSON error shape as everything else (404
// not_found, 405 method_not_allowed with an Allow header).
//
// # Errors
//
// Every error response is {"error": {"code": …, "message": …}} with a
// stable code (the Code* constants). A plugin call maps so: permanent
// failure 422, plugin failure after every attempt
// 502, breaker open, concurrency limit or draining 503, timeout 504. For
// an *resilience.ExhaustedError the last attempt's error decides. Store
// sentinels map to 404 (ErrNotFound), 409 (ErrConflict), 400 (ErrInvalid);
// Deps.MapError maps the components' own errors first.
//
// # Security
//
// When Config.Token is set, every /v1 route needs "Authorization: Bearer
// TOKEN". The comparison is constant-time over the SHA-256 of the token,
// so neither content nor length leaks through timing. /healthz, /readyz,
// /metrics and the dashboard page are public (the page itself holds no
// data; it asks for the token and reads the API with it). Bodies are
// capped (Config.MaxBody, 413 body_too_large, whether the client sent a
// Content-Length or not), run inputs too (Config.MaxRunInput). Server
// sets read-header, read, write and idle timeouts. Refusing a public
// address without a token is cmd's job (it has the listen address).
//
// Before any route, without a token, the Host header must name localhost,
// a loopback address, Config.Listen's host or one of Config.PublicNames
// (403 host_not_allowed: DNS rebinding). With or without one, a POST, PUT
// or DELETE that a browser sends from another origin is refused (403
// cross_origin, by net/http's CrossOriginProtection; the public names'
// origins are trusted). JSON endpoints take only application/json (415
// unsupported_media_type) and one JSON value (400 for trailing data). Run
// and dead-letter IDs are checked by CheckID (400) before the store sees
// them; error messages are cut at 4 KiB.
//
// # Metrics
//
// Most metrics are read at scrape time from the counters the components
// already keep (host.Plugins, host.Breakers, the monitor, the run and
// dead-letter counts, the supervisor's load counts), through a
// prometheus.Collector: nothing in the call path is instrumented twice and
// the scrape cost does not depend on the call rate. The exceptions are
// observed as they happen: the call latency histogram, by the call
// endpoint and, for workflow nodes, by Metrics.Instrument, which wraps the
// engine's Invoker; and the finished runs and saved checkpoints, counted by
// Metrics.Observe, the engine's observer (workflow.WithObserver).
//
// bulkhead_fuel_used_total{plugin} is the CPU the loaded version of a
// plugin has burned, in fuel units (about one Wasm instruction each),
// read from host.PluginInfo.FuelUsed. A plugin that runs unmetered has no
// such series rather than a zero, which would say it burned nothing.
//
// # Dependencies
//
// Deps takes the components as they are: *supervisor.Supervisor is a
// Plugins and *workflow.Engine a Workflows. The API turns their values
// into its JSON views (PluginStatus with the host's figures,
// WorkflowSummary), which Client reads back.
//
// # Lifecycle and concurrency
//
// New builds the handler and starts nothing. Drain (idempotent) makes the
// API refuse new runs, resumes, replays and calls with 503 draining and
// fail /readyz, while reads keep working, so a load balancer stops sending
// work before the process stops. Server.Start binds and serves in one
// goroutine; Server.Stop shuts down within its context and waits for it.
// GET /v1/events streams Deps.Events (an *Events fed by the engine's
// observer) as Server-Sent Events: each stream is its request's goroutine,
// with a bounded buffer that drops (and counts, and tells the client)
// what a slow client cannot take, so Publish never blocks the engine. A
// stream ends when its client goes away or Events.Close is called; call
// Close before Server.Stop, whose graceful shutdown waits for requests in
// flight. All methods are safe for concurrent use; the runtime resilience
// configuration is guarded by one mutex. A per-plugin policy set through
// PUT /v1/config/resilience is a host override (host.OverridePolicy): it
// outlives reloads and rebuilds, and lives in memory only.
package api
