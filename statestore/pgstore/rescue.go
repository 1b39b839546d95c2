package pgstore

import (
	"context"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// claimExpiredSQL is claimSQL's first pass alone: up to $2 tasks whose
// lease ended, soonest ended first, claimed for $1 and leased for $3 µs
// (through the tasks_leased index, so its cost does not grow with the
// queued backlog).
const claimExpiredSQL = `WITH picked AS MATERIALIZED (
	SELECT run_id, node, seq FROM tasks
	WHERE owner IS NOT NULL AND lease_until <= now()
	ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET owner = $1, token = nextval('task_tokens'), claims = t.claims + 1,
	lease_until = now() + $3 * interval '1 microsecond'
FROM picked WHERE t.run_id = picked.run_id AND t.node = picked.node
RETURNING t.run_id, t.node, t.token, t.claims, t.first_attempt, t.lease_until, 0, picked.seq`

// ClaimExpiredTasks implements statestore.Queue in one statement
// (claimExpiredSQL).
func (s *Store) ClaimExpiredTasks(ctx context.Context, owner string, limit int, lease time.Duration) ([]statestore.Task, error) {
	if err := rules.CheckClaim(owner, limit, lease); err != nil {
		return nil, err
	}
	return s.claimWith(ctx, owner, claimExpiredSQL, []any{[]byte(owner), limit, micros(lease)})
}

// ExpiredFor implements statestore.Queue: one read of the first entry of
// the tasks_leased index, on the database's clock.
func (s *Store) ExpiredFor(ctx context.Context) (time.Duration, bool, error) {
	var us *int64
	err := s.do(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT (extract(epoch FROM now() - min(lease_until)) * 1e6)::bigint
FROM tasks WHERE owner IS NOT NULL AND lease_until <= now()`).Scan(&us)
	})
	if err != nil || us == nil {
		return 0, false, err
	}
	return time.Duration(*us) * time.Microsecond, true, nil
}

// claimOwnSQL is claimExpiredSQL for the tasks $1 holds, whatever their
// lease (through the tasks_leased index: every claimed task is in it).
const claimOwnSQL = `WITH picked AS MATERIALIZED (
	SELECT run_id, node, seq FROM tasks
	WHERE owner IS NOT NULL AND owner = $1
	ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET owner = $1, token = nextval('task_tokens'), claims = t.claims + 1,
	lease_until = now() + $3 * interval '1 microsecond'
FROM picked WHERE t.run_id = picked.run_id AND t.node = picked.node
RETURNING t.run_id, t.node, t.token, t.claims, t.first_attempt, t.lease_until, 0, picked.seq`

// ClaimOwnTasks implements statestore.Queue in one statement (claimOwnSQL).
func (s *Store) ClaimOwnTasks(ctx context.Context, owner string, limit int, lease time.Duration) ([]statestore.Task, error) {
	if err := rules.CheckClaim(owner, limit, lease); err != nil {
		return nil, err
	}
	return s.claimWith(ctx, owner, claimOwnSQL, []any{[]byte(owner), limit, micros(lease)})
}
