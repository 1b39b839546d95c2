// Package storetest is the conformance suite every statestore backend passes.
//
// A backend's test calls Run with a constructor that returns a fresh, empty
// store using default options (in particular statestore.DefaultMaxCheckpoints).
// The suite closes each store itself; the constructor may register further
// cleanup with t.Cleanup.
//
// ListRuns_Growth and ListDeadLetters_Growth check that a filtered page
// (runs by status, dead letters by run) does not cost more as records pile
// up: they time the same pages (medians of at least 31 calls spanning 50
// ms) with 1,000 records stored and with 100,000 (20,000 under -short,
// which make test uses) and fail when the large store is more than 5×
// slower, so a backend needs an index per filter. The records are written
// by 32 goroutines, so a backend that groups concurrent writes fills the
// store quickly. BenchRuns is the matching benchmark.
package storetest
