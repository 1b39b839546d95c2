package badgerstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

var errChanged = errors.New("run changed")

func decodeRun(v []byte) (statestore.Run, error) {
	var r statestore.Run
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("decode run: %w", err)
	}
	return r, nil
}

func getRun(txn *badger.Txn, id string) (statestore.Run, []byte, error) {
	v, err := getValue(txn, key(pRun, id))
	if errors.Is(err, statestore.ErrNotFound) {
		return statestore.Run{}, nil, rules.RunNotFound(id)
	}
	if err != nil {
		return statestore.Run{}, nil, err
	}
	r, err := decodeRunCached(id, v)
	return r, v, err
}

// putRun writes r and moves its index entries from old's (nil: a new run),
// in the same transaction, so the indexes never disagree with the record.
func putRun(w *writer, r statestore.Run, old *statestore.Run) ([]byte, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if err := w.set(key(pRun, r.ID), v); err != nil {
		return nil, err
	}
	if old == nil {
		if err := w.set(timeKey(pCreated, r.CreatedAt, r.ID), nil); err != nil {
			return nil, err
		}
	} else {
		if old.Status != r.Status {
			if err := w.del(statusKey(old.Status, old.CreatedAt, r.ID)); err != nil {
				return nil, err
			}
		}
		if !old.Status.Finished() && r.Status.Finished() {
			if err := w.del(timeKey(pUnfinished, old.CreatedAt, r.ID)); err != nil {
				return nil, err
			}
		}
		if old.Status.Finished() && (!r.Status.Finished() || !old.FinishedAt.Equal(r.FinishedAt)) {
			if err := w.del(timeKey(pFinished, old.FinishedAt, r.ID)); err != nil {
				return nil, err
			}
		}
	}
	if old == nil || old.Status != r.Status {
		if err := w.set(statusKey(r.Status, r.CreatedAt, r.ID), nil); err != nil {
			return nil, err
		}
	}
	if r.Status.Finished() {
		return v, w.set(timeKey(pFinished, r.FinishedAt, r.ID), nil)
	}
	return v, w.set(timeKey(pUnfinished, r.CreatedAt, r.ID), nil)
}

// CreateRun implements statestore.Runs.
func (s *Store) CreateRun(ctx context.Context, r statestore.Run) (statestore.Run, bool, error) {
	r, err := rules.PrepareCreate(r, s.opts.now())
	if err != nil {
		return statestore.Run{}, false, err
	}
	var out statestore.Run
	var created bool
	err = s.write(ctx, func(w *writer) error {
		old, _, err := getRun(w.txn, r.ID)
		switch {
		case err == nil:
			out, created = old, false
			if !rules.SameRun(old, r) {
				return rules.ConflictError(old, r)
			}
			return nil
		case !errors.Is(err, statestore.ErrNotFound):
			return err
		}
		out, created = r, true
		_, err = putRun(w, r, nil)
		return err
	})
	if err != nil && !errors.Is(err, statestore.ErrConflict) {
		return statestore.Run{}, false, err
	}
	return out.Clone(), created, err
}

// GetRun implements statestore.Runs.
func (s *Store) GetRun(ctx context.Context, id string) (statestore.Run, error) {
	if err := statestore.CheckID("run ID", id); err != nil {
		return statestore.Run{}, err
	}
	var r statestore.Run
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		r, _, err = getRun(txn, id)
		return err
	})
	return r, err
}

// UpdateRun implements statestore.Runs. fn runs outside the committer; the
// result is written only if the stored run is still the one fn saw.
func (s *Store) UpdateRun(ctx context.Context, id string, fn func(*statestore.Run) error) (statestore.Run, error) {
	if err := statestore.CheckID("run ID", id); err != nil {
		return statestore.Run{}, err
	}
	for {
		var old statestore.Run
		var raw []byte
		err := s.view(ctx, func(txn *badger.Txn) error {
			var err error
			old, raw, err = getRun(txn, id)
			return err
		})
		if err != nil {
			return statestore.Run{}, err
		}
		r, err := rules.ApplyUpdate(old, fn, s.opts.now())
		if err != nil {
			return statestore.Run{}, err
		}
		err = s.write(ctx, func(w *writer) error {
			cur, err := w.get(key(pRun, id))
			if errors.Is(err, statestore.ErrNotFound) {
				return rules.RunNotFound(id)
			}
			if err != nil {
				return err
			}
			if !bytes.Equal(cur, raw) {
				return errChanged
			}
			_, err = putRun(w, r, &old)
			return err
		})
		if errors.Is(err, errChanged) {
			continue
		}
		if err != nil {
			return statestore.Run{}, err
		}
		return r.Clone(), nil
	}
}

// ListRuns implements statestore.Runs.
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
	// Without a filter the creation-order index t<created><run> is walked,
	// with one the status index s<status>\0<created><run>; both end in the
	// same order key, so the cursor is the same.
	prefix := []byte{pCreated}
	var after []byte
	if f.Status != "" {
		prefix = statusPrefix(f.Status)
		if f.After != "" {
			after = statusKeyNS(f.Status, afterNS, afterID)
		}
	} else if f.After != "" {
		after = timeKeyNS(pCreated, afterNS, afterID)
	}
	var out []statestore.Run
	var next string
	err = s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: f.Newest})
		defer it.Close()
		switch {
		case after != nil:
			it.Seek(after)
		case f.Newest:
			it.Seek(append(bytes.Clone(prefix), 0xff))
		default:
			it.Rewind()
		}
		for ; it.Valid(); it.Next() {
			k := it.Item().Key()
			if after != nil && bytes.Equal(k, after) {
				continue
			}
			if len(out) == limit {
				last := out[len(out)-1]
				next = rules.RunCursor(last.CreatedAt, last.ID)
				return nil
			}
			id := string(k[len(prefix)+8:])
			r, _, err := getRun(txn, id)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// UnfinishedRuns implements statestore.Runs. It walks the index of unfinished
// runs, so finished runs cost nothing.
func (s *Store) UnfinishedRuns(ctx context.Context) ([]statestore.Run, error) {
	var out []statestore.Run
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pUnfinished}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_, id := splitTimeKey(it.Item().Key())
			r, _, err := getRun(txn, id)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
