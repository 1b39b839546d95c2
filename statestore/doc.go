// Package statestore defines what bulkhead persists about workflow runs and
// the contract every storage backend keeps.
//
// # What is stored
//
//   - Runs: one record per run of a workflow (input, status, output, the
//     plugin version each node runs on, progress, free-form attributes).
//   - The node journal: one NodeResult per finished node, written exactly
//     once, plus the number of the last attempt started per node, so that an
//     attempt after a crash gets a higher number.
//   - Checkpoints: the snapshots a long node saves while it runs; the newest N
//     per run and node are kept (DefaultMaxCheckpoints).
//   - Plugin state: durable key-value pairs scoped to a plugin name;
//     StateUsage counts a plugin's keys and bytes, from which the host
//     enforces the plugin's quota.
//   - Dead letters: nodes that exhausted their policy, with every attempt's
//     error, kept until deleted.
//
// Store composes the five interfaces Runs, Journal, Checkpoints, PluginState
// and DeadLetters. Backends: statestore/badgerstore (embedded, the default),
// statestore/pgstore (PostgreSQL, shared by several hosts) and
// statestore/memstore (in memory, for tests and library use). Every backend
// passes the conformance suite in statestore/storetest.
//
// Every backend also implements two capabilities of hosts sharing a store,
// checked by storetest.RunFleet: Hosts (membership: registration and
// heartbeats on the store's clock, live or stale) and Modules (plugin
// module bytes by SHA-256, with the manifest of each plugin version;
// GetModule refuses bytes that do not hash to their version with
// ErrModuleHash). badgerstore and memstore belong to one process and list
// only the host that registered last.
//
// # Durability
//
// Every write method returns only after its change is durable: for
// badgerstore that means fsynced. In particular a run's input (CreateRun),
// a finished node's output (CompleteNode) and a checkpoint (SaveCheckpoint)
// are on disk before the call returns, so nothing may depend on them, or be
// told about them, earlier. A write that returns an error other than
// ErrConflict, ErrNotFound or ErrInvalid (a cancelled context, an I/O error)
// may or may not have been applied; repeating it is safe, because CreateRun
// and CompleteNode are idempotent by key (a repeat returns created=false or
// ErrConflict, and the stored value can be read back).
//
// # Exactly-once journaling
//
// CompleteNode is first-write-wins per (run, node): of any number of
// concurrent completions exactly one returns nil and the others ErrConflict.
// A caller that gets ErrConflict reads the winner with NodeResults.
// CompleteNode may carry attempts of other nodes of the run (the blocks of
// the nodes the completion makes ready): they are stored atomically with
// it, in the same fsynced write, or not at all, so a caller saves one
// sequential fsync per step. UpdateRun
// is an atomic read-modify-write: its fn is applied to the latest stored run,
// re-run when another update got in between, and no update is lost.
//
// # Retention
//
// A finished run, its journal and its checkpoints are removed after
// DefaultRetention (7 days, configurable per backend) counted from FinishedAt.
// Plugin state is never removed by retention; a run that still has dead
// letters is kept until they are deleted, so it can be replayed.
//
// # Errors
//
// Methods return the sentinels ErrNotFound, ErrConflict, ErrInvalid and
// ErrClosed, wrapped with detail; match them with errors.Is. Each interface
// method's comment lists the ones it returns. Any write may also return
// ErrNoSpace when the store refuses it because its disk is (nearly) full;
// nothing of such a write is stored. A store on a database server returns
// ErrUnavailable when it cannot reach it; such a write may or may not have
// been applied. A cancelled context returns the context's error. Errors of
// the underlying database never escape unwrapped as sentinels of that
// database.
//
// # Concurrency
//
// All implementations are safe for concurrent use. Values passed in and
// returned are copies: changing them after the call does not change the store.
package statestore
