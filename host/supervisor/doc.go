// Package supervisor deploys the plugins of a directory into a host and
// keeps them healthy: a file dropped in the directory is loaded, a changed
// one is swapped in while calls keep flowing, a removed one is unloaded
// once its calls drain, and a plugin whose breaker opens or that keeps
// trapping is rebuilt from disk.
//
// # Deploying
//
// New creates the directory's plugins.Registry and turns its events into
// host calls:
//
//   - Added, Changed: host.Load with the module and its manifest, then
//     host.SetPolicy with the plugin's resilience policy (PolicyOf: the
//     sidecar's preset, or WithDefaultPolicy, with its inline policy laid
//     over it). Load compiles beside the serving version and swaps
//     atomically; calls in flight finish on the old version. A runtime
//     override (host.OverridePolicy) stays in force over that policy.
//   - ManifestChanged: a change of limits, pool, sandbox or config reloads
//     the module (read from disk) with the new manifest; a change of the
//     preset or policy only is applied with SetPolicy, without a reload.
//   - Removed: host.Unload, which waits (up to WithDrainTimeout) for the
//     calls in flight.
//
// Each plugin's events and rebuilds run on that plugin's own worker
// goroutine, in order, one at a time; different plugins' work runs at
// once. The registry's delivery only queues work, so a load that takes
// long (a large module, or a start function that spins until the host's
// start timeout) delays no other plugin and no later event of another
// plugin.
//
// An event whose version is no longer the registry's newest is skipped:
// the newer file's own event follows, so a burst of writes never swaps an
// old version back in.
//
// # States
//
// Each plugin has a Status: StateOK when the newest file serves;
// StateFailed when the last change (module or sidecar) was refused and the
// previous version keeps serving, with Reason saying why (the
// *host.LoadError text, e.g. "not a WebAssembly module: bad magic number",
// or the sidecar's file:line problem, or a module file the registry
// refused: over its size cap or a link leading outside the directory);
// StateQuarantined when the plugin never had a working version. Calls to a quarantined plugin fail fast:
// Check returns a *QuarantineError (ErrQuarantined, permanent) naming the
// reason, and Supervisor.Invoke is host.Invoke behind Check, so no retry,
// breaker or timeout is spent on it. Callers that use host.Invoke directly
// get host.ErrNoPlugin (also permanent), without the reason. A good file
// dropped later releases the plugin. Status also counts the loads, refusals
// and rebuilds by Cause, and shows the breaker state and pool size.
//
// # Supervision
//
// Two signals ask for a rebuild: the plugin's breaker (the executor named
// host.PolicyName) opening, and WithTrapThreshold traps within its window.
// Both come from the host.Watcher the supervisor registers with its host
// (host.Watch) from Start to Stop; they never block the call path, only
// record the request and wake the supervisor's goroutine. Any host works:
// nothing needs to be installed in it first.
//
// A rebuild reads the plugin from disk at that moment (plugins.Registry.Read,
// bypassing the debounce) and loads it: the same bytes give a fresh
// compile (from the compilation cache) and a fresh pool; a file replaced
// meanwhile is picked up even before the watcher reports it. Rebuilds of a
// plugin are spaced by exponential backoff (WithBackoff): the first runs at
// once, the next no sooner than min after it, then 2·min, 4·min, … up to
// max; a plugin with no rebuild for 2·max starts over. Requests that come
// during the backoff are merged into one. A Changed event cancels a pending
// rebuild. The breaker is left alone: it half-opens on its own schedule and
// its probes reach the rebuilt version. Every load, refusal and rebuild is
// logged with its cause and counted in Status.
//
// # Lifecycle
//
// New validates and allocates; it does no I/O and starts nothing. Start
// scans the directory, starts loading every plugin in it and returns
// without waiting for the loads; Ready is closed (WaitReady returns) once
// each plugin of the scan has been loaded, refused or quarantined. The
// supervisor watches the directory and supervises until Stop. Stop stops
// the registry, cancels the loads in progress, drops the work not started,
// stops supervising and waits for every goroutine the supervisor started;
// it leaves the plugins loaded in the host, whose own Stop unloads them. Stop is idempotent. Reload
// reloads one plugin from disk on demand, before Start too (that is how
// `bulkhead plugins reload` checks a file).
//
// # Concurrency
//
// All methods are safe for concurrent use. Loads and unloads of one plugin
// are serialised by that plugin's lock (its worker and Reload take it);
// loads of different plugins run at once. Lock order: a plugin's lock,
// then the supervisor's mutex, which guards the statuses and the work
// queues and is never held across a host call. Goroutines: the registry's
// two, the supervisor's loop that schedules rebuilds, one that logs
// readiness, and one worker per plugin with work queued.
//
// # Cost
//
// A replaced file serves within a debounce plus one load, with no failed
// call; a warm compilation cache makes a restart several times faster than
// a cold start. docs/performance.md has the figures and their commands.
//
// # Errors
//
// ErrQuarantined (as *QuarantineError) from Check and Invoke;
// host.ErrNoPlugin for a plugin the supervisor does not know; ErrStarted
// from a second Start. Reload returns the load's error: a *host.LoadError
// (host.ErrInvalidModule), a plugins error (plugins.ErrNotFound,
// plugins.ErrInvalidName, a *plugins.ManifestError) or a policy error.
package supervisor
