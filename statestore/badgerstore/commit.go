package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// op is one write handed to the committer. fn runs in the committer's
// transaction, which already holds the uncommitted writes of earlier ops of
// the same group, so its reads see them. fn must do every check before its
// first write: when it returns an error other than badger.ErrTxnTooBig it
// must not have written anything.
type op struct {
	ctx context.Context
	fn  func(w *writer) error
	// after, when set, runs on the committer once the op's transaction
	// committed (true) or did not (false), before the op is answered and
	// before the next group starts: it applies the op's in-memory effects
	// (claims of the queue) in commit order.
	after func(committed bool)
	done  chan error
}

// writer wraps the group's transaction and counts what was written.
type writer struct {
	txn   *badger.Txn
	bytes int
	count int
	big   int // bytes of values that go to the value log
	nbig  int
}

func (w *writer) set(k, v []byte) error {
	w.bytes += len(k) + len(v)
	w.count++
	if len(v) >= valueThreshold {
		w.big += len(v)
		w.nbig++
	}
	return w.txn.Set(k, v)
}

// logBytes bounds what committing w appends to the memtable log and to the
// value log.
func (w *writer) logBytes() (mem, vlog int64) {
	mem = int64(w.bytes-w.big) + int64(w.count+1)*entryOverhead
	vlog = int64(w.big) + int64(w.nbig)*entryOverhead
	return mem, vlog
}

func (w *writer) del(k []byte) error {
	w.bytes += len(k)
	w.count++
	return w.txn.Delete(k)
}

// get returns a copy of the value at k, or nil and statestore.ErrNotFound.
func (w *writer) get(k []byte) ([]byte, error) {
	return getValue(w.txn, k)
}

func getValue(txn *badger.Txn, k []byte) ([]byte, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, statestore.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func exists(txn *badger.Txn, k []byte) (bool, error) {
	_, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Budget of one Badger transaction in a group. Badger refuses a transaction
// above ~15% of the memtable (2.4 MiB at memTableSize); values of 1 MiB and
// more go to the value log and cost a pointer.
const (
	txnMaxBytes = 2 << 20
	txnMaxCount = 10000
)

// write queues fn for the committer and waits until its group is durable.
func (s *Store) write(ctx context.Context, fn func(w *writer) error) error {
	return s.writeThen(ctx, fn, nil)
}

// writeThen is write with an after hook (see op.after). after runs even
// when the caller stopped waiting.
func (s *Store) writeThen(ctx context.Context, fn func(w *writer) error, after func(committed bool)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{ctx: ctx, fn: fn, after: after, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return statestore.ErrClosed
	}
	select {
	case s.queue <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the committer: it takes every queued op (up to maxBatch),
// applies them in one transaction, commits, fsyncs once and releases them.
func (s *Store) commitLoop() {
	defer close(s.committerDone)
	batch := make([]*op, 0, s.opts.maxBatch)
	for {
		o, ok := <-s.queue
		if !ok {
			return
		}
		batch = append(batch[:0], o)
	fill:
		for len(batch) < s.opts.maxBatch {
			select {
			case o, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commitGroup(batch)
		clear(batch)
	}
}

// commitGroup applies, commits and syncs one group, then answers every op.
func (s *Store) commitGroup(batch []*op) {
	results := make([]error, len(batch))
	var pending []int   // ops applied to the open transaction
	var committed []int // ops whose transaction committed
	w := &writer{txn: s.db.NewTransaction(true)}

	commit := func() {
		mem, vlog := w.logBytes()
		if len(pending) == 0 {
			w.txn.Discard()
		} else if err := s.space.admit(mem, vlog); err != nil {
			w.txn.Discard()
			for _, i := range pending {
				results[i] = err
			}
		} else if err := w.txn.Commit(); err != nil {
			for _, i := range pending {
				results[i] = translate(err)
			}
		} else {
			s.space.wrote(mem, vlog)
			committed = append(committed, pending...)
		}
		pending = pending[:0]
		w = &writer{txn: s.db.NewTransaction(true)}
	}
	// replay re-applies the pending ops to a fresh transaction, without the
	// one that overflowed; their checks give the same answers because
	// nothing was committed in between.
	replay := func() {
		w.txn.Discard()
		w = &writer{txn: s.db.NewTransaction(true)}
		again := pending
		pending = nil
		for _, i := range again {
			if err := batch[i].fn(w); err != nil {
				results[i] = translate(err)
				continue
			}
			pending = append(pending, i)
		}
	}

	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if len(pending) > 0 && (w.bytes > txnMaxBytes || w.count > txnMaxCount) {
			commit()
		}
		err := o.fn(w)
		if errors.Is(err, badger.ErrTxnTooBig) && len(pending) > 0 {
			replay()
			commit()
			err = o.fn(w)
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			w.txn.Discard()
			w = &writer{txn: s.db.NewTransaction(true)}
			results[i] = fmt.Errorf("badgerstore: write too large for one transaction: %v", err)
			continue
		}
		if err != nil {
			results[i] = translate(err)
			continue
		}
		pending = append(pending, i)
	}
	commit()
	w.txn.Discard()

	if len(committed) > 0 && !s.opts.syncWrites {
		if err := s.db.Sync(); err != nil {
			err = fmt.Errorf("badgerstore: sync %s: %v", s.dir, err)
			for _, i := range committed {
				results[i] = err
			}
		}
	}
	if hooks := slices.ContainsFunc(batch, func(o *op) bool { return o.after != nil }); hooks {
		ok := make([]bool, len(batch))
		for _, i := range committed {
			ok[i] = true
		}
		for i, o := range batch {
			if o.after != nil {
				o.after(ok[i])
			}
		}
	}
	for i, o := range batch {
		o.done <- results[i]
	}
}
