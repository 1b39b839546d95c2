package badgerstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
	"github.com/bulkhead-run/bulkhead/statestore/internal/rules"
)

func requireRun(w *writer, id string) error {
	ok, err := exists(w.txn, key(pRun, id))
	if err != nil {
		return err
	}
	if !ok {
		return rules.RunNotFound(id)
	}
	return nil
}

// CompleteNode implements statestore.Journal.
func (s *Store) CompleteNode(ctx context.Context, res statestore.NodeResult) error {
	res, err := rules.PrepareResult(res, s.opts.now())
	if err != nil {
		return err
	}
	v, err := json.Marshal(res)
	if err != nil {
		return err
	}
	k := key(pResult, res.RunID, res.Node)
	return s.write(ctx, func(w *writer) error {
		if err := requireRun(w, res.RunID); err != nil {
			return err
		}
		done, err := exists(w.txn, k)
		if err != nil {
			return err
		}
		if done {
			return rules.CompletedConflict(res.RunID, res.Node)
		}
		return w.set(k, v)
	})
}

// StartAttempt implements statestore.Journal.
func (s *Store) StartAttempt(ctx context.Context, a statestore.NodeAttempt) error {
	a, err := rules.PrepareAttempt(a, s.opts.now())
	if err != nil {
		return err
	}
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	k := key(pAttempt, a.RunID, a.Node)
	return s.write(ctx, func(w *writer) error {
		if err := requireRun(w, a.RunID); err != nil {
			return err
		}
		last, err := lastAttempt(w.txn, k)
		if err != nil {
			return err
		}
		if a.Attempt <= last {
			return rules.AttemptConflict(a, last)
		}
		return w.set(k, v)
	})
}

func lastAttempt(txn *badger.Txn, k []byte) (int, error) {
	v, err := getValue(txn, k)
	if errors.Is(err, statestore.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var a statestore.NodeAttempt
	if err := json.Unmarshal(v, &a); err != nil {
		return 0, fmt.Errorf("decode attempt: %w", err)
	}
	return a.Attempt, nil
}

// NodeResults implements statestore.Journal.
func (s *Store) NodeResults(ctx context.Context, runID string) (map[string]statestore.NodeResult, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	out := map[string]statestore.NodeResult{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: runPrefix(pResult, runID), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var res statestore.NodeResult
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &res) }); err != nil {
				return fmt.Errorf("decode node result %q: %w", it.Item().Key(), err)
			}
			out[res.Node] = res
		}
		return nil
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
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		n, err = lastAttempt(txn, key(pAttempt, runID, node))
		return err
	})
	return n, err
}

// SaveCheckpoint implements statestore.Checkpoints.
func (s *Store) SaveCheckpoint(ctx context.Context, runID, node string, data []byte) (uint64, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return 0, err
	}
	v := make([]byte, 8+len(data))
	binary.BigEndian.PutUint64(v, uint64(s.opts.now().UnixNano()))
	copy(v[8:], data)
	prefix := checkpointPrefix(runID, node)
	var seq uint64
	err := s.write(ctx, func(w *writer) error {
		if err := requireRun(w, runID); err != nil {
			return err
		}
		var keys [][]byte
		it := w.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		seq = 1
		if len(keys) > 0 {
			last := keys[len(keys)-1]
			seq = binary.BigEndian.Uint64(last[len(last)-8:]) + 1
		}
		if err := w.set(checkpointKey(runID, node, seq), v); err != nil {
			return err
		}
		for len(keys)+1 > s.opts.maxCheckpoints {
			if err := w.del(keys[0]); err != nil {
				return err
			}
			keys = keys[1:]
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

func decodeCheckpoint(k, v []byte) (statestore.Checkpoint, error) {
	// k = c<run>\0<node>\0<seq>
	body := k[1 : len(k)-9]
	var run, node string
	for i, b := range body {
		if b == 0 {
			run, node = string(body[:i]), string(body[i+1:])
			break
		}
	}
	if len(v) < 8 || node == "" {
		return statestore.Checkpoint{}, fmt.Errorf("decode checkpoint %q: malformed", k)
	}
	return statestore.Checkpoint{
		RunID:     run,
		Node:      node,
		Seq:       binary.BigEndian.Uint64(k[len(k)-8:]),
		Data:      append([]byte{}, v[8:]...),
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))),
	}, nil
}

// LatestCheckpoint implements statestore.Checkpoints.
func (s *Store) LatestCheckpoint(ctx context.Context, runID, node string) (statestore.Checkpoint, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return statestore.Checkpoint{}, err
	}
	prefix := checkpointPrefix(runID, node)
	var c statestore.Checkpoint
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		it.Seek(append(append([]byte{}, prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
		if !it.Valid() {
			return fmt.Errorf("%w: no checkpoint for %s/%s", statestore.ErrNotFound, runID, node)
		}
		return it.Item().Value(func(v []byte) error {
			var err error
			c, err = decodeCheckpoint(it.Item().Key(), v)
			return err
		})
	})
	return c, err
}

// ListCheckpoints implements statestore.Checkpoints.
func (s *Store) ListCheckpoints(ctx context.Context, runID, node string) ([]statestore.Checkpoint, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	prefix := runPrefix(pCheckpoint, runID)
	if node != "" {
		if err := statestore.CheckID("node", node); err != nil {
			return nil, err
		}
		prefix = checkpointPrefix(runID, node)
	}
	var out []statestore.Checkpoint
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				c, err := decodeCheckpoint(it.Item().Key(), v)
				out = append(out, c)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
