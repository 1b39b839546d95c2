package badgerstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

// StateGet implements statestore.PluginState.
func (s *Store) StateGet(ctx context.Context, plugin, k string) ([]byte, error) {
	if err := rules.CheckKey(plugin, k); err != nil {
		return nil, err
	}
	var v []byte
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		v, err = getValue(txn, key(pState, plugin, k))
		if errors.Is(err, statestore.ErrNotFound) {
			return fmt.Errorf("%w: state %s/%s", statestore.ErrNotFound, plugin, k)
		}
		return err
	})
	if v == nil && err == nil {
		v = []byte{}
	}
	return v, err
}

// StateSet implements statestore.PluginState.
func (s *Store) StateSet(ctx context.Context, plugin, k string, value []byte) error {
	if err := rules.CheckKey(plugin, k); err != nil {
		return err
	}
	if err := checkCtxFence(ctx); err != nil {
		return err
	}
	kk, v := key(pState, plugin, k), append([]byte{}, value...)
	return s.write(ctx, func(w *writer) error {
		if err := s.fenced(ctx, w.txn); err != nil {
			return err
		}
		return w.set(kk, v)
	})
}

// StateDelete implements statestore.PluginState.
func (s *Store) StateDelete(ctx context.Context, plugin, k string) error {
	if err := rules.CheckKey(plugin, k); err != nil {
		return err
	}
	if err := checkCtxFence(ctx); err != nil {
		return err
	}
	kk := key(pState, plugin, k)
	return s.write(ctx, func(w *writer) error {
		if err := s.fenced(ctx, w.txn); err != nil {
			return err
		}
		return w.del(kk)
	})
}

// StateUsage implements statestore.PluginState. Keys are iterated without
// their values; a value kept in the value log is read for its exact size.
func (s *Store) StateUsage(ctx context.Context, plugin string) (statestore.StateUsage, error) {
	if err := statestore.CheckID("plugin", plugin); err != nil {
		return statestore.StateUsage{}, err
	}
	var u statestore.StateUsage
	prefix := append(key(pState, plugin), 0)
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			n := 0
			if err := item.Value(func(v []byte) error { n = len(v); return nil }); err != nil {
				return err
			}
			u.Keys++
			u.Bytes += int64(len(item.Key())-len(prefix)) + int64(n)
		}
		return nil
	})
	if err != nil {
		return statestore.StateUsage{}, err
	}
	return u, nil
}

// PutDeadLetter implements statestore.DeadLetters.
func (s *Store) PutDeadLetter(ctx context.Context, d statestore.DeadLetter) (statestore.DeadLetter, error) {
	d, err := rules.PrepareDeadLetter(d, s.opts.now())
	if err != nil {
		return statestore.DeadLetter{}, err
	}
	v, err := json.Marshal(d)
	if err != nil {
		return statestore.DeadLetter{}, err
	}
	k := key(pDead, d.ID)
	err = s.write(ctx, func(w *writer) error {
		ok, err := exists(w.txn, k)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w: dead letter %q exists", statestore.ErrConflict, d.ID)
		}
		if err := w.set(k, v); err != nil {
			return err
		}
		if d.RunID != "" {
			return w.set(key(pDeadByRun, d.RunID, d.ID), nil)
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

func getDead(txn *badger.Txn, id string) (statestore.DeadLetter, error) {
	var d statestore.DeadLetter
	v, err := getValue(txn, key(pDead, id))
	if errors.Is(err, statestore.ErrNotFound) {
		return d, deadNotFound(id)
	}
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(v, &d); err != nil {
		return d, fmt.Errorf("decode dead letter %q: %w", id, err)
	}
	return d, nil
}

// GetDeadLetter implements statestore.DeadLetters.
func (s *Store) GetDeadLetter(ctx context.Context, id string) (statestore.DeadLetter, error) {
	if err := statestore.CheckID("dead-letter ID", id); err != nil {
		return statestore.DeadLetter{}, err
	}
	var d statestore.DeadLetter
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		d, err = getDead(txn, id)
		return err
	})
	return d, err
}

// ListDeadLetters implements statestore.DeadLetters.
func (s *Store) ListDeadLetters(ctx context.Context, f statestore.DeadLetterFilter) ([]statestore.DeadLetter, string, error) {
	limit, err := rules.Limit(f.Limit)
	if err != nil {
		return nil, "", err
	}
	prefix := []byte{pDead}
	if f.RunID != "" {
		if err := statestore.CheckID("run ID", f.RunID); err != nil {
			return nil, "", err
		}
		prefix = runPrefix(pDeadByRun, f.RunID)
	}
	var out []statestore.DeadLetter
	var next string
	err = s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		it.Seek(append(append([]byte{}, prefix...), f.After...))
		for ; it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(prefix):])
			if f.After != "" && id <= f.After {
				continue
			}
			if len(out) == limit {
				next = out[len(out)-1].ID
				return nil
			}
			d, err := getDead(txn, id)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// DeleteDeadLetter implements statestore.DeadLetters.
func (s *Store) DeleteDeadLetter(ctx context.Context, id string) error {
	if err := statestore.CheckID("dead-letter ID", id); err != nil {
		return err
	}
	return s.write(ctx, func(w *writer) error {
		d, err := getDead(w.txn, id)
		if err != nil {
			return err
		}
		if err := w.del(key(pDead, id)); err != nil {
			return err
		}
		if d.RunID != "" {
			return w.del(key(pDeadByRun, d.RunID, id))
		}
		return nil
	})
}

// CountRuns implements statestore.Runs. It walks the status index's keys.
func (s *Store) CountRuns(ctx context.Context, status statestore.RunStatus) (int, error) {
	if !status.Valid() {
		return 0, fmt.Errorf("%w: run status %q", statestore.ErrInvalid, status)
	}
	n := 0
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: statusPrefix(status)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			if n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return nil
	})
	return n, err
}

// CountDeadLetters implements statestore.DeadLetters.
func (s *Store) CountDeadLetters(ctx context.Context) (int, error) {
	n := 0
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pDead}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}
