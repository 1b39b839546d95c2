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
// Timer and event nodes run no plugin (see Timer and Wait):
//
//	wait-a-day: {sleep: 24h, needs: [welcome]}          # output: its input
//	launch:     {until: "2027-03-01T09:00:00Z"}           # or an expression (TimeExpr)
//	approval:   {wait_for: approval, timeout: 48h, default: '{"approved": false}'}
//
// A waiting node is a task released to the queue with a delay: it holds no
// worker and no memory in the engine, and its due time is computed from
// the journal (when its needs finished, or the run was created), so
// restarts neither restart nor shorten it. Signal delivers an event
// (stored in the run's attrs under AttrEventPrefix, once per event ID,
// kept when it comes before the wait) and wakes the waiting nodes with
// Queue.WakeTask. A top-level schedule: {cron, overlap, catch_up} makes an
// engine that resumes runs start one run per due time (ID ScheduledRunID,
// created once by the store however many engines share it); the last due
// time handled is kept in the store's plugin state.
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
// Map: a node with for_each: NODE (NODE's output is a JSON array) runs its
// plugin once per item, at most max_concurrency at a time, each item a call
// of its own through the node's policy and fallback, named NODE[i]
// (ItemName) in its invocation, idempotency key and checkpoints. Each item
// is journaled as it finishes (a resume runs only the others); the node's
// output is the array of item outputs in item order. tolerate: N or P%
// lets that many items fail (their place is null); one more fails the node.
//
// Conditions: when: is an expr-lang expression over input, needs (outputs
// by node name) and each need by its name, type-checked by Parse. A node
// whose condition is false, or that has none and whose needs were all
// skipped, is journaled as skipped (statestore.NodeResult.Skipped) without
// running; its dependents see it as absent. A condition that fails at run
// time fails its node.
//
// Sub-workflows: a node with workflow: NAME (instead of plugin) runs NAME
// as a child run whose ID is ChildRunID(parent, node); the child's output
// is the node's, a failed or cancelled child fails the node. While the
// child runs the node gives its claim back and is claimed again later
// (no worker waits). Cancel and Resume reach a run's parent and children.
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
//	Signal(ctx, runID, event, eventID, payload) / Schedules(ctx)
//	Checkpoints(ctx, runID, node)
//	DeadLetters(ctx, filter) / DeadLetter(ctx, id) / DeleteDeadLetter / PurgeDeadLetters / Replay(ctx, id, upgrade)
//	Active() / Conflicts() / Stats() / Owner()
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
// bound how many nodes run at once on this engine, with the rescue slots
// below), a claimer, a lease heartbeat, a rescuer and the progress
// flusher; unless WithResumeOnStart(false) it
// first requeues unfinished runs that have no queued node (a run stored
// before its store had a queue, a run whose end was not recorded). Stop
// claims no new node, lets running nodes finish within its ctx, cancels
// the rest and gives their claims back to the store (another engine, or
// the next Start, runs them), writes pending progress and waits for every
// goroutine; it is idempotent.
//
// # Scheduling: one queue in the store
//
// The ready nodes of every unfinished run are tasks in the store's queue
// (statestore.Queue), not in the engine's memory: an engine holds only
// the nodes it runs, so its memory is bounded by WithWorkers, not by the
// backlog, and any number of engines can share one store. The claimer
// claims as many tasks as workers are idle (oldest first), leased for
// WithLease on the store's clock; the heartbeat extends the leases of the
// nodes the engine holds every lease/3 (at most every second). A node
// whose lease ends — its engine died, froze or lost the database — is
// claimed again by any engine ("rescued"), before any queued task, and
// runs from its last checkpoint. An engine whose workers are all busy
// still rescues at its poll interval: it starts expired tasks on
// WithRescueSlots extra goroutines, and while more wait, its workers
// hand the dependents they would run next back to the queue and claim
// the expired tasks instead; a rescue that found no room anywhere for
// 300 ms starts beyond the slots. It never claims an expired task it
// cannot start at once. An engine that starts under the owner name of
// one that died (WithOwner) takes back the nodes it held at once, without
// waiting for their leases. Writes are fenced by the claim they were made under: the
// completion, and the node's checkpoint_save, state_set and state_delete,
// commit only while the claim holds (statestore.ErrFenced otherwise; the
// guest sees a host-function failure). An engine that finds a claim lost
// (a heartbeat reports it, or a fenced write is refused) stops that node
// and discards its result. When no heartbeat succeeds for a whole lease,
// the engine stops every node it holds: others may be running them.
// Without resume (a one-shot command), the engine claims only the tasks
// of the runs it was asked to run.
//
// # Durability and semantics
//
// Submit stores the run (input, the DAG's YAML and the plugin version of
// every node) and queues its root nodes in one durable write
// (statestore.Queue.SubmitRun) before anything runs; it is idempotent by
// run ID (same workflow and input: the same run; other input:
// ErrConflict). Each node execution then does, in order:
//
//  1. Use the attempt numbers reserved when its task was queued (a rescue
//     reserves a new block above every recorded number).
//  2. host.Invoke through the node's policy (node, else workflow, else the
//     plugin's own), with the idempotency key run_id/node, the first
//     attempt number and a host.Durable for checkpoints, plugin state and
//     progress, fenced by the node's claim.
//  3. CompleteTask, fenced: journal output, attempt number, plugin
//     version, timings and fallback flag, remove the task, and queue each
//     dependent whose needs are now all journaled with its attempt block
//     reserved, in one durable write. The worker runs the first queued
//     dependent itself (it is claimed in the same write) when it has no
//     other claimed work, starting from the journal entries the engine
//     committed or read for the run (entries never change), so it reads
//     the journal only when a need was journaled elsewhere. The write is
//     not cancelled when the claim is reported lost meanwhile: the fence
//     decides.
//
// A node's completion is journaled exactly once: the journal is
// first-write-wins and a completion from a lost claim is refused. Its side
// effects happen at least once (a node cut off before its completion runs
// again), keyed by the idempotency key in invocation(). A journaled node
// never runs again. A run keeps the versions recorded at Submit (the call
// pins them; a version no longer loaded fails the node and leaves a dead
// letter), unless Resume or Replay is asked to upgrade. The run's own copy
// of the YAML means it resumes on the DAG it started with even when the
// file changed or is gone.
//
// Attempt numbers. The store records one number per node: when a node is
// queued the store records last+k, where k is the most attempts one
// execution may use (the policy's max_attempts, plus the fallback
// plugin's), and the execution numbers its attempts last+1, last+2, ...
// An execution cut off by a crash may leave numbers unused, but a later
// one always numbers above every attempt that ever ran, so attempt
// numbers only grow across crashes and hosts. For nodes that use their
// plugin's own policy, WithMaxAttempts tells the engine that policy's
// max_attempts. The reservation is never written without fsync: a lost
// record would let a later execution reuse numbers that reached plugins,
// checkpoints and logs.
//
// Checkpoints: a node's checkpoint_save goes to the store (durable before
// the guest continues); checkpoint_load returns the newest of the run's
// node, whichever attempt, process or host saved it. Plugin state is
// scoped to the plugin name (not the version), so a fixed version sees the
// same state. Progress is kept in memory, written to the run every
// WithProgressInterval and when the engine lets the run go.
//
// Failures: a node that exhausts its policy runs its fallback if it has
// one (a value, or another plugin with the same input; journaled with
// Fallback set). Otherwise the engine writes a dead letter (run, node,
// input, plugin version, every attempt's error), marks the run failed with
// the dead letter's ID in Attrs[AttrDeadLetter] and drops the run's other
// tasks (engines running them stop at their next heartbeat). Replay
// resumes that run (the failed node and those after it; journaled nodes
// are kept) and deletes the dead letter; with upgrade on the versions
// loaded now. A store error that is not the node's fault (a full disk, an
// unreachable database) pauses the node instead: it is queued again and
// runs after a delay. Cancel marks the run cancelled and drops its tasks;
// Resume continues a cancelled or failed run.
//
// # Concurrency
//
// All methods are safe for concurrent use. Locks: Engine.mu (claims,
// pending tasks, runs held, state), each run's mu (running nodes,
// progress) and wfMu (registered workflows); Engine.mu is never taken
// while a run's mu is held. No lock is held during store or plugin calls.
// Observer callbacks run on worker goroutines without locks.
//
// # Errors
//
// ErrInvalid (*ValidationError), ErrUnknownWorkflow, ErrUnknownPlugin,
// ErrNotFound and ErrConflict (the statestore sentinels), ErrFinished,
// ErrNotStarted; match with errors.Is.
package workflow
