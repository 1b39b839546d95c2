package badgerstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// buildStatusIndex writes the status index of a store of layout 1 and then
// moves the layout marker to 2. Nothing else writes while it runs (Open
// calls it before the committer starts). It first drops every status entry,
// so a build interrupted by a crash (the marker still says 1) starts over
// from the records.
func (s *Store) buildStatusIndex() error {
	start := time.Now()
	if err := s.db.DropPrefix([]byte{pStatus}); err != nil {
		return fmt.Errorf("drop status index: %w", err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pRun}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id := string(item.Key()[1:])
			var r statestore.Run
			err := item.Value(func(v []byte) error {
				var err error
				r, err = decodeRun(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("run %q: %w", id, err)
			}
			if err := wb.Set(statusKey(r.Status, r.CreatedAt, id), nil); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build status index: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("build status index: %w", err)
	}
	// The index is synced before the marker that says it is complete.
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync status index: %w", err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, []byte(formatVersion)) }); err != nil {
		return fmt.Errorf("write format: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync format: %w", err)
	}
	if s.opts.logger != nil {
		s.opts.logger.Info("store: status index built", logKeyDir, s.dir, logKeyRuns, n, logKeyElapsed, time.Since(start))
	}
	return nil
}

// runIndex is what the index entries of one run must say.
type runIndex struct {
	created, finished int64
	status            statestore.RunStatus
}

// checkIndexes compares every index entry of runs (t, u, f and, from layout
// 2 on, s) with the run records, and returns one line per disagreement.
func checkIndexes(txn *badger.Txn) []string {
	var problems []string
	format := ""
	if v, err := getValue(txn, keyFormat); err == nil {
		format = string(v)
	}
	runs := map[string]runIndex{}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pRun}, PrefetchValues: true})
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		id := string(item.Key()[1:])
		var r statestore.Run
		err := item.Value(func(v []byte) error {
			var err error
			r, err = decodeRun(v)
			return err
		})
		if err != nil {
			problems = append(problems, fmt.Sprintf("run %q: %v", id, err))
			continue
		}
		ri := runIndex{created: r.CreatedAt.UnixNano(), status: r.Status}
		if r.Status.Finished() {
			ri.finished = r.FinishedAt.UnixNano()
		}
		runs[id] = ri
	}
	it.Close()

	// seen[prefix] holds the runs that have an entry under that index.
	seen := map[byte]map[string]bool{pCreated: {}, pUnfinished: {}, pFinished: {}, pStatus: {}}
	prefixes := []byte{pCreated, pUnfinished, pFinished}
	if format != formatUnindexed {
		prefixes = append(prefixes, pStatus)
	}
	for _, p := range prefixes {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{p}})
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			var ns int64
			var id string
			var st statestore.RunStatus
			if p == pStatus {
				var ok bool
				if st, ns, id, ok = splitStatusKey(k); !ok {
					problems = append(problems, fmt.Sprintf("status index: malformed key %q", k))
					continue
				}
			} else {
				if len(k) < 9 {
					problems = append(problems, fmt.Sprintf("run index: malformed key %q", k))
					continue
				}
				ns, id = splitTimeKey(k)
			}
			seen[p][id] = true
			r, ok := runs[id]
			var bad string
			switch {
			case !ok:
				bad = "no such run"
			case p == pCreated && ns != r.created, p == pUnfinished && ns != r.created:
				bad = "creation time differs from the run's"
			case p == pUnfinished && r.status.Finished():
				bad = fmt.Sprintf("the run is %s", r.status)
			case p == pFinished && !r.status.Finished():
				bad = fmt.Sprintf("the run is %s", r.status)
			case p == pFinished && ns != r.finished:
				bad = "finish time differs from the run's"
			case p == pStatus && st != r.status:
				bad = fmt.Sprintf("the run is %s", r.status)
			case p == pStatus && ns != r.created:
				bad = "creation time differs from the run's"
			}
			if bad != "" {
				problems = append(problems, fmt.Sprintf("%s: %s", describeKey(bytes.Clone(k)), bad))
			}
		}
		it.Close()
	}
	ids := make([]string, 0, len(runs))
	for id := range runs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := runs[id]
		missing := func(p byte, what string) {
			if !seen[p][id] {
				problems = append(problems, fmt.Sprintf("run %q has no %s", id, what))
			}
		}
		missing(pCreated, "creation-order index entry")
		if r.status.Finished() {
			missing(pFinished, "finished-run index entry")
		} else {
			missing(pUnfinished, "unfinished-run index entry")
		}
		if format != formatUnindexed {
			missing(pStatus, "status index entry")
		}
	}
	return problems
}

// checkTasks compares the tasks (q keys) with their runs and their order
// entries (o keys), and returns one line per problem and the keys of the
// damaged entries: a task whose run is gone, a task without its order
// entry, and an order entry without its task.
func checkTasks(txn *badger.Txn) (problems []string, damaged [][]byte) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pTask}, PrefetchValues: true})
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		what := describeKey(k)
		run, node, ok := bytes.Cut(k[1:], []byte{0})
		v, err := it.Item().ValueCopy(nil)
		if !ok || err != nil || len(v) != 8 {
			problems = append(problems, fmt.Sprintf("%s: malformed", what))
			damaged = append(damaged, k)
			continue
		}
		id := taskID{string(run), string(node)}
		seq := binary.BigEndian.Uint64(v)
		hasRun, err := exists(txn, key(pRun, id.run))
		if err == nil && !hasRun {
			problems = append(problems, fmt.Sprintf("%s: no such run", what))
			damaged = append(damaged, k, orderKey(seq))
			continue
		}
		ov, err := getValue(txn, orderKey(seq))
		var o orderItem
		if err == nil {
			o, err = decodeOrder(orderKey(seq), ov)
		}
		if err != nil || o.id != id {
			problems = append(problems, fmt.Sprintf("%s: no order entry %d", what, seq))
			damaged = append(damaged, k)
		}
	}
	it.Close()
	it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pOrder}, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		v, err := it.Item().ValueCopy(nil)
		var o orderItem
		if err == nil {
			o, err = decodeOrder(k, v)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: malformed", describeKey(k)))
			damaged = append(damaged, k)
			continue
		}
		seq, ok, err := taskSeq(txn, o.id)
		if err == nil && (!ok || seq != o.seq) {
			problems = append(problems, fmt.Sprintf("%s: no task of node %q of run %q", describeKey(k), o.id.node, o.id.run))
			damaged = append(damaged, k)
		}
	}
	return problems, damaged
}
