// Package storetest is the conformance suite every statestore backend passes.
//
// A backend's test calls Run with a constructor that returns a fresh, empty
// store using default options (in particular statestore.DefaultMaxCheckpoints).
// The suite closes each store itself; the constructor may register further
// cleanup with t.Cleanup.
package storetest
