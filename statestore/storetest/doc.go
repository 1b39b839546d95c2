// Package storetest is the conformance suite every statestore backend passes.
//
// A backend's test calls Run with a constructor that returns a fresh, empty
// store using default options (in particular statestore.DefaultMaxCheckpoints).
// The suite closes each store itself; the constructor may register further
// cleanup with t.Cleanup.
//
// ListRuns_Growth checks that a filtered page does not cost more as runs
// pile up: it times the same pages (median of 31 repetitions) with 1,000 runs
// stored and with 100,000 (20,000 under -short, which make test uses) and
// fails when the large store is more than 5× slower, so a backend needs an
// index per filter. The runs are written by 32 goroutines, so a backend that
// groups concurrent writes fills the store quickly.
package storetest
