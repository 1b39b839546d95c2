//go:build race

package host_test

// raceEnabled: the race detector slows Go code (not guest code) several
// times, so latency bounds in tests allow for it.
const raceEnabled = true
