// Package pgstore is a statestore.Store on PostgreSQL, for hosts that share
// one database. It is the only package of bulkhead that imports pgx, and it
// passes the statestore/storetest conformance suite like every store.
//
// # Lifecycle
//
// Open(ctx, url, opts...) connects to url (a postgres:// URL or a
// key=value string) with two pgxpools, one for calls and one with a
// connection per committer for the group transactions (Group commit; with
// grouping off, the size of the first), applies the embedded schema
// migrations and starts the committers, goroutines owned by the Store.
// Close stops taking calls, lets the committers commit every completion
// already queued and the calls in progress return, and closes the pools;
// it is idempotent, waits at most WithCloseTimeout (default 10 s) and then
// cancels what still runs and returns an error. Every call after Close returns statestore.ErrClosed.
//
// # Migrations
//
// The schema is in migrations/NNNN_*.sql, embedded in the binary. Open (and
// Migrate, for operators who migrate separately and then Open
// WithoutMigrate) applies the missing ones in one transaction under a
// transaction-scoped advisory lock, so hosts starting together apply each
// migration once, and records each version with the SHA-256 of its file in
// schema_migrations. A database whose recorded migration has another
// checksum, or that records versions this binary does not have, is refused
// with an error matching ErrSchema and left as it is; WithoutMigrate also
// refuses a database that lacks migrations. Migrations never remove data:
// they add tables, indexes, functions and triggers, replace functions,
// and (version 11) trade two foreign keys for the lock protocol below.
//
// # Schema
//
// Identifiers (run IDs, node names, plugin names, keys, dead-letter IDs)
// are bytea, because they may hold any byte but NUL; they order byte by
// byte, as in the other stores. Times are Unix nanoseconds, so values read
// back equal the ones written.
//
//	runs              id, status, created_ns, finished_ns, rev, body (the Run as JSON)
//	node_results      (run_id, node) → body (the NodeResult as JSON)
//	node_attempts     (run_id, node) → attempt, started_ns
//	checkpoint_heads  (run_id, node) → newest seq
//	checkpoints       (run_id, node, seq) → created_ns, data
//	plugin_state      (plugin, key) → value, size (key and value bytes)
//	dead_letters      id → run_id, body (the DeadLetter as JSON)
//	tasks             (run_id, node) → seq, ready_at, owner, token, claims,
//	                  first_attempt, lease_until (the ready queue)
//
// ListRuns reads a keyset page on (created_ns, id), through the index
// (status, created_ns, id) when filtered, so a page costs its size whatever
// the table holds; UnfinishedRuns reads a partial index of pending and
// running runs. StateUsage adds up size over the plugin's primary-key
// entries, which include it (an index-only scan). Checkpoints reference
// their run (a foreign key). Results, attempts and tasks are added only
// under their run's row lock (FOR NO KEY UPDATE or FOR KEY SHARE), under
// a claimed task of the run, or with the run's own insert; deleting runs
// locks them FOR UPDATE, and the trigger runs_deleted removes their
// results, attempts and tasks in the same statement. Checked by the lock
// rather than by a foreign key's query per row, a completion costs the
// server less CPU (8% on average for the first two of its three checks).
//
// # Queue
//
// Store implements statestore.Queue for hosts that share the database: a
// ready node is a row of tasks, queued while owner is NULL, claimed by one
// owner until lease_until. Leases and release delays are on the database
// server's clock (now()), never a host's, so hosts whose clocks disagree
// agree on who holds a claim, and Task.LeaseUntil is the server's time. A
// claim's token comes from the sequence task_tokens, so no two claims of
// the store share one.
//
//   - ClaimTasks is one UPDATE of the rows chosen by FOR UPDATE SKIP
//     LOCKED: tasks whose lease ended (index tasks_leased), then queued
//     tasks that are due, by when they became claimable (index tasks_due
//     on ready_at, seq: tasks sleeping until a later time are not read).
//     Concurrent claims pass over each other's rows instead of waiting, and
//     never take one task twice. ClaimExpiredTasks is its first pass alone;
//     ClaimOwnTasks is that pass over the owner's rows, whatever their
//     lease; ExpiredFor reads the first expired entry of tasks_leased.
//   - A claim holds while its row has the claim's owner and token and its
//     lease has not ended (clock_timestamp()). CheckFence, ReleaseTask and
//     ExtendLeases test exactly that. ExtendLeases skips a row another
//     transaction holds locked (SKIP LOCKED: a completion in progress)
//     instead of waiting for it, and counts that claim as holding by the
//     row as its snapshot has it; the next heartbeat extends its lease.
//   - CompleteTaskEnd (statestore.EndingCompleter) is CompleteTask with
//     the run's end written by the same statement as a group's
//     completions (alone or with its group), conditional on the completion
//     being stored and on the run's version this store holds.
//   - CompleteTask is a call of bulkhead_complete_task, grouped by the
//     committer with CompleteNode's calls. It locks the run row FOR NO KEY
//     UPDATE, deletes the task only while the claim holds (else nothing is
//     written: ErrFenced), journals the result (a node journaled already:
//     ErrConflict, the task stays deleted, nothing queued) and queues the
//     dependents whose needs are all journaled (bulkhead_queue_nodes),
//     raising each one's attempt by its block; with Keep the first is
//     claimed for the same owner in the same transaction. A group of
//     two completions or more does the same for every member in two
//     statements instead: the first locks the members' runs in ID order;
//     the second, whose snapshot is taken once those locks are held,
//     deletes the tasks whose claims hold (locked in key order), journals
//     their results, writes the run ends they carry, then queues and
//     keeps the dependents. Its parts do not see each other's writes, so
//     its readiness checks count the group's own stored completions beside
//     the journal. Each member gets its own answer, as from its own call.
//   - The run row lock serializes everything that may queue a node of one
//     run (CompleteTask, EnqueueNodes, DropTasks): of two needs of a node
//     completing at once on two hosts, the second to take the lock sees the
//     first's result and queues the node, once. Completions of runs lock
//     their runs in ID order, as the committer sorts its groups, so hosts
//     do not deadlock.
//   - SubmitRun is one statement: the run and its roots' tasks; an
//     existing run queues nothing. SubmitRunClaim (statestore.SubmitClaimer)
//     is the same statement, which also claims the first root for the
//     submitter.
//   - Under statestore.WithFence, SaveCheckpoint, StateSet and StateDelete
//     write only if the fence's task row, locked FOR SHARE in the same
//     statement, still holds the claim; otherwise nothing is written and
//     they return statestore.ErrFenced.
//   - UnqueuedRuns reads the partial index runs_unfinished_id by ID and
//     skips runs that have a task.
//
// # Transactions
//
// Every call is one statement or one transaction at READ COMMITTED, and
// returns once PostgreSQL has committed it (durable as its
// synchronous_commit setting makes it, fsynced by default). Decisions are
// made by the row the write touches, never by a read before it:
//
//   - CreateRun: INSERT … ON CONFLICT DO NOTHING; the losers of a race read
//     the winner and compare workflow and input hash.
//   - UpdateRun: fn runs with no transaction open and no row locked, on
//     the run and its rev; the UPDATE applies only while rev (and
//     created_ns) is unchanged, otherwise fn runs again on the newer run.
//     The store remembers the last version of unfinished runs it wrote or
//     read (up to 4,096), so the first try runs fn on that version without
//     reading the run; a refusal by fn of a remembered version is tried
//     again on the stored one.
//   - CompleteNode: the function bulkhead_complete_node, which locks the
//     run row FOR KEY SHARE, inserts the result ON CONFLICT DO NOTHING
//     (the first completion wins) and upserts each attempt passed with it
//     only when it increases; an attempt that does not rolls the whole
//     completion back (a subtransaction), and the call returns a code
//     instead of raising.
//   - StartAttempt: the same conditional upsert on its own.
//   - SaveCheckpoint: an upsert of the node's head row takes the next seq
//     under that row's lock; the checkpoint leaving the window
//     (WithMaxCheckpoints, default 10) is deleted in the same transaction.
//   - PutDeadLetter: INSERT … ON CONFLICT DO NOTHING.
//
// # Group commit
//
// CompleteNode and CompleteTask calls are queued to the committers. A
// committer takes everything queued (up to WithMaxBatch, default 256) and
// sends one pipelined batch of bulkhead_complete_node and
// bulkhead_complete_task calls (or the two set-based statements for two
// completions of tasks or more, or for one that ends its run), submits and
// run updates, which PostgreSQL runs as one implicit transaction: one
// round trip and one commit for the group. WithCommitters (default 2)
// groups commit at once, on connections of their own, so the
// completions that arrive while a group waits for its flush form the next
// group instead of waiting behind it. One committer at a time takes the
// next group, and while another group is in flight it waits until its
// group is as large as the larger of the last two started, that group
// ends, or 20 ms passed: a transaction costs the server about as much for
// one completion as for several, and groups started early shrink. A
// group with no other in flight is sent at once. Each call
// settles its own conflicts, so a member that conflicts or names a missing
// run gets its own error and the others commit; a second completion of a
// node in the same group conflicts with the first. Members are sent in
// (run, node) order, so groups of two hosts lock rows in the same order.
// A group's transaction is bounded at 30 s. When the group's
// transaction fails as a whole (a deadlock with another host, a lost
// connection), each member is retried in a transaction of its own, which
// is run again (up to three times in all) when PostgreSQL breaks a
// deadlock by rolling it back; claims and DropTasks are too.
// WithMaxBatch(1) turns grouping off: each CompleteNode and CompleteTask
// then commits on the caller's goroutine.
//
// Sessions of the calls' pool plan every statement for its values
// (plan_cache_mode = force_custom_plan), which listings need. The group
// transactions' sessions plan each statement once and keep the plan
// (force_generic_plan), without sequential scans, hash or merge joins:
// their statements find every row through a primary key whatever the
// values, and a plan made while the tables were small still reads only
// the rows of its group once they are large. Sent by the host rather than
// run inside a PL/pgSQL function, the set-based completion and the submit
// cost the server about a tenth less CPU per step (docs/performance.md).
// The functions they replace, bulkhead_complete_tasks and
// bulkhead_submit_run_claim, stay in the schema: hosts of an earlier
// version still call them while a cluster is upgraded host by host.
//
// # Errors
//
// Errors map onto the statestore sentinels: a write under a claim that no
// longer holds is statestore.ErrFenced, a unique violation is
// ErrConflict, a missing referenced run ErrNotFound, a refused or lost
// connection or a server shutting down statestore.ErrUnavailable, a full
// disk statestore.ErrNoSpace. A cancelled or expired context ends a call
// at once and returns the context's error. Only the text of pgx's errors
// is kept; no pgx type escapes. Errors name the server's host:port and
// never the password. A write that fails with ErrUnavailable or a context
// error may or may not have been committed.
//
// # Concurrency
//
// All methods are safe for concurrent use, from one process or many. The
// Store's lock mu guards the closed flag and sends on the queue; intake
// is held by the committer taking the next group.
package pgstore
