package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// memTask is one task. Queued tasks that are due are in Store.queued in
// claim order, those released with a delay that has not passed in
// Store.sleeping by due time (so a claim does not pass over them);
// claimed ones are in Store.claimed.
type memTask struct {
	key      nodeKey
	seq      uint64 // claim order: when it was queued or released
	ready    time.Time
	sleeping bool // in Store.sleeping
	owner    string
	token    int64
	claims   int
	first    int
	lease    time.Time
}

type queuedKey struct {
	seq uint64
	key nodeKey
}

func compareQueued(a, b queuedKey) int { return cmp.Compare(a.seq, b.seq) }

// sleepKey orders sleeping tasks by due time.
type sleepKey struct {
	ready int64 // Unix nanoseconds
	seq   uint64
	key   nodeKey
}

func compareSleeping(a, b sleepKey) int {
	return cmp.Or(cmp.Compare(a.ready, b.ready), cmp.Compare(a.seq, b.seq))
}

func (t *memTask) sleepKey() sleepKey { return sleepKey{t.ready.UnixNano(), t.seq, t.key} }

// wake moves the sleeping tasks that are due at now into the claim queue,
// in their release order. s.mu is held.
func (s *Store) wake(now time.Time) {
	var due []sleepKey
	s.sleeping.each(func(k sleepKey) bool {
		if k.ready > now.UnixNano() {
			return false
		}
		due = append(due, k)
		return true
	})
	for _, k := range due {
		s.unsleep(s.tasks[k.key])
	}
}

// unsleep moves sleeping task t into the claim queue. s.mu is held.
func (s *Store) unsleep(t *memTask) {
	s.sleeping.remove(t.sleepKey())
	t.sleeping = false
	s.queued.add(queuedKey{t.seq, t.key})
}

var _ statestore.Queue = (*Store)(nil)

// queue adds t to the claimable tasks, behind every queued one. s.mu is
// held.
func (s *Store) queue(t *memTask) {
	if _, known := s.tasks[t.key]; !known {
		s.tasks[t.key] = t
		s.runTasks[t.key.run]++
	}
	s.taskSeq++
	t.seq, t.owner, t.lease = s.taskSeq, "", time.Time{}
	if t.ready.After(s.opts.now()) {
		t.sleeping = true
		s.sleeping.add(t.sleepKey())
		return
	}
	s.queued.add(queuedKey{t.seq, t.key})
}

// unqueue removes t from the store. s.mu is held.
func (s *Store) unqueue(t *memTask) {
	switch {
	case t.sleeping:
		s.sleeping.remove(t.sleepKey())
	case t.owner == "":
		s.queued.remove(queuedKey{t.seq, t.key})
	default:
		delete(s.claimed, t.key)
	}
	delete(s.tasks, t.key)
	if s.runTasks[t.key.run]--; s.runTasks[t.key.run] <= 0 {
		delete(s.runTasks, t.key.run)
	}
}

// claim gives t to owner. s.mu is held; t is queued or its lease ended.
func (s *Store) claim(t *memTask, owner string, lease time.Duration, now time.Time) statestore.Task {
	if t.owner == "" {
		s.queued.remove(queuedKey{t.seq, t.key})
	}
	s.token++
	t.owner, t.token, t.lease = owner, s.token, now.Add(lease)
	t.claims++
	s.claimed[t.key] = t
	return t.view()
}

func (t *memTask) view() statestore.Task {
	return statestore.Task{RunID: t.key.run, Node: t.key.node, Owner: t.owner, Token: t.token,
		Claims: t.claims, First: t.first, LeaseUntil: t.lease}
}

// holds reports whether f is the live claim of its task. s.mu is held.
func (s *Store) holds(f statestore.Fence, now time.Time) bool {
	t := s.claimed[nodeKey{f.RunID, f.Node}]
	return t != nil && t.owner == f.Owner && t.token == f.Token && now.Before(t.lease)
}

// fenced returns ErrFenced when ctx carries a fence that does not hold.
// s.mu is held.
func (s *Store) fenced(ctx context.Context) error {
	f, ok := statestore.FenceFrom(ctx)
	if !ok {
		return nil
	}
	if !s.holds(f, s.opts.now()) {
		return rules.Fenced(f)
	}
	return nil
}

// ready queues the nodes of run that are ready: needs journaled, not
// journaled themselves, no task. It returns them. s.mu is held.
func (s *Store) ready(run string, nodes []statestore.ReadyNode) []*memTask {
	var out []*memTask
	for _, n := range nodes {
		k := nodeKey{run, n.Node}
		if _, done := s.results[k]; done {
			continue
		}
		if _, queued := s.tasks[k]; queued {
			continue
		}
		ok := true
		for _, need := range n.Needs {
			if _, done := s.results[nodeKey{run, need}]; !done {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		last := s.attempts[k]
		s.attempts[k] = last + n.Block
		t := &memTask{key: k, first: last + 1}
		s.queue(t)
		out = append(out, t)
	}
	return out
}

// SubmitRun implements statestore.Queue.
func (s *Store) SubmitRun(ctx context.Context, r statestore.Run, roots []statestore.ReadyNode) (statestore.Run, bool, error) {
	if err := rules.CheckReady(r.ID, roots); err != nil {
		return statestore.Run{}, false, err
	}
	for _, n := range roots {
		if len(n.Needs) > 0 {
			return statestore.Run{}, false, fmt.Errorf("%w: root %s has needs", statestore.ErrInvalid, n.Node)
		}
	}
	stored, created, err := s.createRun(ctx, r, func() { s.ready(r.ID, roots) })
	return stored, created, err
}

// EnqueueNodes implements statestore.Queue.
func (s *Store) EnqueueNodes(ctx context.Context, runID string, nodes []statestore.ReadyNode) error {
	if err := rules.CheckReady(runID, nodes); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	m, ok := s.runs[runID]
	if !ok {
		return rules.RunNotFound(runID)
	}
	if m.run.Status.Finished() {
		return nil
	}
	s.ready(runID, nodes)
	return nil
}

// ClaimTasks implements statestore.Queue.
func (s *Store) ClaimTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]statestore.Task, error) {
	return s.claimTasks(ctx, owner, "", max, lease)
}

