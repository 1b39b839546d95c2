package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

var (
	errChanged = errors.New("run changed")
	errDecode  = errors.New("pgstore: undecodable row")
)

func decode(what string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", errDecode, what, err)
	}
	return nil
}

func finishedNS(r statestore.Run) *int64 {
	if r.FinishedAt.IsZero() {
		return nil
	}
	ns := r.FinishedAt.UnixNano()
	return &ns
}

// CreateRun implements statestore.Runs. INSERT … ON CONFLICT DO NOTHING
// decides which of concurrent creations wins; the others read the winner.
func (s *Store) CreateRun(ctx context.Context, r statestore.Run) (statestore.Run, bool, error) {
	r, err := rules.PrepareCreate(r, s.opts.now())
	if err != nil {
		return statestore.Run{}, false, err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return statestore.Run{}, false, err
	}
	var out statestore.Run
	var created bool
	err = s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `INSERT INTO runs (id, status, created_ns, finished_ns, body)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
			[]byte(r.ID), string(r.Status), r.CreatedAt.UnixNano(), finishedNS(r), body)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			out, created = r, true
			if !r.Status.Finished() {
				s.runs.put(r.ID, body, 1)
			}
			return nil
		}
		old, _, err := getRun(ctx, s.pool, r.ID)
		if err != nil {
			return err
		}
		out = old
		if !rules.SameRun(old, r) {
			return rules.ConflictError(old, r)
		}
		return nil
	})
	if err != nil && !errors.Is(err, statestore.ErrConflict) {
		return statestore.Run{}, false, err
	}
	return out.Clone(), created, err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getRun(ctx context.Context, q querier, id string) (statestore.Run, int64, error) {
	r, _, rev, err := getRunBody(ctx, q, id)
	return r, rev, err
}

// getRunBody is getRun that also returns the run as stored.
func getRunBody(ctx context.Context, q querier, id string) (statestore.Run, []byte, int64, error) {
	var body []byte
	var rev int64
	err := q.QueryRow(ctx, "SELECT body, rev FROM runs WHERE id = $1", []byte(id)).Scan(&body, &rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return statestore.Run{}, nil, 0, rules.RunNotFound(id)
	}
	if err != nil {
		return statestore.Run{}, nil, 0, err
	}
	var r statestore.Run
	return r, body, rev, decode("run "+id, body, &r)
}

// GetRun implements statestore.Runs.
func (s *Store) GetRun(ctx context.Context, id string) (statestore.Run, error) {
	if err := statestore.CheckID("run ID", id); err != nil {
		return statestore.Run{}, err
	}
	var r statestore.Run
	err := s.do(ctx, func(ctx context.Context) error {
		var body []byte
		var rev int64
		var err error
		r, body, rev, err = getRunBody(ctx, s.pool, id)
		if err == nil && !r.Status.Finished() {
			s.runs.put(id, body, rev)
		}
		return err
	})
	return r, err
}

// UpdateRun implements statestore.Runs. fn runs with no transaction open and
// no row locked; the result is written by an UPDATE conditional on the row
// version fn saw, and fn runs again when another update got in between.
func (s *Store) UpdateRun(ctx context.Context, id string, fn func(*statestore.Run) error) (statestore.Run, error) {
	if err := statestore.CheckID("run ID", id); err != nil {
		return statestore.Run{}, err
	}
	cached, fresh := s.runs.get(id)
	for {
		var old statestore.Run
		var rev int64
		var err error
		fromCache := fresh
		if fresh {
			// The first try writes over the version this store last
			// saw; a later one reads the run.
			fresh, rev = false, cached.rev
			err = decode("run "+id, cached.body, &old)
		} else {
			err = s.do(ctx, func(ctx context.Context) error {
				var err error
				old, rev, err = getRun(ctx, s.pool, id)
				return err
			})
		}
		if err != nil {
			return statestore.Run{}, err
		}
		r, err := rules.ApplyUpdate(old, fn, s.opts.now())
		if err != nil && fromCache {
			// fn may have refused what the cache held: refuse only
			// what the database holds.
			s.runs.drop(id)
			continue
		}
		if err != nil {
			return statestore.Run{}, err
		}
		body, err := json.Marshal(r)
		if err != nil {
			return statestore.Run{}, err
		}
		// The conditional UPDATE commits with the committer's next group.
		// created_ns tells a run deleted and created again, at rev 1 once
		// more, from the one read.
		err = s.group(ctx, id, &callOp{
			sql: `WITH u AS (UPDATE runs SET status = $3, finished_ns = $4, body = $5, rev = rev + 1
WHERE id = $1 AND rev = $2 AND created_ns = $6 RETURNING 1) SELECT count(*) FROM u`,
			args: []any{[]byte(id), rev, string(r.Status), finishedNS(r), body, old.CreatedAt.UnixNano()},
			scan: func(row pgx.Row) (error, error) {
				var n int
				if err := row.Scan(&n); err != nil {
					return nil, err
				}
				if n == 0 {
					return errChanged, nil
				}
				return nil, nil
			},
		})
		if errors.Is(err, errChanged) {
			s.runs.drop(id)
			continue
		}
		if err != nil {
			s.runs.drop(id)
			return statestore.Run{}, err
		}
		if r.Status.Finished() {
			s.runs.drop(id)
		} else {
			s.runs.put(id, body, rev+1)
		}
		return r.Clone(), nil
	}
}

// ListRuns implements statestore.Runs: a keyset page on (created_ns, id),
// through runs_status when filtered.
func (s *Store) ListRuns(ctx context.Context, f statestore.RunFilter) ([]statestore.Run, string, error) {
	limit, err := rules.Limit(f.Limit)
	if err != nil {
		return nil, "", err
	}
	var afterNS int64
	var afterID string
	if f.After != "" {
		if afterNS, afterID, err = rules.ParseRunCursor(f.After); err != nil {
			return nil, "", err
		}
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, "", fmt.Errorf("%w: run status %q", statestore.ErrInvalid, f.Status)
	}
	cmp, order := ">", "ASC"
	if f.Newest {
		cmp, order = "<", "DESC"
	}
	q := "SELECT body FROM runs WHERE true"
	var args []any
	if f.Status != "" {
		args = append(args, string(f.Status))
		q += " AND status = $1"
	}
	if f.After != "" {
		args = append(args, afterNS, []byte(afterID))
		q += fmt.Sprintf(" AND (created_ns, id) %s ($%d, $%d)", cmp, len(args)-1, len(args))
	}
	args = append(args, limit+1)
	// With a status, the order names the status column too (a constant
	// here, so the rows are the same): only runs_status gives that order,
	// so the planner cannot walk runs_created from its newest end
	// filtering on status, which reads every run newer than the page when
	// the status is rare there.
	by := ""
	if f.Status != "" {
		by = "status " + order + ", "
	}
	q += fmt.Sprintf(" ORDER BY %screated_ns %s, id %s LIMIT $%d", by, order, order, len(args))
	var out []statestore.Run
	err = s.do(ctx, func(ctx context.Context) error {
		var err error
		out, err = queryRuns(ctx, s, q, args...)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		return out, rules.RunCursor(last.CreatedAt, last.ID), nil
	}
	return out, "", nil
}

func queryRuns(ctx context.Context, s *Store, q string, args ...any) ([]statestore.Run, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (statestore.Run, error) {
		var body []byte
		var r statestore.Run
		if err := row.Scan(&body); err != nil {
			return r, err
		}
		return r, decode("run", body, &r)
	})
}

// UnfinishedRuns implements statestore.Runs. It reads the partial index
// runs_unfinished, so finished runs cost nothing.
func (s *Store) UnfinishedRuns(ctx context.Context) ([]statestore.Run, error) {
	var out []statestore.Run
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		out, err = queryRuns(ctx, s, `SELECT body FROM runs WHERE status IN ('pending', 'running') ORDER BY created_ns, id`)
		return err
	})
	return out, err
}
