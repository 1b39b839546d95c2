// Package fuel gives Wasm guests a CPU budget: Instrument rewrites a module
// at load time so that it meters its own execution ("fuel"), and the host
// side (HostModule, Meter, Refill) refills, checks and stops it. A metered
// guest asks the host at least once per slice of fuel, so a deadline, a
// cancel or a spent budget stops it within a slice, loops and loop-free
// recursion alike, without close-on-context-done; and the Go scheduler and
// garbage collector get a preemption point at every refill.
//
// # Use
//
// Instrument once when loading and cache the output with the compiled
// module; instantiate HostModule once per wazero runtime (a host built on
// another API serves the import HostModuleName/RefillName, one i64 in and
// out, by calling Refill and panicking with its error). Per call:
//
//	m := fuel.NewMeter(budget, 0)           // 0: DefaultSlice
//	res, err := fn.Call(fuel.WithMeter(ctx, m), args...)
//	used := m.Used()
//
// A call stopped by the host traps with the reason: errors.Is(err,
// context.DeadlineExceeded) (or context.Canceled) when ctx is done,
// errors.Is(err, ErrBudgetExhausted) when used > budget, and
// ErrStackExhausted when its frames exceed the stack bound. m.GrowFailed
// reports a memory.grow refused by the memory limit.
//
// # What Instrument promises
//
// The output imports one more function, "bulkhead:fuel/v1" "refill"
// (i64) -> i64, after the existing function imports. Otherwise imports,
// export names and types, and what the module computes are unchanged,
// within the stack bound (differential tests run every fixture, a Go-built
// guest and thousands of generated programs both ways and compare).
// Instrument never returns unmetered output.
//
// Cost model: one unit per executed Wasm instruction, charged per
// straight-line region before it runs (a region left early by a trap is
// still charged in full); memory.init, memory.copy and memory.fill also
// cost one unit per 8 bytes, and table.init, table.copy, table.grow and
// table.fill one per element, charged just before they run; memory.grow
// costs one unit. Counts are deterministic: the same call on the same input
// in a fresh instance uses the same fuel, whatever the slice size. No
// execution runs further past an empty counter than the longest loop-free
// path between two check points (function entries and loop headers) plus
// one bulk instruction's length charge.
//
// Call stack: a call's frames may take at most Options.MaxStack bytes
// (DefaultMaxStack, 4 MiB) as charged by FrameCost, which is at or above
// what wazero's frames use, so wazero's stack buffer for a call stays
// within about twice MaxStack (without the bound wazero grows it past 50 MB
// per call). The bound is baked into the output, so a cache of output must
// key on it. A module Instrument does not rewrite is bounded by wazero's
// ceiling alone.
//
// Accepted: everything wazero 1.12 enables by default (api.CoreFeaturesV2)
// plus the tail calls return_call and return_call_indirect. Errors:
// *UnsupportedError for threads, exception handling, typed function
// references, GC, multiple memories, memory64 and functions with more than
// 50 000 locals; ErrMalformed for anything that is not a well-formed binary
// module (so wazero's compiler never sees vector counts larger than their
// section); ErrInstrumented for a module that already imports refill.
//
// # Accuracy of Used
//
// Used is exact after a normal return or a refusal in refill; after
// another trap it is the value at the last refill (short by at most a
// slice). Functions the host calls through an exported table rather than an
// export are metered and stoppable but start with the counter and stack the
// previous call left. A guest export called re-entrantly from inside a host
// function (Extism does not do this) is charged up to one slice extra to
// the outer call.
//
// # Concurrency
//
// Instrument is a pure function, safe for concurrent use. A Meter belongs
// to one call (the goroutine that runs the guest calls Refill); Used may be
// read from any goroutine. The package starts no goroutines.
//
// How the rewrite works and why it is shaped so is in
// docs/design/fuel.md; its cost against an unmetered guest and against
// close-on-context-done is in docs/performance.md.
package fuel
