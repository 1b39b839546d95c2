package rules

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// PrepareCreate validates r and fills the fields CreateRun owns.
func PrepareCreate(r statestore.Run, now time.Time) (statestore.Run, error) {
	if err := statestore.CheckID("run ID", r.ID); err != nil {
		return r, err
	}
	r = r.Clone()
	if r.Status == "" {
		r.Status = statestore.StatusPending
	}
	if !r.Status.Valid() {
		return r, fmt.Errorf("%w: run status %q", statestore.ErrInvalid, r.Status)
	}
	if r.InputHash == "" {
		r.InputHash = statestore.HashInput(r.Input)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.UpdatedAt = now
	if r.Status.Finished() && r.FinishedAt.IsZero() {
		r.FinishedAt = now
	}
	if !r.Status.Finished() {
		r.FinishedAt = time.Time{}
	}
	return r, nil
}

// SameRun reports whether a CreateRun of r repeats the creation of existing.
func SameRun(existing, r statestore.Run) bool {
	return existing.Workflow == r.Workflow && existing.InputHash == r.InputHash
}

// ConflictError describes why r cannot be created over existing.
func ConflictError(existing, r statestore.Run) error {
	if existing.Workflow != r.Workflow {
		return fmt.Errorf("%w: run %q exists for workflow %q, not %q", statestore.ErrConflict, r.ID, existing.Workflow, r.Workflow)
	}
	return fmt.Errorf("%w: run %q exists with another input (sha256 %.12s, not %.12s)", statestore.ErrConflict, r.ID, existing.InputHash, r.InputHash)
}

// ApplyUpdate calls fn on a copy of old and returns the run to store.
func ApplyUpdate(old statestore.Run, fn func(*statestore.Run) error, now time.Time) (statestore.Run, error) {
	r := old.Clone()
	if err := fn(&r); err != nil {
		return old, err
	}
	if !r.Status.Valid() {
		return old, fmt.Errorf("%w: run status %q", statestore.ErrInvalid, r.Status)
	}
	r.ID, r.Workflow, r.Input, r.InputHash, r.CreatedAt = old.ID, old.Workflow, old.Input, old.InputHash, old.CreatedAt
	r.UpdatedAt = now
	if r.Status.Finished() {
		if r.FinishedAt.IsZero() {
			r.FinishedAt = now
		}
	} else {
		r.FinishedAt = time.Time{}
	}
	return r, nil
}

// PrepareResult validates res and fills FinishedAt.
func PrepareResult(res statestore.NodeResult, now time.Time) (statestore.NodeResult, error) {
	if err := CheckNode(res.RunID, res.Node); err != nil {
		return res, err
	}
	res.Output = append([]byte(nil), res.Output...)
	if res.FinishedAt.IsZero() {
		res.FinishedAt = now
	}
	return res, nil
}

// PrepareAttempt validates a and fills StartedAt.
func PrepareAttempt(a statestore.NodeAttempt, now time.Time) (statestore.NodeAttempt, error) {
	if err := CheckNode(a.RunID, a.Node); err != nil {
		return a, err
	}
	if a.Attempt < 1 {
		return a, fmt.Errorf("%w: attempt %d < 1", statestore.ErrInvalid, a.Attempt)
	}
	if a.StartedAt.IsZero() {
		a.StartedAt = now
	}
	return a, nil
}

// PrepareNext validates the attempts recorded with the completion of res
// and fills their StartedAt: they must belong to res's run, not to res's
// node, and name each node once.
func PrepareNext(res statestore.NodeResult, next []statestore.NodeAttempt, now time.Time) ([]statestore.NodeAttempt, error) {
	if len(next) == 0 {
		return nil, nil
	}
	out := make([]statestore.NodeAttempt, len(next))
	for i, a := range next {
		a, err := PrepareAttempt(a, now)
		if err != nil {
			return nil, err
		}
		if a.RunID != res.RunID {
			return nil, fmt.Errorf("%w: attempt of run %q recorded with a completion of run %q", statestore.ErrInvalid, a.RunID, res.RunID)
		}
		if a.Node == res.Node {
			return nil, fmt.Errorf("%w: attempt of node %q recorded with its own completion", statestore.ErrInvalid, a.Node)
		}
		for _, b := range out[:i] {
			if b.Node == a.Node {
				return nil, fmt.Errorf("%w: two attempts of node %q in one completion", statestore.ErrInvalid, a.Node)
			}
		}
		out[i] = a
	}
	return out, nil
}

// AttemptConflict is the error for an attempt number that does not increase.
func AttemptConflict(a statestore.NodeAttempt, last int) error {
	return fmt.Errorf("%w: attempt %d of %s/%s is not after attempt %d", statestore.ErrConflict, a.Attempt, a.RunID, a.Node, last)
}

// CompletedConflict is the error for a node completed twice.
func CompletedConflict(runID, node string) error {
	return fmt.Errorf("%w: node %s/%s already completed", statestore.ErrConflict, runID, node)
}

// RunNotFound is the error for a missing run.
func RunNotFound(id string) error {
	return fmt.Errorf("%w: run %q", statestore.ErrNotFound, id)
}

// CheckNode validates a run ID and node name.
func CheckNode(runID, node string) error {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return err
	}
	return statestore.CheckID("node", node)
}

