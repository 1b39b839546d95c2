package pgstore

import (
	"context"

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

// ClaimAnySQL is the statement of ClaimTasks.
var ClaimAnySQL = claimAnySQL
