// Package resilience runs functions through a resilience pipeline —
// retry ⊃ circuit breaker ⊃ concurrency limiter ⊃ attempt timeout — built
// from a plain-data Policy, and watches components with a health Monitor.
// It knows nothing of Wasm or storage: bulkhead's host wraps every node
// call in an Executor, and any Go program can do the same for any
// function.
//
// # Policies
//
// Policy is plain data with YAML and JSON tags; durations read as strings
// ("250ms"). The zero value of every field means its documented default,
// so Policy{} is usable; Validate reports every problem at once. Presets
// (Preset, PresetNames: development, production, api, database,
// long-running) are complete policies; ForAPI, ForDatabase and Custom build
// a policy for one kind of dependency.
//
// # Lifecycle
//
// New validates a policy and returns a ready Executor: no goroutines, no
// I/O, nothing to stop. SetPolicy swaps the policy at run time; breaker
// state, counters and the retry budget carry over. A Registry keeps named
// executors and reports Stats for all of them.
//
// A Monitor follows bulkhead's lifecycle contract: NewMonitor and Register
// allocate; Start starts one check loop per component; Stop (idempotent)
// cancels them and waits for every loop within its context. CheckNow runs
// all checks once on the caller's goroutine.
//
// # One call
//
// Do (and the generic Execute) runs the retry loop. Each attempt asks the
// breaker for admission, takes a limiter slot (waiting at most
// MaxQueueWait), derives the attempt context (AttemptFromContext tells fn
// its 1-based attempt number; a per-attempt deadline only when
// AttemptTimeout > 0), applies chaos if configured, then calls fn.
// DoDeadline is Do for an fn that enforces the attempt timeout itself: it
// gets the attempt's deadline instead of a bounded context, and an attempt
// costs no timer. The outcome is classified:
//
//	outcome                                  retried  counts against breaker
//	nil                                      -        success
//	caller's ctx done (Ignored)              no       no
//	attempt cut by AttemptTimeout            yes      yes
//	Classifier says Retryable                yes      yes
//	Classifier says Fatal (memory cap)       no       yes
//	Classifier says Permanent (bad input)    no       no
//	limiter refused (ErrLimited)             yes      no
//	breaker refused (ErrCircuitOpen)         see below
//
// DefaultClassifier: context.Canceled is Ignored; ErrPermanent in the
// chain, or an error with Permanent() bool returning true, is Permanent;
// the rest is Retryable. FromRetrierClassifier adapts go-resiliency's
// retrier classifiers (its WhitelistClassifier is a list of
// retryable errors).
//
// Retry delays grow from InitialDelay by Multiplier up to MaxDelay, with a
// jitter kind (none, ±factor, full, equal, decorrelated). An error with
// RetryAfter() time.Duration anywhere in its chain (see RetryAfter)
// replaces the computed delay, capped by MaxDelay. A retry budget stops
// retry storms: every call deposits Ratio of a token, every retry takes
// one, and MinPerSecond retries per second are allowed whatever the
// balance. TotalDeadline bounds the loop: no wait is begun that would end
// after it.
//
// A first attempt that meets an open breaker fails fast with
// ErrCircuitOpen (or, with Retry.WaitOnOpen, waits like a retry). A retry that meets it waits until the breaker
// half-opens — without using an attempt — when that moment falls before
// the deadline (TotalDeadline or the caller's), and gives up with Cause
// ErrCircuitOpen otherwise.
//
// # Breaker
//
// Closed, the breaker opens after FailureThreshold consecutive counted
// failures (a success resets the run: errors decay, so 3 errors among
// 30,000 successes never open it), or when failures/calls over the
// sliding Window exceed FailureRate with at least MinimumCalls counted.
// Open, it rejects calls until OpenTimeout has passed, then half-opens:
// at most HalfOpenMaxProbes calls run at once; SuccessThreshold successes
// close it, one failure reopens it. Every state change starts a new
// generation, and a result from a call admitted in an older generation is
// ignored. WithStateChange hooks see every transition once, in order.
// Time comes from the injected Clock (resiliencetest.Clock in tests);
// nothing runs in the background.
//
// # Errors
//
// Do returns nil; the caller's context error or ErrCircuitOpen when no
// attempt ran; otherwise an *ExhaustedError holding every attempt's error
// (what a dead letter records) and a Cause when something other than the
// attempt count stopped the loop (ErrRetryBudget, ErrTotalDeadline,
// ErrCircuitOpen, the caller's context error). errors.Is and errors.As see
// through it to the last attempt's error and the Cause. An attempt cut by
// its deadline wraps ErrAttemptTimeout, which also matches
// context.DeadlineExceeded. Chaos injects *ChaosError (Kind "error" or
// "trap"). Fallback is data for the caller: the executor never applies it.
//
// # Concurrency
//
// Executor, Registry and Monitor are safe for concurrent use. Lock order in
// the breaker: hookMu (which serialises state-change hooks so they arrive
// in order) before mu. Hooks run with mu released, so a hook may read State
// or Stats, but must not call Do on the same executor. Monitor: a
// component's runMu (serialising its checks) before Monitor.mu; subscribers
// run with only runMu held, so a subscriber must not Unregister its own
// component.
//
// # Cost
//
// A call through Policy{} takes tens of nanoseconds and allocates nothing;
// AttemptTimeout > 0 adds a context per attempt, so leave it 0 when the
// caller's context already bounds the call. docs/performance.md has the
// figures and the command that measures them; docs/design/resilience.md
// says why the breaker, retry and limiter are this package's own rather
// than go-resiliency's or gobreaker's.
package resilience
