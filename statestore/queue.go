package statestore

import (
	"context"
	"errors"
	"time"
)

// ErrFenced: the write was made under a claim that no longer holds — the
// task's lease expired and another owner claimed it, or its run finished
// or was cancelled meanwhile. Nothing was written.
var ErrFenced = errors.New("statestore: claim lost")

// Task is a ready node of an unfinished run: queued, or claimed by one
// owner until its lease ends. A node has at most one task at a time.
type Task struct {
	RunID string
	Node  string
	// Owner is who holds the claim ("" while queued).
	Owner string
	// Token identifies the claim: every claim of any task gets a token no
	// other claim of the store had, so a fence (RunID, Node, Owner, Token)
	// never matches a later claim, even one by the same owner of a task
	// queued again.
	Token int64
	// Claims counts the claims of the task, this one included. A task
	// queued before its store was reopened counts as claimed once already
	// (its previous owner may have run it).
	Claims int
	// First is the first attempt number reserved for the task's execution
	// when it was queued. It holds when Claims is 1 only: a later claim
	// rescues a task another owner held, whose execution may have used
	// those numbers, so the new owner reserves a block of its own
	// (Journal.StartAttempt).
	First int
	// LeaseUntil is when the claim ends unless extended, on the store's
	// clock (the database server's, for a shared store).
	LeaseUntil time.Time
}

// Fence returns the claim of t, the condition of fenced writes.
func (t Task) Fence() Fence {
	return Fence{RunID: t.RunID, Node: t.Node, Owner: t.Owner, Token: t.Token}
}

// Fence names one claim of a task. A write made under a fence commits
// only while that claim holds; otherwise it fails with ErrFenced.
type Fence struct {
	RunID string
	Node  string
	Owner string
	Token int64
}

// ReadyNode describes a node that a write may make ready.
type ReadyNode struct {
	Node string
	// Needs are the nodes whose completion the node waits for. Its task is
	// queued only when every need is journaled, checked in the same
	// transaction as the write, so of two needs completing at once on two
	// hosts, the second one queues it.
	Needs []string
	// Block is how many attempt numbers its first execution may use: the
	// store records the attempt last+Block (as StartAttempt would) and
	// queues the task with First = last+1.
	Block int
}

// Completion is a fenced node completion (Queue.CompleteTask).
type Completion struct {
	Fence  Fence
	Result NodeResult
	// Next are the dependents of Result.Node; each becomes a task when the
	// completion makes it ready.
	Next []ReadyNode
	// Keep claims the first task the completion queues for Fence.Owner,
	// leased for Lease, so the caller runs it next without a claim of its
	// own.
	Keep  bool
	Lease time.Duration
}

