// Package fuel gives Wasm guests a CPU budget by rewriting their modules at
// load time so that they meter their own execution ("fuel"), and provides
// the host side that refills, checks and stops them.
//
// wazero has no fuel, and its close-on-context-done makes a tight guest loop
// about 50 times slower while not seeing loop-free recursion at all. A
// metered guest instead calls the host at least once per slice of fuel, so
// a deadline, a cancel or a spent budget stops it within a slice, and the Go
// scheduler and garbage collector get a preemption point at every refill.
//
// # What Instrument changes
//
// Instrument(wasm, opts) decodes a binary module and returns a new one that
//
//   - imports one function, "bulkhead:fuel/v1" "refill" of type
//     (i64) -> i64, after all existing function imports (so every defined
//     function's index shifts by one: calls, return_calls, ref.func,
//     element segments, exports, the start function and the "name" section
//     are all renumbered);
//   - appends a type for refill and a mutable i64 global, the fuel counter
//     (fuel left in the current slice), initialised to 0;
//   - gives every function one extra i64 local that holds the counter while
//     the function runs, so that in loops the counter is a register. The
//     rewriter follows where the current value is (local, global or both)
//     through the code: a charge needs it in the local; a call, return,
//     return_call, branch out of the function and the function's end need
//     it in the global; a loop header and the end of a block or if (where
//     paths join) need it in the local, except the end of a block or if
//     that holds no loop and is followed only by the function's end, which
//     needs it in the global. So the local is stored only if charged since
//     the last store, and reloaded only at the next charge or join: two
//     calls in a row need one store and no load between them, and fib's
//     recursive case one load and one store instead of three of each;
//   - charges the instruction count of each region (the code from
//     function entry or from a loop, if, else, end or br_if up to the next
//     of these; end and else are free) where it starts. At function entry
//     and loop headers (check points) the charge also tests the counter:
//     when it is negative it calls refill with it and continues with the
//     counter refill returns. Other regions only subtract. At the header of
//     a loop without parameters or calls the refill call sits outside the
//     loop: the loop is wrapped as block, loop, block, loop (the original); its
//     header charge branches on a negative counter to the end of the inner
//     block, which calls refill, adds the header's charge back and
//     re-enters the header through the outer loop (so the counts are those
//     of the plain form); a normal exit branches past that path. Branches
//     that leave such a loop get three more label levels. A loop-free
//     function that calls itself gets the same shape around its whole
//     body, so its entry test falls through into the body and the refill
//     call sits after it (branches to the function's label get two more
//     levels);
//   - unrolls small loops first (innermost, without parameters, calls,
//     bulk instructions or br_table, at most 32 instructions): the body is
//     repeated four times inside the loop, so the header's test runs once
//     per four iterations while every copy is still charged what its
//     iteration costs; the instructions the unrolling adds are free, so
//     counts are those of the plain loop (see unroll.go);
//   - after every memory.grow that returns -1 (wazero fails a grow past
//     the memory limit that way, with no error the host sees), calls refill
//     with GrowFailedCounter, which marks the call's Meter (GrowFailed) and
//     leaves the counter alone: the host tells a call that hit its memory
//     cap from any other failure exactly;
//   - bounds the call stack (see Call stack below): appends a mutable i32
//     global, the stack left, initialised to Options.MaxStack; every
//     function entry tests it against the function's FrameCost (64 bytes
//     plus 16 per parameter, local and operand stack value live across a
//     call) and below that branches to a call
//     of refill with StackExhaustedCounter after the body (the body sits
//     in a block, so branches to the function's label get one more level),
//     which traps with ErrStackExhausted. A function that calls keeps what
//     is left below its frame in one more i32 local and in the global, and
//     sets the global back from the local after every call, so its
//     callee's frame is given back however the callee left (return, its
//     end, a branch or br_table to its own label); before a tail call it
//     gives its own frame back, so tail calls in a loop run in constant
//     stack. A function that calls nothing only tests. These instructions
//     are free: fuel counts are those of the module without them;
//   - points each export of a defined function at a small entry wrapper
//     with the same type: it sets the stack left to Options.MaxStack,
//     zeroes the counter (so the first charge of every call from the host
//     asks the host: context and budget are checked before the guest
//     runs), calls the original function and hands the counter left to
//     refill as a non-negative value (the call's settlement; see Refill).
//
// Imports (apart from the one added), export names and types, the ABI, and
// what the module computes (within the stack bound) are unchanged: the
// differential tests run every fixture, a Go-built guest and thousands of
// generated programs both ways and compare results.
//
// The cost model: fuel counts executed Wasm instructions, each about one
// unit, charged per region before the region runs, so a region left early
// (a trap, or a call that does not return) is still charged in full.
// memory.init, memory.copy and memory.fill also cost one unit per 8 bytes
// of their length, and table.init, table.copy, table.grow and table.fill
// one per element (about what the loop of i64 stores or table.set doing
// the same would be charged per store), subtracted just before they run:
// without that, a loop of 1 MiB memory.fills ran 1.6 s past a 100 ms
// deadline (each refill came after a million units, 175 000 fills). A
// bulk instruction still runs to its end once started: filling the default
// 64 MiB memory and copying half of it took 4.3-5 ms (12.6 M units, so
// bulk work runs about 2.6 G units/s against 19-32 G for other code; one
// unit per 8 bytes is about what a copying loop would be charged per
// store). Only memory.grow costs one unit whatever it adds: the memory
// limit bounds what all grows of an instance can add. Counts are
// deterministic: the same call on the same input in a fresh instance uses
// the same fuel, whatever the slice size (tested).
//
// Every cycle in a Wasm program passes a loop header or a function entry,
// so no execution can run further past an empty counter than the longest
// loop-free path from one check point to the next within one function (for
// an unrolled loop, four iterations of its body), plus the length charge
// of one bulk instruction on that path; code directly after br, br_table,
// return, unreachable or return_call up to the next end or else is
// unreachable and gets no charge.
//
// Accepted: everything wazero 1.12 enables by default (api.CoreFeaturesV2:
// multi-value, bulk memory with the data count section, reference types
// with all table instructions and all element segment forms, fixed-width
// SIMD with every 0xfd opcode, sign extension, saturating conversions
// 0xfc 0-7), plus the tail calls return_call and return_call_indirect.
// Refused with *UnsupportedError: threads (0xfe), exception handling,
// typed function references, GC, multiple memories, memory64, functions
// with more than 50 000 locals. Refused with ErrMalformed: anything that is
// not a well-formed binary module, including vector counts larger than
// their section (wazero 1.12's decoder allocates by count before reading:
// 19 bytes claiming a huge code section crashed the fuzzer with "out of
// memory", so Instrument running first also shields the compiler from
// that). ErrInstrumented: a module that already imports refill. Instrument
// never returns unmetered output.
//
// # Call stack
//
// wazero runs a call on a stack it allocates as a Go byte slice, host memory
// outside the guest's linear memory, and doubles it as the guest recurses
// until more than 50 MB are in use (about 80 MB of buffer, plus the copies
// left behind until the next garbage collection: a loop-free recursion
// without end took 125 MiB per call, 2 GB for 16 concurrent calls). No
// RuntimeConfig option lowers that ceiling. An instrumented module bounds
// its own stack instead: a call's frames may take at most Options.MaxStack
// (default DefaultMaxStack, 4 MiB) as charged by FrameCost, which is at or
// above what wazero's frames of instrumented functions use, so a call's
// stack buffer stays within about twice MaxStack. The default allows about
// 37 000 nested calls of a function like fib(n) (112 bytes a frame); the
// conformance fixtures built from the Go, Rust, C and AssemblyScript SDKs
// pass their whole suite under a bound of 16 KiB (the Go one needs more than
// 4 KiB to decode JSON). The bound is baked into the output (the entry
// wrappers reset the stack left to it), so a cache of output must key on it.
// Functions the host calls through an exported table, not an export, start
// with the stack the previous call left (the whole bound less one frame
// after a normal return). A module Instrument does not rewrite (metering
// off, or refused and run unmetered) is bounded by wazero's ceiling alone.
//
// # Host side
//
// HostModule(ctx, r) instantiates the refill import in a wazero runtime;
// a host built on another API (an Extism host function, namespace
// HostModuleName, name RefillName, one i64 in and out) calls Refill and
// panics with its error. Per call: m := NewMeter(budget, slice), run the
// guest with WithMeter(ctx, m), then read m.Used(). Refill, for a negative
// counter, returns the ctx error (wrapped) if ctx is done, ErrBudgetExhausted
// (wrapped) if used > budget, otherwise the next slice (the debt paid,
// capped by the budget left). The guest traps with that error;
// errors.Is(callErr, context.DeadlineExceeded) and
// errors.Is(callErr, ErrBudgetExhausted) hold on wazero's call error. No
// close-on-context-done is needed for instrumented modules.
//
// Used is exact after a normal return or a refusal in refill. After another
// trap it is the value at the last refill (short by at most a slice). A
// guest export called re-entrantly from inside a host function (Extism does
// not do this) zeroes the outer call's counter: the outer call is charged up
// to one slice extra. Functions the host calls through an exported table,
// not an export, skip the wrapper: they are metered and stoppable, but
// start with the previous call's leftover counter.
//
// # Lifecycle and concurrency
//
// Instrument is a pure function, safe for concurrent use; instrument once
// when loading and cache the output with the compiled module (about 28 ms
// for a 2.4 MB Go guest). HostModule is instantiated once per runtime. A
// Meter belongs to one call (one goroutine runs the guest and Refill); Used
// may be read from any goroutine. The package starts no goroutines.
//
// # Design decisions
//
// Decoder: hand-written, not github.com/tetratelabs/wabin. wabin (last
// change March 2023) keeps function bodies as opaque bytes, so an
// instruction decoder was needed anyway; its EncodeModule never writes the
// data count section (a module using memory.init or data.drop no longer
// validates after a round trip), panics on passive and declarative element
// segments ("TODO: support encoding for non-active elements"), and
// re-encodes every section. This package copies every section it does not
// need to change byte for byte (tables, memories, data, data count, custom
// sections in place) and, in code, copies instruction bytes through while
// decoding only their boundaries and the immediates it renumbers. Every
// read is bounds-checked; FuzzInstrument ran 1.5 M mutated inputs in a
// minute with no panic and no valid module turned invalid (2.7 M in a
// minute with unrolling and length charges).
//
// Counter in a local, not the global: in a loop the charge is then a
// register subtract and a predicted branch, while every global access is a
// memory access. The benchmarks (go test -run '^$' -bench . -count 6
// ./host/internal/fuel; medians, one run, 2 cores, shared machine):
//
//	                        bare       close-on-done   fuel
//	counting loop, 10^6   0.497 ms   24.9 ms (50x)   0.338 ms (0.68x)
//	Go guest, SHA-256 1MiB 15.6 ms   92.5 ms (5.9x)  16.7 ms (1.07x)
//	fib(25), 250k calls   0.340 ms   0.359 ms        0.424 ms (1.25x)
//	  refill out of line  0.349 ms                   0.408 ms (1.17x)
//
// (close-on-context-done does not stop fib at all: it sees loops only).
// Before the counter lived in a local, with the refill call inside every
// loop and the counter synced around every call, the fuel ratios were
// 1.41x, 1.08x and 1.32x; the counting loop was 1.20x before unrolling.
//
// Testing the counter only at check points, with a call-free refill path
// elsewhere, had brought the fuel ratios from 1.51x, 1.12x and 1.37x. In
// wazero's compiled code the remaining cost is
// mostly register pressure: any call inside a loop, even on the cold
// refill path, makes the compiler keep the loop's locals on the stack (the
// counting loop loaded and stored them every iteration), hence the refill
// call outside the loop (above). Loops that call anyway keep the refill
// call inside: hoisting it there too measured 1.10x instead of 1.02x on
// the Go guest (whose loops mostly call). Loops with parameters keep it
// inside too (rare: no compiler this package was tested with emits them).
// Fib gains from the counter tracking (one load and store per call).
// Passing the counter to internal functions as an extra parameter and
// result instead of through the global did not help fib: the compiler
// spills it around calls just as it stores the global (a global access
// is one mov off the module context register). Single runs on this
// machine vary by up to 2x, so compare ratios from one run.
//
// Unrolling small loops: with a test at every iteration the counting loop
// ran 1.20x bare; unrolled it runs 0.68x bare (medians of six, one run:
// 0.496 ms bare, 0.338 ms metered), with the same fuel count. Most of that
// is the unrolling itself: the loop unrolled the same way by hand and not
// metered runs 0.51x bare, so metering still costs a loop this small about
// a third of its unrolled time (a subtract per copy, a test per four).
// Charging all four copies at the header instead would have measured 0.62x,
// but a loop left in the middle of a group would then pay for copies that
// did not run; exact counts were kept. The Go guest is unchanged within
// noise: two of its loops qualify (345 bytes of 2.9 MB).
//
// Recursion pays a test per call. Hand-edited variants of fib in one run
// put the floor near 1.1x for any per-call scheme on wazero's compiler: the
// entry test alone (a load, a compare and a branch, as an epoch check would
// be) cost 1.18x with the refill call in an if and 1.08x with the fast path
// falling through into the body and the refill call after it, the count
// alone (load, subtract, store, no test) 1.06x; inlining the recursive call
// once made bare fib 0.63x but metered fib 1.3x. So a loop-free function
// that calls itself gets the fall-through entry (fib 1.25x -> 1.17x, same
// counts); giving it to every function cost the Go guest 2-10 %, because
// the body then sits in a loop that calls, which makes the compiler keep
// its loops' locals in memory. No function of the Go guest qualifies.
// Dropping the entry test where the entry runs straight into a loop header
// (every function of a Go guest starts with its resumption loop) looked
// free but made the Go guest slower, 1.13x against 1.05x in one run, so
// every entry keeps its test.
//
// Stack bound in the rewriter, in bytes charged per frame: wazero has no
// setting for its ceiling, and a bound on depth alone would let a function
// with 50 000 locals take 800 KB a frame. The caller gives a callee's frame
// back (it resets the global after each call), not the callee on each way
// out, so one sequence covers return, end and branches to the function's
// label alike. The overflow call sits after the body: with it in an if at
// entry the bound made fib 1.06-1.21x slower than fuel alone, after the
// body 1.02-1.10x (medians of 300 alternating calls, thread CPU time, runs
// on a machine with a load of 4 to 13 on 2 cores; BenchmarkFib's fuel and
// fuelNoStackBound, medians of three: 0.530 and 0.483 ms); the Go guest
// stayed within 1.00-1.05x.
//
// Entry wrappers, not an exported counter: the Extism SDK does not give
// the host the guest module's globals, so the per-call reset and the
// settlement travel through the refill import the host already serves.
//
// Slice: DefaultSlice = 2^20 units. Measured throughput: 32 G units/s
// (unrolled counting loop), 19 G units/s (Go SHA-256), 5 G units/s (fib,
// call bound), so a slice is 0.03 to 0.2 ms of guest work: a deadline,
// cancel or garbage collection waits at most about that long for a
// spinning guest. A refill costs about 60 ns on the host (BenchmarkRefill,
// most of it the clock read for the yield below) plus wazero's exit to Go,
// against 30 µs or more of guest work: about 0.2 %. Bigger slices would
// not buy measurable speed; smaller ones shorten the wait for slow
// instructions. Tests: fib(40), an infinite loop, an infinite loop under
// 5000 recursive calls and an infinite loop of 1 MiB memory.fills each
// stop within 50 ms of a 100 ms deadline and just past a 50 M budget, with
// close-on-context-done off.
//
// Yielding: a spinning guest never blocks, so without help other
// goroutines get its P only at the Go scheduler's async preemption (10 ms).
// runtime.GC() yields between sweep steps, and with four metered guests
// spinning on two Ps it took ~270 ms although the world stopped in under
// 0.1 ms. Refill therefore also calls runtime.Gosched, at most every
// yieldEvery (500 µs): runtime.GC() then returns in 5-10 ms in the same test
// (TestRunaway_GCWhileFourSpin run alone; goal 10 ms), 3.7-4.0 ms on
// average in BenchmarkGCWhileFourSpin (0.2 ms with nothing spinning).
// Yielding at every refill cost 6-10 % on the benchmarks (a yield may move
// the goroutine to another thread); the rate-limited yield costs 1-3 %.
// Unmetered, runtime.GC() never returns there.
package fuel