// CheckKey validates a plugin name and state key.
func CheckKey(plugin, key string) error {
	if err := statestore.CheckID("plugin", plugin); err != nil {
		return err
	}
	return statestore.CheckID("state key", key)
}

// PrepareDeadLetter validates d and fills ID and CreatedAt.
func PrepareDeadLetter(d statestore.DeadLetter, now time.Time) (statestore.DeadLetter, error) {
	if d.ID == "" {
		d.ID = NewID(now)
	}
	if err := statestore.CheckID("dead-letter ID", d.ID); err != nil {
		return d, err
	}
	if d.RunID != "" {
		if err := statestore.CheckID("run ID", d.RunID); err != nil {
			return d, err
		}
	}
	d = d.Clone()
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now
	}
	return d, nil
}

// NewID returns a 24-hex-digit ID whose order follows now.
func NewID(now time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// Limit returns the page size for a filter's limit.
func Limit(n int) (int, error) {
	switch {
	case n < 0:
		return 0, fmt.Errorf("%w: limit %d", statestore.ErrInvalid, n)
	case n == 0:
		return statestore.DefaultListLimit, nil
	}
	return n, nil
}

// RunCursor encodes the position of a run in creation order.
func RunCursor(created time.Time, id string) string {
	return fmt.Sprintf("%016x.%s", uint64(created.UnixNano()), id)
}

// ParseRunCursor decodes a RunCursor.
func ParseRunCursor(c string) (int64, string, error) {
	var ns uint64
	if len(c) < 18 || c[16] != '.' {
		return 0, "", fmt.Errorf("%w: run cursor %q", statestore.ErrInvalid, c)
	}
	if _, err := fmt.Sscanf(c[:16], "%016x", &ns); err != nil {
		return 0, "", fmt.Errorf("%w: run cursor %q", statestore.ErrInvalid, c)
	}
	return int64(ns), c[17:], nil
}

// CheckReady validates nodes that a write may queue for run runID.
func CheckReady(runID string, nodes []statestore.ReadyNode) error {
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if err := CheckNode(runID, n.Node); err != nil {
			return err
		}
		if n.Block < 1 {
			return fmt.Errorf("%w: node %s: attempt block %d < 1", statestore.ErrInvalid, n.Node, n.Block)
		}
		if seen[n.Node] {
			return fmt.Errorf("%w: node %s listed twice", statestore.ErrInvalid, n.Node)
		}
		seen[n.Node] = true
		for _, need := range n.Needs {
			if err := statestore.CheckID("need", need); err != nil {
				return err
			}
			if need == n.Node {
				return fmt.Errorf("%w: node %s needs itself", statestore.ErrInvalid, n.Node)
			}
		}
	}
	return nil
}

// CheckFence validates a fence.
func CheckFence(f statestore.Fence) error {
	if err := CheckNode(f.RunID, f.Node); err != nil {
		return err
	}
	if err := statestore.CheckID("owner", f.Owner); err != nil {
		return err
	}
	if f.Token < 1 {
		return fmt.Errorf("%w: claim token %d < 1", statestore.ErrInvalid, f.Token)
	}
	return nil
}

// CheckClaim validates the arguments of ClaimTasks and ExtendLeases.
func CheckClaim(owner string, max int, lease time.Duration) error {
	if err := statestore.CheckID("owner", owner); err != nil {
		return err
	}
	if max < 1 {
		return fmt.Errorf("%w: claim of %d tasks", statestore.ErrInvalid, max)
	}
	if lease <= 0 {
		return fmt.Errorf("%w: lease %s is not positive", statestore.ErrInvalid, lease)
	}
	return nil
}

// CheckCompletion validates a fenced completion and prepares its result.
func CheckCompletion(c statestore.Completion, now time.Time) (statestore.Completion, error) {
	if err := CheckFence(c.Fence); err != nil {
		return c, err
	}
	if c.Result.RunID != c.Fence.RunID || c.Result.Node != c.Fence.Node {
		return c, fmt.Errorf("%w: completion of %s/%s under the fence of %s/%s", statestore.ErrInvalid,
			c.Result.RunID, c.Result.Node, c.Fence.RunID, c.Fence.Node)
	}
	res, err := PrepareResult(c.Result, now)
	if err != nil {
		return c, err
	}
	c.Result = res
	if err := CheckReady(c.Fence.RunID, c.Next); err != nil {
		return c, err
	}
	for _, n := range c.Next {
		if n.Node == c.Fence.Node {
			return c, fmt.Errorf("%w: node %s readies itself", statestore.ErrInvalid, n.Node)
		}
	}
	if c.Keep && c.Lease <= 0 {
		return c, fmt.Errorf("%w: lease %s is not positive", statestore.ErrInvalid, c.Lease)
	}
	return c, nil
}

// Fenced returns the error of a write under a fence that does not hold.
func Fenced(f statestore.Fence) error {
	return fmt.Errorf("%w: %s/%s is no longer claimed by %s (token %d)", statestore.ErrFenced, f.RunID, f.Node, f.Owner, f.Token)
}
