package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// gcRunsPerOp is how many expired runs one committer op removes.
const gcRunsPerOp = 64

func (s *Store) gcLoop(ctx context.Context) {
	defer close(s.gcDone)
	if s.opts.gcInterval < 0 {
		return
	}
	t := time.NewTicker(s.opts.gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.CollectGarbage(ctx)
			if s.opts.logger != nil {
				if err != nil && ctx.Err() == nil {
					s.opts.logger.Warn("store gc", logKeyDir, s.dir, logKeyErr, err)
				} else if n > 0 {
					s.opts.logger.Debug("store gc", logKeyDir, s.dir, logKeyRemoved, n)
				}
			}
		}
	}
}

// CollectGarbage removes every run that finished more than the retention
// ago, with its journal, attempts and checkpoints (runs that still have dead
// letters are kept), then runs Badger's value-log GC until it finds nothing
// to rewrite. It returns how many runs it removed. The background GC calls it
// every GC interval; calling it directly is safe at any time.
func (s *Store) CollectGarbage(ctx context.Context) (int, error) {
	cutoff := s.opts.now().Add(-s.opts.retention)
	removed := 0
	var after []byte
	for {
		var ids []string
		err := s.view(ctx, func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pFinished}})
			defer it.Close()
			if after == nil {
				it.Rewind()
			} else {
				it.Seek(after)
			}
			for ; it.Valid() && len(ids) < gcRunsPerOp; it.Next() {
				k := it.Item().KeyCopy(nil)
				if after != nil && string(k) == string(after) {
					continue
				}
				ns, id := splitTimeKey(k)
				if ns >= cutoff.UnixNano() {
					break
				}
				after = k
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil || len(ids) == 0 {
			if err == nil {
				err = s.valueLogGC(ctx)
			}
			return removed, err
		}
		var n int
		var gone []taskRef
		err = s.writeThen(ctx, func(w *writer) error {
			n, gone = 0, nil
			for _, id := range ids {
				ok, err := deleteRun(w, id, cutoff, &gone)
				if err != nil {
					return err
				}
				if ok {
					n++
				}
			}
			return nil
		}, s.afterDeleted(&gone))
		if err != nil {
			return removed, err
		}
		removed += n
	}
}

// deleteRun removes an expired run and its per-node keys and tasks (added
// to gone), unless it was resumed meanwhile or has dead letters.
func deleteRun(w *writer, id string, cutoff time.Time, gone *[]taskRef) (bool, error) {
	r, _, err := getRun(w.txn, id)
	if errors.Is(err, statestore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !r.Status.Finished() || !r.FinishedAt.Before(cutoff) {
		return false, nil
	}
	var keys [][]byte
	collect := func(prefix []byte) {
		it := w.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
	}
	collect(runPrefix(pDeadByRun, id))
	if len(keys) > 0 {
		return false, nil
	}
	collect(runPrefix(pResult, id))
	collect(runPrefix(pAttempt, id))
	collect(runPrefix(pCheckpoint, id))
	collect(runPrefix(pCPHead, id))
	tasks, err := runTasks(w.txn, id)
	if err != nil {
		return false, err
	}
	for _, t := range tasks {
		keys = append(keys, key(pTask, id, t.id.node), orderKey(t.seq))
	}
	*gone = append(*gone, tasks...)
	keys = append(keys, key(pRun, id), timeKey(pCreated, r.CreatedAt, id), timeKey(pFinished, r.FinishedAt, id),
		statusKey(r.Status, r.CreatedAt, id))
	for _, k := range keys {
		if err := w.del(k); err != nil {
			return false, err
		}
	}
	return true, nil
}

// valueLogGC rewrites value-log files that are at least half garbage. It
// does not start a pass with less than half a value-log file free: Badger
// writes the rewrites itself, past the committer's free-space check.
func (s *Store) valueLogGC(ctx context.Context) error {
	for ctx.Err() == nil {
		if free, err := freeBytes(s.dir); err == nil && free < valueLogFileSize/2+preallocWindow {
			return fmt.Errorf("%w: %s has %s free, too little for value-log GC", statestore.ErrNoSpace, s.dir, formatBytes(free))
		}
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return statestore.ErrClosed
		}
		err := s.db.RunValueLogGC(0.5)
		s.mu.RUnlock()
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return fmt.Errorf("badgerstore: value log gc: %v", err)
		}
	}
	return ctx.Err()
}
