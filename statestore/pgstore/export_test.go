package pgstore

// Grouped returns how many groups of more than one completion s committed
// in one transaction.
func Grouped(s *Store) int64 { return s.grouped.Load() }

// ClaimAnySQL is the statement of ClaimTasks.
var ClaimAnySQL = claimAnySQL
