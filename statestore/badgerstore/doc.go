// Package badgerstore is bulkhead's embedded statestore.Store, on Badger v4.
// It is the only package of bulkhead that imports Badger.
//
// # Lifecycle
//
// Open(dir, opts...) checks the directory, locks it, opens Badger and starts
// two goroutines owned by the Store: the committer, which performs every
// write, and the GC, which applies retention. Close stops the GC, lets the
// committer finish every write already queued, closes Badger and releases
// the lock; it is idempotent, and every later call returns
// statestore.ErrClosed. Close waits at most WithCloseTimeout (default 10 s),
// CloseContext also until its context ends: Badger retries a memtable flush
// that fails (disk full, directory removed) forever, and Close then returns
// an error matching ErrCloseTimeout, leaving Badger's goroutines and the
// directory lock to the process's exit. On a full disk that loses nothing
// acknowledged: the next Open replays the logs. CollectGarbage runs one GC pass on demand.
//
// # Open errors
//
// Open never panics and never starts on data it can see is damaged. Its
// errors wrap one of:
//
//   - ErrNotWritable: the path cannot be created or written (it lies under a
//     regular file, permissions, a read-only file system). Open creates,
//     fsyncs and removes a probe file to find out before Badger runs.
//   - ErrInUse: another process or another Store in this process has dir
//     open (an flock on dir/bulkhead.lock).
//   - ErrNotWritable and statestore.ErrNoSpace: the file system has less
//     than half the free-space reserve free (Badger writes at open).
//   - ErrCorrupt: Badger refuses the files (a damaged MANIFEST or key
//     registry), or the checks that run before Badger find damage Badger
//     would not report. Badger reads a table whose blocks fail their
//     checksums as holding nothing (or panics in a goroutine of its own), so
//     every table's block checksums are verified first, through Badger's own
//     table reader with its panics recovered. Badger replays a write-ahead
//     log or value log up to the first entry whose checksum fails and drops
//     the rest; a crash can only tear the last write, so Open accepts a bad
//     entry followed by nothing but zeros (a torn tail, which was never
//     acknowledged) and refuses one followed by more data, with one
//     exception: in the log Badger was writing (the highest file number), an
//     entry whose header is still all zeros may be followed by some of its
//     own bytes, because a large copy stores its middle before its head.
//     Open zeroes a torn tail, so a later crash cannot mistake its bytes for
//     data after damage. A process killed
//     between creating a memtable or value log file and sizing it leaves a
//     zero-byte .mem or .vlog file that Badger refuses to open; Open removes
//     such files first (they hold no entry), and checks only the tables the MANIFEST
//     references: a table a killed flush or compaction was still writing
//     is not damage, and Badger deletes it. The 1,000-kill soak found all three.
//
// Every error names the directory, the file and what is wrong. The checks
// read every table once at Open; the benchmark below includes them.
//
// # Disk full
//
// Badger maps its memtable logs and value logs and writes into the
// mapping; when the file system cannot back a page, the process dies of
// SIGBUS, and the torn value log then fails the open checks. So the
// committer admits a transaction only while the file system keeps the
// reserve (WithReserve, default DefaultReserve, 128 MiB) free after it: it
// calls statfs before each commit, and a write that would cut into the
// reserve fails, unwritten, with an error matching statestore.ErrNoSpace
// that says how much is free. Deletes are writes too: below the reserve,
// retention waits for space like everything else, and value-log GC does
// not start with less than half a value-log file free. The reserve covers what
// Badger writes on its own between two commits: a memtable flush (16 MiB
// memtables here, against Badger's 64 MiB) and the rewrites of one
// value-log GC pass (64 MiB value-log files, against 1 GiB), and with them
// the transient tables of small compactions. Before each commit the
// committer also keeps the live memtable log and value log allocated
// (fallocate, keeping the size; 8 MiB at a time) at least 4 MiB past what
// Badger can have written plus the transaction, so a file system filled by
// another process makes that allocation fail with ENOSPC, and the write
// with statestore.ErrNoSpace, instead of Badger's copy faulting; only a
// file Badger creates inside a
// commit is written unallocated, for the rest of that commit. A write to a
// store whose directory was removed fails too (its files are unlinked and
// would not survive). debug.SetPanicOnFault is not used: it covers only the
// goroutine that sets it, and Badger copies into its mappings on its own
// write goroutine.
//
// Measured on a 64 MiB tmpfs with runs of 1 MiB inputs, each with one node
// completion (go test -run TestStore_DiskFull -v ./statestore/badgerstore/,
// as root): with a 16 MiB reserve, 25 runs were acknowledged and then
// writes were refused with 14.6 MiB free (the allocation ahead of Badger
// comes out of the reserve); with the reserve check removed, 36 were
// acknowledged and then the allocation failed with ENOSPC, cleanly; with
// both removed, the writer died of SIGBUS ("fatal error: fault") after 47.
// In the first two cases the store reopened with every acknowledged write
// once the tmpfs grew to 128 MiB. The check costs a statfs and two stats
// per transaction: BenchmarkCompleteNode/group/writers=1 gave 2,759
// records/s against 3,056 before (medians of three, shared machine).
//
// Check and Repair inspect a directory Open refuses. Check changes nothing
// (but removing zero-byte logs, as Open does), and reads every value back
// only after a clean close (Badger opens read-only only a flushed store).
// Repair cuts a log at its first damaged entry when more data follows it —
// the remains of a write cut short — which is what Badger itself does with
// a torn tail. Badger
// writes a value to the value log before the memtable log entry that points
// to it, and a write is acknowledged only when both are synced, so value
// log bytes no record points to were never acknowledged: Repair reads every
// value back afterwards and reports in Report.Lost exactly the records
// whose values were in the cut bytes (removing them, so they read as not
// found), plus the records of a memtable log found after its damage. On a
// store left by a SIGBUS (the value log cut at offset 46,161,166 with data
// after it), Repair lost nothing and kept all 17 accepted runs.
//
// # Durability and group commit
//
// Every write method (CreateRun, UpdateRun, CompleteNode, StartAttempt,
// SaveCheckpoint, StateSet, StateDelete, PutDeadLetter, DeleteDeadLetter,
// and the queue's SubmitRun, EnqueueNodes, CompleteTask, DropTasks)
// returns after its change is fsynced. Writes are queued to the committer,
// which takes everything queued (up to WithMaxBatch, default 1024), applies
// the ops one after the other inside one Badger transaction, commits it,
// calls db.Sync once and then answers every caller. Each op does its checks
// (run exists, node not completed yet, attempt number increases, ID unused,
// run unchanged since UpdateRun read it) inside that transaction, which
// already holds the uncommitted writes of earlier ops of the group, so a
// second completion of a node in the same group is still a conflict. The
// committer is the only writer, so Badger's conflict detection is off. A
// group that outgrows a transaction (4 MB, 10,000 entries) is split into
// several transactions before the single Sync; a transaction Badger still
// refuses as too big is replayed without the op that overflowed it.
//
// Badger runs with SyncWrites=false; the committer calls db.Sync per group.
// The alternative, SyncWrites=true with the same batched transactions
// (WithSyncWrites), fsyncs inside every commit. Measured with
// `go test -bench . -benchmem ./statestore/badgerstore/` on 2 cores, in one
// run (records/s; the disk is shared and noisy, trust ratios):
//
//	                          1 writer   16 writers  256 writers
//	raw Badger SyncWrites       6,799     10,042         -
//	group, db.Sync per group    5,487     33,709      94,871
//	group, SyncWrites=true        689      9,719      49,389
//	no group commit (batch 1)   5,231      2,824         -
//
// so db.Sync per group is the default: at 256 writers 14× the raw
// single-writer sync rate and 7.9× the goal of 12,000/s (an earlier run on a
// busier disk: 6,039 / 37,963 / 77,946 against 5,402 raw). SaveCheckpoint
// (1 KiB) reaches 5,341/s with one writer and 19,100/s with 16.
//
// Reads may see a write during the few hundred microseconds between its
// commit and the group's fsync; nothing is acknowledged before the fsync, and the engine schedules
// dependents only on acknowledgement. A write whose context ends while it
// is queued returns the context's error and may still be applied.
//
// TestStore_CrashDurability re-executes the test binary as a writer with 32
// goroutines, SIGKILLs it at a different moment each round and checks, after
// reopening, that every completion and checkpoint it printed as
// acknowledged is stored, and that completing an acknowledged node again is
// a conflict.
//
// # Layout
//
// Runs are JSON under r<id>, with four index keys: t<created><id> (every
// run, for ListRuns), s<status>\0<created><id> (the runs of one status, for
// ListRuns with a Status filter), u<created><id> (unfinished runs, so
// UnfinishedRuns does not read finished ones) and f<finished><id> (for
// retention); <created> and <finished> are 8-byte big-endian nanoseconds.
// t and s keys end in the same order key, so a page, filtered or not, is a
// seek and a walk of its own entries (O(page), whatever the number of runs)
// and the cursor means the same in both. Every write of a run puts and
// deletes its index keys in the Badger transaction of the record, so after
// a crash an index entry and its record are both there or both gone; Check
// and Repair compare every index entry with its record and report each
// disagreement. Dead letters are indexed by run under D<run>\0<id>. Node
// results are n<run>\0<node>, attempts a<run>\0<node> (CompleteNode checks and
// writes a result and the attempts passed with it in one committer op, so
// they commit and sync together), checkpoints
// c<run>\0<node>\0<seq> with the node's newest seq under C<run>\0<node>, so
// a save reads one key and deletes the one checkpoint that leaves the window
// (WithMaxCheckpoints, default 10) instead of scanning the node's history.
// Tasks are q<run>\0<node> and o<seq> (see Task queue); mqueue counts
// the Opens. Check and Repair compare tasks with their runs and order
// entries: a task without its run, a task without its order entry and an
// order entry without its task are damage, which Repair removes (the
// engine queues a run left without tasks again, through UnqueuedRuns).
// IDs, node names, plugin names and keys may hold any byte but NUL.
//
// The key mformat holds the layout version, 2. A store of layout 1 (no
// status index) gets its index at Open, before the committer starts: Open
// drops any s key, writes one per run record, syncs, and only then sets
// mformat to 2, so a build cut short by a crash starts over at the next
// Open. It logs the count and duration at info level. Builds that read
// only layout 1 refuse a store of layout 2, whose index they would not
// keep. Repair sets mformat back to 1 when the indexes disagree with the
// records, so the next Open rebuilds the status index.
// Reopening a store with 10,000 unfinished runs (and 10,000 finished ones,
// 5 node results each) and listing the unfinished: open 66 ms and
// UnfinishedRuns 70 ms after a clean close; 189 ms and 111 ms after a crash
// (log replay and the damage checks) — BenchmarkReopenUnfinished.
//
// # Task queue
//
// Store implements statestore.Queue for the one process that has the
// store open. Tasks are durable, claims are not: a task is q<run>\0<node>
// (its order seq) plus an order entry o<seq> (its first attempt number,
// run and node), written in the same transaction as the write that makes
// the node ready — SubmitRun writes the run, its root tasks and their
// attempt records as one committer op; CompleteTask checks the fence,
// journals the result (as CompleteNode, ErrConflict when the node was
// journaled already, the task then removed), removes the task and queues
// the dependents it makes ready as another, all in one group commit and
// fsync. Needs are read inside the group's transaction, so of two needs
// completed in one group the second queues the join.
//
// Claims live in memory: owner, token, claim count and lease end, on the
// store's clock (WithClock). ClaimTasks rescues expired leases first,
// then claims in queue order from the order index, read from an
// in-memory cursor on, 64 entries at a time — the cursor only moves
// forward, so completed tasks' deleted keys behind it are never read
// again — merged with the tasks released (ReleaseTask) in memory, which
// wait there for their delay in a heap. Memory holds the claimed and
// released tasks, whatever the backlog (TestQueue_BoundedMemory), and a
// claim costs the same whatever the backlog (BenchmarkQueue_Claim;
// figures in docs/performance.md). Every Open counts itself in mqueue;
// order seqs and tokens carry that count in their high bits, so they grow
// across reopens and no claim of an earlier Open holds, and a task queued
// before this Open counts as claimed once (Task.Claims is 2 at its first
// claim: its previous owner may have run it). The first claim after a
// reopen reads the order index from its start, deleted keys Badger has
// not compacted yet included.
//
// SaveCheckpoint, StateSet and StateDelete under statestore.WithFence
// check the claim inside their committer op, just before the commit, and
// return statestore.ErrFenced without writing when it no longer holds.
// UnqueuedRuns walks the index of unfinished runs, which is in creation
// order, and looks up each run's tasks (in sorted batches, with one
// cursor over the task keys), so a page costs a walk of the
// unfinished runs.
//
// # Retention
//
// The GC goroutine runs every WithGCInterval (default 10 min; negative turns
// it off). It removes runs whose FinishedAt is older than WithRetention
// (default 7 days) with their results, attempts, checkpoints and tasks, 64 runs per
// committer op, skipping runs that still have dead letters and runs resumed
// meanwhile, and then runs Badger's value-log GC (discard ratio 0.5) until
// Badger finds nothing to rewrite. Plugin state is never expired.
//
// # Concurrency
//
// All methods are safe for concurrent use. Store.mu (a RWMutex) guards
// the store's state: readers and enqueuers hold it shared, Close holds it
// exclusively to mark the store closed and close the committer's queue.
// The task queue's claims are guarded by a mutex of their own, taken
// after Store.mu (never the other way round): by claims (which read their
// snapshot under it, so no commit's in-memory effects fall between), and
// by the committer, which never takes Store.mu, for fence checks and for
// the in-memory effects of a committed op, applied in commit order
// before the op's caller is answered. UpdateRun reads the run, calls
// fn outside any lock and writes through the committer only if the stored
// bytes are unchanged, otherwise it starts over; fn may call the store.
//
// # Logging
//
// WithLogger routes Badger's log: info and debug at slog debug level,
// warnings and errors at warn and error. nil (the default) discards it.
package badgerstore
