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

// CompleteNode implements statestore.Journal. The completion and the
// attempts in next are one op of the committer: checked first, then
// written in the group's transaction, so they commit and sync together.
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
	v, err := json.Marshal(res)
	if err != nil {
		return err
	}
	k := key(pResult, res.RunID, res.Node)
	type kv struct{ k, v []byte }
	attempts := make([]kv, len(next))
	for i, a := range next {
		av, err := json.Marshal(a)
		if err != nil {
			return err
		}
		attempts[i] = kv{key(pAttempt, a.RunID, a.Node), av}
	}
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
		for i, a := range next {
			last, err := lastAttempt(w.txn, attempts[i].k)
			if err != nil {
				return err
			}
			if a.Attempt <= last {
				return rules.AttemptConflict(a, last)
			}
		}
		if err := w.set(k, v); err != nil {
			return err
		}
		for _, a := range attempts {
			if err := w.set(a.k, a.v); err != nil {
				return err
			}
		}
		return nil
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

// SaveCheckpoint implements statestore.Checkpoints. The newest seq of each
// node is kept under its own key, so a save reads one key and trims the one
// checkpoint that falls out of the window, whatever the node's history.
func (s *Store) SaveCheckpoint(ctx context.Context, runID, node string, data []byte) (uint64, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return 0, err
	}
	v := make([]byte, 8+len(data))
	binary.BigEndian.PutUint64(v, uint64(s.opts.now().UnixNano()))
	copy(v[8:], data)
	if err := checkCtxFence(ctx); err != nil {
		return 0, err
	}
	head := key(pCPHead, runID, node)
	max := uint64(s.opts.maxCheckpoints)
	var seq uint64
	err := s.write(ctx, func(w *writer) error {
		if err := requireRun(w, runID); err != nil {
			return err
		}
		if err := s.fenced(ctx, w.txn); err != nil {
			return err
		}
		last, err := headSeq(w.txn, head)
		if err != nil {
			return err
		}
		seq = last + 1
		var seqb [8]byte
		binary.BigEndian.PutUint64(seqb[:], seq)
		if err := w.set(checkpointKey(runID, node, seq), v); err != nil {
			return err
		}
		if err := w.set(head, seqb[:]); err != nil {
			return err
		}
		if seq > max {
			return w.del(checkpointKey(runID, node, seq-max))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// headSeq returns the newest checkpoint seq of a node, 0 when none.
func headSeq(txn *badger.Txn, head []byte) (uint64, error) {
	v, err := getValue(txn, head)
	if errors.Is(err, statestore.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("checkpoint head %q: malformed", head)
	}
	return binary.BigEndian.Uint64(v), nil
}

func getCheckpoint(txn *badger.Txn, run, node string, seq uint64) (statestore.Checkpoint, error) {
	v, err := getValue(txn, checkpointKey(run, node, seq))
	if err != nil {
		return statestore.Checkpoint{}, err
	}
	if len(v) < 8 {
		return statestore.Checkpoint{}, fmt.Errorf("checkpoint %s/%s/%d: malformed", run, node, seq)
	}
	return statestore.Checkpoint{
		RunID:     run,
		Node:      node,
		Seq:       seq,
		Data:      v[8:],
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))),
	}, nil
}

// nodeCheckpoints appends the kept checkpoints of one node, oldest first.
func (s *Store) nodeCheckpoints(txn *badger.Txn, run, node string, out []statestore.Checkpoint) ([]statestore.Checkpoint, error) {
	last, err := headSeq(txn, key(pCPHead, run, node))
	if err != nil {
		return out, err
	}
	first := uint64(1)
	if max := uint64(s.opts.maxCheckpoints); last > max {
		first = last - max + 1
	}
	for seq := first; seq <= last && last > 0; seq++ {
		c, err := getCheckpoint(txn, run, node, seq)
		if errors.Is(err, statestore.ErrNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// LatestCheckpoint implements statestore.Checkpoints.
func (s *Store) LatestCheckpoint(ctx context.Context, runID, node string) (statestore.Checkpoint, error) {
	if err := rules.CheckNode(runID, node); err != nil {
		return statestore.Checkpoint{}, err
	}
	var c statestore.Checkpoint
	err := s.view(ctx, func(txn *badger.Txn) error {
		last, err := headSeq(txn, key(pCPHead, runID, node))
		if err == nil && last > 0 {
			c, err = getCheckpoint(txn, runID, node, last)
		}
		if err == nil && last == 0 {
			err = statestore.ErrNotFound
		}
		if errors.Is(err, statestore.ErrNotFound) {
			return fmt.Errorf("%w: no checkpoint for %s/%s", statestore.ErrNotFound, runID, node)
		}
		return err
	})
	return c, err
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
	err := s.view(ctx, func(txn *badger.Txn) error {
		if node != "" {
			var err error
			out, err = s.nodeCheckpoints(txn, runID, node, out)
			return err
		}
		prefix := runPrefix(pCPHead, runID)
		var nodes []string
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		for it.Rewind(); it.Valid(); it.Next() {
			nodes = append(nodes, string(it.Item().Key()[len(prefix):]))
		}
		it.Close()
		for _, n := range nodes {
			var err error
			if out, err = s.nodeCheckpoints(txn, runID, n, out); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// NodeResultsOf implements statestore.Journal: one key per node.
func (s *Store) NodeResultsOf(ctx context.Context, runID string, nodes []string) (map[string]statestore.NodeResult, error) {
	if err := statestore.CheckID("run ID", runID); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if err := rules.CheckNode(runID, n); err != nil {
			return nil, err
		}
	}
	out := make(map[string]statestore.NodeResult, len(nodes))
	err := s.view(ctx, func(txn *badger.Txn) error {
		for _, n := range nodes {
			item, err := txn.Get(key(pResult, runID, n))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var res statestore.NodeResult
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &res) }); err != nil {
				return fmt.Errorf("decode node result %q: %w", item.Key(), err)
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
