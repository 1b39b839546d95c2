package badgerstore

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
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

// ClaimOwnTasks implements statestore.Queue: it reads the waiting entries
// in memory only.
func (s *Store) ClaimOwnTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]statestore.Task, error) {
	return s.withQueue(ctx, owner, max, lease, func(q *queue) ([]statestore.Task, error) {
		own := make([]*entry, 0, len(q.waiting.items))
		for _, e := range q.waiting.items {
			if e.owner == owner {
				own = append(own, e)
			}
		}
		slices.SortFunc(own, func(a, b *entry) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.seq, b.seq)) })
		now := s.opts.now()
		out := make([]statestore.Task, 0, min(max, len(own)))
		for _, e := range own[:min(max, len(own))] {
			out = append(out, q.take(e, owner, lease, now))
		}
		return out, nil
	})
}

// ExpiredFor implements statestore.Queue: it reads the waiting entries in
// memory only.
func (s *Store) ExpiredFor(ctx context.Context) (time.Duration, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, false, statestore.ErrClosed
	}
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	now := s.opts.now()
	if e := s.q.dueReleased(now); e != nil && !e.at.After(now) {
		return now.Sub(e.at), true, nil
	}
	return 0, false, nil
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
	for e := q.dueReleased(now); e != nil && !e.at.After(now) && len(out) < max; e = q.dueReleased(now) {
		out = append(out, q.take(e, owner, lease, now))
	}
	return out
}

// dueReleased moves the released entries that became due to q.released
// and returns the first waiting entry left: a claim, or one not due yet.
// q.mu is held.
func (q *queue) dueReleased(now time.Time) *entry {
	e := q.waiting.min()
	for ; e != nil && e.owner == "" && !e.at.After(now); e = q.waiting.min() {
		heap.Pop(&q.waiting)
		heap.Push(&q.released, e)
	}
	return e
}
