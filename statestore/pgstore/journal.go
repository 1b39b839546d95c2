package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// CompleteNode implements statestore.Journal. The completion and the
// attempts in next are one call of bulkhead_complete_node, made by the
// committer in a transaction it shares with the completions queued with it.
func (s *Store) CompleteNode(ctx context.Context, res statestore.NodeResult, next ...statestore.NodeAttempt) error {
	now := s.opts.now()
	res, err := rules.PrepareResult(res, now)
	if err != nil {
		return err
	}
	next, err = rules.PrepareNext(res, next, now)
	if err != nil {
		return err
	}
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	o := &op{ctx: ctx, res: res, next: next, body: body, done: make(chan error, 1)}
	if s.opts.maxBatch == 1 {
		// No group commit: a transaction of its own, on the caller's
		// goroutine and connection.
		return s.do(ctx, func(ctx context.Context) error {
			o.ctx = ctx
			results, err := s.runGroup([]*op{o})
			if err != nil {
				return err
			}
			return results[0]
		})
	}
	return s.enqueue(ctx, o)
}

// StartAttempt implements statestore.Journal: one conditional upsert, which
// the row lock of (run, node) serializes, of a run whose row it locks
// FOR KEY SHARE (so the run cannot be removed meanwhile).
func (s *Store) StartAttempt(ctx context.Context, a statestore.NodeAttempt) error {
	a, err := rules.PrepareAttempt(a, s.opts.now())
	if err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		var run, wrote bool
		err := s.pool.QueryRow(ctx, `WITH r AS MATERIALIZED (SELECT id FROM runs WHERE id = $1 FOR KEY SHARE), w AS (
	INSERT INTO node_attempts (run_id, node, attempt, started_ns) SELECT id, $2, $3, $4 FROM r
	ON CONFLICT (run_id, node) DO UPDATE SET attempt = EXCLUDED.attempt, started_ns = EXCLUDED.started_ns
	WHERE node_attempts.attempt < EXCLUDED.attempt
	RETURNING 1)
SELECT EXISTS (SELECT 1 FROM r), EXISTS (SELECT 1 FROM w)`, []byte(a.RunID), []byte(a.Node), a.Attempt, a.StartedAt.UnixNano()).Scan(&run, &wrote)
		switch {
		case err != nil:
			return err
		case !run:
			return rules.RunNotFound(a.RunID)
		case wrote:
			return nil
		}
		last, err := lastAttempt(ctx, s.pool, a.RunID, a.Node)
		if err != nil {
			return err
		}
		return rules.AttemptConflict(a, last)
	})
}

