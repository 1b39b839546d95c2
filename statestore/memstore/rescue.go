package memstore

import (
	"context"
	"slices"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// ClaimExpiredTasks implements statestore.Queue.
func (s *Store) ClaimExpiredTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]statestore.Task, error) {
	if err := rules.CheckClaim(owner, max, lease); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return s.claimExpired(owner, "", max, lease, s.opts.now()), nil
}

// ClaimOwnTasks implements statestore.Queue.
func (s *Store) ClaimOwnTasks(ctx context.Context, owner string, max int, lease time.Duration) ([]statestore.Task, error) {
	if err := rules.CheckClaim(owner, max, lease); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var own []*memTask
	for _, t := range s.claimed {
		if t.owner == owner {
			own = append(own, t)
		}
	}
	sortByLease(own)
	now := s.opts.now()
	out := make([]statestore.Task, 0, min(max, len(own)))
	for _, t := range own[:min(max, len(own))] {
		out = append(out, s.claim(t, owner, lease, now))
	}
	return out, nil
}

// ExpiredFor implements statestore.Queue.
func (s *Store) ExpiredFor(ctx context.Context) (time.Duration, bool, error) {
	if err := s.lock(ctx); err != nil {
		return 0, false, err
	}
	defer s.mu.Unlock()
	now := s.opts.now()
	var waited time.Duration
	ok := false
	for _, t := range s.claimed {
		if !now.Before(t.lease) {
			waited, ok = max(waited, now.Sub(t.lease)), true
		}
	}
	return waited, ok, nil
}

// claimExpired claims up to max tasks of run runID (any run when "")
// whose lease ended, soonest ended first. s.mu is held.
func (s *Store) claimExpired(owner, runID string, max int, lease time.Duration, now time.Time) []statestore.Task {
	var expired []*memTask
	for _, t := range s.claimed {
		if !now.Before(t.lease) && (runID == "" || t.key.run == runID) {
			expired = append(expired, t)
		}
	}
	sortByLease(expired)
	out := make([]statestore.Task, 0, min(max, len(expired)))
	for _, t := range expired[:min(max, len(expired))] {
		out = append(out, s.claim(t, owner, lease, now))
	}
	return out
}

// sortByLease sorts claimed tasks soonest lease end first, then in queue
// order.
func sortByLease(ts []*memTask) {
	slices.SortFunc(ts, func(a, b *memTask) int {
		if c := a.lease.Compare(b.lease); c != 0 {
			return c
		}
		return compareQueued(queuedKey{a.seq, a.key}, queuedKey{b.seq, b.key})
	})
}
