package pgstore

import (
	"context"
	"time"
)

// gcBatch is how many expired runs one GC statement removes.
const gcBatch = 500

// WithRetention sets how long a finished run, its journal, attempts,
// checkpoints and tasks are kept after it finished
// (statestore.DefaultRetention when d <= 0).
func WithRetention(d time.Duration) Option {
	return optionFunc(func(o *options) { o.retention = d })
}

// WithGCInterval sets how often the store removes expired runs (default
// 10 minutes; negative: never, CollectGarbage only).
func WithGCInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.gcInterval = d })
}

// gcLoop runs CollectGarbage every GC interval until the store closes.
// Every host sharing the database runs it; the deletes are idempotent and
// skip rows another host is removing.
func (s *Store) gcLoop() {
	defer close(s.gcDone)
	if s.opts.gcInterval < 0 {
		return
	}
	t := time.NewTicker(s.opts.gcInterval)
	defer t.Stop()
	for {
		select {
		case <-s.life.Done():
			return
		case <-s.gcStop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.life, time.Minute)
			_, _ = s.CollectGarbage(ctx)
			cancel()
		}
	}
}

// CollectGarbage removes every run that finished more than the retention
// ago, with its journal, attempts, checkpoints and tasks (the schema's
// cascades and its trigger runs_deleted); runs that still have dead
// letters are kept. It returns how
// many runs it removed. Plugin state, modules and hosts are not runs'
// and stay.
func (s *Store) CollectGarbage(ctx context.Context) (int, error) {
	cutoff := s.opts.now().Add(-s.opts.retention).UnixNano()
	removed := 0
	for {
		var n int64
		err := s.do(ctx, func(ctx context.Context) error {
			tag, err := s.pool.Exec(ctx, `DELETE FROM runs WHERE id IN (
	SELECT r.id FROM runs r
	 WHERE r.finished_ns IS NOT NULL AND r.finished_ns < $1
	   AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.run_id = r.id)
	 ORDER BY r.finished_ns LIMIT $2
	   FOR UPDATE SKIP LOCKED)`, cutoff, gcBatch)
			n = tag.RowsAffected()
			return err
		})
		removed += int(n)
		if err != nil || n < gcBatch {
			return removed, err
		}
	}
}