func lastAttempt(ctx context.Context, q querier, runID, node string) (int, error) {
	var n int
	err := q.QueryRow(ctx, "SELECT attempt FROM node_attempts WHERE run_id = $1 AND node = $2", []byte(runID), []byte(node)).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// NodeResults implements statestore.Journal.
func (s *Store) NodeResults(ctx context.Context, runID string) (map[string]statestore.NodeResult, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	return s.readResults(ctx, 0, "SELECT body FROM node_results WHERE run_id = $1", []byte(runID))
}

// NodeResultsOf implements statestore.Journal through the primary key of
// node_results.
func (s *Store) NodeResultsOf(ctx context.Context, runID string, nodes []string) (map[string]statestore.NodeResult, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	names := make([][]byte, len(nodes))
	for i, n := range nodes {
		if err := rules.CheckNode(runID, n); err != nil {
			return nil, err
		}
		names[i] = []byte(n)
	}
	return s.readResults(ctx, len(nodes), "SELECT body FROM node_results WHERE run_id = $1 AND node = ANY($2)", []byte(runID), names)
}

// readResults returns the node results query q selects (one body column),
// by node; size hints their number.
func (s *Store) readResults(ctx context.Context, size int, q string, args ...any) (map[string]statestore.NodeResult, error) {
	out := make(map[string]statestore.NodeResult, size)
	err := s.do(ctx, func(ctx context.Context) error {
		clear(out) // a retried read starts over
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		var body []byte
		_, err = pgx.ForEachRow(rows, []any{&body}, func() error {
			var res statestore.NodeResult
			if err := decode("node result", body, &res); err != nil {
				return err
			}
			out[res.Node] = res
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LastAttempt implements statestore.Journal.
func (s *Store) LastAttempt(ctx context.Context, runID, node string) (int, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return 0, err
	}
	var n int
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		n, err = lastAttempt(ctx, s.pool, runID, node)
		return err
	})
	return n, err
}

// SaveCheckpoint implements statestore.Checkpoints. The upsert of the
// node's head row takes the next seq under that row's lock, so concurrent
// saves of one node are serialized; the checkpoint leaving the window is
// deleted in the same transaction. Under a fence (statestore.WithFence) the
// head row is written only while the claim holds.
func (s *Store) SaveCheckpoint(ctx context.Context, runID, node string, data []byte) (uint64, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return 0, err
	}
	f, fenced := statestore.FenceFrom(ctx)
	if fenced {
		if err := rules.CheckFence(f); err != nil {
			return 0, err
		}
	}
	now := s.opts.now()
	if data == nil {
		data = []byte{}
	}
	var seq int64
	err := s.do(ctx, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			if fenced {
				// The head row is written only while the claim holds, whose
				// task row stays locked FOR SHARE until the commit.
				err = tx.QueryRow(ctx, `INSERT INTO checkpoint_heads (run_id, node, seq)
SELECT $5, $6, 1 WHERE EXISTS (SELECT 1 FROM tasks WHERE `+fenceCond+` FOR SHARE)
ON CONFLICT (run_id, node) DO UPDATE SET seq = checkpoint_heads.seq + 1 RETURNING seq`,
					append(fenceArgs(f), []byte(runID), []byte(node))...).Scan(&seq)
				if errors.Is(err, pgx.ErrNoRows) {
					return rules.Fenced(f)
				}
			} else {
				err = tx.QueryRow(ctx, `INSERT INTO checkpoint_heads (run_id, node, seq) VALUES ($1, $2, 1)
ON CONFLICT (run_id, node) DO UPDATE SET seq = checkpoint_heads.seq + 1 RETURNING seq`, []byte(runID), []byte(node)).Scan(&seq)
			}
			if err != nil {
				if errors.Is(translate(err), statestore.ErrNotFound) {
					return rules.RunNotFound(runID)
				}
				return err
			}
			b := &pgx.Batch{}
			b.Queue("INSERT INTO checkpoints (run_id, node, seq, created_ns, data) VALUES ($1, $2, $3, $4, $5)",
				[]byte(runID), []byte(node), seq, now.UnixNano(), data)
			b.Queue("DELETE FROM checkpoints WHERE run_id = $1 AND node = $2 AND seq <= $3",
				[]byte(runID), []byte(node), seq-int64(s.opts.maxCheckpoints))
			return tx.SendBatch(ctx, b).Close()
		})
	})
	if err != nil {
		return 0, err
	}
	return uint64(seq), nil
}

func scanCheckpoints(rows pgx.Rows) ([]statestore.Checkpoint, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (statestore.Checkpoint, error) {
		var run, node, data []byte
		var seq, ns int64
		if err := row.Scan(&run, &node, &seq, &ns, &data); err != nil {
			return statestore.Checkpoint{}, err
		}
		return statestore.Checkpoint{RunID: string(run), Node: string(node), Seq: uint64(seq), Data: data, CreatedAt: time.Unix(0, ns)}, nil
	})
}

// LatestCheckpoint implements statestore.Checkpoints.
func (s *Store) LatestCheckpoint(ctx context.Context, runID, node string) (statestore.Checkpoint, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return statestore.Checkpoint{}, err
	}
	var cps []statestore.Checkpoint
	err := s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT run_id, node, seq, created_ns, data FROM checkpoints
WHERE run_id = $1 AND node = $2 ORDER BY seq DESC LIMIT 1`, []byte(runID), []byte(node))
		if err != nil {
			return err
		}
		cps, err = scanCheckpoints(rows)
		return err
	})
	if err != nil {
		return statestore.Checkpoint{}, err
	}
	if len(cps) == 0 {
		return statestore.Checkpoint{}, fmt.Errorf("%w: no checkpoint for %s/%s", statestore.ErrNotFound, runID, node)
	}
	return cps[0], nil
}

// ListCheckpoints implements statestore.Checkpoints.
func (s *Store) ListCheckpoints(ctx context.Context, runID, node string) ([]statestore.Checkpoint, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	if node != "" {
		if err := statestore.CheckID("node", node); err != nil {
			return nil, err
		}
	}
	var out []statestore.Checkpoint
	err := s.do(ctx, func(ctx context.Context) error {
		var rows pgx.Rows
		var err error
		if node == "" {
			rows, err = s.pool.Query(ctx, `SELECT run_id, node, seq, created_ns, data FROM checkpoints
WHERE run_id = $1 ORDER BY node, seq`, []byte(runID))
		} else {
			rows, err = s.pool.Query(ctx, `SELECT run_id, node, seq, created_ns, data FROM checkpoints
WHERE run_id = $1 AND node = $2 ORDER BY seq`, []byte(runID), []byte(node))
		}
		if err != nil {
			return err
		}
		out, err = scanCheckpoints(rows)
		return err
	})
	return out, err
}
