package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Grouped returns how many groups of more than one completion s committed
// in one transaction.
func Grouped(s *Store) int64 { return s.grouped.Load() }

// CompleteTogether commits the completions cs in one group, in the order
// given, and returns each one's kept task and error, as CompleteTask
// would.
func CompleteTogether(ctx context.Context, s *Store, cs ...statestore.Completion) ([]statestore.Task, []error, error) {
	ops := make([]*op, len(cs))
	for i, c := range cs {
		o, err := s.taskOp(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		ops[i] = o
	}
	results, err := s.runGroup(ops)
	if err != nil {
		return nil, nil, err
	}
	kept := make([]statestore.Task, len(cs))
	for i, o := range ops {
		kept[i] = o.task.next
	}
	return kept, results, nil
}

// EndTogether commits the completions cs in one group, as
// CompleteTaskEnd would each with its end in ends (nil: CompleteTask),
// and returns each one's error and whether it ended its run.
func EndTogether(ctx context.Context, s *Store, cs []statestore.Completion, ends []func(*statestore.Run) error) ([]bool, []error, error) {
	ops := make([]*op, len(cs))
	for i, c := range cs {
		o, err := s.taskOp(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		if ends[i] != nil {
			s.addEnd(o, ends[i])
		}
		ops[i] = o
	}
	results, err := s.runGroup(ops)
	if err != nil {
		return nil, nil, err
	}
	ended := make([]bool, len(cs))
	for i, o := range ops {
		if results[i] == nil {
			_, ended[i], _ = s.ended(o)
		}
	}
	return ended, results, nil
}

// CompleteTogetherScans is CompleteTogether in a transaction of its own
// that also returns how many sequential scans of each table it made.
func CompleteTogetherScans(ctx context.Context, s *Store, cs ...statestore.Completion) ([]error, map[string]int64, error) {
	ops := make([]*op, len(cs))
	for i, c := range cs {
		o, err := s.taskOp(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		ops[i] = o
	}
	tx, err := s.writes.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback(ctx)
	// The counts are the session's not yet reported, this transaction's
	// and maybe earlier ones': the difference is the group's.
	count := func() (map[string]int64, error) {
		scans := map[string]int64{}
		rows, err := tx.Query(ctx, "SELECT relname, seq_scan FROM pg_stat_xact_user_tables")
		if err != nil {
			return nil, err
		}
		var name string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { scans[name] = n; return nil })
		return scans, err
	}
	before, err := count()
	if err != nil {
		return nil, nil, err
	}
	results, err := s.runGroupOn(tx, ops)
	if err != nil {
		return nil, nil, err
	}
	scans, err := count()
	if err != nil {
		return nil, nil, err
	}
	for name, n := range before {
		scans[name] -= n
	}
	return results, scans, tx.Commit(ctx)
}

// ClaimAnySQL is the statement of ClaimTasks.
var ClaimAnySQL = claimAnySQL

// HoldGroup makes s's committers see a group of n in flight, as if one
// were committing it, until the returned func is called.
func HoldGroup(s *Store, n int) (release func()) {
	s.prev.Store(s.flying.Swap(int32(n)))
	s.busy.Add(1)
	return func() {
		s.busy.Add(-1)
		select {
		case s.freed <- struct{}{}:
		default:
		}
	}
}

// SetGroupWait sets how long a group waits for the group in flight.
func SetGroupWait(s *Store, d time.Duration) { s.groupWait.Store(int64(d)) }
