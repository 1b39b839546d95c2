// Package host is bulkhead's runtime: it compiles Extism-ABI modules, keeps
// a bounded pool of instances per plugin version, provides bulkhead's host
// functions (module "bulkhead:host/v1") and runs every call under a
// deadline, a memory cap and size limits. Invoke adds the resilience
// pipeline (retry ⊃ breaker ⊃ limiter ⊃ attempt timeout) on top of Call.
// A plugin's policy has two layers: SetPolicy sets the one its manifest
// asks for, and OverridePolicy a runtime one that wins over it until the
// host stops, whatever SetPolicy does meanwhile (a reload, a rebuild);
// Policy says which runs.
//
// # Lifecycle
//
// New validates options and allocates; it does no I/O. Start opens the
// compilation cache (on disk with WithCacheDir, so a restart does not
// recompile) and starts the janitor that closes idle instances. Load
// compiles a module beside the version that serves now (at most
// WithMaxCompiles compiles at once), proves it instantiates (under the
// start timeout, WithStartTimeout, default DefaultStartTimeout: a start
// function still running then fails the load, whatever the call timeout),
// then swaps atomically: new calls use the new version, calls
// in flight finish on the old one, whose pool drains in the background and
// whose compiled code is then freed. A module that fails to compile or
// instantiate never replaces a working version. LoadPinned compiles a
// version that serves only calls pinned to it (WithVersion), leaving the
// current one in place, so a host can run the version a run was pinned to
// after its file was replaced or on a host that never had it; at most
// MaxPinned are kept per plugin, until Stop. Stop refuses new calls,
// drains within its context and waits for every goroutine the host started;
// it is idempotent.
//
// # Calls
//
// An instance serves one call at a time. Every call has a deadline: the
// earliest of the caller's and the plugin's timeout (DefaultTimeout unless
// the manifest says otherwise). A guest still running at its deadline is
// stopped by fuel metering (host/internal/fuel: the module is rewritten at
// load time to ask the host at least every slice of work), or, for a module
// the rewriter cannot meter, by wazero's close-on-context-done;
// host/internal/xabi is the one place the choice is made. An instance that
// trapped, exited, timed out or hit its memory cap is closed and never
// pooled again. Guests see the real wall and monotonic
// clocks, real sleep and crypto/rand; they get no filesystem, network or
// environment unless the manifest allows hosts or paths.
//
// # Engines
//
// Two engines run plugins, chosen per host (WithEngine, default
// DefaultEngine) and per plugin (the manifest's engine: native or extism):
//
//   - native: bulkhead's own implementation of the Extism ABI on wazero
//     (host/internal/xabi). One wazero runtime per plugin version holds
//     WASI, "extism:host/env" and the host modules; each instance is one
//     guest module plus its kernel memory. The Extism kernel (the allocator
//     and the input, output and error records that go-sdk runs as a Wasm
//     module beside each guest) is implemented in Go, over a memory per
//     instance laid out exactly as the kernel lays out its memory (a root
//     record at address 1, then 12-byte block headers before each block),
//     the same bump allocator that reuses freed blocks only when full and
//     grows a page at a time up to the memory cap, and reset in place
//     before each call, so handles, lengths and bytes are the kernel's (a
//     test drives both with random operation sequences and compares every
//     result and every byte). Host functions find their instance through
//     the call's context. That memory is the memory of a small Wasm module
//     of the host's, one instance per guest instance, whose functions are
//     the kernel's byte and word accessors (load_u8, store_u8, load_u64,
//     store_u64, input_load_u8, input_load_u64): the guest's imports of
//     them are linked to it, so a guest moving data 8 bytes at a time, as
//     upstream PDKs do, calls Wasm to Wasm and never returns to Go for it.
//   - extism: Extism's go-sdk, the reference. The differential suite runs
//     every fixture under both and requires the same outputs, return codes,
//     error messages, logs, vars and config behaviour.
//
// Deliberate differences of the native engine:
//
//   - It passes log_trace lines on (go-sdk drops them by a process-wide
//     level) and get_log_level says trace; the host's logger filters.
//   - A call whose input does not fit the kernel memory under the memory
//     cap fails as KindMemory (go-sdk drops the input and calls the guest
//     with none), and a failed call during which any kernel allocation
//     failed is KindMemory: the kernel memory's cap is classified exactly.
//   - A block chain the guest corrupted through store_u8/store_u64 ends the
//     kernel's walk instead of looping forever.
//   - An unmetered module's call that fails after the memory cap refused a
//     grow of its memory is KindMemory, where go-sdk's guess may say
//     KindTrap (see Memory cap below).
//
// The memory cap is classified exactly, on both engines, for a metered
// module: it reports every failed memory.grow, and a failed call after
// one is KindMemory. Unmetered, the native engine sees each grow the cap
// refuses, but not one that Wasm's own limits refuse before the cap is
// asked (past the module's declared maximum, or past 4 GiB): such a call
// is KindTrap, where metered it is KindMemory. Unmetered under go-sdk the
// kind is a guess from the memory's size and the guest's stderr.
//
// On both engines guest HTTP (http_request, http_status_code,
// http_headers) is bulkhead's implementation, with go-sdk's checks and
// messages, sent by a client the host owns: under go-sdk the module's HTTP
// imports are renamed at load time to a module the host serves, since
// go-sdk's own http_request uses http.DefaultClient. http_headers returns
// the last response's headers (lower-case names) on both. A breaker per
// destination host guards guest requests, every redirect hop is checked
// against allowed_hosts, and a link-local or cloud metadata address the
// list does not name is never dialled. The process's http.DefaultClient
// and http.DefaultTransport are never touched. Measurements and the
// reasoning behind the engines, the memory cap and the stack bound are in
// docs/design/host.md.
//
// # Guest resources
//
// What a guest hands the host is bounded by its manifest (abi.Manifest):
// an error message is cut at max_error in GuestError.Msg, so in every log
// line, run record and dead letter made from it; log lines are cut at
// max_log_line and rate-limited per plugin version (log_lines_per_second,
// log_bytes_per_second), dropped lines counted in a summary line at most
// once a second; the host's own warnings about failed host function calls
// are limited to 10 a second per plugin version the same way; one
// checkpoint is capped at max_checkpoint. A plugin's durable state has a
// quota of state_keys keys and state_bytes bytes (keys plus values): the
// host counts it per plugin name, starting from Durable.StateUsage on the
// plugin's first state write and counting on from every write it makes
// (host/internal/quota). A state_set that would pass the quota returns
// abi.HostQuota and stores nothing. The guarantee: while every write of a
// plugin's state goes through one Host, the state never holds more than
// its quota, also under concurrent instances (writes of one key are
// serialized, and a write reserves its growth before it is stored). State
// written behind the host's back, by another process, is counted from the
// next start; after a failed store write the count is read again.
//
// # Errors
//
// A failed guest call is a *GuestError; its Kind says how it failed and it
// matches the sentinels ErrFailed, ErrPermanent, ErrTrap, ErrTimeout (and
// context.DeadlineExceeded), ErrMemoryLimit and ErrLimit with errors.Is. An
// input over the limit is a *LimitError; a module that cannot be loaded a
// *LoadError (ErrInvalidModule). Classify maps them onto the resilience
// classes (see Classify). A guest that passes a bad handle to a host function
// traps its own call; the host never panics for a guest. Watch registers a
// Watcher that hears every breaker transition and trapped attempt (a
// supervisor rebuilds plugins from them).
//
// # Concurrency
//
// Host is safe for concurrent use. Host.mu guards the plugin map, and a
// call reads a copy of it republished on every change, without the lock;
// each plugin's current generation is an atomic pointer, so a call never
// takes a lock that a reload holds while compiling.
package host
