//go:build race

package workflow_test

// raceEnabled: the race detector slows the engine and the store several
// times, so load tests size themselves down under it.
const raceEnabled = true
