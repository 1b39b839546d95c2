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

// StateGet implements statestore.PluginState.
func (s *Store) StateGet(ctx context.Context, plugin, key string) ([]byte, error) {
	if err := rules.CheckKey(plugin, key); err != nil {
		return nil, err
	}
	var v []byte
	err := s.do(ctx, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, "SELECT value FROM plugin_state WHERE plugin = $1 AND key = $2", []byte(plugin), []byte(key)).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: state %s/%s", statestore.ErrNotFound, plugin, key)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// StateSet implements statestore.PluginState. Under a fence
// (statestore.WithFence) the value is written only while the claim holds.
func (s *Store) StateSet(ctx context.Context, plugin, key string, value []byte) error {
	if err := rules.CheckKey(plugin, key); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	f, fenced := statestore.FenceFrom(ctx)
	if !fenced {
		return s.do(ctx, func(ctx context.Context) error {
			_, err := s.pool.Exec(ctx, `INSERT INTO plugin_state (plugin, key, value) VALUES ($1, $2, $3)
ON CONFLICT (plugin, key) DO UPDATE SET value = EXCLUDED.value`, []byte(plugin), []byte(key), value)
			return err
		})
	}
	if err := rules.CheckFence(f); err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `INSERT INTO plugin_state (plugin, key, value)
SELECT $5, $6, $7 WHERE EXISTS (SELECT 1 FROM tasks WHERE `+fenceCond+` FOR SHARE)
ON CONFLICT (plugin, key) DO UPDATE SET value = EXCLUDED.value`, append(fenceArgs(f), []byte(plugin), []byte(key), value)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return rules.Fenced(f)
		}
		return nil
	})
}

// StateDelete implements statestore.PluginState. Under a fence the key is
// deleted only while the claim holds.
func (s *Store) StateDelete(ctx context.Context, plugin, key string) error {
	if err := rules.CheckKey(plugin, key); err != nil {
		return err
	}
	f, fenced := statestore.FenceFrom(ctx)
	if !fenced {
		return s.do(ctx, func(ctx context.Context) error {
			_, err := s.pool.Exec(ctx, "DELETE FROM plugin_state WHERE plugin = $1 AND key = $2", []byte(plugin), []byte(key))
			return err
		})
	}
	if err := rules.CheckFence(f); err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		var holds bool
		err := s.pool.QueryRow(ctx, `WITH f AS (SELECT 1 FROM tasks WHERE `+fenceCond+` FOR SHARE),
d AS (DELETE FROM plugin_state WHERE plugin = $5 AND key = $6 AND EXISTS (SELECT 1 FROM f))
SELECT EXISTS (SELECT 1 FROM f)`, append(fenceArgs(f), []byte(plugin), []byte(key))...).Scan(&holds)
		if err != nil {
			return err
		}
		if !holds {
			return rules.Fenced(f)
		}
		return nil
	})
}

// StateUsage implements statestore.PluginState: an index-only scan of the
// plugin's primary-key entries, which carry each key's size.
func (s *Store) StateUsage(ctx context.Context, plugin string) (statestore.StateUsage, error) {
	if err := statestore.CheckID("plugin", plugin); err != nil {
		return statestore.StateUsage{}, err
	}
	var u statestore.StateUsage
	err := s.do(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT count(*), coalesce(sum(size), 0)::bigint FROM plugin_state WHERE plugin = $1",
			[]byte(plugin)).Scan(&u.Keys, &u.Bytes)
	})
	return u, err
}

// PutDeadLetter implements statestore.DeadLetters.
func (s *Store) PutDeadLetter(ctx context.Context, d statestore.DeadLetter) (statestore.DeadLetter, error) {
	d, err := rules.PrepareDeadLetter(d, s.opts.now())
	if err != nil {
		return statestore.DeadLetter{}, err
	}
	body, err := json.Marshal(d)
	if err != nil {
		return statestore.DeadLetter{}, err
	}
	err = s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, "INSERT INTO dead_letters (id, run_id, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
			[]byte(d.ID), []byte(d.RunID), body)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: dead letter %q exists", statestore.ErrConflict, d.ID)
		}
		return nil
	})
	if err != nil {
		return statestore.DeadLetter{}, err
	}
	return d.Clone(), nil
}

func deadNotFound(id string) error {
	return fmt.Errorf("%w: dead letter %q", statestore.ErrNotFound, id)
}

// GetDeadLetter implements statestore.DeadLetters.
func (s *Store) GetDeadLetter(ctx context.Context, id string) (statestore.DeadLetter, error) {
	if err := statestore.CheckID("dead-letter ID", id); err != nil {
		return statestore.DeadLetter{}, err
	}
	var d statestore.DeadLetter
	err := s.do(ctx, func(ctx context.Context) error {
		var body []byte
		err := s.pool.QueryRow(ctx, "SELECT body FROM dead_letters WHERE id = $1", []byte(id)).Scan(&body)
		if errors.Is(err, pgx.ErrNoRows) {
			return deadNotFound(id)
		}
		if err != nil {
			return err
		}
		return decode("dead letter "+id, body, &d)
	})
	return d, err
}

// ListDeadLetters implements statestore.DeadLetters: a keyset page on id,
// through dead_letters_run when filtered by run.
func (s *Store) ListDeadLetters(ctx context.Context, f statestore.DeadLetterFilter) ([]statestore.DeadLetter, string, error) {
	limit, err := rules.Limit(f.Limit)
	if err != nil {
		return nil, "", err
	}
	q := "SELECT body FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2"
	args := []any{[]byte(f.After), limit + 1}
	if f.RunID != "" {
		q = "SELECT body FROM dead_letters WHERE run_id = $3 AND id > $1 ORDER BY id LIMIT $2"
		args = append(args, []byte(f.RunID))
	}
	var out []statestore.DeadLetter
	err = s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (statestore.DeadLetter, error) {
			var body []byte
			var d statestore.DeadLetter
			if err := row.Scan(&body); err != nil {
				return d, err
			}
			return d, decode("dead letter", body, &d)
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if len(out) > limit {
		out = out[:limit]
		return out, out[limit-1].ID, nil
	}
	return out, "", nil
}

// DeleteDeadLetter implements statestore.DeadLetters.
func (s *Store) DeleteDeadLetter(ctx context.Context, id string) error {
	if err := statestore.CheckID("dead-letter ID", id); err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, "DELETE FROM dead_letters WHERE id = $1", []byte(id))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return deadNotFound(id)
		}
		return nil
	})
}

// CountDeadLetters implements statestore.DeadLetters.
// CountRuns implements statestore.Runs. It counts the status index's
// entries.
func (s *Store) CountRuns(ctx context.Context, status statestore.RunStatus) (int, error) {
	if !status.Valid() {
		return 0, fmt.Errorf("%w: run status %q", statestore.ErrInvalid, status)
	}
	var n int
	err := s.do(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT count(*) FROM runs WHERE status = $1", string(status)).Scan(&n)
	})
	return n, err
}

func (s *Store) CountDeadLetters(ctx context.Context) (int, error) {
	var n int
	err := s.do(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT count(*) FROM dead_letters").Scan(&n)
	})
	return n, err
}