// ClaimRunTasks implements statestore.Queue.
func (s *Store) ClaimRunTasks(ctx context.Context, owner, runID string, max int, lease time.Duration) ([]statestore.Task, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	return s.claimTasks(ctx, owner, runID, max, lease)
}

// claimTasks claims tasks of run runID, or of every run when it is "".
func (s *Store) claimTasks(ctx context.Context, owner, runID string, max int, lease time.Duration) ([]statestore.Task, error) {
	if err := rules.CheckClaim(owner, max, lease); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.opts.now()
	s.wake(now)
	// Rescues first: a task whose owner stopped heartbeating waits longest.
	out := s.claimExpired(owner, runID, max, lease, now)
	if len(out) == max {
		return out, nil
	}
	var due []*memTask
	s.queued.each(func(q queuedKey) bool {
		t := s.tasks[q.key]
		if t.ready.After(now) || (runID != "" && q.key.run != runID) {
			return true
		}
		due = append(due, t)
		return len(out)+len(due) < max
	})
	for _, t := range due {
		out = append(out, s.claim(t, owner, lease, now))
	}
	return out, nil
}

// ExtendLeases implements statestore.Queue.
func (s *Store) ExtendLeases(ctx context.Context, owner string, fences []statestore.Fence, lease time.Duration) ([]statestore.Fence, error) {
	if err := rules.CheckClaim(owner, 1, lease); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.opts.now()
	var lost []statestore.Fence
	for _, f := range fences {
		if f.Owner != owner || !s.holds(f, now) {
			lost = append(lost, f)
			continue
		}
		s.claimed[nodeKey{f.RunID, f.Node}].lease = now.Add(lease)
	}
	return lost, nil
}

// WakeTask implements statestore.Queue.
func (s *Store) WakeTask(ctx context.Context, runID, node string) error {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return err
	}
	if err := statestore.CheckID("node", node); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if t := s.tasks[nodeKey{runID, node}]; t != nil && t.owner == "" {
		if t.sleeping {
			s.unsleep(t)
		}
		t.ready = time.Time{}
	}
	return nil
}

// ReleaseTask implements statestore.Queue.
func (s *Store) ReleaseTask(ctx context.Context, f statestore.Fence, delay time.Duration) error {
	if err := rules.CheckFence(f); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.opts.now()
	if !s.holds(f, now) {
		return rules.Fenced(f)
	}
	t := s.claimed[nodeKey{f.RunID, f.Node}]
	delete(s.claimed, t.key)
	t.ready = now.Add(delay)
	s.queue(t)
	return nil
}

// CompleteTask implements statestore.Queue.
func (s *Store) CompleteTask(ctx context.Context, c statestore.Completion) (statestore.Task, bool, error) {
	now := s.opts.now()
	c, err := rules.CheckCompletion(c, now)
	if err != nil {
		return statestore.Task{}, false, err
	}
	if err := s.lock(ctx); err != nil {
		return statestore.Task{}, false, err
	}
	defer s.mu.Unlock()
	if !s.holds(c.Fence, now) {
		return statestore.Task{}, false, rules.Fenced(c.Fence)
	}
	k := nodeKey{c.Fence.RunID, c.Fence.Node}
	s.unqueue(s.tasks[k])
	if _, ok := s.results[k]; ok {
		return statestore.Task{}, false, rules.CompletedConflict(k.run, k.node)
	}
	s.results[k] = c.Result
	queued := s.ready(k.run, c.Next)
	if !c.Keep || len(queued) == 0 {
		return statestore.Task{}, false, nil
	}
	return s.claim(queued[0], c.Fence.Owner, c.Lease, now), true, nil
}

// DropTasks implements statestore.Queue.
func (s *Store) DropTasks(ctx context.Context, runID string) error {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.dropTasks(runID)
	return nil
}

// dropTasks removes the tasks of a run. s.mu is held.
func (s *Store) dropTasks(runID string) {
	if s.runTasks[runID] == 0 {
		return
	}
	for k, t := range s.tasks {
		if k.run == runID {
			s.unqueue(t)
		}
	}
}

// CheckFence implements statestore.Queue.
func (s *Store) CheckFence(ctx context.Context, f statestore.Fence) error {
	if err := rules.CheckFence(f); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if !s.holds(f, s.opts.now()) {
		return rules.Fenced(f)
	}
	return nil
}

// UnqueuedRuns implements statestore.Queue.
func (s *Store) UnqueuedRuns(ctx context.Context, after string, limit int) ([]string, string, error) {
	limit, err := rules.Limit(limit)
	if err != nil {
		return nil, "", err
	}
	if err := s.lock(ctx); err != nil {
		return nil, "", err
	}
	defer s.mu.Unlock()
	var ids []string
	for id, m := range s.runs {
		if id > after && !m.run.Status.Finished() && s.runTasks[id] == 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) <= limit {
		return ids, "", nil
	}
	ids = ids[:limit]
	return ids, ids[limit-1], nil
}
