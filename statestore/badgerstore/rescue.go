package badgerstore

import (
	"container/heap"
	"context"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// ClaimExpiredTasks implements statestore.Queue: it reads the waiting
// entries in memory only.
func (s *Store) ClaimExpiredTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]statestore.Task, error) {
	return s.withQueue(ctx, owner, max, lease, func(q *queue) ([]statestore.Task, error) {
		return q.claimExpired(owner, max, lease, s.opts.now()), nil
	})
}

// withQueue checks a claim's arguments and runs claim with the store open
// and q.mu held.
func (s *Store) withQueue(ctx context.Context, owner string, max int, lease time.Duration, claim func(q *queue) ([]statestore.Task, error)) ([]statestore.Task, error) {
	if err := rules.CheckClaim(owner, max, lease); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, statestore.ErrClosed
	}
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	return claim(s.q)
}

// claimExpired claims up to max entries whose lease ended, soonest ended
// first, and moves the released entries that became due to q.released on
// the way. q.mu is held.
func (q *queue) claimExpired(owner string, max int, lease time.Duration, now time.Time) []statestore.Task {
	var out []statestore.Task
	for e := q.waiting.min(); e != nil && !e.at.After(now); e = q.waiting.min() {
		if e.owner == "" {
			heap.Pop(&q.waiting)
			heap.Push(&q.released, e)
			continue
		}
		if len(out) == max {
			break
		}
		out = append(out, q.take(e, owner, lease, now))
	}
	return out
}