// Queue holds the ready nodes of every unfinished run as tasks, which
// owners (engines, one per host) claim with a lease, keep alive with
// heartbeats and complete under a fence. An owner that stops
// heartbeating loses its tasks when their leases end: any owner claims
// them again. Stores that are used by one process at a time (memstore,
// badgerstore) keep claims in memory: they are not durable, and a
// reopened store has every task queued again.
type Queue interface {
	// SubmitRun is CreateRun that also queues the run's first ready nodes
	// (roots, whose Needs are empty), all or nothing. When the run exists
	// already (created is false), nothing is queued.
	SubmitRun(ctx context.Context, r Run, roots []ReadyNode) (Run, bool, error)
	// EnqueueNodes queues the nodes of an unfinished run whose needs are
	// journaled, that are not journaled themselves and have no task yet;
	// others are skipped. It makes a run execute again after it lost its
	// tasks (a resumed failed or cancelled run, a run stored before tasks
	// existed). Errors: ErrNotFound (no such run), ErrInvalid, ErrClosed.
	EnqueueNodes(ctx context.Context, runID string, nodes []ReadyNode) error
	// ClaimTasks claims up to max tasks for owner, leased for lease: tasks
	// whose lease ended (rescues, soonest ended first), then queued tasks,
	// oldest first. A task that was released with a delay is not claimed
	// before it. Errors: ErrInvalid, ErrClosed, ErrUnavailable.
	ClaimTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]Task, error)
	// ClaimExpiredTasks is ClaimTasks restricted to tasks whose lease
	// ended: queued tasks are left. An owner whose workers are all busy
	// claims this way to rescue another owner's nodes without taking new
	// work. Errors: ErrInvalid, ErrClosed, ErrUnavailable.
	ClaimExpiredTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]Task, error)
	// ClaimOwnTasks claims for owner, leased for lease, up to max tasks
	// that owner holds already under earlier claims, whether their lease
	// ended or not, soonest ended first; each gets a new claim (a new
	// token, Claims + 1), so the earlier claims no longer hold. A process
	// that starts under the name of one that died (an owner's name is
	// unique among live owners) takes back the nodes its predecessor held
	// without waiting for their leases to end. Errors: ErrInvalid,
	// ErrClosed, ErrUnavailable.
	ClaimOwnTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]Task, error)
	// ExpiredFor reports whether a task's lease ended and no owner claimed
	// it again since (ok): a node whose owner died waits for a rescue; and
	// how long the one whose lease ended first has waited, on the store's
	// clock. It claims nothing. An owner whose workers and rescue capacity
	// are all busy looks this way before it makes room for rescues.
	// Errors: ErrClosed, ErrUnavailable.
	ExpiredFor(ctx context.Context) (waited time.Duration, ok bool, err error)
	// ClaimRunTasks is ClaimTasks restricted to the tasks of one run. A
	// process that executes only the runs it was asked to (a one-shot
	// command) claims this way.
	ClaimRunTasks(ctx context.Context, owner, runID string, max int, lease time.Duration) ([]Task, error)
	// ExtendLeases extends the leases of owner's claims to now+lease and
	// returns the fences that no longer hold (their task was claimed by
	// another owner, completed, or dropped with its run): their owner
	// stops working on them.
	ExtendLeases(ctx context.Context, owner string, fences []Fence, lease time.Duration) (lost []Fence, err error)
	// ReleaseTask gives a claimed task back: it is claimable again after
	// delay. Errors: ErrFenced when the claim was lost.
	ReleaseTask(ctx context.Context, f Fence, delay time.Duration) error
	// WakeTask makes the queued task of a run's node claimable now when it
	// was released with a delay that has not passed (a node waiting for an
	// event that arrived). A task that is claimed, already claimable or
	// missing is left as it is; that is not an error. Errors: ErrInvalid,
	// ErrClosed.
	WakeTask(ctx context.Context, runID, node string) error
	// CompleteTask journals c.Result as CompleteNode does, removes the
	// task and queues the dependents it makes ready, in one durable
	// (fsynced) write — only while c.Fence holds. With c.Keep, the first
	// queued dependent is returned claimed by the same owner (ok true).
	// Errors: ErrFenced (nothing written), ErrConflict (the node was
	// journaled already: the task is removed, the first entry stays),
	// ErrNotFound, ErrInvalid, ErrClosed.
	CompleteTask(ctx context.Context, c Completion) (next Task, ok bool, err error)
	// DropTasks removes every task of a run (claimed or not): its claims
	// are lost. The engine calls it when a run fails or is cancelled.
	DropTasks(ctx context.Context, runID string) error
	// CheckFence returns ErrFenced when f no longer holds.
	CheckFence(ctx context.Context, f Fence) error
	// UnqueuedRuns returns a page of unfinished runs that have no task,
	// ordered by ID, after the ID after, and the ID to pass for the next
	// page ("" on the last).
	UnqueuedRuns(ctx context.Context, after string, limit int) ([]string, string, error)
}

type fenceKey struct{}

// WithFence returns a context under which SaveCheckpoint, StateSet and
// StateDelete commit only while f holds (else ErrFenced, nothing
// written). The engine runs each node under its claim's fence.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence of ctx, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// EndingCompleter is a Queue that can record a run's end in the commit
// that journals its last node: one transaction fewer at the end of every
// run.
type EndingCompleter interface {
	// CompleteTaskEnd is CompleteTask that, when the completion is stored,
	// also applies end to the run, as UpdateRun does, in the same commit
	// (c has no dependents to queue). ended is false, with the completion
	// stored, when the store did not apply end: the run changed since
	// this store last wrote or read it, or end refused it. The caller
	// then records the end with UpdateRun.
	CompleteTaskEnd(ctx context.Context, c Completion, end func(*Run) error) (final Run, ended bool, err error)
}

// SubmitClaimer is a Queue that can claim a run's first root for the
// submitter in the write that submits the run: one transaction fewer at
// the start of every run.
type SubmitClaimer interface {
	// SubmitRunClaim is SubmitRun that, when it creates the run, also
	// claims its first root for owner, leased for lease, as ClaimTasks
	// would (Claims is 1). claimed is false when nothing was claimed: the
	// run existed, or it has no roots.
	SubmitRunClaim(ctx context.Context, r Run, roots []ReadyNode, owner string, lease time.Duration) (stored Run, created bool, t Task, claimed bool, err error)
}
