// Package workflow runs bulkhead workflows durably: YAML DAGs of plugin
// calls whose runs, node completions, attempts and checkpoints are
// journaled in a statestore.Store, so a run resumes where it stopped after
// a crash, a deploy or a kill -9.
//
// # Workflow files
//
//	name: orders
//	policy: production            # preset name or inline policy; default for the nodes
//	nodes:
//	  fetch:  {plugin: fetcher}   # function defaults to "run"
//	  price:  {plugin: pricer@3fa2c1, function: quote, needs: [fetch]}   # pinned version prefix
//	  stock:
//	    plugin: stock
//	    needs: [fetch]
//	    config: {warehouse: eu}
//	    policy: {retry: {max_attempts: 5}}
//	    fallback: {value: '{"in_stock": false}'}   # or {plugin: other, function: f}
//	  join:   {plugin: joiner, needs: [price, stock]}
//	output: join                  # default: the only node nothing needs
//
// A node without needs gets the run's input; with one need, that node's
// output bytes; with several, a JSON object keyed by node name whose
// values are the outputs (embedded as JSON when they are valid JSON, else
// as strings). A node with config receives {"config": ..., "input": ...}
// instead. Parse and ParseFile report every problem at once in a
// *ValidationError (file:line: message): YAML syntax, unknown keys, wrong
// types, unknown needs, cycles, unknown plugins (ParseOptions.KnownPlugin),
// bad presets and policies, and several sinks without output. LoadDir
// parses a directory of them.
//
// # API
//
//	New(store, invoker, opts...) (*Engine, error)     no I/O, no goroutine
//	(*Engine).Start(ctx) / Stop(ctx)                   workers, resume, drain
//	AddWorkflow(w) / LoadWorkflows(dir, opts) / Workflow(name) / Workflows()
//	Submit(ctx, workflow, input, runID) (statestore.Run, error)
//	Wait(ctx, runID) (statestore.Run, error)
//	Get(ctx, runID) (RunInfo, error)                   per-node status, attempts, versions, progress, outputs
//	List(ctx, statestore.RunFilter) ([]statestore.Run, next string, error)
//	Cancel(ctx, runID) / Resume(ctx, runID, upgrade)
//	Checkpoints(ctx, runID, node)
//	DeadLetters(ctx, filter) / DeadLetter(ctx, id) / DeleteDeadLetter / PurgeDeadLetters / Replay(ctx, id, upgrade)
//	Active() / Conflicts()
//
// WithObserver receives an Event for every run accepted and started
// (fresh or resumed), node start, failed attempt, retry, finish, failure
// (dead letter) and skip, checkpoint saved or loaded, progress report and
// run end; the CLI prints them and an HTTP API can stream them. LogEvents
// is an observer that writes them to a slog.Logger, one line each.
//
// # Lifecycle
//
// New allocates. Start starts WithWorkers goroutines (default 32; they
// bound how many nodes run at once over all runs) and the progress
// flusher, then, unless WithResumeOnStart(false), resumes every unfinished
// run and returns once they are all dispatched. Stop starts no new node,
// lets running nodes finish within its ctx, cancels the rest (they stay
// unfinished and resume on the next Start), writes pending progress and
// waits for every goroutine; it is idempotent.
//
// # Durability and semantics
//
// Submit stores the run (input, the DAG's YAML and the plugin version of
// every node) with one fsynced CreateRun before anything runs; it is
// idempotent by run ID (same workflow and input: the same run; other
// input: ErrConflict). Each node execution then does, in order:
//
//  1. Reserve its attempt numbers (see below), fsynced: in the same write
//     as the completion of its last need (CompleteNode's next attempts),
//     else, for a root node or when that was not possible, with its own
//     StartAttempt.
//  2. host.Invoke through the node's policy (node, else workflow, else the
//     plugin's own), with the idempotency key run_id/node, the first
//     attempt number and a host.Durable for checkpoints, plugin state and
//     progress.
//  3. CompleteNode: journal output, attempt number, plugin version,
//     timings, fallback flag, and the attempt blocks of the dependents this
//     completion makes ready, in one fsynced write; only then are
//     dependents queued.
//
// Nodes run at least once; a journaled node never runs again: resuming
// reads the journal and queues only the nodes whose needs are all
// journaled. CompleteNode is first-write-wins, so a completion is
// journaled exactly once even if a node ever ran twice (Conflicts counts
// refused duplicates). A run keeps the versions recorded at Submit when it
// resumes (the call pins them; a version no longer loaded fails the node
// and leaves a dead letter), unless Resume or Replay is asked to upgrade.
// The run's own copy of the YAML means it resumes on the DAG it started
// with even when the file changed or is gone.
//
// Attempt numbers. The store records one number per node: before an
// execution starts, the engine records last+k, where k is the most
// attempts that execution may use (the policy's max_attempts, plus the
// fallback plugin's), and numbers its attempts last+1, last+2, ... An
// execution cut off by a crash may leave numbers unused, but a later one
// always numbers above every attempt that ever ran, so attempt numbers
// only grow across crashes. For nodes that use their plugin's own policy,
// WithMaxAttempts tells the engine that policy's max_attempts.
//
// When a completion leaves a dependent with no unfinished need, the
// dependent's block (last+k, last being 0 in a run this engine created and
// read from the store in a resumed one) is recorded atomically with that
// completion: the dependent is queued only after that write is fsynced, so
// its block is durable before its first attempt, exactly as with a
// StartAttempt of its own, without a second fsync per step. If the
// combined write is refused (a reservation conflict, or the node was
// journaled by another execution), the completion is written alone and
// the dependent reserves its own block. A dependent with two needs
// finishing at once may miss the combined write; it then reserves its own.
//
// The reservation is never written without fsync. A non-synced record may
// be lost by a crash after the node's attempts ran (and reached plugins,
// checkpoints and logs with their numbers); the next execution would read
// the older last and reuse those numbers. Nothing else durable proves the
// attempts ran (the journal entry is written only at the end, checkpoints
// are optional), so no such shortcut is safe.
//
// Checkpoints: a node's checkpoint_save goes to the store (fsynced before
// the guest continues); checkpoint_load returns the newest of the run's
// node, whichever attempt or process saved it. Plugin state is scoped to
// the plugin name (not the version), so a fixed version sees the same
// state. Progress is kept in memory, written to the run every
// WithProgressInterval and when the run ends.
//
// Failures: a node that exhausts its policy runs its fallback if it has
// one (a value, or another plugin with the same input; journaled with
// Fallback set). Otherwise the engine writes a dead letter (run, node,
// input, plugin version, every attempt's error), marks the run failed with
// the dead letter's ID in Attrs[AttrDeadLetter] and cancels the run's other
// running nodes. Replay resumes that run (the failed node and those after
// it; journaled nodes are kept) and deletes the dead letter; with upgrade
// on the versions loaded now. A store error (disk full, store closed)
// pauses the run instead: it stays unfinished and resumes on the next
// Start. Cancel marks the run cancelled and cancels its nodes' contexts;
// Resume continues a cancelled or failed run.
//
// # Concurrency
//
// All methods are safe for concurrent use. Locks: Engine.mu (queue, active
// runs, state), each run's mu (its results, waiting counts, progress) and
// wfMu (registered workflows). Engine.mu is never held while a run's mu
// is being acquired the other way round: completed takes the run's mu,
// releases it, then takes Engine.mu. No lock is held during store or
// plugin calls. Observer callbacks run on worker goroutines without locks.
// Queueing a node wakes one idle worker (not all of them). When a
// completion frees dependents and the queue is empty, the worker that ran
// the node runs the first of them itself instead of handing it to another
// worker; with work queued, freed nodes go to the back of the queue.
//
// # Errors
//
// ErrInvalid (*ValidationError), ErrUnknownWorkflow, ErrUnknownPlugin,
// ErrNotFound and ErrConflict (the statestore sentinels), ErrFinished,
// ErrNotStarted; match with errors.Is.
//
// # Measurements
//
// `go test -run '^$' -bench 'Engine_(Completions|Run10)' ./host/workflow/`
// on 2 cores, Badger store, tiny WAT noop nodes, 10-node chains; the disk
// is shared and noisy, so the engine before and after the combined
// reservation were run back to back (two rounds each, both shown):
//
//	                                   one write per       reservation in
//	                                   reservation         the completion
//	Badger raw sync write, 1 writer    4,795 / 5,284 /s    4,481 / 5,978 /s
//	completions, 1 run in flight       1,108 / 2,070 /s    3,129 / 3,020 /s
//	completions, 16 runs in flight     5,049 / 10,420 /s   12,649 / 15,317 /s
//	completions, 256 runs in flight    13,193 / 29,240 /s  18,124 / 20,740 /s
//	10-step run, unloaded, p50         5.0 / 4.6 ms        2.6 / 2.7 ms
//	10-step run, unloaded, p99         8.8 / 6.9 ms        4.9 / 13.6 ms
//
// 256 in flight is CPU-bound and varies from 13k to 35k per run in both
// versions (six further runs: 22k, 30k, 23k before; 20k, 24k, 34k after).
// Resuming 10,000 unfinished runs (BenchmarkEngine_Resume10k, measured
// before this change, which does not touch that path): Start 309 ms,
// every run running again 657 ms.
//
// A lone 10-step run costs 13 fsynced writes in sequence: CreateRun, the
// root's StartAttempt, ten completions (the first nine reserving the next
// node's attempts), and the run's end; before, the nine other reservations were
// writes of their own (22). One Badger sync costs 0.15–0.25 ms here (it
// msyncs the memtable's log and the value log; ~0.13 ms even with nothing
// to write), so the count of sequential syncs sets the unloaded latency.
// Group commit in badgerstore lets concurrent runs share them.
package workflow
